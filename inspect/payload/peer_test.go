package payload

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/mqscope/mqscope/internal/peer"
)

// TestRealPayloadsThroughMosquitto publishes payloads with mosquitto_pub through a mosquitto
// broker and renders what a raw MQTT 5 subscriber receives: the bytes and properties as they
// arrive from a real broker and a real client, not as this package's tests build them.
func TestRealPayloadsThroughMosquitto(t *testing.T) {
	pub := peer.Require(t, "mosquitto_pub")
	port := peer.StartMosquitto(t).Port
	dir := t.TempDir()
	sub := dialSubscriber(t, port)

	sensor := []byte("{\n  \"device\": \"th-17\",\n  \"temp\": 21.5,\n  \"hum\": 48\n}\n")
	cborSensor, err := cbor.Marshal(map[string]any{"device": "th-17", "temp": 21.5})
	if err != nil {
		t.Fatal(err)
	}
	binaryBlob := make([]byte, 64)
	for i := range binaryBlob {
		binaryBlob[i] = byte(i * 37) // 0x00 0x25 0x4a …: neither text nor any encoding
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		args    []string
		hints   Hints // what the subscriber must receive
		corr    string
		format  string
		json    string
		problem string
		mayDrop bool // a broker that validates the indicator may drop it (mosquitto 2.0.11 does not)
	}{
		{
			name: "json with content type, indicator and correlation data",
			data: sensor,
			args: []string{"-D", "publish", "content-type", "application/json", "-D", "publish", "payload-format-indicator", "1",
				"-D", "publish", "correlation-data", "req-42"},
			hints:  Hints{ContentType: "application/json", FormatIndicator: 1},
			corr:   "req-42",
			format: "json", json: `{"device":"th-17","temp":21.5,"hum":48}`,
		},
		{
			name:   "gzip of json, no properties",
			data:   gz(t, sensor),
			hints:  absent,
			format: "gzip+json", json: `{"device":"th-17","temp":21.5,"hum":48}`,
		},
		{
			name:   "cbor made by fxamacker/cbor",
			data:   cborSensor,
			args:   []string{"-D", "publish", "content-type", "application/cbor"},
			hints:  Hints{ContentType: "application/cbor", FormatIndicator: -1},
			format: "cbor", json: `{"device":"th-17","temp":21.5}`,
		},
		{
			name:   "protobuf without a schema",
			data:   sensorProto(),
			hints:  absent,
			format: "protobuf",
		},
		{
			name:   "binary",
			data:   binaryBlob,
			args:   []string{"-D", "publish", "payload-format-indicator", "0"},
			hints:  Hints{FormatIndicator: 0},
			format: "binary",
		},
		{
			name:    "invalid UTF-8 with indicator 1",
			data:    []byte("temp=\xff\xfe21.5"),
			args:    []string{"-D", "publish", "payload-format-indicator", "1"},
			hints:   Hints{FormatIndicator: 1},
			format:  "binary",
			problem: "§3.3.2.3.2",
			mayDrop: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "payload.bin")
			if err := os.WriteFile(file, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-V", "mqttv5", "-t", "t/x", "-f", file}, tc.args...)
			if out, err := exec.Command(pub, args...).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_pub %q: %v\n%s", args, err, out)
			}
			if tc.mayDrop {
				// A sentinel published next tells "dropped" from "slow".
				end := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-V", "mqttv5", "-t", "t/end", "-m", "end"}
				if out, err := exec.Command(pub, end...).CombinedOutput(); err != nil {
					t.Fatalf("mosquitto_pub %q: %v\n%s", end, err, out)
				}
			}
			msg := sub.next(t)
			if tc.mayDrop {
				if msg.topic == "t/end" {
					t.Logf("the broker dropped the payload; rendering it as sent")
					msg = received{topic: "t/x", payload: tc.data, hints: tc.hints}
				} else if sentinel := sub.next(t); sentinel.topic != "t/end" {
					t.Fatalf("want the sentinel on t/end, got %q", sentinel.topic)
				}
			}
			if msg.topic != "t/x" || !bytes.Equal(msg.payload, tc.data) {
				t.Fatalf("received %q %x, want t/x %x", msg.topic, msg.payload, tc.data)
			}
			if msg.hints != tc.hints {
				t.Errorf("received properties %+v, want %+v", msg.hints, tc.hints)
			}
			if tc.corr != "" {
				if s, isText := CorrelationData(msg.correlation); s != tc.corr || !isText {
					t.Errorf("CorrelationData = %q, %v; want %q, text", s, isText, tc.corr)
				}
			}
			r := Render(msg.payload, msg.hints, Preview, Limits{})
			if r.Format != tc.format {
				t.Errorf("Format = %q, want %q (Text %q)", r.Format, tc.format, r.Text)
			}
			if tc.json != "" && string(r.JSON) != tc.json {
				t.Errorf("JSON = %s, want %s", r.JSON, tc.json)
			}
			var rules []string
			for _, p := range r.Problems {
				rules = append(rules, p.Rule)
			}
			if strings.Join(rules, ",") != tc.problem {
				t.Errorf("problems = %+v, want rule %q", r.Problems, tc.problem)
			}
			if full := Render(msg.payload, msg.hints, Full, Limits{}); full.Format != r.Format || full.Text == "" {
				t.Errorf("Full: format %q, text %q", full.Format, full.Text)
			}
		})
	}
}

