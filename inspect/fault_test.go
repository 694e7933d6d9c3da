package inspect

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// TestFaultConnackRewrite: a fault rewrote the broker's CONNACK (Maximum Packet Size 1000 →
// 100). The fault's record shows the broker's CONNACK, decoded from the bytes before; the
// packet record is the CONNACK the device received, and the device is judged by it.
func TestFaultConnackRewrite(t *testing.T) {
	v5 := decode.Base{Version: decode.V5}
	c := NewConn(1, "c", "s", Options{})
	c.Feed(stream.C2S, t0, enc(t, &decode.Connect{Base: v5, ClientID: "dev", KeepAlive: 60}))
	broker := enc(t, &decode.Connack{Base: v5, Properties: props(ip(decode.PropMaximumPacketSize, 1000))})
	device := enc(t, &decode.Connack{Base: v5, Properties: props(ip(decode.PropMaximumPacketSize, 100))})
	a := &stream.Alteration{Rule: "small", Did: "CONNACK rewritten: Maximum Packet Size 1000 → 100", Before: broker, After: [][]byte{device}}
	if recs := c.Alter(stream.S2C, t0, a); len(recs) != 0 {
		t.Fatalf("records before the frame: %v", recs)
	}
	recs := c.Feed(stream.S2C, t0, device)
	if len(recs) != 3 {
		t.Fatalf("%d records, want the fault, the CONNACK and the session", len(recs))
	}
	f, ok := recs[0].(*FaultRecord)
	ack, _ := recs[1].(*PacketRecord)
	if !ok || ack == nil || f.Index != ack.Index || ack.Fault != "small" || ack.ByProxy {
		t.Fatalf("records %#v, %#v", recs[0], recs[1])
	}
	if o, ok := f.Original.(*decode.Connack); !ok {
		t.Errorf("original %v", f.Original)
	} else if n, _ := o.Properties.Int(decode.PropMaximumPacketSize); n != 1000 {
		t.Errorf("original's Maximum Packet Size %d, want the broker's 1000", n)
	}
	text := string(AppendText(nil, f, TextOptions{}))
	want := "   fault ← small: CONNACK rewritten: Maximum Packet Size 1000 → 100\n        was: CONNACK     0x00 Success maximum_packet_size=1000 10B\n"
	if !strings.HasSuffix(text, want) {
		t.Errorf("text\n%q\nwant suffix\n%q", text, want)
	}
	var j map[string]any
	if err := json.Unmarshal(AppendJSON(nil, f, JSONOptions{}), &j); err != nil {
		t.Fatal(err)
	}
	if j["kind"] != "fault" || j["rule"] != "small" || j["dir"] != "s2c" || j["before"] != hex.EncodeToString(broker) ||
		j["after"] != hex.EncodeToString(device) || j["index"] != float64(2) {
		t.Errorf("JSON %v", j)
	}
	if o, _ := j["original"].(map[string]any); o["type"] != "CONNACK" || o["properties"].(map[string]any)["maximum_packet_size"] != float64(1000) {
		t.Errorf("JSON original %v", j["original"])
	}
	// Judged by what the device received: 150 bytes are over 100, not over 1000.
	pub := c.Feed(stream.C2S, t0, enc(t, publish("a/b", 0, 0, strings.Repeat("x", 140))))[0].(*PacketRecord)
	note(t, pub, "MQTT-3.2.2-15")
}

// TestFaultDropAndOwn: a fault that dropped its frame is a record at once; one whose frame is
// the proxy's own DISCONNECT comes before it, and the DISCONNECT is the proxy's.
func TestFaultDropAndOwn(t *testing.T) {
	v5 := decode.Base{Version: decode.V5}
	c := NewConn(1, "c", "s", Options{})
	c.Feed(stream.C2S, t0, enc(t, &decode.Connect{Base: v5, ClientID: "dev", KeepAlive: 60}))
	c.Feed(stream.S2C, t0, enc(t, &decode.Connack{Base: v5}))
	puback := enc(t, ack(decode.PUBACK, 1, 0))
	recs := c.Alter(stream.S2C, t0, &stream.Alteration{Rule: "lost", Did: "PUBACK id 1 dropped (4 bytes)", Before: puback})
	if len(recs) != 1 || recs[0].(*FaultRecord).Index != 0 || len(recs[0].(*FaultRecord).After) != 0 {
		t.Fatalf("drop: %v", recs)
	}
	if !strings.Contains(string(AppendText(nil, recs[0], TextOptions{})), "fault ← lost: PUBACK id 1 dropped (4 bytes)\n") ||
		strings.Contains(string(AppendText(nil, recs[0], TextOptions{})), "was:") {
		t.Errorf("drop text %q", AppendText(nil, recs[0], TextOptions{}))
	}
	sub := enc(t, &decode.Suback{Base: v5, PacketID: 1, ReasonCodes: []decode.ReasonCode{0}})
	disc := enc(t, &decode.Disconnect{Base: v5, ReasonCode: decode.ServerBusy, HasReason: true})
	c.Alter(stream.S2C, t0, &stream.Alteration{Rule: "busy", Did: "DISCONNECT 0x89 Server busy sent, connection closed",
		Before: sub, After: [][]byte{sub, disc}, Kept: 1, Own: true, Closed: true})
	recs = c.Feed(stream.S2C, t0, sub)
	if len(recs) != 1 || recs[0].(*PacketRecord).Fault != "" {
		t.Fatalf("the SUBACK passed on as it came: %v", recs)
	}
	recs = c.Feed(stream.S2C, t0, disc)
	if len(recs) != 2 {
		t.Fatalf("%d records, want the fault and the DISCONNECT", len(recs))
	}
	f, d := recs[0].(*FaultRecord), recs[1].(*PacketRecord)
	if f.Index != d.Index || !d.ByProxy || d.Fault != "busy" {
		t.Errorf("fault %+v, DISCONNECT by proxy %v fault %q", f, d.ByProxy, d.Fault)
	}
	if n := note(t, d, RuleDisconnectError); n.Cause != nil || !strings.Contains(n.Text, "mqscope's proxy closed the connection, in the server's place") {
		t.Errorf("note %+v", n)
	}
	if strings.Contains(string(AppendText(nil, f, TextOptions{})), "was:") {
		t.Errorf("an own DISCONNECT shows no original")
	}
}

