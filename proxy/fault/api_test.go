package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/proxy"
)

const apiToken = "t0ken"

// liveProxy is a proxy to the embedded broker with a Live set of rules and its control API.
type liveProxy struct {
	srv *proxy.Server
	set *Set
	url string

	mu      sync.Mutex
	applied []Applied
}

func startLive(t *testing.T, rules ...string) *liveProxy {
	t.Helper()
	rs, err := ParseAll(rules)
	if err != nil {
		t.Fatal(err)
	}
	lp := &liveProxy{}
	lp.set = &Set{Rules: rs, Live: true, Report: func(a Applied) {
		lp.mu.Lock()
		lp.applied = append(lp.applied, a)
		lp.mu.Unlock()
	}}
	srv := serveProxy(t, proxy.Config{Stages: lp.set.Stages})
	lp.srv = srv
	ts := httptest.NewUnstartedServer(nil)
	api := proxy.NewAPI(srv, nil, nil, proxy.APIConfig{Token: apiToken, Listen: ts.Listener.Addr().String()})
	lp.set.Register(api)
	ts.Config.Handler = api
	ts.Start()
	t.Cleanup(ts.Close)
	lp.url = ts.URL
	return lp
}

// do sends a request with the token and returns the status and body.
func (lp *liveProxy) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	return peer.APIRequest(t, method, lp.url+path, apiToken, body)
}

