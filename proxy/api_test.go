package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

const testToken = "s3cret-t0ken"

// apiFixture is a proxy to the embedded broker with inspection, an event hub and its API.
type apiFixture struct {
	srv *Server
	in  *Inspector
	hub *inspect.Hub
	m   *Metrics
	col *collector
	url string
}

func startAPI(t *testing.T) *apiFixture {
	t.Helper()
	f := &apiFixture{m: NewMetrics(), hub: inspect.NewHub(inspect.JSONOptions{}), col: newCollector()}
	out := inspect.NewOutput(nil, nil, f.hub, f.m, 0)
	f.in = NewInspector(inspect.Options{}, out, f.m)
	f.srv = startProxy(t, Config{Embedded: true, Metrics: f.m, Observers: []stream.Observer{f.in, f.col}})
	ts := httptest.NewUnstartedServer(nil)
	ts.Config.Handler = NewAPI(f.srv, f.in, f.hub, APIConfig{Token: testToken, Listen: ts.Listener.Addr().String()})
	ts.Start()
	t.Cleanup(ts.Close)
	f.url = ts.URL
	return f
}

// do sends a request with the token (unless hdr sets Authorization) and returns the status and
// body. hdr holds header name and value pairs; "Host" sets the request's Host.
func (f *apiFixture) do(t *testing.T, method, path, body string, hdr ...string) (int, string) {
	t.Helper()
	return peer.APIRequest(t, method, f.url+path, testToken, body, hdr...)
}

// rawDevice is an MQTT 5 device on a plain TCP connection that counts every byte both ways.
type rawDevice struct {
	c        net.Conn
	sent     int
	received []byte
}

// connectDevice connects through the proxy with CONNECT properties props and reads the CONNACK.
func connectDevice(t *testing.T, addr, id string, props ...decode.Property) *rawDevice {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	d := &rawDevice{c: c}
	d.send(t, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5,
		CleanStart: true, KeepAlive: 30, ClientID: id, Properties: props})
	if typ := d.readFrame(t); typ != decode.CONNACK {
		t.Fatalf("got %v, want CONNACK", typ)
	}
	return d
}

