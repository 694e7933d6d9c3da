package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// recorder is a Handler that keeps every event.
type recorder struct {
	conns []*recConn
	a     *Analyzer // with analyze
	// onClose, when set, is called with each connection as it closes (on the analyzer's
	// goroutine).
	onClose func(*recConn)
}

type recConn struct {
	info   stream.Conn
	data   [2][]byte
	frames [2]int // whole frames seen
	cut    [2]int // where the next frame starts in stream (framing restarts after a gap)
	events []string
	gapT   []time.Time // the time of each gap
	closed string
	rec    *recorder
}

func (r *recorder) Open(info *stream.Conn) stream.ConnObserver {
	c := &recConn{info: *info, rec: r}
	r.conns = append(r.conns, c)
	return c
}

func (c *recConn) Data(d stream.Dir, t time.Time, b []byte) { c.Keep(d, t, b) }

func (c *recConn) Keep(d stream.Dir, t time.Time, b []byte) (bool, bool) {
	c.data[d] = append(c.data[d], b...)
	done := false
	for {
		n, err := decode.SplitFrame(c.data[d][c.framed(d):], 0)
		if err != nil || n == 0 {
			break
		}
		c.frames[d]++
		c.events = append(c.events, fmt.Sprintf("%v frame %d", d, c.frames[d]))
		c.cut[d] += n
		done = true
	}
	return done, done
}

func (c *recConn) Gap(d stream.Dir, t time.Time, n int) {
	c.events = append(c.events, fmt.Sprintf("%v gap %d", d, n))
	c.gapT = append(c.gapT, t)
	c.data[d] = append(c.data[d], []byte(fmt.Sprintf("<gap %d>", n))...)
	c.cut[d] = len(c.data[d])
}

func (c *recConn) Unseen(d stream.Dir, t time.Time) {
	c.events = append(c.events, fmt.Sprintf("%v unseen", d))
}

func (c *recConn) Close(t time.Time, e stream.End) {
	c.closed = e.By.String() + " " + e.How.String()
	if c.rec != nil && c.rec.onClose != nil {
		c.rec.onClose(c)
	}
}

func (c *recConn) framed(d stream.Dir) int { return c.cut[d] }

// Test traffic.
var (
	cli     = netip.MustParseAddrPort("192.0.2.10:50000")
	srv     = netip.MustParseAddrPort("192.0.2.1:1883")
	connect = []byte{
		0x10, 0x10, // CONNECT, remaining length 16
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // level 4: 3.1.1
		0x02,       // clean session
		0x00, 0x3c, // keepalive 60
		0x00, 0x04, 't', 'e', 's', 't', // client id
	}
	connack = []byte{0x20, 0x02, 0x00, 0x00}
	pingreq = []byte{0xc0, 0x00}
)

// publish returns a QoS 0 PUBLISH on topic t with n bytes of payload.
func publish(topic string, n int) []byte {
	body := append([]byte{byte(len(topic) >> 8), byte(len(topic))}, topic...)
	body = append(body, bytes.Repeat([]byte{'p'}, n)...)
	b := decode.AppendVarInt([]byte{0x30}, uint32(len(body)))
	return append(b, body...)
}

// file writes a pcapng built by fn and returns its path.
func file(t *testing.T, fn func(sw *pcapng.StreamWriter)) string {
	t.Helper()
	var buf bytes.Buffer
	sw, err := pcapng.NewStreamWriter(&buf)
	must(t, err)
	fn(sw)
	must(t, sw.Flush())
	p := filepath.Join(t.TempDir(), "c.pcapng")
	must(t, os.WriteFile(p, buf.Bytes(), 0o644))
	return p
}

func analyze(t *testing.T, opts Options, files ...string) *recorder {
	t.Helper()
	r := &recorder{}
	a := NewAnalyzer(r, opts)
	r.a = a
	must(t, ReadFiles(context.Background(), files, a, nil))
	return r
}

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

// seg writes a segment at a stream offset of direction d (0 = first byte after the SYN).
func seg(t *testing.T, s *pcapng.TCPStream, d stream.Dir, at time.Time, off int, b []byte) {
	t.Helper()
	isn := s.Next(d) // after Open: ISN + 1
	must(t, s.SegmentAt(d, at, pcapng.ACK|pcapng.PSH, isn+uint32(off), b))
}

