package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// disconnects connects an MQTT 5 client through addr and reports the DISCONNECT it gets.
func disconnects(t *testing.T, addr, id string) (<-chan *paho.Disconnect, *paho.Client) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *paho.Disconnect, 1)
	cl := paho.NewClient(paho.ClientConfig{ClientID: id, Conn: c, OnServerDisconnect: func(d *paho.Disconnect) { got <- d }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	return got, cl
}

func TestShutdownDisconnect(t *testing.T) {
	for _, transparent := range []bool{false, true} {
		name := "disconnect"
		if transparent {
			name = "transparent"
		}
		t.Run(name, func(t *testing.T) {
			col := newCollector()
			srv, err := New(Config{Listen: Endpoint{Transport: stream.TCP, Addr: "127.0.0.1:0"}, Embedded: true,
				TransparentShutdown: transparent, Observers: []stream.Observer{col}, Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve()
			got, cl := disconnects(t, srv.Addr().String(), "dev5")
			// An MQTT 3.1.1 device gets no DISCONNECT, only the close.
			c311, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c311.Close()
			connect, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V311}, ProtocolName: "MQTT", ProtocolLevel: 4, CleanStart: true, KeepAlive: 30, ClientID: "dev311"})
			c311.Write(connect)
			ack := make([]byte, 4)
			if _, err := io.ReadFull(c311, ack); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-got:
				if transparent {
					t.Errorf("transparent shutdown sent DISCONNECT %#x", d.ReasonCode)
				} else if d.ReasonCode != 0x8B {
					t.Errorf("DISCONNECT %#x, want 0x8B", d.ReasonCode)
				}
			case <-cl.Done():
				// paho may report the end before the DISCONNECT callback has run; the close
				// record below says whether one was sent.
				if !transparent {
					select {
					case d := <-got:
						if d.ReasonCode != 0x8B {
							t.Errorf("DISCONNECT %#x, want 0x8B", d.ReasonCode)
						}
					case <-time.After(5 * time.Second):
						t.Error("connection closed without DISCONNECT 0x8B")
					}
				}
			case <-time.After(5 * time.Second):
				t.Fatal("nothing happened to the client")
			}
			c311.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, err := io.ReadAll(c311)
			if len(rest) != 0 || err != nil {
				t.Errorf("3.1.1 device got % x, %v; want a plain close", rest, err)
			}
			by, reason := col.waitClosed(t, 1)
			if by != "proxy" || !strings.Contains(reason, "shutting down") {
				t.Errorf("close record: %s %q", by, reason)
			}
			if sent := strings.Contains(reason, "sent DISCONNECT 0x8B"); sent == transparent {
				t.Errorf("close record (transparent %v): %q", transparent, reason)
			}
			_, reason = col.waitClosed(t, 2)
			if !transparent && !strings.Contains(reason, "MQTT 3.1.1") {
				t.Errorf("close record of the 3.1.1 device: %q", reason)
			}
		})
	}
}

// TestAPI: list connections with their negotiated state, stream events, close one with a
// DISCONNECT, read metrics.
func TestAPI(t *testing.T) {
	f := startAPI(t)

	// Events first, so the stream sees everything. The subscription exists once the response
	// headers have come.
	req, _ := http.NewRequest("GET", f.url+"/events?filter="+`type%20==%20"PUBLISH"`, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("events content type %q", ct)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	got, cl := disconnects(t, f.srv.Addr().String(), "apidev")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// QoS 1: once the PUBACK is back, the PUBLISH has been forwarded and counted.
	if _, err := cl.Publish(ctx, &paho.Publish{Topic: "api/test", QoS: 1, Payload: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lines:
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("event %q: %v", l, err)
		}
		if ev["type"] != "PUBLISH" || ev["topic"] != "api/test" {
			t.Errorf("event %s", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}

	var conns []ConnView
	code, body := f.do(t, "GET", "/connections", "")
	if err := json.Unmarshal([]byte(body), &conns); code != 200 || err != nil {
		t.Fatalf("connections: %d %s %v", code, body, err)
	}
	if len(conns) != 1 || conns[0].MQTT == nil || conns[0].MQTT.ClientID != "apidev" || conns[0].Counters.C2SPackets < 2 {
		t.Fatalf("connections: %+v", conns)
	}
	if conns[0].MQTT.Phase != "connected" {
		t.Errorf("phase %q", conns[0].MQTT.Phase)
	}

	if code, body := f.do(t, "POST", "/connections/1/close", `{"reason_code":"0x98","reason_string":"maintenance"}`); code != 200 {
		t.Fatalf("close: %d %s", code, body)
	}
	select {
	case d := <-got:
		if d.ReasonCode != 0x98 || d.Properties == nil || d.Properties.ReasonString != "maintenance" {
			t.Errorf("DISCONNECT %#x %+v", d.ReasonCode, d.Properties)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no DISCONNECT")
	}
	f.col.waitClosed(t, 1) // once observers hear of the close, the API no longer lists it
	if code, _ := f.do(t, "POST", "/connections/1/close", ""); code != http.StatusNotFound {
		t.Errorf("closing a closed connection: %d", code)
	}
	if code, _ := f.do(t, "POST", "/connections/x/close?reason_code=0x98", ""); code != http.StatusBadRequest {
		t.Errorf("bad id: %d", code)
	}

	_, metrics := f.do(t, "GET", "/metrics", "")
	for _, want := range []string{
		`mqscope_connections_total 1`,
		`mqscope_packets_total{direction="c2s",type="PUBLISH"} 1`,
		`mqscope_packets_total{direction="s2c",type="DISCONNECT"} 1`,
		`mqscope_bytes_total{direction="c2s"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
}