func (d *rawDevice) send(t *testing.T, p decode.Packet) {
	t.Helper()
	b, err := decode.Encode(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.c.Write(b); err != nil {
		t.Fatal(err)
	}
	d.sent += len(b)
}

// readFrame reads one whole frame and returns its type.
func (d *rawDevice) readFrame(t *testing.T) decode.Type {
	t.Helper()
	d.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := len(d.received)
	buf := make([]byte, 1)
	for {
		if n, err := decode.SplitFrame(d.received[start:], 1<<20); err != nil {
			t.Fatal(err)
		} else if n > 0 {
			return decode.Type(d.received[start] >> 4)
		}
		if _, err := d.c.Read(buf); err != nil {
			t.Fatalf("reading a frame: %v", err)
		}
		d.received = append(d.received, buf[0])
	}
}

// readToEnd reads until the proxy closes the connection.
func (d *rawDevice) readToEnd(t *testing.T) []byte {
	t.Helper()
	d.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := len(d.received)
	rest, err := io.ReadAll(d.c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatal(err)
	}
	d.received = append(d.received, rest...)
	return d.received[start:]
}

// TestAPIRefuses: requests without the token, naming another host (DNS rebinding), from another
// origin (a web page in the user's browser) or with a body that is not JSON are refused, and the
// connection they aimed at stays open.
func TestAPIRefuses(t *testing.T) {
	f := startAPI(t)
	connectDevice(t, f.srv.Addr().String(), "victim")
	port := f.url[strings.LastIndex(f.url, ":")+1:]
	for _, tc := range []struct {
		name string
		hdr  []string
		body string
		want int
	}{
		{"no token", []string{"Authorization", ""}, "", http.StatusUnauthorized},
		{"wrong token", []string{"Authorization", "Bearer guess"}, "", http.StatusUnauthorized},
		{"token as basic auth", []string{"Authorization", "Basic " + testToken}, "", http.StatusUnauthorized},
		{"rebound host", []string{"Host", "attacker.example:" + port}, "", http.StatusMisdirectedRequest},
		{"foreign origin", []string{"Origin", "http://attacker.example"}, "", http.StatusForbidden},
		{"origin on another port", []string{"Origin", "http://127.0.0.1:1"}, "", http.StatusForbidden},
		{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site"}, "", http.StatusForbidden},
		{"text body", []string{"Content-Type", "text/plain"}, `{"reason_code":"0x98"}`, http.StatusUnsupportedMediaType},
		{"form body", []string{"Content-Type", "application/x-www-form-urlencoded"}, "reason_code=152", http.StatusUnsupportedMediaType},
		{"body without type", []string{"Content-Type", ""}, `{}`, http.StatusUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := f.do(t, "POST", "/connections/1/close", tc.body, tc.hdr...); code != tc.want {
				t.Errorf("close: %d %s, want %d", code, body, tc.want)
			}
			if tc.body == "" {
				if code, body := f.do(t, "GET", "/connections", "", tc.hdr...); code != tc.want || strings.Contains(body, "victim") {
					t.Errorf("list: %d %s, want %d", code, body, tc.want)
				}
			}
		})
	}
	// What is allowed: loopback names, the same origin, a fetch the user typed.
	for _, hdr := range [][]string{
		{"Host", "localhost:" + port},
		{"Host", "[::1]:" + port},
		{"Origin", f.url},
		{"Sec-Fetch-Site", "none"},
	} {
		if code, body := f.do(t, "GET", "/connections", "", hdr...); code != http.StatusOK || !strings.Contains(body, "victim") {
			t.Errorf("%v: %d %s", hdr, code, body)
		}
	}
}

func TestAPIHosts(t *testing.T) {
	for _, tc := range []struct {
		listen string
		host   string
		want   bool
	}{
		{"127.0.0.1:9090", "127.0.0.1:9090", true},
		{"127.0.0.1:9090", "localhost:9090", true},
		{"127.0.0.1:9090", "LOCALHOST", true},
		{"127.0.0.1:9090", "[::1]:9090", true},
		{"127.0.0.1:9090", "127.0.0.2:9090", true}, // loopback, no name to rebind
		{"127.0.0.1:9090", "attacker.example:9090", false},
		{"127.0.0.1:9090", "192.168.1.5:9090", false},
		{"127.0.0.1:9090", "localhost.attacker.example", false},
		{"myhost.lan:9090", "myhost.lan:9090", true},
		{"myhost.lan:9090", "otherhost.lan:9090", false},
		{"192.168.1.5:9090", "192.168.1.5:9090", true},
		{"192.168.1.5:9090", "192.168.1.6:9090", false},
		{"0.0.0.0:9090", "192.168.1.6:9090", true},
		{"0.0.0.0:9090", "[fe80::1]:9090", true},
		{"0.0.0.0:9090", "attacker.example:9090", false},
		{":9090", "attacker.example:9090", false},
		{"127.0.0.1:9090", "", false},
	} {
		if got := newHostSet(tc.listen).allows(tc.host); got != tc.want {
			t.Errorf("listening on %s, Host %q: allowed %v, want %v", tc.listen, tc.host, got, tc.want)
		}
	}
}

// TestAPICloseValidates: a close request is refused unless its DISCONNECT is one a server may
// send, fits the device's Maximum Packet Size, and its body is one JSON object of known fields.
func TestAPICloseValidates(t *testing.T) {
	f := startAPI(t)
	dev := connectDevice(t, f.srv.Addr().String(), "small", decode.IntProp(decode.PropMaximumPacketSize, 64))
	for _, tc := range []struct {
		name, path, body string
		want             string // in the error
	}{
		{"client's reason code", "", `{"reason_code":"0x04"}`, "only a client may send it"},
		{"client's reason code in query", "?reason_code=4", "", "only a client may send it"},
		{"not a DISCONNECT code", "", `{"reason_code":1}`, "not a DISCONNECT reason code"},
		{"unknown code", "", `{"reason_code":"0xff"}`, "not a DISCONNECT reason code"},
		{"out of range", "", `{"reason_code":256}`, "want a number from 0 to 255"},
		{"over the device's limit", "", `{"reason_string":"` + strings.Repeat("x", 60) + `"}`, "over the device's Maximum Packet Size of 64"},
		{"over the cap", "", `{"reason_string":"` + strings.Repeat("x", 2000) + `"}`, "over the limit of 1024"},
		{"null character", "", `{"reason_string":"a\u0000b"}`, "U+0000"},
		{"trailing data", "", `{"reason_code":152} {"reason_code":4}`, "data after the JSON object"},
		{"unknown field", "", `{"reason_code":152,"reason":"x"}`, `unknown field`},
		{"not an object", "", `[152]`, "body:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.do(t, "POST", "/connections/1/close"+tc.path, tc.body)
			if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s, want 400 saying %q", code, body, tc.want)
			}
		})
	}
	if conns := f.srv.Conns(); len(conns) != 1 {
		t.Fatalf("refused requests closed the connection: %+v", conns)
	}
	// Within every limit: the device gets the DISCONNECT, whole.
	code, body := f.do(t, "POST", "/connections/1/close", `{"reason_code":"0x89","reason_string":"busy"}`)
	if code != http.StatusOK {
		t.Fatalf("close: %d %s", code, body)
	}
	got := dev.readToEnd(t)
	want, _ := disconnectFrame(0x89, "busy")
	if string(got) != string(want) {
		t.Errorf("device got % x, want % x", got, want)
	}
}

// TestMetricsCountBytesSeen: a device declaring a 256 MB PUBLISH and sending 1 KB of it is
// counted for 1 KB, and the DISCONNECT the proxy sends is counted with the bytes the device got.
func TestMetricsCountBytesSeen(t *testing.T) {
	f := startAPI(t)
	dev := connectDevice(t, f.srv.Addr().String(), "counted")
	// A PUBLISH declaring 268,435,455 bytes (the largest Remaining Length), of which 1 KB comes.
	garbage := append([]byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, make([]byte, 1019)...)
	if _, err := dev.c.Write(garbage); err != nil {
		t.Fatal(err)
	}
	dev.sent += len(garbage)
	// Once the proxy has read it all, it passes it on before the close completes.
	f.col.waitData(t, 1, stream.C2S, dev.sent)
	if code, body := f.do(t, "POST", "/connections/1/close", `{"reason_code":"0x98"}`); code != http.StatusOK {
		t.Fatalf("close: %d %s", code, body)
	}
	if disconnect := dev.readToEnd(t); len(disconnect) == 0 || disconnect[0] != 0xE0 {
		t.Fatalf("device got % x, want a DISCONNECT", disconnect)
	}
	disconnect, _ := disconnectFrame(0x98, "")
	_, metrics := f.do(t, "GET", "/metrics", "")
	for _, want := range []string{
		`mqscope_bytes_total{direction="c2s"} ` + strconv.Itoa(dev.sent) + "\n",
		`mqscope_bytes_total{direction="s2c"} ` + strconv.Itoa(len(dev.received)) + "\n",
		`mqscope_packet_bytes_total{direction="c2s",type="PUBLISH"} 1024` + "\n",
		`mqscope_packets_total{direction="s2c",type="DISCONNECT"} 1` + "\n",
		`mqscope_packet_bytes_total{direction="s2c",type="DISCONNECT"} ` + strconv.Itoa(len(disconnect)) + "\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
}
