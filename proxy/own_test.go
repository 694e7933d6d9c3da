package proxy

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
)

// TestProxyDisconnectIsTheProxys: a DISCONNECT the proxy sends on the control API's request is
// inspected as the proxy's (marked by_proxy, "mqscope's proxy closed the connection", no cause
// looked for among the broker's packets), and the close record says the proxy closed it; the
// API answers what it did.
func TestProxyDisconnectIsTheProxys(t *testing.T) {
	f := startAPI(t)
	sub := f.hub.Subscribe(nil)
	connectDevice(t, f.srv.Addr().String(), "by-proxy")
	code, body := f.do(t, "POST", "/connections/1/close", `{"reason_code":"0x98"}`)
	var res struct {
		Sent bool   `json:"disconnect_sent"`
		Done string `json:"done"`
	}
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || !res.Sent || !strings.Contains(res.Done, "sent DISCONNECT") {
		t.Fatalf("close: %d %s", code, body)
	}
	var disc *inspect.PacketRecord
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-sub.C:
			if !ok {
				t.Fatal("event stream ended")
			}
			switch r := e.Record.(type) {
			case *inspect.PacketRecord:
				if r.Type() == decode.DISCONNECT {
					disc = r
				}
			case *inspect.CloseRecord:
				if disc == nil || !disc.ByProxy {
					t.Fatalf("the proxy's DISCONNECT was inspected as the broker's: %+v", disc)
				}
				if len(disc.Notes) == 0 || !strings.Contains(disc.Notes[0].Text, "mqscope's proxy closed the connection") || disc.Notes[0].Cause != nil {
					t.Errorf("notes on the proxy's DISCONNECT: %+v", disc.Notes)
				}
				if r.By() != "proxy" {
					t.Errorf("closed by %q: %s", r.By(), r.Reason())
				}
				line := string(inspect.AppendJSON(nil, disc, inspect.JSONOptions{}))
				if !strings.Contains(line, `"by_proxy":true`) {
					t.Errorf("JSON line of the proxy's DISCONNECT: %s", line)
				}
				return
			}
		case <-timeout:
			t.Fatal("no close record")
		}
	}
}

// TestCloseDevice311: a 3.1.1 device can be sent no DISCONNECT (that version has none from the
// server); the API says so rather than claim one was sent.
func TestCloseDevice311(t *testing.T) {
	f := startAPI(t)
	c, err := net.Dial("tcp", f.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(encode(t, &decode.Connect{Base: decode.Base{Version: decode.V311}, ProtocolName: "MQTT", ProtocolLevel: 4, CleanStart: true, KeepAlive: 30, ClientID: "old"}))
	if typ := decode.Type(readFrame(t, c)[0] >> 4); typ != decode.CONNACK {
		t.Fatalf("got %v, want CONNACK", typ)
	}
	code, body := f.do(t, "POST", "/connections/1/close", `{"reason_code":"0x98"}`)
	var res struct {
		Sent bool   `json:"disconnect_sent"`
		Done string `json:"done"`
	}
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || res.Sent || !strings.Contains(res.Done, "no DISCONNECT: the device speaks MQTT 3.1.1") {
		t.Errorf("close: %d %s", code, body)
	}
}