// TestFaultUnseen: an alteration whose frames never came (the connection ended first) is a
// record at the end; a frame that only looks like another is not taken for it.
func TestFaultUnseen(t *testing.T) {
	v5 := decode.Base{Version: decode.V5}
	c := NewConn(1, "c", "s", Options{})
	c.Feed(stream.C2S, t0, enc(t, &decode.Connect{Base: v5, ClientID: "dev", KeepAlive: 60}))
	grown := enc(t, publish("a/b", 0, 0, "grown"))
	c.Alter(stream.C2S, t0, &stream.Alteration{Rule: "g", Did: "grown", Before: enc(t, publish("a/b", 0, 0, "g")), After: [][]byte{grown}})
	// The same bytes the other way are not the fault's.
	if recs := c.Feed(stream.S2C, t0, grown); len(recs) != 1 || recs[0].(*PacketRecord).Fault != "" {
		t.Fatalf("%v", recs)
	}
	recs := c.Finish(t0)
	if len(recs) != 1 || recs[0].(*FaultRecord).Rule != "g" || recs[0].(*FaultRecord).Index != 0 {
		t.Errorf("at the end: %v", recs)
	}
}

// TestFaultSecrets: a fault's bytes that hold a password are redacted in JSON lines unless
// secrets are shown.
func TestFaultSecrets(t *testing.T) {
	v5 := decode.Base{Version: decode.V5}
	c := NewConn(1, "c", "s", Options{})
	connect := enc(t, &decode.Connect{Base: v5, ClientID: "dev", KeepAlive: 60, HasUsername: true, Username: "u", HasPassword: true, Password: []byte("hunter2")})
	recs := c.Alter(stream.C2S, t0, &stream.Alteration{Rule: "d", Did: "CONNECT dropped", Before: connect})
	line := string(AppendJSON(nil, recs[0], JSONOptions{}))
	if strings.Contains(line, hex.EncodeToString([]byte("hunter2"))) || strings.Contains(line, "hunter2") || !strings.Contains(line, `"before":"<redacted>"`) {
		t.Errorf("secret shown: %s", line)
	}
	if line := string(AppendJSON(nil, recs[0], JSONOptions{ShowSecrets: true})); !strings.Contains(line, hex.EncodeToString(connect)) {
		t.Errorf("ShowSecrets: %s", line)
	}
	if text := string(AppendText(nil, recs[0], TextOptions{})); strings.Contains(text, "hunter2") {
		t.Errorf("secret in text: %s", text)
	}
}

// TestFaultOversizeNotThePeers: a PUBLISH a fault grew over the receiver's Maximum Packet Size
// is still over it, but the finding says the fault made it so, not that the sender counts the
// limit wrong, and names the receiver's answer.
func TestFaultOversizeNotThePeers(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(props(ip(decode.PropMaximumPacketSize, 100)), nil)
	grown := enc(t, publish("a/b", 0, 0, string(make([]byte, 95))))
	s.c.Alter(stream.S2C, s.now, &stream.Alteration{Rule: "big", Did: "grown", Before: enc(t, publish("a/b", 0, 0, "x")), After: [][]byte{grown}})
	recs := s.c.Feed(stream.S2C, s.now, grown)
	var r *PacketRecord
	for _, rec := range recs {
		if p, ok := rec.(*PacketRecord); ok {
			r = p
		}
	}
	if r == nil || r.Fault != "big" {
		t.Fatalf("records: %v", recs)
	}
	n := note(t, r, "MQTT-3.1.2-24")
	if strings.Contains(n.Text, "seems to count") || !strings.Contains(n.Text, "made so by mqscope's fault `big`; the client answers DISCONNECT 0x95") {
		t.Errorf("finding: %s", n.Text)
	}
	// The same PUBLISH from the broker itself keeps the explanation about the broker.
	n = note(t, s.s2c(publish("a/b", 0, 0, string(make([]byte, 95)))), "MQTT-3.1.2-24")
	if !strings.Contains(n.Text, "seems to count only the payload") {
		t.Errorf("the broker's own: %s", n.Text)
	}
}