func TestReassembly(t *testing.T) {
	c2s := append(append(append([]byte{}, connect...), publish("a/b", 10)...), publish("big", 3000)...)
	c2s = append(c2s, pingreq...)
	s2c := append(append([]byte{}, connack...), 0xd0, 0x00)
	cases := []struct {
		name  string
		write func(t *testing.T, s *pcapng.TCPStream)
	}{
		{"in order, small segments", func(t *testing.T, s *pcapng.TCPStream) {
			s.Writer().MSS = 7 // splits inside fixed headers and Remaining Lengths
			must(t, s.Write(stream.C2S, ms(1), c2s))
			must(t, s.Write(stream.S2C, ms(2), s2c))
		}},
		{"one byte per segment", func(t *testing.T, s *pcapng.TCPStream) {
			s.Writer().MSS = 1
			must(t, s.Write(stream.C2S, ms(1), c2s[:100]))
			s.Writer().MSS = 0
			must(t, s.Write(stream.C2S, ms(1), c2s[100:]))
			must(t, s.Write(stream.S2C, ms(2), s2c))
		}},
		{"out of order", func(t *testing.T, s *pcapng.TCPStream) {
			// Segments of 500 bytes sent in the order 1 0 3 2 5 4 ...
			var parts [][2]int
			for o := 0; o < len(c2s); o += 500 {
				parts = append(parts, [2]int{o, min(o+500, len(c2s))})
			}
			for i := 0; i < len(parts); i += 2 {
				if i+1 < len(parts) {
					seg(t, s, stream.C2S, ms(1+i), parts[i+1][0], c2s[parts[i+1][0]:parts[i+1][1]])
				}
				seg(t, s, stream.C2S, ms(1+i), parts[i][0], c2s[parts[i][0]:parts[i][1]])
			}
			s.Skip(stream.C2S, int(uint32(len(c2s))))
			must(t, s.Write(stream.S2C, ms(20), s2c))
		}},
		{"retransmissions and overlaps", func(t *testing.T, s *pcapng.TCPStream) {
			seg(t, s, stream.C2S, ms(1), 0, c2s[:100])
			seg(t, s, stream.C2S, ms(2), 0, c2s[:100])    // retransmission
			seg(t, s, stream.C2S, ms(3), 50, c2s[50:300]) // overlaps the end
			seg(t, s, stream.C2S, ms(4), 400, c2s[400:900])
			seg(t, s, stream.C2S, ms(5), 250, c2s[250:450]) // fills the hole, overlapping both sides
			seg(t, s, stream.C2S, ms(6), 900, c2s[900:])
			seg(t, s, stream.C2S, ms(7), 800, c2s[800:1000]) // late duplicate
			s.Skip(stream.C2S, int(uint32(len(c2s))))
			must(t, s.Write(stream.S2C, ms(20), s2c))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := file(t, func(sw *pcapng.StreamWriter) {
				s, err := sw.Open(cli, srv, ms(0))
				must(t, err)
				tc.write(t, s)
				must(t, s.Close(stream.C2S, ms(30)))
			})
			r := analyze(t, Options{}, p)
			if len(r.conns) != 1 {
				t.Fatalf("%d connections, want 1", len(r.conns))
			}
			c := r.conns[0]
			if c.info.Client != cli || c.info.Server != srv || c.info.MidStream || c.info.ID != 1 {
				t.Errorf("info = %+v", c.info)
			}
			if !bytes.Equal(c.data[stream.C2S], c2s) {
				t.Errorf("client stream differs:\n got %q\nwant %q", c.data[0], c2s)
			}
			if !bytes.Equal(c.data[stream.S2C], s2c) {
				t.Errorf("server stream = %x, want %x", c.data[1], s2c)
			}
			if c.frames != [2]int{4, 2} {
				t.Errorf("frames = %v, want [4 2]", c.frames)
			}
			if c.closed != "client FIN" {
				t.Errorf("closed = %q, want client FIN", c.closed)
			}
		})
	}
}

func TestLoss(t *testing.T) {
	c2s := append(append([]byte{}, connect...), publish("a", 1000)...)
	c2s = append(c2s, publish("b", 5)...)
	for _, tc := range []struct {
		name  string
		after time.Duration // time of the packets after the hole
	}{
		{"reported at the end", time.Millisecond},
		{"reported after the wait", 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := file(t, func(sw *pcapng.StreamWriter) {
				s, err := sw.Open(cli, srv, ms(0))
				must(t, err)
				seg(t, s, stream.C2S, ms(1), 0, c2s[:300])
				// bytes 300..600 lost
				seg(t, s, stream.C2S, ms(2), 600, c2s[600:])
				s.Skip(stream.C2S, int(uint32(len(c2s))))
				must(t, s.Write(stream.S2C, ms(3), connack))
				must(t, s.Write(stream.C2S, t0.Add(tc.after), pingreq))
				must(t, s.Write(stream.S2C, t0.Add(tc.after+time.Second), []byte{0xd0, 0x00}))
				must(t, s.Close(stream.S2C, t0.Add(tc.after+2*time.Second)))
			})
			r := analyze(t, Options{}, p)
			if len(r.conns) != 1 {
				t.Fatalf("%d connections", len(r.conns))
			}
			c := r.conns[0]
			want := "c2s gap 300"
			if !strings.Contains(strings.Join(c.events, "\n"), want) {
				t.Errorf("events %q lack %q", c.events, want)
			}
			if got := c.data[stream.C2S]; !bytes.HasSuffix(got, append(append([]byte("<gap 300>"), c2s[600:]...), pingreq...)) {
				t.Errorf("client stream after the gap = %q", got)
			}
			if c.closed != "server FIN" {
				t.Errorf("closed = %q", c.closed)
			}
		})
	}
}