// rawSubscriber is the smallest MQTT 5 client that subscribes to t/# at QoS 0.
type rawSubscriber struct {
	conn net.Conn
	r    *bufio.Reader
}

type received struct {
	topic       string
	payload     []byte
	hints       Hints
	correlation []byte
}

func dialSubscriber(t *testing.T, port int) *rawSubscriber {
	t.Helper()
	// peer.StartMosquitto returns once mosquitto accepts connections.
	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("mosquitto does not listen: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &rawSubscriber{conn: conn, r: bufio.NewReader(conn)}
	s.send(t, []byte{
		0x10, 23, // CONNECT, remaining length
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x05,       // protocol version 5
		0x02,       // connect flags: clean start
		0x00, 0x3c, // keep alive 60 s
		0x00,                                                         // property length
		0x00, 0x0a, 'm', 'q', 's', 'c', 'o', 'p', 'e', '-', 't', 't', // client identifier
	})
	if typ, body := s.read(t); typ != 0x20 || len(body) < 2 || body[1] != 0x00 {
		t.Fatalf("want CONNACK success, got type 0x%02x % x", typ, body)
	}
	s.send(t, []byte{
		0x82, 9, // SUBSCRIBE, remaining length
		0x00, 0x01, // packet identifier
		0x00,                      // property length
		0x00, 0x03, 't', '/', '#', // topic filter
		0x00, // subscription options: QoS 0
	})
	if typ, body := s.read(t); typ != 0x90 || len(body) < 4 || body[3] != 0x00 {
		t.Fatalf("want SUBACK granting QoS 0, got type 0x%02x % x", typ, body)
	}
	return s
}

func (s *rawSubscriber) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := s.conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

// read returns the next packet's fixed-header byte and its body.
func (s *rawSubscriber) read(t *testing.T) (byte, []byte) {
	t.Helper()
	if err := s.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	first, err := s.r.ReadByte()
	if err != nil {
		t.Fatalf("reading from mosquitto: %v", err)
	}
	n, err := binary.ReadUvarint(s.r) // MQTT's Variable Byte Integer has the same layout
	if err != nil || n > 1<<24 {
		t.Fatalf("remaining length: %d, %v", n, err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(s.r, body); err != nil {
		t.Fatalf("reading from mosquitto: %v", err)
	}
	return first, body
}

// next reads the next PUBLISH (QoS 0: no packet identifier) and its properties.
func (s *rawSubscriber) next(t *testing.T) received {
	t.Helper()
	first, body := s.read(t)
	if first>>4 != 3 {
		t.Fatalf("want PUBLISH, got type 0x%02x", first)
	}
	msg, err := parsePublish(body)
	if err != nil {
		t.Fatalf("PUBLISH % x: %v", body, err)
	}
	return msg
}

var errShort = errors.New("packet ends early")

func parsePublish(b []byte) (received, error) {
	msg := received{hints: Hints{FormatIndicator: -1}}
	str := func() ([]byte, error) {
		if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
			return nil, errShort
		}
		n := 2 + int(binary.BigEndian.Uint16(b))
		s := b[2:n]
		b = b[n:]
		return s, nil
	}
	topic, err := str()
	if err != nil {
		return msg, err
	}
	msg.topic = string(topic)
	plen, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < plen {
		return msg, errShort
	}
	props, payload := b[n:n+int(plen)], b[n+int(plen):]
	b = props
	for len(b) > 0 {
		id := b[0]
		b = b[1:]
		switch id {
		case 0x01: // Payload Format Indicator
			if len(b) < 1 {
				return msg, errShort
			}
			msg.hints.FormatIndicator, b = int(b[0]), b[1:]
		case 0x02: // Message Expiry Interval
			if len(b) < 4 {
				return msg, errShort
			}
			b = b[4:]
		case 0x03: // Content Type
			ct, err := str()
			if err != nil {
				return msg, err
			}
			msg.hints.ContentType = string(ct)
		case 0x08: // Response Topic
			if _, err := str(); err != nil {
				return msg, err
			}
		case 0x09: // Correlation Data
			if msg.correlation, err = str(); err != nil {
				return msg, err
			}
		case 0x0b: // Subscription Identifier
			_, n := binary.Uvarint(b)
			if n <= 0 {
				return msg, errShort
			}
			b = b[n:]
		case 0x26: // User Property
			if _, err := str(); err != nil {
				return msg, err
			}
			if _, err := str(); err != nil {
				return msg, err
			}
		default:
			return msg, fmt.Errorf("unexpected property 0x%02x", id)
		}
	}
	msg.payload = payload
	return msg, nil
}
