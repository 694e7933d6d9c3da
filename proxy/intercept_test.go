package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

var icV5 = decode.Base{Version: decode.V5}

func icEnc(t testing.TB, p decode.Packet) []byte {
	t.Helper()
	b, err := decode.Encode(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// icRig is an Intercept with the stages of one connection, fed frames on goroutines as a pipe
// would, and what each direction emitted.
type icRig struct {
	t       *testing.T
	ic      *Intercept
	stages  [2]Stage
	done    chan struct{}
	changes chan struct{}
	state   inspect.View
	conn    *stream.Conn
}

// newICRig makes the rig; the connection's CONNECT (client id dev-7) and CONNACK (granting ack)
// go through first, unheld.
func newICRig(t *testing.T, filter string, ack decode.Properties) *icRig {
	t.Helper()
	r := &icRig{t: t, ic: NewIntercept(), done: make(chan struct{}),
		conn: &stream.Conn{ID: 3, Client: netip.MustParseAddrPort("127.0.0.1:50000"), Server: netip.MustParseAddrPort("127.0.0.1:1883")}}
	r.changes = notifyChan(r.ic)
	for d := range r.stages {
		r.stages[d] = r.ic.Stages(r.conn, stream.Dir(d), StageEnv{Done: r.done})[0]
	}
	ic := inspect.NewConn(3, "127.0.0.1:50000", "127.0.0.1:1883", inspect.Options{})
	r.state = ic.View()
	connect := icEnc(t, &decode.Connect{Base: icV5, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "dev-7", KeepAlive: 30})
	connack := icEnc(t, &decode.Connack{Base: icV5, Properties: ack})
	if err := r.ic.SetFilter(filter); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		dir stream.Dir
		b   []byte
	}{{stream.C2S, connect}, {stream.S2C, connack}} {
		out, err := r.pass(f.dir, f.b)
		if err != nil || len(out) != 1 || !bytes.Equal(out[0], f.b) {
			t.Fatalf("%s went through as %x, %v; want it unchanged", decode.Type(f.b[0]>>4), out, err)
		}
		ic.Feed(f.dir, time.Unix(0, 0), f.b)
	}
	return r
}

// notifyChan returns a channel that hears of each change of ic's held frames.
func notifyChan(ic *Intercept) chan struct{} {
	changes := make(chan struct{}, 64)
	ic.Notify(func() {
		select {
		case changes <- struct{}{}:
		default:
		}
	})
	return changes
}

// pass sends b through direction dir's stage and waits for it to return.
func (r *icRig) pass(dir stream.Dir, b []byte) ([][]byte, error) {
	res := r.start(dir, b)
	return res.wait(r.t)
}

type icRun struct {
	out  [][]byte
	err  error
	done chan struct{}
}

func (x *icRun) wait(t *testing.T) ([][]byte, error) {
	t.Helper()
	select {
	case <-x.done:
		return x.out, x.err
	case <-time.After(10 * time.Second):
		t.Fatal("the stage did not return")
		return nil, nil
	}
}

// start sends b through direction dir's stage on a goroutine.
func (r *icRig) start(dir stream.Dir, b []byte) *icRun {
	x := &icRun{done: make(chan struct{})}
	f := &Frame{Conn: r.conn, Dir: dir, Time: time.Unix(1, 0), Type: decode.Type(b[0] >> 4), Bytes: b, State: r.state}
	go func() {
		defer close(x.done)
		x.err = r.stages[dir].Frame(f, func(b []byte) error {
			x.out = append(x.out, bytes.Clone(b))
			return nil
		})
	}()
	return x
}

// heldOne waits until exactly one frame is held and returns it.
func (r *icRig) heldOne() Held {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if hs := r.ic.Held(); len(hs) == 1 {
			return hs[0]
		} else if len(hs) > 1 {
			r.t.Fatalf("%d frames held, want 1", len(hs))
		}
		select {
		case <-r.changes:
		case <-deadline:
			r.t.Fatal("nothing was held")
		}
	}
}

func icPublish(t *testing.T, topic string, payload string, props ...decode.Property) []byte {
	return icEnc(t, &decode.Publish{Base: icV5, QoS: 1, PacketID: 7, Topic: topic, Payload: []byte(payload), Properties: props})
}

