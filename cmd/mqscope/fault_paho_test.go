package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqscope/mqscope/internal/peer"
)

// pahoSession is a paho.golang client connected through the proxy (fault rules) to mosquitto.
type pahoSession struct {
	*faultSession
	cl         *paho.Client
	ack        *paho.Connack
	disconnect chan *paho.Disconnect // what OnServerDisconnect got
	errMu      sync.Mutex
	clientErrs []error // what OnClientError got
}

// startPaho starts mosquitto with conf and the proxy with rules, and connects a paho client
// as clientID; the CONNECT error is returned with the CONNACK paho read.
func startPaho(t *testing.T, conf []string, clientID string, rules ...string) (*pahoSession, error) {
	t.Helper()
	fs := startFaultProxy(t, peer.StartMosquitto(t, conf...).Addr, "", rules...)
	conn, err := net.Dial("tcp", fs.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ps := &pahoSession{faultSession: fs, disconnect: make(chan *paho.Disconnect, 1)}
	ps.cl = paho.NewClient(paho.ClientConfig{Conn: conn, OnServerDisconnect: func(d *paho.Disconnect) { ps.disconnect <- d },
		OnClientError: func(err error) { ps.errMu.Lock(); ps.clientErrs = append(ps.clientErrs, err); ps.errMu.Unlock() }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps.ack, err = ps.cl.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true})
	return ps, err
}

// records returns the JSON lines records of type typ (and direction dir when not "") written
// so far.
func (fs *faultSession) records(t *testing.T, typ, dir string) []map[string]any {
	t.Helper()
	var rs []map[string]any
	out := fs.out.String()
	for _, l := range strings.Split(out[:strings.LastIndexByte(out, '\n')+1], "\n") {
		if l == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if r["type"] == typ && (dir == "" || r["dir"] == dir) {
			rs = append(rs, r)
		}
	}
	return rs
}

// noteWith returns the first note of record r whose text contains s (nil when none).
func noteWith(r map[string]any, s string) map[string]any {
	notes, _ := r["notes"].([]any)
	for _, n := range notes {
		if m, _ := n.(map[string]any); strings.Contains(m["text"].(string), s) {
			return m
		}
	}
	return nil
}

// ctx10s is a context that ends 10 seconds from now, or with the test.
func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestPahoConnackMaximumPacketSize: mosquitto grants 1000-byte packets, the proxy tells paho
// 100. The fault record says the broker's value, the records and the session show the one
// paho got. paho.golang v0.23.0 keeps the value but does not check it when publishing: it sends a
// 311-byte PUBLISH (mosquitto takes it). The inspection judges paho by the CONNACK paho got,
// and says the PUBLISH is over the Maximum Packet Size.
func TestPahoConnackMaximumPacketSize(t *testing.T) {
	ps, err := startPaho(t, []string{"max_packet_size 1000"}, "paho-mps", "connack max_packet_size=100")
	if err != nil {
		t.Fatal(err)
	}
	if ps.ack.Properties == nil || ps.ack.Properties.MaximumPacketSize == nil || *ps.ack.Properties.MaximumPacketSize != 100 {
		t.Fatalf("paho read CONNACK properties %+v, want Maximum Packet Size 100", ps.ack.Properties)
	}
	// The CONNACK's packet record: the fault record before it holds a CONNACK too (the
	// broker's), and may be all that is written yet.
	if !ps.out.WaitFor(10*time.Second, func(s string) bool { return hasLine(s, `{"kind":"packet"`, `"type":"CONNACK"`) }) {
		t.Fatalf("no CONNACK record:\n%s", ps.out.String())
	}
	// The fault record, before the CONNACK paho got, has the broker's.
	faults := 0
	for _, r := range jsonRecords(t, ps.out.String()[:strings.LastIndexByte(ps.out.String(), '\n')+1]) {
		if r["kind"] != "fault" {
			continue
		}
		faults++
		o, _ := r["original"].(map[string]any)
		props, _ := o["properties"].(map[string]any)
		if r["did"] != "CONNACK rewritten: Maximum Packet Size 1000 → 100" || props["maximum_packet_size"] != float64(1000) {
			t.Errorf("fault record %v lacks the broker's value", r)
		}
	}
	if faults != 1 {
		t.Errorf("%d fault records, want 1", faults)
	}
	acks := ps.records(t, "CONNACK", "s2c")
	if props, _ := acks[0]["properties"].(map[string]any); len(acks) != 1 || props["maximum_packet_size"] != float64(100) {
		t.Errorf("CONNACK records %v, want the one paho got", acks)
	}
	if _, err := ps.cl.Publish(ctx10s(t), &paho.Publish{Topic: "big", QoS: 1, Payload: make([]byte, 300)}); err != nil {
		t.Fatalf("paho refused or failed the publish: %v (v0.23.0 sends it)", err)
	}
	waitOut(t, ps.out, `"type":"PUBACK"`)
	pubs := ps.records(t, "PUBLISH", "c2s")
	if len(pubs) != 1 || pubs[0]["size"] != float64(311) {
		t.Fatalf("PUBLISH records %v", pubs)
	}
	if n := noteWith(pubs[0], "Maximum Packet Size"); n == nil || n["level"] != "error" {
		t.Errorf("PUBLISH of %v bytes not judged by the 100-byte Maximum Packet Size paho got: %v", pubs[0]["size"], pubs[0]["notes"])
	}
}

// TestPahoConnackTopicAliasMaximum: mosquitto grants 10 aliases, the proxy tells paho 0. paho
// never uses an alias on its own; given one by its user, v0.23.0 checks it only against a
// non-zero maximum, so it sends alias 1 where none was allowed (mosquitto, which allowed 10,
// takes it). The inspection judges paho by the CONNACK it got.
func TestPahoConnackTopicAliasMaximum(t *testing.T) {
	ps, err := startPaho(t, []string{"max_topic_alias 10"}, "paho-tam", "connack topic_alias_maximum=0")
	if err != nil {
		t.Fatal(err)
	}
	if p := ps.ack.Properties; p != nil && p.TopicAliasMaximum != nil {
		t.Fatalf("paho read Topic Alias Maximum %d, want none", *p.TopicAliasMaximum)
	}
	if _, err := ps.cl.Publish(ctx10s(t), &paho.Publish{Topic: "plain", QoS: 1, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	alias := uint16(1)
	if _, err := ps.cl.Publish(ctx10s(t), &paho.Publish{Topic: "aliased", QoS: 1, Payload: []byte("y"), Properties: &paho.PublishProperties{TopicAlias: &alias}}); err != nil {
		t.Fatalf("paho refused the alias: %v (v0.23.0 sends it)", err)
	}
	waitOut(t, ps.out, `"packet_id":2,`)
	pubs := ps.records(t, "PUBLISH", "c2s")
	if len(pubs) != 2 {
		t.Fatalf("PUBLISH records %v", pubs)
	}
	if props, _ := pubs[0]["properties"].(map[string]any); props["topic_alias"] != nil {
		t.Errorf("paho used an alias on its own: %v", pubs[0])
	}
	if n := noteWith(pubs[1], "Topic Alias Maximum"); n == nil || n["level"] != "error" {
		t.Errorf("alias 1 not judged by the Topic Alias Maximum 0 paho got: %v", pubs[1]["notes"])
	}
}

// TestPahoConnackReceiveMaximum: the proxy tells paho the server takes one QoS 1 PUBLISH at a
// time, and drops the PUBACK of the first: paho keeps the second waiting for a slot (its publish
// ends with the context's deadline), so the timeline has one PUBLISH in flight at most; the
// QoS 0 PUBLISH after it, which needs no slot, shows the timeline is complete.
func TestPahoConnackReceiveMaximum(t *testing.T) {
	ps, err := startPaho(t, nil, "paho-rm", "connack receive_maximum=1", "drop type=PUBACK dir=s2c count=1")
	if err != nil {
		t.Fatal(err)
	}
	async := paho.PublishOptions{Method: paho.PublishMethod_AsyncSend}
	if _, err := ps.cl.PublishWithOptions(ctx10s(t), &paho.Publish{Topic: "q", QoS: 1, Payload: []byte("1")}, async); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := ps.cl.PublishWithOptions(short, &paho.Publish{Topic: "q", QoS: 1, Payload: []byte("2")}, async); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second QoS 1 publish: %v, want it held until the deadline (Receive Maximum 1)", err)
	}
	if _, err := ps.cl.Publish(ctx10s(t), &paho.Publish{Topic: "marker", QoS: 0, Payload: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	waitOut(t, ps.out, `"topic":"marker"`)
	inFlight, most := 0, 0
	for _, l := range strings.Split(strings.TrimSpace(ps.out.String()), "\n") {
		var r map[string]any
		json.Unmarshal([]byte(l), &r)
		switch {
		case r["type"] == "PUBLISH" && r["dir"] == "c2s" && r["qos"].(float64) > 0:
			inFlight++
		case r["type"] == "PUBACK" && r["dir"] == "s2c":
			inFlight--
		}
		most = max(most, inFlight)
	}
	if most != 1 {
		t.Errorf("at most %d QoS 1 PUBLISH in flight, want 1", most)
	}
}

// TestPahoServerDisconnect: the proxy sends paho a DISCONNECT after the SUBACK; the reason code
// and reason string reach paho's OnServerDisconnect.
func TestPahoServerDisconnect(t *testing.T) {
	for _, rc := range []byte{0x89, 0x8B, 0x8E, 0x98} {
		t.Run(hexByte(rc), func(t *testing.T) {
			ps, err := startPaho(t, nil, "paho-dis", `disconnect dir=s2c reason=`+hexByte(rc)+` reason_string="from mqscope" after=SUBACK`)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ps.cl.Subscribe(ctx10s(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "a/b", QoS: 1}}}); err != nil {
				t.Fatal(err)
			}
			select {
			case d := <-ps.disconnect:
				if d.ReasonCode != rc || d.Properties == nil || d.Properties.ReasonString != "from mqscope" {
					t.Errorf("OnServerDisconnect got reason 0x%02X properties %+v, want 0x%02X \"from mqscope\"", d.ReasonCode, d.Properties, rc)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("OnServerDisconnect not called")
			}
		})
	}
}

func hexByte(b byte) string {
	const digits = "0123456789ABCDEF"
	return "0x" + string(digits[b>>4]) + string(digits[b&15])
}

// TestPahoConnackCapabilitiesAndRefusal: told that the server has no wildcard, Subscription
// Identifier or shared subscriptions, paho refuses to send such a SUBSCRIBE (nothing reaches
// mosquitto, which has them all); and a CONNACK 0x9C with a Server Reference fails paho's
// Connect with both.
func TestPahoConnackCapabilitiesAndRefusal(t *testing.T) {
	ps, err := startPaho(t, nil, "paho-caps",
		"connack wildcard_subscription_available=0 subscription_identifier_available=0 shared_subscription_available=0")
	if err != nil {
		t.Fatal(err)
	}
	subID := 4
	for _, s := range []*paho.Subscribe{
		{Subscriptions: []paho.SubscribeOptions{{Topic: "a/+"}}},
		{Subscriptions: []paho.SubscribeOptions{{Topic: "a/b"}}, Properties: &paho.SubscribeProperties{SubscriptionIdentifier: &subID}},
		{Subscriptions: []paho.SubscribeOptions{{Topic: "$share/g/a/b"}}},
	} {
		if _, err := ps.cl.Subscribe(ctx10s(t), s); !errors.Is(err, paho.ErrInvalidArguments) {
			t.Errorf("subscribe %+v: %v, want paho's refusal", s.Subscriptions, err)
		}
	}
	if _, err := ps.cl.Subscribe(ctx10s(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "a/b"}}}); err != nil {
		t.Fatal(err)
	}
	waitOut(t, ps.out, `"type":"SUBACK"`)
	if subs := ps.records(t, "SUBSCRIBE", "c2s"); len(subs) != 1 {
		t.Errorf("SUBSCRIBE records %v, want the plain one only", subs)
	}

	ps, err = startPaho(t, nil, "paho-moved", `connack reason=0x9C server_reference="other.example:1883" reason_string=elsewhere`)
	if err == nil || ps.ack == nil || ps.ack.ReasonCode != 0x9C || ps.ack.Properties == nil || ps.ack.Properties.ServerReference != "other.example:1883" {
		t.Errorf("Connect: %v, CONNACK %+v", err, ps.ack)
	}
}

// TestPahoConnackServerKeepAlive: paho asks for 30 s; the proxy tells it the server keeps it at
// 1 s, and paho pings by that.
func TestPahoConnackServerKeepAlive(t *testing.T) {
	ps, err := startPaho(t, nil, "paho-ka", "connack server_keep_alive=1")
	if err != nil {
		t.Fatal(err)
	}
	if p := ps.ack.Properties; p == nil || p.ServerKeepAlive == nil || *p.ServerKeepAlive != 1 {
		t.Fatalf("paho read CONNACK properties %+v, want Server Keep Alive 1", p)
	}
	waitOut(t, ps.out, `"type":"PINGREQ"`)
}

// TestPahoConnackSessionPresent: paho starts clean; the proxy says the server kept a session.
// paho.golang v0.23.0 deviates: a client without session state that gets Session Present 1
// must close the connection [MQTT-3.2.2-4]; paho stays and publishes.
func TestPahoConnackSessionPresent(t *testing.T) {
	ps, err := startPaho(t, nil, "paho-sp", "connack session_present=1")
	if err != nil || !ps.ack.SessionPresent {
		t.Fatalf("Connect: %v, CONNACK %+v", err, ps.ack)
	}
	if _, err := ps.cl.Publish(ctx10s(t), &paho.Publish{Topic: "x", QoS: 1, Payload: []byte("1")}); err != nil {
		t.Fatalf("paho after Session Present 1: %v (v0.23.0 publishes)", err)
	}
	waitOut(t, ps.out, `"type":"PUBACK"`)
	if acks := ps.records(t, "CONNACK", "s2c"); len(acks) != 1 || acks[0]["session_present"] != true {
		t.Errorf("CONNACK records %v, want the one paho got", acks)
	}
}