func TestMidStream(t *testing.T) {
	// The capture starts after the handshake, with the server speaking first, in the middle
	// of a PUBLISH.
	pub := publish("x/y", 40)
	p := file(t, func(sw *pcapng.StreamWriter) {
		s := sw.OpenMid(cli, srv, 1000, 5000)
		must(t, s.Segment(stream.S2C, ms(1), pcapng.ACK|pcapng.PSH, pub[10:]))
		must(t, s.Segment(stream.C2S, ms(2), pcapng.ACK|pcapng.PSH, pingreq))
		must(t, s.Segment(stream.S2C, ms(3), pcapng.ACK|pcapng.PSH, []byte{0xd0, 0x00}))
	})
	r := analyze(t, Options{}, p)
	if len(r.conns) != 1 {
		t.Fatalf("%d connections", len(r.conns))
	}
	c := r.conns[0]
	if !c.info.MidStream || c.info.Client != cli || c.info.Server != srv {
		t.Errorf("info = %+v", c.info)
	}
	if !bytes.Equal(c.data[stream.S2C], append(pub[10:], 0xd0, 0x00)) || !bytes.Equal(c.data[stream.C2S], pingreq) {
		t.Errorf("streams = %q", c.data)
	}
	if c.closed != "source-end unsaid" {
		t.Errorf("closed = %q", c.closed)
	}
}

