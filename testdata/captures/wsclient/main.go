// Command wsclient speaks MQTT 5 to a broker over WebSocket with hand-built packets, so that
// gen.sh can capture mqtt-ws.pcapng. It lines MQTT packets up with WebSocket frames in the ways
// MQTT-over-WebSocket allows and a decoder has to cope with:
//
//   - CONNECT alone in one binary message (sent by gorilla/websocket, random mask);
//   - SUBSCRIBE as one message fragmented into two frames (binary FIN=0, continuation FIN=1),
//     with a ping control frame between the fragments;
//   - PUBLISH QoS 1 and PINGREQ together in one frame;
//   - a QoS 0 PUBLISH split across two separate binary messages;
//   - DISCONNECT, then a WebSocket close.
//
// Frames it writes by hand use the fixed masking key "mqsc" (6d 71 73 63), so their masked
// bytes are the same on every run.
//
//	go run ./testdata/captures/wsclient -url ws://127.0.0.1:18835/
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gorilla/websocket"
)

// connect is an MQTT 5 CONNECT.
var connect = packet(
	0x10, 0x34, // CONNECT, remaining length 52
	0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
	0x05,       // protocol version 5
	0x02,       // connect flags: clean start
	0x00, 0x1e, // keep alive 30 s
	0x1d,             // properties length 29
	0x21, 0x00, 0x10, // receive maximum 16
	0x22, 0x00, 0x04, // topic alias maximum 4
	0x26, // user property
	0x00, 0x09, 't', 'r', 'a', 'n', 's', 'p', 'o', 'r', 't',
	0x00, 0x09, 'w', 'e', 'b', 's', 'o', 'c', 'k', 'e', 't',
	0x00, 0x0a, 'm', 'q', 's', 'c', 'o', 'p', 'e', '-', 'w', 's', // client id
)

// subscribe is an MQTT 5 SUBSCRIBE to mqscope/ws/# at QoS 1 with subscription identifier 1.
var subscribe = packet(
	0x82, 0x14, // SUBSCRIBE, remaining length 20
	0x00, 0x01, // packet identifier 1
	0x02,       // properties length 2
	0x0b, 0x01, // subscription identifier 1
	0x00, 0x0c, 'm', 'q', 's', 'c', 'o', 'p', 'e', '/', 'w', 's', '/', '#', // topic filter
	0x01, // subscription options: QoS 1
)

// publishQoS1 is an MQTT 5 PUBLISH QoS 1 to mqscope/ws/echo with a UTF-8 text payload.
var publishQoS1 = packet(
	0x32, 0x37, // PUBLISH QoS 1, remaining length 55
	0x00, 0x0f, 'm', 'q', 's', 'c', 'o', 'p', 'e', '/', 'w', 's', '/', 'e', 'c', 'h', 'o', // topic
	0x00, 0x02, // packet identifier 2
	0x0f,       // properties length 15
	0x01, 0x01, // payload format indicator: UTF-8
	0x03, 0x00, 0x0a, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n', // content type
	// payload
	'h', 'e', 'l', 'l', 'o', ' ', 'o', 'v', 'e', 'r', ' ',
	'w', 'e', 'b', 's', 'o', 'c', 'k', 'e', 't',
)

// pingreq is an MQTT PINGREQ.
var pingreq = packet(0xc0, 0x00)

// publishSplit is an MQTT 5 PUBLISH QoS 0 to mqscope/ws/split, sent in two WebSocket messages.
var publishSplit = packet(
	0x30, 0x2c, // PUBLISH QoS 0, remaining length 44
	0x00, 0x10, 'm', 'q', 's', 'c', 'o', 'p', 'e', '/', 'w', 's', '/', 's', 'p', 'l', 'i', 't', // topic
	0x00, // properties length 0
	// payload
	's', 'p', 'l', 'i', 't', ' ', 'a', 'c', 'r', 'o', 's', 's', ' ',
	't', 'w', 'o', ' ', 'm', 'e', 's', 's', 'a', 'g', 'e', 's',
)

// disconnect is an MQTT 5 DISCONNECT with reason code 0 (normal), in its short form.
var disconnect = packet(0xe0, 0x00)

// packet checks that a hand-built packet's one-byte remaining length matches its size.
func packet(b ...byte) []byte {
	if len(b) < 2 || b[1] >= 0x80 || int(b[1]) != len(b)-2 {
		panic(fmt.Sprintf("wsclient: packet %#02x: remaining length %d, body %d bytes", b[0], b[1], len(b)-2))
	}
	return b
}

// mask is the masking key of the frames written by writeFrame.
var mask = [4]byte{0x6d, 0x71, 0x73, 0x63}

// WebSocket opcodes used by writeFrame.
const (
	opContinuation = 0x0
	opBinary       = 0x2
	opPing         = 0x9
)