// rules GETs path and decodes the rules.
func (lp *liveProxy) rules(t *testing.T, path string) []RuleStatus {
	t.Helper()
	code, body := lp.do(t, "GET", path, "")
	var rs []RuleStatus
	if err := json.Unmarshal([]byte(body), &rs); code != 200 || err != nil {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return rs
}

// device connects a client that subscribes to topic/#, and returns it with its connection's id.
func (lp *liveProxy) device(t *testing.T, id, topic string) (*mqttclient.Client, int) {
	t.Helper()
	conn, err := net.Dial("tcp", lp.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := mqttclient.New(conn, nil)
	t.Cleanup(func() { c.Close() })
	ctx := testCtx(t)
	if ack, err := c.Connect(ctx, &decode.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %v", id, ack, err)
	}
	c.Send(&decode.Subscribe{Base: v5, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: topic + "/#"}}})
	if p, err := c.Next(ctx); err != nil || p.Type() != decode.SUBACK {
		t.Fatalf("subscribe %s: %v %v", id, p, err)
	}
	for _, st := range lp.srv.Conns() {
		if st.Client == conn.LocalAddr().String() {
			return c, st.ID
		}
	}
	t.Fatalf("connection of %s not listed", id)
	return nil, 0
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo publishes payload to topic at QoS 0 and returns the frame the client gets back.
func echo(t *testing.T, c *mqttclient.Client, topic, payload string) []byte {
	t.Helper()
	if err := c.Send(&decode.Publish{Base: v5, Topic: topic, Payload: []byte(payload)}); err != nil {
		t.Fatal(err)
	}
	f, err := c.NextFrame(testCtx(t))
	if err != nil {
		t.Fatalf("waiting for the PUBLISH on %s: %v", topic, err)
	}
	return f
}

// TestAPIFaults: rules added and removed through the control API apply to connections already
// open, from their next frame; a connection's own rules apply to it alone.
func TestAPIFaults(t *testing.T) {
	lp := startLive(t)
	a, aID := lp.device(t, "dev-a", "a")
	b, _ := lp.device(t, "dev-b", "b")
	if rs := lp.rules(t, "/faults"); len(rs) != 0 {
		t.Fatalf("rules at start: %+v", rs)
	}
	if f := echo(t, a, "a/1", "hi"); len(f) > 20 {
		t.Fatalf("no rule, yet a %d-byte PUBLISH", len(f))
	}

	// A rule for every connection, given as {"rule", "name"}.
	code, body := lp.do(t, "POST", "/faults", `{"rule": "oversize dir=s2c size=300", "name": "big"}`)
	if code != 201 || !strings.Contains(body, `"name": "big"`) || !strings.Contains(body, `"text": "oversize dir=s2c size=300 name=big"`) {
		t.Fatalf("POST: %d %s", code, body)
	}
	for _, c := range []*mqttclient.Client{a, b} {
		if f := echo(t, c, map[*mqttclient.Client]string{a: "a/2", b: "b/2"}[c], "hi"); len(f) != 300 {
			t.Errorf("with big: a %d-byte PUBLISH, want 300", len(f))
		}
	}
	// As a string in the grammar: named by its number.
	if code, body := lp.do(t, "POST", "/faults", `"retain dir=c2s topic=z/#"`); code != 201 || !strings.Contains(body, `"name": "#2 retain"`) {
		t.Fatalf("POST string: %d %s", code, body)
	}
	rs := lp.rules(t, "/faults")
	if len(rs) != 2 || rs[0].Name != "big" || rs[0].Applied != 2 || rs[0].Dirs != "s2c" || rs[1].Name != "#2 retain" || rs[1].Applied != 0 {
		t.Errorf("GET /faults: %+v", rs)
	}

	// A connection's own rule: dev-a alone gets a 400-byte one; it applies before big.
	if code, body := lp.do(t, "POST", fmt.Sprintf("/connections/%d/faults", aID), `{"action": "oversize", "dir": "s2c", "size": 400, "name": "huge"}`); code != 201 {
		t.Fatalf("POST conn: %d %s", code, body)
	}
	if f := echo(t, a, "a/3", "hi"); len(f) != 400 {
		t.Errorf("dev-a: %d bytes, want 400 (its own rule)", len(f))
	}
	if f := echo(t, b, "b/3", "hi"); len(f) != 300 {
		t.Errorf("dev-b: %d bytes, want 300 (big only)", len(f))
	}
	crs := lp.rules(t, fmt.Sprintf("/connections/%d/faults", aID))
	if len(crs) != 3 || crs[0].Name != "huge" || crs[0].Scope != "connection" || crs[0].Applied != 1 ||
		crs[1].Name != "big" || crs[1].Scope != "all" || crs[1].Applied != 1 {
		t.Errorf("GET conn faults: %+v", crs)
	}

	// Removing big leaves dev-a's rule; its counts on dev-a survive.
	if code, body := lp.do(t, "DELETE", "/faults/big", ""); code != 200 || !strings.Contains(body, `"applied": 3`) {
		t.Fatalf("DELETE big: %d %s", code, body)
	}
	if f := echo(t, b, "b/4", "hi"); len(f) > 20 {
		t.Errorf("dev-b after DELETE: %d bytes", len(f))
	}
	if f := echo(t, a, "a/4", "hi"); len(f) != 400 {
		t.Errorf("dev-a after DELETE big: %d bytes, want 400", len(f))
	}
	if crs := lp.rules(t, fmt.Sprintf("/connections/%d/faults", aID)); len(crs) != 2 || crs[0].Applied != 2 || crs[1].Name != "#2 retain" {
		t.Errorf("GET conn faults after DELETE: %+v", crs)
	}
	if code, body := lp.do(t, "DELETE", fmt.Sprintf("/connections/%d/faults/huge", aID), ""); code != 200 || !strings.Contains(body, `"applied": 2`) {
		t.Fatalf("DELETE huge: %d %s", code, body)
	}
	if f := echo(t, a, "a/5", "hi"); len(f) > 20 {
		t.Errorf("dev-a after DELETE huge: %d bytes", len(f))
	}

	lp.mu.Lock()
	n := len(lp.applied)
	lp.mu.Unlock()
	if n != 5 {
		t.Errorf("%d faults reported, want 5", n)
	}
}

// Bad requests: what is wrong, with the status that says it.
func TestAPIFaultErrors(t *testing.T) {
	lp := startLive(t, "drop type=PUBACK name=lost")
	_, id := lp.device(t, "dev", "d")
	conn := fmt.Sprintf("/connections/%d/faults", id)
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/faults", `"oversize sizee=3"`, 400, `column 10: sizee does not apply to oversize`},
		{"POST", "/faults", `{"action": "drop", "dirr": "c2s"}`, 400, `1:20: dirr does not apply to drop`},
		{"POST", "/faults", `{"rule": "drop dir=up"}`, 400, `1:16: dir: \"up\" is not c2s, s2c or both`},
		{"POST", "/faults", `{"rule": "drop name=a", "name": "b"}`, 400, `name given twice`},
		{"POST", "/faults", `{"rule": "drop"`, 400, `1:`},
		{"POST", "/faults", `[1, 2]`, 400, `a fault rule is a string`},
		{"POST", "/faults", `"drop name=lost"`, 409, `a rule has that name: lost`},
		{"DELETE", "/faults/nothing", "", 404, `no rule has that name: nothing`},
		{"GET", "/connections/999/faults", "", 404, `no open connection with fault stages: 999`},
		{"POST", "/connections/x/faults", `"drop"`, 400, `connection id: want a number`},
		{"DELETE", conn + "/nothing", "", 404, `no rule has that name: nothing`},
	} {
		code, body := lp.do(t, tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
	// Same auth as the rest of the API.
	req, _ := http.NewRequest("GET", lp.url+"/faults", nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 401 {
		t.Errorf("no token: %v %v", res, err)
	}
	req, _ = http.NewRequest("POST", lp.url+"/faults", strings.NewReader(url.Values{"rule": {"drop"}}.Encode()))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 415 {
		t.Errorf("form body: %v %v", res, err)
	}
}

// Rules added and removed while a client publishes as fast as it can: forwarding never waits
// for them, no frame is lost, and each frame the client gets is either as sent or grown by
// the rule (run with -race).
func TestAPIFaultsWhileForwarding(t *testing.T) {
	lp := startLive(t)
	c, _ := lp.device(t, "dev", "t")
	const n = 300
	stop := make(chan struct{})
	churned := make(chan int)
	go func() {
		k := 0
		for {
			select {
			case <-stop:
				churned <- k
				return
			default:
			}
			lp.do(t, "POST", "/faults", `{"rule": "oversize dir=s2c size=64", "name": "g"}`)
			lp.do(t, "DELETE", "/faults/g", "")
			k++
		}
	}()
	grown := 0
	for i := range n {
		f := echo(t, c, "t/x", fmt.Sprint(i))
		p, ok := decode.Decode(f, decode.V5).(*decode.Publish)
		if !ok || !strings.HasPrefix(string(p.Payload), fmt.Sprint(i)) {
			t.Fatalf("message %d: got % x", i, f)
		}
		switch {
		case len(f) == 64:
			grown++
		case string(p.Payload) != fmt.Sprint(i):
			t.Fatalf("message %d: %d bytes, neither as sent nor 64", i, len(f))
		}
	}
	close(stop)
	k := <-churned
	t.Logf("%d messages, %d grown, %d rule changes", n, grown, k)
	if k == 0 {
		t.Error("no rule was added while forwarding")
	}
}
