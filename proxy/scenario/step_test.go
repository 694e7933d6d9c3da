package scenario

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// An expect step of the built-in client is an expectation like the others: the run does not end
// (and pass) before the client has reached it, even when every expectation of the scenario's
// own list is decided first.
func TestStepExpectationIsDecided(t *testing.T) {
	f, err := Parse([]byte(`
scenarios:
  - name: step after a decided expectation
    device:
      client:
        steps:
          - connect: {client_id: s1}
          - wait: {time: 200ms}
          - expect: {name: no PUBACK ever came, packet: {from: server, type: PUBACK, within: 300ms}}
    expect:
      - packet: {from: server, type: CONNACK}
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := Run(context.Background(), f, f.Scenarios[0], Options{})
	var step *Verdict
	for i, v := range r.Verdicts {
		if v.Name == "no PUBACK ever came" {
			step = &r.Verdicts[i]
		}
	}
	if step == nil {
		t.Fatalf("the expect step was never decided: %s, verdicts %v", r.Status, r.Verdicts)
	}
	if step.Status != Failed || r.Status != Failed {
		t.Errorf("step %s, scenario %s; want both failed (nothing sent a PUBACK)", step.Status, r.Status)
	}
}

// Packet types are named as the standard does, in any case; the reserved type 0 is no name.
func TestTypeNamed(t *testing.T) {
	for name, want := range map[string]decode.Type{"PUBACK": decode.PUBACK, "puback": decode.PUBACK, "PubRel": decode.PUBREL, "auth": decode.AUTH, "connect": decode.CONNECT} {
		if got, ok := typeNamed(name); !ok || got != want {
			t.Errorf("%q: %v %v, want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"", "reserved", "PUBLISHX", "0"} {
		if got, ok := typeNamed(name); ok {
			t.Errorf("%q: %v, want no type", name, got)
		}
	}
}

// no_finding counts the findings of a connection's end too (here: it closed without a
// DISCONNECT), not only those on packets; with by: they are not counted (a close's findings
// are not one side's).
func TestNoFindingAtTheClose(t *testing.T) {
	f, err := Parse([]byte(`
scenarios:
  - name: any side
    device: {client: {steps: [{connect: {client_id: nf1}}, {close: true}]}}
    expect: [{no_finding: {rule: MQSCOPE-CLOSE-*}}]
  - name: by the client
    device: {client: {steps: [{connect: {client_id: nf2}}, {close: true}]}}
    expect: [{no_finding: {rule: MQSCOPE-CLOSE-*, by: client}}]
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := RunFile(context.Background(), f, Options{}, 1)
	if r := res[0]; r.Status != Failed || len(r.Verdicts) != 1 || !strings.Contains(r.Verdicts[0].Seen, "MQSCOPE-CLOSE-WITHOUT-DISCONNECT") {
		t.Errorf("any side: %s %v, want failed on MQSCOPE-CLOSE-WITHOUT-DISCONNECT", r.Status, r.Verdicts)
	}
	if r := res[1]; r.Status != Passed {
		t.Errorf("by the client: %s %v, want passed", r.Status, r.Verdicts)
	}
}

// Each run of a scenario follows its own messages: a PUBLISH that one run saw unacknowledged
// is not, in the next run of the same file, a resend.
func TestRunsDoNotShareState(t *testing.T) {
	f, err := Parse([]byte(`
scenarios:
  - name: a
    device: {client: {steps: [{connect: {}}]}}
    expect: [{resend: {}}]
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := f.Scenarios[0].Expect[0]
	pub := &event{t: time.Now(), rec: &inspect.PacketRecord{Conn: 1, Dir: stream.C2S, Topic: "t",
		Packet: &decode.Publish{Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("p")}}}
	rel := func(time.Time) string { return "" }
	for n := 1; n <= 2; n++ {
		x := (&run{}).track(e)
		if s := x.kind.see(pub, rel); s.hit || s.fail != "" {
			t.Errorf("run %d: the first send is %+v, want neither a hit nor a failure", n, s)
		}
	}
}

// An expected reason code matches a SUBACK's (its first code), as it does a CONNACK's: the
// scenario runner's own copy of the reason lookup had no SUBACK, so such an expectation could
// never be met.
func TestExpectSubackReason(t *testing.T) {
	pe := &PacketExpect{From: "server", Type: "SUBACK", Reason: Code{V: 0x87, Set: true}}
	m, err := pe.matcher()
	if err != nil {
		t.Fatal(err)
	}
	rel := func(time.Time) string { return "" }
	suback := func(rc decode.ReasonCode) *event {
		return &event{rec: &inspect.PacketRecord{Dir: stream.S2C, Version: decode.V5,
			Packet: &decode.Suback{Base: decode.Base{Version: decode.V5, Header: decode.FixedHeader{Type: decode.SUBACK}}, PacketID: 1, ReasonCodes: []decode.ReasonCode{rc}}}}
	}
	if s := m.see(suback(0x87), rel); !s.hit {
		t.Errorf("SUBACK 0x87 not matched: %+v", s)
	}
	if s := m.see(suback(0x00), rel); s.hit {
		t.Errorf("SUBACK 0x00 matched reason 0x87: %+v", s)
	}
}