// writeFrame writes one masked client frame with a payload shorter than 126 bytes.
func writeFrame(w io.Writer, fin bool, opcode byte, payload []byte) error {
	if len(payload) >= 126 {
		return fmt.Errorf("frame payload %d bytes: only 7-bit lengths are supported", len(payload))
	}
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	frame := append([]byte{b0, 0x80 | byte(len(payload))}, mask[:]...)
	for i, c := range payload {
		frame = append(frame, c^mask[i%4])
	}
	_, err := w.Write(frame)
	return err
}

// reader splits the binary messages it receives into MQTT packets, whatever their alignment.
type reader struct {
	conn *websocket.Conn
	buf  []byte
}

// next returns the next whole MQTT packet (fixed header included).
func (r *reader) next() ([]byte, error) {
	for {
		if n, ok := packetLen(r.buf); ok && len(r.buf) >= n {
			p := r.buf[:n:n]
			r.buf = r.buf[n:]
			return p, nil
		}
		if err := r.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return nil, err
		}
		kind, msg, err := r.conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		if kind != websocket.BinaryMessage {
			return nil, fmt.Errorf("got a WebSocket message of type %d, want binary", kind)
		}
		r.buf = append(r.buf, msg...)
	}
}

// packetLen returns the total length of the MQTT packet at the start of b, if its fixed
// header is complete.
func packetLen(b []byte) (int, bool) {
	n, mul := 0, 1
	for i := 1; i < len(b) && i <= 4; i++ {
		n += int(b[i]&0x7f) * mul
		if b[i]&0x80 == 0 {
			return 1 + i + n, true
		}
		mul *= 128
	}
	return 0, false
}

// expect reads packets until it has seen one of each wanted first byte (in any order), and
// answers every QoS 1 PUBLISH with a PUBACK.
func expect(c *websocket.Conn, r *reader, want ...byte) error {
	pending := map[byte]bool{}
	for _, w := range want {
		pending[w] = true
	}
	for len(pending) > 0 {
		p, err := r.next()
		if err != nil {
			return fmt.Errorf("waiting for %x: %w", want, err)
		}
		fmt.Printf("received % x\n", p)
		if !pending[p[0]] {
			return fmt.Errorf("unexpected packet % x, waiting for %x", p, want)
		}
		delete(pending, p[0])
		if p[0] == 0x32 { // PUBLISH QoS 1: acknowledge its packet identifier
			topicLen := int(p[2])<<8 | int(p[3])
			id := p[4+topicLen : 6+topicLen]
			if err := c.WriteMessage(websocket.BinaryMessage, packet(0x40, 0x02, id[0], id[1])); err != nil {
				return err
			}
		}
	}
	return nil
}

func run(url string) error {
	dialer := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	c, resp, err := dialer.Dial(url, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", url, err)
	}
	defer c.Close()
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mqtt" {
		return fmt.Errorf("server chose subprotocol %q, want mqtt", got)
	}
	r := &reader{conn: c}
	raw := c.UnderlyingConn()

	// CONNECT, one message; CONNACK.
	if err := c.WriteMessage(websocket.BinaryMessage, connect); err != nil {
		return err
	}
	if err := expect(c, r, 0x20); err != nil {
		return err
	}

	// SUBSCRIBE fragmented: 7 bytes, a ping, the other 15; SUBACK.
	if err := writeFrame(raw, false, opBinary, subscribe[:7]); err != nil {
		return err
	}
	if err := writeFrame(raw, true, opPing, []byte("mqscope")); err != nil {
		return err
	}
	if err := writeFrame(raw, true, opContinuation, subscribe[7:]); err != nil {
		return err
	}
	if err := expect(c, r, 0x90); err != nil {
		return err
	}

	// PUBLISH QoS 1 and PINGREQ in one frame; PUBACK, PINGRESP and our own PUBLISH back.
	if err := writeFrame(raw, true, opBinary, append(bytes.Clone(publishQoS1), pingreq...)); err != nil {
		return err
	}
	if err := expect(c, r, 0x40, 0xd0, 0x32); err != nil {
		return err
	}

	// PUBLISH QoS 0 in two messages, split inside the topic; the PUBLISH back.
	if err := writeFrame(raw, true, opBinary, publishSplit[:10]); err != nil {
		return err
	}
	time.Sleep(50 * time.Millisecond) // keep the two messages in separate TCP segments
	if err := writeFrame(raw, true, opBinary, publishSplit[10:]); err != nil {
		return err
	}
	if err := expect(c, r, 0x30); err != nil {
		return err
	}

	// DISCONNECT; the broker closes the connection.
	if err := c.WriteMessage(websocket.BinaryMessage, disconnect); err != nil {
		return err
	}
	closing := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = c.WriteControl(websocket.CloseMessage, closing, time.Now().Add(time.Second)) // may race the broker's close
	if _, err := r.next(); err == nil {
		return errors.New("got a packet after DISCONNECT")
	}
	return nil
}

func main() {
	url := flag.String("url", "ws://127.0.0.1:18835/", "broker WebSocket URL")
	flag.Parse()
	if err := run(*url); err != nil {
		fmt.Fprintln(os.Stderr, "wsclient:", err)
		os.Exit(1)
	}
}