func TestInterceptForwardDropEdit(t *testing.T) {
	ack := decode.Properties{decode.IntProp(decode.PropMaximumPacketSize, 64), decode.IntProp(decode.PropTopicAliasMaximum, 2)}
	pub := icPublish(t, "a/b", "hello")
	other := icPublish(t, "c/d", "world")

	t.Run("not matching goes on at once", func(t *testing.T) {
		r := newICRig(t, `type == "PUBLISH" && topic == "a/b" && client_id == "dev-7"`, ack)
		out, err := r.pass(stream.C2S, other)
		if err != nil || len(out) != 1 || !bytes.Equal(out[0], other) || len(r.ic.Held()) != 0 {
			t.Fatalf("c/d: out %x err %v held %d; want it forwarded unchanged, unheld", out, err, len(r.ic.Held()))
		}
	})
	t.Run("forward", func(t *testing.T) {
		r := newICRig(t, `type == "PUBLISH" && topic == "a/b" && client_id == "dev-7"`, ack)
		x := r.start(stream.C2S, pub)
		h := r.heldOne()
		if h.Conn != 3 || h.ClientID != "dev-7" || h.Dir != stream.C2S || !bytes.Equal(h.Raw, pub) || h.Edited {
			t.Fatalf("held %+v", h)
		}
		// The other direction is not held up meanwhile.
		puback := icEnc(t, &decode.Ack{Base: icV5, PacketType: decode.PUBACK, PacketID: 1})
		if out, err := r.pass(stream.S2C, puback); err != nil || len(out) != 1 {
			t.Fatalf("PUBACK s2c while a PUBLISH is held c2s: %x %v", out, err)
		}
		if err := r.ic.Forward(h.ID); err != nil {
			t.Fatal(err)
		}
		out, err := x.wait(t)
		if err != nil || len(out) != 1 || !bytes.Equal(out[0], pub) {
			t.Fatalf("forwarded %x, %v; want the frame unchanged", out, err)
		}
		if err := r.ic.Forward(h.ID); !errors.Is(err, ErrNotHeld) {
			t.Errorf("forwarding it again: %v, want ErrNotHeld", err)
		}
	})
	t.Run("drop", func(t *testing.T) {
		r := newICRig(t, `topic == "a/b"`, ack)
		x := r.start(stream.C2S, pub)
		if err := r.ic.Drop(r.heldOne().ID); err != nil {
			t.Fatal(err)
		}
		if out, err := x.wait(t); err != nil || len(out) != 0 {
			t.Fatalf("dropped frame went on: %x, %v", out, err)
		}
	})
	t.Run("edit fields", func(t *testing.T) {
		r := newICRig(t, `topic == "a/b"`, ack)
		x := r.start(stream.C2S, pub)
		h := r.heldOne()
		topic, payload := "a/much/longer/topic", "edited payload"
		warns, err := r.ic.Edit(h.ID, FieldEdit{Topic: &topic, Payload: &payload,
			Properties: map[string]json.RawMessage{"user_property": json.RawMessage(`[["by","mqscope"]]`)}})
		if err != nil || len(warns) != 0 {
			t.Fatalf("edit: warnings %q, %v", warns, err)
		}
		if err := r.ic.Forward(h.ID); err != nil {
			t.Fatal(err)
		}
		out, err := x.wait(t)
		if err != nil || len(out) != 1 {
			t.Fatalf("%x, %v", out, err)
		}
		p := decode.Decode(out[0], decode.V5)
		q, ok := p.(*decode.Publish)
		if !ok || len(p.Info().Problems) > 0 || q.Topic != topic || string(q.Payload) != payload || q.PacketID != 7 || q.QoS != 1 {
			t.Fatalf("edited frame decodes as %#v (problems %v)", p, p.Info().Problems)
		}
		if up := q.Properties.UserProperties(); len(up) != 1 || up[0].Name != "by" || up[0].Value != "mqscope" {
			t.Errorf("user properties %v", up)
		}
		if n, _ := decode.SplitFrame(out[0], 0); n != len(out[0]) {
			t.Errorf("Remaining Length says %d bytes of %d", n, len(out[0]))
		}
	})
	t.Run("edit breaking the limits warns", func(t *testing.T) {
		r := newICRig(t, `topic == "a/b"`, ack)
		x := r.start(stream.C2S, pub)
		h := r.heldOne()
		payload := strings.Repeat("x", 80)
		warns, err := r.ic.Edit(h.ID, FieldEdit{Payload: &payload, Properties: map[string]json.RawMessage{"topic_alias": json.RawMessage(`3`)}})
		if err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(warns, "\n")
		for _, want := range []string{"over the 64-byte Maximum Packet Size the server allowed", "Topic Alias 3, over the Topic Alias Maximum 2 the server allowed"} {
			if !strings.Contains(joined, want) {
				t.Errorf("warnings %q lack %q", warns, want)
			}
		}
		if hs := r.ic.Held(); len(hs) != 1 || !hs[0].Edited || len(hs[0].Warnings) != len(warns) {
			t.Errorf("held after the edit: %+v", hs)
		}
		r.ic.ForwardAll()
		x.wait(t)
	})
	t.Run("edit as bytes", func(t *testing.T) {
		r := newICRig(t, `topic == "a/b"`, ack)
		x := r.start(stream.C2S, pub)
		h := r.heldOne()
		for _, bad := range [][]byte{pub[:len(pub)-1], append(bytes.Clone(pub), 0xC0, 0x00)} {
			if _, err := r.ic.Replace(h.ID, bad); !errors.Is(err, ErrEdit) {
				t.Errorf("Replace(%x): %v, want ErrEdit", bad, err)
			}
		}
		// QoS 3 is malformed: allowed, with a warning.
		q3 := bytes.Clone(pub)
		q3[0] |= 0x06
		warns, err := r.ic.Replace(h.ID, q3)
		if err != nil || len(warns) == 0 || !strings.HasPrefix(warns[0], "malformed") {
			t.Fatalf("QoS 3: warnings %q, %v", warns, err)
		}
		r.ic.Forward(h.ID)
		if out, _ := x.wait(t); len(out) != 1 || !bytes.Equal(out[0], q3) {
			t.Errorf("forwarded %x, want %x", out, q3)
		}
	})
	t.Run("the connection ends while held", func(t *testing.T) {
		r := newICRig(t, `topic == "a/b"`, ack)
		x := r.start(stream.C2S, pub)
		r.heldOne()
		close(r.done)
		out, err := x.wait(t)
		if !errors.Is(err, ErrDirClosed) || len(out) != 0 {
			t.Fatalf("out %x err %v; want nothing sent and ErrDirClosed", out, err)
		}
		if hs := r.ic.Held(); len(hs) != 0 {
			t.Errorf("still held: %+v", hs)
		}
	})
	t.Run("no filter holds nothing", func(t *testing.T) {
		r := newICRig(t, `topic == "a/b"`, ack)
		r.ic.SetFilter("")
		if out, err := r.pass(stream.C2S, pub); err != nil || len(out) != 1 {
			t.Fatalf("%x %v", out, err)
		}
	})
}