func TestDetection(t *testing.T) {
	other := netip.MustParseAddrPort("192.0.2.1:4000")
	p := file(t, func(sw *pcapng.StreamWriter) {
		// MQTT on port 4000: found by its CONNECT, the first bytes split over segments.
		s, _ := sw.Open(cli, other, ms(0))
		sw.MSS = 3
		must(t, s.Write(stream.C2S, ms(1), connect))
		sw.MSS = 0
		must(t, s.Write(stream.S2C, ms(2), connack))
		must(t, s.Reset(stream.S2C, ms(3)))
		// HTTP on port 4000 from another client: not MQTT.
		s2, _ := sw.Open(netip.MustParseAddrPort("192.0.2.11:50001"), other, ms(4))
		must(t, s2.Write(stream.C2S, ms(5), []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")))
		must(t, s2.Write(stream.S2C, ms(6), []byte("HTTP/1.1 200 OK\r\n\r\n")))
		must(t, s2.Close(stream.C2S, ms(7)))
		// An SSH-like banner from the server: not MQTT.
		s3, _ := sw.Open(netip.MustParseAddrPort("192.0.2.12:50002"), other, ms(8))
		must(t, s3.Write(stream.S2C, ms(9), []byte("SSH-2.0-x\r\n")))
		must(t, s3.Close(stream.C2S, ms(10)))
	})
	r := analyze(t, Options{}, p)
	if len(r.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(r.conns))
	}
	c := r.conns[0]
	if c.info.Server != other || !bytes.Equal(c.data[0], connect) || !bytes.Equal(c.data[1], connack) {
		t.Errorf("conn = %+v %q", c.info, c.data)
	}
	if c.closed != "server RST" {
		t.Errorf("closed = %q", c.closed)
	}
	// With --port 4000 an HTTP stream there is still not MQTT (no upgrade).
	if r := analyze(t, Options{Ports: []uint16{4000}}, p); len(r.conns) != 2 {
		t.Errorf("with port 4000: %d connections, want 2 (MQTT and the silent client; HTTP without upgrade is not MQTT)", len(r.conns))
	}
}

// wsFrame builds one WebSocket frame; mask != nil masks it (client to server).
func wsFrame(fin bool, op byte, payload []byte, mask []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	m := byte(0)
	if mask != nil {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n < 65536:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if mask == nil {
		return append(b, payload...)
	}
	b = append(b, mask...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// wsHandshake is a client's upgrade to WebSocket with the mqtt subprotocol, and the server's
// acceptance.
func wsHandshake() (req, resp string) {
	req = "GET /mqtt HTTP/1.1\r\nHost: broker\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: mqtt\r\n\r\n"
	resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kK0gzo=\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	return req, resp
}

func TestWebSocket(t *testing.T) {
	ws := netip.MustParseAddrPort("192.0.2.1:9001")
	req, resp := wsHandshake()
	mask := []byte{1, 2, 3, 4}
	pub := publish("ws/t", 300)
	var c2s []byte
	c2s = append(c2s, req...)
	c2s = append(c2s, wsFrame(true, 2, connect, mask)...)
	// A PUBLISH in three fragments with a ping between them; then two packets in one frame.
	c2s = append(c2s, wsFrame(false, 2, pub[:2], mask)...)
	c2s = append(c2s, wsFrame(true, 9, []byte("hi"), mask)...)
	c2s = append(c2s, wsFrame(false, 0, pub[2:200], mask)...)
	c2s = append(c2s, wsFrame(true, 0, pub[200:], mask)...)
	c2s = append(c2s, wsFrame(true, 2, append(append([]byte{}, pingreq...), pingreq...), mask)...)
	s2c := append([]byte(resp), wsFrame(true, 2, connack, nil)...)
	s2c = append(s2c, wsFrame(true, 2, []byte{0xd0, 0x00, 0xd0, 0x00}, nil)...)
	p := file(t, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(cli, ws, ms(0))
		sw.MSS = 37
		must(t, s.Write(stream.C2S, ms(1), c2s[:len(req)+20]))
		must(t, s.Write(stream.S2C, ms(2), s2c))
		must(t, s.Write(stream.C2S, ms(3), c2s[len(req)+20:]))
		must(t, s.Close(stream.C2S, ms(4)))
	})
	r := analyze(t, Options{}, p)
	if len(r.conns) != 1 {
		t.Fatalf("%d connections", len(r.conns))
	}
	c := r.conns[0]
	if c.info.Transport != stream.WebSocket || c.info.Path != "/mqtt" {
		t.Errorf("info = %+v", c.info)
	}
	want := append(append(append(append([]byte{}, connect...), pub...), pingreq...), pingreq...)
	if !bytes.Equal(c.data[0], want) {
		t.Errorf("client MQTT stream = %q\nwant %q", c.data[0], want)
	}
	if c.frames != [2]int{4, 3} {
		t.Errorf("frames = %v", c.frames)
	}
}

func TestTLS(t *testing.T) {
	hello := clientHello("broker.example.com")
	p := file(t, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(cli, netip.MustParseAddrPort("192.0.2.1:8883"), ms(0))
		sw.MSS = 50
		must(t, s.Write(stream.C2S, ms(1), hello))
		must(t, s.Write(stream.S2C, ms(2), []byte{0x16, 0x03, 0x03, 0x00, 0x01, 0x02}))
		must(t, s.Close(stream.S2C, ms(3)))
		// TLS on an unusual port, with nothing to say it is MQTT.
		s2, _ := sw.Open(cli, netip.MustParseAddrPort("192.0.2.1:4433"), ms(4))
		must(t, s2.Write(stream.C2S, ms(5), clientHello("other.example")))
		must(t, s2.Close(stream.S2C, ms(6)))
		// MQTT over TLS on 443, offered by ALPN (as AWS IoT devices do).
		s3, _ := sw.Open(cli, netip.MustParseAddrPort("192.0.2.1:443"), ms(7))
		must(t, s3.Write(stream.C2S, ms(8), clientHello("iot.example", "h2", "x-amzn-mqtt-ca")))
		must(t, s3.Close(stream.S2C, ms(9)))
		// HTTPS: not ours.
		s4, _ := sw.Open(cli, netip.MustParseAddrPort("192.0.2.1:443"), ms(10))
		must(t, s4.Write(stream.C2S, ms(11), clientHello("www.example", "h2", "http/1.1")))
		must(t, s4.Write(stream.S2C, ms(12), []byte{0x16, 0x03, 0x03, 0x00, 0x01, 0x02}))
		must(t, s4.Close(stream.S2C, ms(13)))
	})
	type want struct {
		name, alpn string
	}
	for _, tc := range []struct {
		opts  Options
		conns []want
		other int
	}{
		{Options{}, []want{{"broker.example.com", ""}, {"iot.example", "h2 x-amzn-mqtt-ca"}}, 2},
		{Options{TLSPorts: []uint16{8883, 4433}}, []want{{"broker.example.com", ""}, {"other.example", ""}, {"iot.example", "h2 x-amzn-mqtt-ca"}}, 1},
	} {
		r := analyze(t, tc.opts, p)
		var got []want
		for _, c := range r.conns {
			if c.info.Transport != stream.TLS || c.closed != "server FIN" {
				t.Errorf("%v: conn %d: %+v closed %q", tc.opts.TLSPorts, c.info.ID, c.info, c.closed)
			}
			got = append(got, want{c.info.ServerName, strings.Join(c.info.ALPN, " ")})
		}
		if !slices.Equal(got, tc.conns) || r.a.Stats().OtherTLS != tc.other {
			t.Errorf("stream.TLS ports %v: listed %v, %d other; want %v, %d", tc.opts.TLSPorts, got, r.a.Stats().OtherTLS, tc.conns, tc.other)
		}
	}
}

// clientHello builds a TLS 1.2 ClientHello record with an SNI extension and, with alpn, an
// ALPN extension.
func clientHello(name string, alpn ...string) []byte {
	ext := func(typ byte, body []byte) []byte {
		return append([]byte{0x00, typ, byte(len(body) >> 8), byte(len(body))}, body...)
	}
	list := append([]byte{0x00}, byte(len(name)>>8), byte(len(name)))
	list = append(list, name...)
	exts := ext(0, append([]byte{byte(len(list) >> 8), byte(len(list))}, list...))
	if len(alpn) > 0 {
		var protos []byte
		for _, p := range alpn {
			protos = append(append(protos, byte(len(p))), p...)
		}
		exts = append(exts, ext(16, append([]byte{byte(len(protos) >> 8), byte(len(protos))}, protos...))...)
	}
	body := []byte{0x03, 0x03}
	body = append(body, make([]byte, 32)...)    // random
	body = append(body, 0x00)                   // session id
	body = append(body, 0x00, 0x02, 0x13, 0x01) // cipher suites
	body = append(body, 0x01, 0x00)             // compression
	body = append(body, byte(len(exts)>>8), byte(len(exts)))
	body = append(body, exts...)
	hs := append([]byte{0x01, 0x00, byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{0x16, 0x03, 0x01, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

// TestForgetsClosedConnections: memory follows the connections open, not those seen; closed
// connections of every kind (MQTT, other protocols, TLS, reset) are forgotten.
func TestForgetsClosedConnections(t *testing.T) {
	pkts := ethernetPackets(t, func(sw *pcapng.StreamWriter) {
		for i := 0; i < 200; i++ {
			c := netip.AddrPortFrom(cli.Addr(), uint16(30000+i))
			var s *pcapng.TCPStream
			switch i % 4 {
			case 0: // MQTT
				s, _ = sw.Open(c, srv, ms(i))
				must(t, s.Write(stream.C2S, ms(i), connect))
				must(t, s.Write(stream.S2C, ms(i), connack))
			case 1: // HTTP on another port
				s, _ = sw.Open(c, netip.MustParseAddrPort("192.0.2.1:80"), ms(i))
				must(t, s.Write(stream.C2S, ms(i), []byte("GET / HTTP/1.1\r\n\r\n")))
				must(t, s.Write(stream.S2C, ms(i), []byte("HTTP/1.1 200 OK\r\n\r\n")))
			case 2: // TLS
				s, _ = sw.Open(c, netip.MustParseAddrPort("192.0.2.1:8883"), ms(i))
				must(t, s.Write(stream.C2S, ms(i), clientHello("x")))
				must(t, s.Write(stream.S2C, ms(i), []byte{0x16, 3, 3, 0, 1, 0}))
			case 3: // MQTT, reset by the server
				s, _ = sw.Open(c, srv, ms(i))
				must(t, s.Write(stream.C2S, ms(i), connect))
				must(t, s.Reset(stream.S2C, ms(i)))
				continue
			}
			must(t, s.Close(stream.C2S, ms(i)))
		}
	})
	r := &recorder{}
	a := NewAnalyzer(r, Options{})
	for i, p := range pkts {
		a.Packet(int64(i+1), pcapng.LinkEthernet, p.ci, p.data)
	}
	// Closed connections are gone but for the reset ones, whose other side never ends.
	if open := a.Stats().Open; open > 50 {
		t.Errorf("%d connections still held after 200 closed", open)
	}
	a.Close()
	if len(r.conns) != 150 {
		t.Errorf("%d connections reported, want 150", len(r.conns))
	}
}

// TestLossBoundedBuffer: behind a hole that is never filled, reassembly holds a bounded
// amount of data, then reports the gap and goes on, long before the capture ends.
func TestLossBoundedBuffer(t *testing.T) {
	var c2s []byte
	c2s = append(c2s, connect...)
	for len(c2s) < 4<<20 {
		c2s = append(c2s, publish("bulk", 1000)...)
	}
	p := file(t, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(cli, srv, ms(0))
		seg(t, s, stream.C2S, ms(1), 0, c2s[:100])
		for off := 1500; off < len(c2s); off += 1400 { // bytes 100..1500 lost
			seg(t, s, stream.C2S, ms(2), off, c2s[off:min(off+1400, len(c2s))])
		}
	})
	r := &recorder{}
	a := NewAnalyzer(r, Options{})
	f, err := OpenFile(p)
	must(t, err)
	defer f.Close()
	var n int64
	for {
		link, ci, data, err := f.Next()
		if err != nil {
			break
		}
		n++
		a.Packet(n, link, ci, data)
	}
	// Before Close (the end of the capture), the gap is out and most of the data with it.
	if len(r.conns) != 1 || !strings.Contains(strings.Join(r.conns[0].events, "\n"), "gap 1400") {
		t.Fatalf("no gap reported before the end: %d connections", len(r.conns))
	}
	if got := len(r.conns[0].data[0]); got < 2<<20 {
		t.Errorf("only %d bytes delivered before the end of the capture", got)
	}
	a.Close()
}

// TestWebSocketLoss loses bytes inside a WebSocket frame: the gap is reported and decoding
// resumes at the next frame header, in both directions.
func TestWebSocketLoss(t *testing.T) {
	ws := netip.MustParseAddrPort("192.0.2.1:9001")
	req := "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	mask := []byte{9, 8, 7, 6}
	var pubs [][]byte
	for i := 0; i < 6; i++ {
		pubs = append(pubs, publish(fmt.Sprintf("t/%d", i), 300+i))
	}
	c2s := append([]byte(req), wsFrame(true, 2, connect, mask)...)
	s2c := append([]byte(resp), wsFrame(true, 2, connack, nil)...)
	var lostC, lostS [2]int
	for i, p := range pubs {
		if i == 2 {
			lostC[0] = len(c2s) + 50
			lostS[0] = len(s2c) + 100
		}
		c2s = append(c2s, wsFrame(true, 2, p, mask)...)
		s2c = append(s2c, wsFrame(true, 2, p, nil)...)
		if i == 2 {
			lostC[1] = len(c2s) - 20
			lostS[1] = len(s2c) + 7 // into the next frame's header
		}
	}
	p := file(t, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(cli, ws, ms(0))
		// The client's request first, as on the wire: the upgrade is recognised by it.
		for d, b := range [][]byte{stream.C2S: c2s, stream.S2C: s2c} {
			lost := lostC
			if stream.Dir(d) == stream.S2C {
				lost = lostS
			}
			for off := 0; off < len(b); off += 200 {
				end := min(off+200, len(b))
				for _, part := range [][2]int{{off, min(end, lost[0])}, {max(off, lost[1]), end}} {
					if part[0] < part[1] {
						seg(t, s, stream.Dir(d), ms(1+off/200), part[0], b[part[0]:part[1]])
					}
				}
			}
		}
		s.Skip(stream.C2S, int(uint32(len(c2s))))
		s.Skip(stream.S2C, int(uint32(len(s2c))))
	})
	r := analyze(t, Options{}, p)
	if len(r.conns) != 1 {
		t.Fatalf("%d connections", len(r.conns))
	}
	c := r.conns[0]
	for d, want := range [][]byte{
		append(append(append([]byte{}, connect...), pubs[0]...), pubs[1]...),
		append(append(append([]byte{}, connack...), pubs[0]...), pubs[1]...),
	} {
		got := c.data[d]
		if !bytes.HasPrefix(got, want) || !bytes.Contains(got, []byte("<gap")) {
			t.Errorf("%v: stream starts %q", stream.Dir(d), got[:min(len(got), len(want)+20)])
		}
		tail := append(append([]byte{}, pubs[4]...), pubs[5]...)
		if d == 0 {
			tail = append(append([]byte{}, pubs[3]...), tail...)
		}
		if !bytes.HasSuffix(got, tail) {
			t.Errorf("%v: decoding did not resume after the gap: ends %q", stream.Dir(d), got[max(0, len(got)-len(tail)):])
		}
	}
}

// TestSections reads a pcapng made of two sections (two files joined with cat), whose
// interface 0 has a different link type in each: each section's packets are read with its
// own, as tshark does.
func TestSections(t *testing.T) {
	conn := func(port uint16) []gopacketPkt {
		return ethernetPackets(t, func(sw *pcapng.StreamWriter) {
			s, _ := sw.Open(netip.AddrPortFrom(cli.Addr(), port), srv, ms(0))
			must(t, s.Write(stream.C2S, ms(1), connect))
			must(t, s.Write(stream.S2C, ms(2), connack))
			must(t, s.Close(stream.C2S, ms(3)))
		})
	}
	var joined []byte
	for i, pkts := range [][]gopacketPkt{conn(40001), conn(40002)} {
		var buf bytes.Buffer
		pw, err := pcapng.NewPacketWriter(&buf)
		must(t, err)
		for _, p := range pkts {
			if i == 0 {
				must(t, pw.WritePacket(pcapng.LinkEthernet, p.ci.Timestamp, p.data, 0))
			} else { // the same as raw IP: without the Ethernet header
				must(t, pw.WritePacket(pcapng.LinkRaw, p.ci.Timestamp, p.data[14:], 0))
			}
		}
		must(t, pw.Flush())
		joined = append(joined, buf.Bytes()...)
	}
	p := filepath.Join(t.TempDir(), "joined.pcapng")
	must(t, os.WriteFile(p, joined, 0o644))
	r := analyze(t, Options{}, p)
	var ports []uint16
	for _, c := range r.conns {
		ports = append(ports, c.info.Client.Port())
		if !bytes.Equal(c.data[0], connect) || !bytes.Equal(c.data[1], connack) {
			t.Errorf("connection from port %d: %q / %q", c.info.Client.Port(), c.data[0], c.data[1])
		}
	}
	if !slices.Equal(ports, []uint16{40001, 40002}) || r.a.Stats().Skipped != 0 || r.a.Stats().Malformed != 0 {
		t.Errorf("connections from ports %v; stats %+v", ports, r.a.Stats())
	}
}

// TestLossAcknowledged: bytes the capture lost but the receiver acknowledged are reported
// as lost at once, in their place: the server's PUBLISH after the hole is decoded before the
// client's packet that acknowledges it, not when reassembly gives up waiting.
func TestLossAcknowledged(t *testing.T) {
	lost, after := publish("a", 100), publish("b", 10)
	s2c := append(append(append([]byte{}, connack...), lost...), after...)
	p := file(t, func(sw *pcapng.StreamWriter) {
		s, err := sw.Open(cli, srv, ms(0))
		must(t, err)
		must(t, s.Write(stream.C2S, ms(1), connect))
		seg(t, s, stream.S2C, ms(2), 0, connack)
		// lost: the PUBLISH on "a"
		seg(t, s, stream.S2C, ms(3), len(connack)+len(lost), after)
		s.Skip(stream.S2C, int(uint32(len(s2c))))
		must(t, s.Write(stream.C2S, ms(4), pingreq)) // acknowledges all the server sent
		must(t, s.Write(stream.S2C, ms(5), []byte{0xd0, 0x00}))
		must(t, s.Close(stream.C2S, ms(6)))
	})
	r := analyze(t, Options{Wait: time.Hour}, p)
	if len(r.conns) != 1 {
		t.Fatalf("%d connections", len(r.conns))
	}
	c := r.conns[0]
	gap := fmt.Sprintf("s2c gap %d", len(lost))
	want := []string{"c2s frame 1", "s2c frame 1", gap,
		"s2c frame 2", "c2s frame 2", "s2c frame 3"}
	if !slices.Equal(c.events, want) {
		t.Errorf("events\n%q\nwant\n%q", c.events, want)
	}
	if len(c.gapT) != 1 || !c.gapT[0].Equal(ms(4)) {
		t.Errorf("gap at %v, want at the acknowledgement, %v", c.gapT, ms(4))
	}
	if got := c.data[stream.S2C]; !bytes.Equal(got, append(append(append([]byte{}, connack...), fmt.Sprintf("<gap %d>", len(lost))...), append(after, 0xd0, 0x00)...)) {
		t.Errorf("server stream %q", got)
	}
	if st := r.a.Stats(); st.Filled != int64(len(lost)) {
		t.Errorf("%d bytes filled", st.Filled)
	}
}

// TestSnapLength reads a capture whose packets were cut at a snap length: each cut is
// reported where it is, as many bytes as the IP header says are missing, and what follows
// is decoded.
func TestSnapLength(t *testing.T) {
	big := publish("big", 1000)
	pkts := ethernetPackets(t, func(sw *pcapng.StreamWriter) {
		sw.MSS = 1460
		s, err := sw.Open(cli, srv, ms(0))
		must(t, err)
		must(t, s.Write(stream.C2S, ms(1), connect))
		must(t, s.Write(stream.S2C, ms(2), connack))
		must(t, s.Write(stream.C2S, ms(3), big))
		must(t, s.Write(stream.S2C, ms(4), big))
		must(t, s.Write(stream.C2S, ms(5), pingreq))
		must(t, s.Write(stream.S2C, ms(6), []byte{0xd0, 0x00}))
		must(t, s.Close(stream.C2S, ms(7)))
	})
	const snap = 200
	var buf bytes.Buffer
	pw, err := pcapng.NewPacketWriter(&buf)
	must(t, err)
	for _, p := range pkts {
		must(t, pw.WritePacket(pcapng.LinkEthernet, p.ci.Timestamp, p.data[:min(len(p.data), snap)], len(p.data)))
	}
	must(t, pw.Flush())
	f := filepath.Join(t.TempDir(), "snap.pcapng")
	must(t, os.WriteFile(f, buf.Bytes(), 0o644))
	r := analyze(t, Options{Wait: time.Hour}, f)
	if len(r.conns) != 1 {
		t.Fatalf("%d connections", len(r.conns))
	}
	c := r.conns[0]
	kept := snap - 14 - 20 - 20 // Ethernet, IPv4 and TCP headers
	missing := len(big) - kept
	for d, tail := range [2][]byte{pingreq, {0xd0, 0x00}} {
		want := append(append([]byte{}, big[:kept]...), fmt.Sprintf("<gap %d>", missing)...)
		if got := c.data[d]; !bytes.HasSuffix(got, append(want, tail...)) {
			t.Errorf("%v stream ends %q", stream.Dir(d), got[max(0, len(got)-40):])
		}
	}
	if len(c.gapT) != 2 || !c.gapT[0].Equal(ms(3)) || !c.gapT[1].Equal(ms(4)) {
		t.Errorf("gaps at %v, want at the cut packets", c.gapT)
	}
}

// unseenLoss writes a connection whose client PUBLISH the capture lost, and that the
// server's PINGRESP acknowledges before the client's PINGREQ comes.
func unseenLoss(t *testing.T) (path string, lost []byte) {
	lost = publish("a", 50)
	return file(t, func(sw *pcapng.StreamWriter) {
		s, err := sw.Open(cli, srv, ms(0))
		must(t, err)
		must(t, s.Write(stream.C2S, ms(1), connect))
		must(t, s.Write(stream.S2C, ms(2), connack))
		s.Skip(stream.C2S, int(uint32(len(lost)))) // sent, not captured
		must(t, s.Write(stream.S2C, ms(3), []byte{0xd0, 0x00}))
		must(t, s.Write(stream.C2S, ms(4), pingreq))
		must(t, s.Close(stream.C2S, ms(5)))
	}), lost
}

// TestLossAcknowledgedUnseen: the server acknowledges a client segment the capture never
// had, with nothing from the client after it yet. The connection is told at once (Unseen);
// the bytes are reported lost when the client's next segment comes, before it. The FIN's
// sequence number, acknowledged too, is not taken for a lost byte.
func TestLossAcknowledgedUnseen(t *testing.T) {
	p, lost := unseenLoss(t)
	r := analyze(t, Options{Wait: time.Hour}, p)
	if len(r.conns) != 1 {
		t.Fatalf("%d connections", len(r.conns))
	}
	c := r.conns[0]
	want := []string{"c2s frame 1", "s2c frame 1", "c2s unseen",
		"s2c frame 2", fmt.Sprintf("c2s gap %d", len(lost)), "c2s frame 2"}
	if !slices.Equal(c.events, want) || len(c.gapT) != 1 || !c.gapT[0].Equal(ms(4)) {
		t.Errorf("events\n%q at %v\nwant\n%q at %v", c.events, c.gapT, want, ms(4))
	}
}

// A WebSocket text frame breaks MQTT-6.0.0-1: its bytes are still read as MQTT, and the packet
// they complete says so, once per direction, with one goroutine as with several.
func TestWebSocketText(t *testing.T) {
	ws := netip.MustParseAddrPort("192.0.2.1:9001")
	req, resp := wsHandshake()
	mask := []byte{1, 2, 3, 4}
	c2s := append([]byte(req), wsFrame(true, 2, connect, mask)...)
	c2s = append(c2s, wsFrame(true, 1, pingreq, mask)...) // text
	c2s = append(c2s, wsFrame(true, 1, pingreq, mask)...) // text again: said once
	c2s = append(c2s, wsFrame(true, 2, pingreq, mask)...)
	s2c := append([]byte(resp), wsFrame(true, 2, connack, nil)...)
	p := file(t, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(cli, ws, ms(0))
		must(t, s.Write(stream.C2S, ms(1), c2s))
		must(t, s.Write(stream.S2C, ms(2), s2c))
		must(t, s.Close(stream.C2S, ms(3)))
	})
	one := runJSON(t, 1, nil, p)
	if many := runJSON(t, 3, nil, p); many != one {
		t.Errorf("3 workers write something else than 1:\n%s\n%s", many, one)
	}
	lines := strings.Split(strings.TrimSpace(one), "\n")
	var with []string
	for _, l := range lines {
		if strings.Contains(l, `"kind":"packet"`) && strings.Contains(l, "MQTT-6.0.0-1") {
			with = append(with, l)
		}
	}
	if len(with) != 1 || !strings.Contains(with[0], `"PINGREQ"`) || !strings.Contains(with[0], "text frame") {
		t.Errorf("records naming MQTT-6.0.0-1: %q", with)
	}
	if n := strings.Count(one, `"type":"PINGREQ"`); n != 3 {
		t.Errorf("%d PINGREQ records, want 3 (text frames read as MQTT)", n)
	}
}