func TestFieldEditErrors(t *testing.T) {
	ack := icEnc(t, &decode.Ack{Base: icV5, PacketType: decode.PUBACK, PacketID: 1})
	topic := "x"
	for _, tc := range []struct {
		name string
		e    FieldEdit
		want string
	}{
		{"topic of a PUBACK", FieldEdit{Topic: &topic}, "has no topic"},
		{"unknown property", FieldEdit{Properties: map[string]json.RawMessage{"colour": json.RawMessage(`1`)}}, `no property is called "colour"`},
		{"property of the wrong type", FieldEdit{Properties: map[string]json.RawMessage{"reason_string": json.RawMessage(`1`)}}, "want a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.e.Apply(ack, decode.V5)
			if !errors.Is(err, ErrEdit) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want ErrEdit saying %q", err, tc.want)
			}
		})
	}
	// A packet identifier on a QoS 0 PUBLISH would be left out by the encoding: refused, not
	// lost; with qos 1 in the same edit it is written.
	pub0 := icEnc(t, &decode.Publish{Base: icV5, Topic: "a", Payload: []byte("x")})
	pid, qos1 := 7, 1
	if b, err := (FieldEdit{PacketID: &pid}).Apply(pub0, decode.V5); !errors.Is(err, ErrEdit) || !strings.Contains(err.Error(), "no packet identifier") {
		t.Errorf("packet_id on a QoS 0 PUBLISH: %x, %v; want ErrEdit saying it has no packet identifier", b, err)
	}
	if b, err := (FieldEdit{PacketID: &pid, QoS: &qos1}).Apply(pub0, decode.V5); err != nil {
		t.Errorf("packet_id 7 with qos 1: %v", err)
	} else if q, ok := decode.Decode(b, decode.V5).(*decode.Publish); !ok || q.QoS != 1 || q.PacketID != 7 {
		t.Errorf("packet_id 7 with qos 1: %x decodes as %#v", b, q)
	}
	// A reason code on a PUBACK: the long form is written.
	rc := 0x10
	b, err := FieldEdit{ReasonCode: &rc}.Apply(ack, decode.V5)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := decode.Decode(b, decode.V5).(*decode.Ack); !ok || a.ReasonCode != 0x10 || a.PacketID != 1 {
		t.Errorf("%x decodes as %#v", b, a)
	}
}

// TestInterceptEditMosquitto: mosquitto_pub's PUBLISH is held by the proxy, edited through the
// control API (topic and payload re-encoded), forwarded, and mosquitto delivers the edited one
// to mosquitto_sub, while mosquitto_pub gets its PUBACK.
func TestInterceptEditMosquitto(t *testing.T) {
	pubBin := peer.Require(t, "mosquitto_pub")
	subBin := peer.Require(t, "mosquitto_sub")
	_, col, f, changes := icProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: broker(t, "mosquitto")}},
		`type == "PUBLISH" && dir == "c2s" && topic == "demo/original"`)
	host, port, _ := net.SplitHostPort(f.srv.Addr().String())
	common := []string{"-h", host, "-p", port, "-V", "mqttv5", "-q", "1"}
	sub := exec.Command(subBin, append(common, "-t", "demo/#", "-v", "-C", "1", "-W", "20")...)
	var subOut, subErr bytes.Buffer
	sub.Stdout, sub.Stderr = &subOut, &subErr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	col.waitFrame(t, 1, stream.S2C, decode.SUBACK)
	pub := exec.Command(pubBin, append(common, "-t", "demo/original", "-m", "original")...)
	var pubOut bytes.Buffer
	pub.Stdout, pub.Stderr = &pubOut, &pubOut
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	pubDone := make(chan error, 1)
	go func() { pubDone <- pub.Wait() }()

	var held []heldView
	deadline := time.After(15 * time.Second)
	for len(held) == 0 {
		select {
		case <-changes:
		case <-deadline:
			t.Fatal("mosquitto_pub's PUBLISH was not held")
		}
		code, body := f.do(t, "GET", "/intercept/held", "")
		if code != 200 {
			t.Fatalf("GET /intercept/held: %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &held); err != nil {
			t.Fatal(err)
		}
	}
	h := held[0]
	if h.Type != "PUBLISH" || h.Topic == nil || *h.Topic != "demo/original" || h.Payload == nil || *h.Payload != "original" || h.Dir != "c2s" {
		t.Fatalf("held %+v", h)
	}
	select {
	case err := <-pubDone:
		t.Fatalf("mosquitto_pub ended while its PUBLISH was held: %v %s", err, pubOut.String())
	default:
	}
	path := fmt.Sprintf("/intercept/held/%d", h.ID)
	code, body := f.do(t, "POST", path+"/edit", `{"topic": "demo/edited", "payload": "edited by mqscope", "properties": {"user_property": [["by", "mqscope"]]}}`)
	if code != 200 || !strings.Contains(body, `"edited": true`) {
		t.Fatalf("edit: %d %s", code, body)
	}
	if code, body := f.do(t, "POST", path+"/forward", ""); code != 200 {
		t.Fatalf("forward: %d %s", code, body)
	}
	if code, body := f.do(t, "POST", path+"/forward", ""); code != 404 {
		t.Errorf("forwarding it again: %d %s, want 404", code, body)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Wait() }()
	select {
	case err := <-subDone:
		if err != nil {
			t.Fatalf("mosquitto_sub: %v %s", err, subErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("mosquitto_sub got nothing: %q", subOut.String())
	}
	if got := strings.TrimSpace(subOut.String()); got != "demo/edited edited by mqscope" {
		t.Errorf("mosquitto_sub got %q, want the edited message", got)
	}
	select {
	case err := <-pubDone:
		if err != nil {
			t.Errorf("mosquitto_pub: %v %s", err, pubOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Error("mosquitto_pub got no PUBACK for the edited PUBLISH")
	}
}

// TestInterceptHeldAtClose: a connection closed by the proxy while a frame of it is held ends
// (the hold gives way), its close record says the frame was not forwarded, and nothing stays
// held; another connection forwards meanwhile.
func TestInterceptHeldAtClose(t *testing.T) {
	ic := NewIntercept()
	if err := ic.SetFilter(`type == "PUBLISH" && client_id == "held"`); err != nil {
		t.Fatal(err)
	}
	changes := notifyChan(ic)
	col := newCollector()
	srv := startProxy(t, Config{Embedded: true, Observers: []stream.Observer{col}, Stages: ic.Stages})
	d := connectDevice(t, srv.Addr().String(), "held")
	d.send(t, &decode.Publish{Base: icV5, QoS: 1, PacketID: 1, Topic: "a", Payload: []byte("x")})
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("not held")
	}
	// Another connection is not held up.
	other := connectDevice(t, srv.Addr().String(), "free")
	other.send(t, &decode.Publish{Base: icV5, QoS: 1, PacketID: 1, Topic: "a", Payload: []byte("y")})
	if typ := other.readFrame(t); typ != decode.PUBACK {
		t.Fatalf("the other connection got %v, want PUBACK", typ)
	}
	rc := decode.ServerBusy
	if _, err := srv.CloseConn(1, &rc, ""); err != nil {
		t.Fatal(err)
	}
	by, reason := col.waitClosed(t, 1)
	if by != "proxy" {
		t.Errorf("closed by %s (%s), want the proxy", by, reason)
	}
	if hs := ic.Held(); len(hs) != 0 {
		t.Errorf("still held after the close: %+v", hs)
	}
}

// TestInterceptHeldSecretRedacted: a held packet carrying authentication data is listed by the
// control API without its bytes (said by "redacted"), unless secrets are shown.
func TestInterceptHeldSecretRedacted(t *testing.T) {
	auth := icEnc(t, &decode.Auth{Base: icV5, ReasonCode: 0x18, HasReason: true, Properties: decode.Properties{
		decode.StrProp(decode.PropAuthMethod, "SCRAM-SHA-1"), {ID: decode.PropAuthData, Bin: []byte("s3cret")}}})
	for _, show := range []bool{false, true} {
		r := newICRig(t, `type == "AUTH"`, nil)
		r.ic.ShowSecrets = show
		run := r.start(stream.C2S, auth)
		h := r.heldOne()
		vs := r.ic.heldViews()
		if len(vs) != 1 || vs[0].Type != "AUTH" {
			t.Fatalf("held views %+v", vs)
		}
		if got := vs[0].Hex != ""; got != show || vs[0].Redacted == show {
			t.Errorf("show secrets %v: hex %q, redacted %v", show, vs[0].Hex, vs[0].Redacted)
		}
		if err := r.ic.Drop(h.ID); err != nil {
			t.Fatal(err)
		}
		run.wait(t)
	}
}

// icProxy is a proxy (cfg, with a collector and an intercept holding what filter matches), its
// control API, and the channel that hears of each change of the held frames.
func icProxy(t *testing.T, cfg Config, filter string) (*Intercept, *collector, *apiFixture, chan struct{}) {
	t.Helper()
	ic := NewIntercept()
	if err := ic.SetFilter(filter); err != nil {
		t.Fatal(err)
	}
	changes := notifyChan(ic)
	col := newCollector()
	cfg.Observers, cfg.Stages = []stream.Observer{col}, ic.Stages
	srv := startProxy(t, cfg)
	ts := httptest.NewUnstartedServer(nil)
	api := NewAPI(srv, nil, nil, APIConfig{Token: testToken, Listen: ts.Listener.Addr().String()})
	ic.Routes(api)
	ts.Config.Handler = api
	ts.Start()
	t.Cleanup(ts.Close)
	return ic, col, &apiFixture{srv: srv, url: ts.URL, col: col}, changes
}

// apiHeld waits, at each change of the held frames, until the control API lists n of them.
func apiHeld(t *testing.T, f *apiFixture, changes chan struct{}, n int) []heldView {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		code, body := f.do(t, "GET", "/intercept/held", "")
		if code != 200 {
			t.Fatalf("GET /intercept/held: %d %s", code, body)
		}
		var held []heldView
		if err := json.Unmarshal([]byte(body), &held); err != nil {
			t.Fatal(err)
		}
		if len(held) == n {
			return held
		}
		select {
		case <-changes:
		case <-deadline:
			t.Fatalf("the API lists %d held packets, want %d: %s", len(held), n, body)
		}
	}
}

// TestInterceptSenderGoes: when the device whose PUBLISH is held resets or closes its
// connection (having sent more after it), the hold ends then, not when the user decides: the
// API lists nothing held, and the connection closes as the device's end says, with its close
// record.
func TestInterceptSenderGoes(t *testing.T) {
	for _, tc := range []struct {
		name, how string
		end       func(*net.TCPConn)
	}{
		{"reset", "reset the connection", func(c *net.TCPConn) { c.SetLinger(0); c.Close() }},
		{"close", "closed (EOF)", func(c *net.TCPConn) { c.CloseWrite() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ic, col, f, changes := icProxy(t, Config{Embedded: true}, `type == "PUBLISH" && topic == "hold"`)
			d := connectDevice(t, f.srv.Addr().String(), "dev")
			d.send(t, &decode.Publish{Base: icV5, QoS: 1, PacketID: 1, Topic: "hold", Payload: []byte("x")})
			apiHeld(t, f, changes, 1)
			d.send(t, &decode.Publish{Base: icV5, QoS: 1, PacketID: 2, Topic: "after", Payload: []byte("y")})
			tc.end(d.c.(*net.TCPConn))
			by, reason := col.waitClosed(t, 1)
			if by != "client" || !strings.Contains(reason, "client "+tc.how) {
				t.Errorf("close record: by %s, %q; want the client's: %s", by, reason, tc.how)
			}
			apiHeld(t, f, changes, 0)
			if hs := ic.Held(); len(hs) != 0 {
				t.Errorf("still held: %+v", hs)
			}
			// Nothing of the connection went to the broker after the CONNECT.
			col.mu.Lock()
			c2s := col.conns[1].data[stream.C2S].Bytes()
			col.mu.Unlock()
			if n, err := decode.SplitFrame(c2s, 0); err != nil || n != len(c2s) {
				t.Errorf("the broker got % x; want the CONNECT only", c2s)
			}
		})
	}
}

// TestInterceptReadAheadForwarded: what the device sends while its frame is held (read on to
// watch it) goes after the frame, in order, once the frame is forwarded.
func TestInterceptReadAheadForwarded(t *testing.T) {
	_, _, f, changes := icProxy(t, Config{Embedded: true}, `type == "PUBLISH" && topic == "hold"`)
	d := connectDevice(t, f.srv.Addr().String(), "dev")
	d.send(t, &decode.Publish{Base: icV5, QoS: 1, PacketID: 1, Topic: "hold", Payload: []byte("x")})
	held := apiHeld(t, f, changes, 1)
	for id := uint16(2); id <= 4; id++ {
		d.send(t, &decode.Publish{Base: icV5, QoS: 1, PacketID: id, Topic: "after", Payload: []byte("y")})
	}
	if code, body := f.do(t, "POST", fmt.Sprintf("/intercept/held/%d/forward", held[0].ID), ""); code != 200 {
		t.Fatalf("forward: %d %s", code, body)
	}
	for id := 1; id <= 4; id++ {
		start := len(d.received)
		if typ := d.readFrame(t); typ != decode.PUBACK {
			t.Fatalf("got %v, want PUBACK %d", typ, id)
		}
		ack, ok := decode.Decode(d.received[start:], decode.V5).(*decode.Ack)
		if !ok || int(ack.PacketID) != id {
			t.Fatalf("PUBACK % x, want packet id %d", d.received[start:], id)
		}
	}
}

// TestInterceptConcurrentEdits: edits of the same held frame at once (the UI and the API, two
// API clients) each apply on top of the others, and an edit racing the frame's release either
// is in the frame forwarded or fails with ErrNotHeld: no edit is lost. Run with -race.
func TestInterceptConcurrentEdits(t *testing.T) {
	pub := icPublish(t, "a/b", "hello")
	topic, payload, retain := "edited/topic", "edited payload", true
	edits := []FieldEdit{{Topic: &topic}, {Payload: &payload}, {Retain: &retain}}
	// applied says which of the edits the frame b carries.
	applied := func(t *testing.T, b []byte) [3]bool {
		q, ok := decode.Decode(b, decode.V5).(*decode.Publish)
		if !ok {
			t.Fatalf("% x is not a PUBLISH", b)
		}
		return [3]bool{q.Topic == topic, string(q.Payload) == payload, q.Retain}
	}
	for round := range 100 {
		r := newICRig(t, `topic == "a/b"`, nil)
		run := r.start(stream.C2S, pub)
		id := r.heldOne().ID
		release := round%2 == 1 // every other round, forward while the edits go on
		start := make(chan struct{})
		errs := make([]error, len(edits))
		var wg sync.WaitGroup
		for i, e := range edits {
			wg.Go(func() {
				<-start
				_, errs[i] = r.ic.Edit(id, e)
			})
		}
		if release {
			wg.Go(func() {
				<-start
				if err := r.ic.Forward(id); err != nil {
					t.Errorf("forward: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if !release {
			if err := r.ic.Forward(id); err != nil {
				t.Fatal(err)
			}
		}
		out, err := run.wait(t)
		if err != nil || len(out) != 1 {
			t.Fatalf("round %d: forwarded %x, %v", round, out, err)
		}
		got := applied(t, out[0])
		for i, err := range errs {
			switch {
			case err == nil && !got[i]:
				t.Fatalf("round %d: edit %d was answered as done and is not in the frame forwarded (%v)", round, i, got)
			case err != nil && !errors.Is(err, ErrNotHeld):
				t.Fatalf("round %d: edit %d: %v", round, i, err)
			case err != nil && got[i]:
				t.Fatalf("round %d: edit %d failed (%v) yet is in the frame forwarded", round, i, err)
			case err != nil && !release:
				t.Fatalf("round %d: edit %d failed with the frame held: %v", round, i, err)
			}
		}
	}
}

// TestInterceptEditBodyLimit: an edit's body may carry, in hex with spaces, a packet as large as
// the proxy holds (1 MiB by default; 900,000 bytes here, 2.7 MB of hex); a body over the limit
// is answered 413 with an error that names the limit.
func TestInterceptEditBodyLimit(t *testing.T) {
	_, _, f, changes := icProxy(t, Config{Embedded: true}, `type == "PUBLISH" && topic == "hold"`)
	d := connectDevice(t, f.srv.Addr().String(), "dev")
	d.send(t, &decode.Publish{Base: icV5, QoS: 1, PacketID: 1, Topic: "hold", Payload: []byte("x")})
	path := fmt.Sprintf("/intercept/held/%d/edit", apiHeld(t, f, changes, 1)[0].ID)

	big := icEnc(t, &decode.Publish{Base: icV5, QoS: 1, PacketID: 1, Topic: "hold", Payload: bytes.Repeat([]byte{'z'}, 900_000-13)})
	var spaced strings.Builder
	for _, c := range big {
		fmt.Fprintf(&spaced, "%02x ", c)
	}
	code, body := f.do(t, "POST", path, `{"hex": "`+spaced.String()+`"}`)
	var res struct {
		Held heldView `json:"held"`
	}
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || res.Held.Size != len(big) {
		t.Fatalf("a %d-byte packet in %d bytes of hex: %d %.200s (size %d)", len(big), spaced.Len(), code, body, res.Held.Size)
	}

	limit := editBodyMax(1 << 20)
	code, body = f.do(t, "POST", path, `{"hex": "`+strings.Repeat("0", int(limit))+`"}`)
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); code != 413 || err != nil || !strings.Contains(e.Error, fmt.Sprintf("%d-byte limit", limit)) {
		t.Errorf("a body over the limit: %d %s; want 413 naming the %d-byte limit", code, body, limit)
	}
	if hs := apiHeld(t, f, changes, 1); hs[0].Size != len(big) {
		t.Errorf("after the refused edit the held packet has %d bytes, want the %d of the edit before", hs[0].Size, len(big))
	}
}
