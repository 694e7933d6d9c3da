package scenario

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

// A scenario file with a mistake is an error that says where.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", `
scenarios:
  - name: a
    device: {client: {steps: [{connect: {}}]}}
    expect:
      - packet: {type: CONNACK}
        whithin: 2s
`, []string{"[7:9]", `unknown field "whithin"`}},
		{"two kinds in one expectation", `
scenarios:
  - name: a
    device: {client: {steps: [{connect: {}}]}}
    expect:
      - packet: {type: CONNACK}
        closed: {}
`, []string{"6:15", "exactly one of packet, disconnect, closed", "has 2"}},
		{"bad fault rule", `
scenarios:
  - name: a
    faults: ["oversize size=max_packet_size+"]
    device: {client: {steps: [{connect: {}}]}}
    expect: [{closed: {}}]
`, []string{"4:14", "column 10: size"}},
		{"first step not connect", `
scenarios:
  - name: a
    device: {client: {steps: [{publish: {topic: t}}]}}
    expect: [{closed: {}}]
`, []string{"the first step must be connect"}},
		{"publish larger than MQTT frames", `
scenarios:
  - name: a
    device: {client: {steps: [{connect: {}}, {publish: {topic: t, size: 268435461}}]}}
    expect: [{closed: {}}]
`, []string{"steps[1]", "size 268435461", "to 268435460"}},
		{"negative publish size", `
scenarios:
  - name: a
    device: {client: {steps: [{connect: {}}, {publish: {topic: t, size: -1}}]}}
    expect: [{closed: {}}]
`, []string{"steps[1]", "size -1"}},
		{"a var named as the proxy's port", `
scenarios:
  - name: a
    vars: {topic: t, port: "1883"}
    device: {run: "true"}
    expect: [{closed: {}}]
`, []string{"4:11", "vars: port is the proxy's"}},
		{"a var no {name} can refer to", `
scenarios:
  - name: a
    vars: {Topic: t}
    device: {run: "true"}
    expect: [{closed: {}}]
`, []string{"vars", `"Topic": a name is lower-case`}},
		{"bad reason code", `
scenarios:
  - name: a
    device: {client: {steps: [{connect: {}}]}}
    expect: [{disconnect: {from: server, reason: 0x195}}]
`, []string{"reason code", "0x195"}},
		{"replay without a capture", `
scenarios:
  - name: a
    device: {replay: {conn: 9}}
    expect: [{closed: {}}]
`, []string{"4:22", "capture: the pcap or pcapng file to play is missing"}},
		{"replay and a client", `
scenarios:
  - name: a
    device: {replay: {capture: x.pcap}, client: {steps: [{connect: {}}]}}
    expect: [{closed: {}}]
`, []string{"exactly one of run:", "replay:"}},
		{"no device", `
scenarios:
  - name: a
    expect: [{closed: {}}]
`, []string{"3:9", "exactly one of run:"}},
		{"external without a fixed address", `
scenarios:
  - name: a
    device: {external: true}
    expect: [{closed: {}}]
`, []string{"listen", "fixed address"}},
		{"bad filter", `
scenarios:
  - name: a
    device: {client: {steps: [{connect: {}}]}}
    expect: [{filter: {expr: "type ==", count: 1}}]
`, []string{"expect[0]", "filter"}},
		{"same name twice", `
scenarios:
  - {name: a, device: {external: true}, listen: "127.0.0.1:1999", expect: [{closed: {}}]}
  - {name: a, device: {external: true}, listen: "127.0.0.1:1999", expect: [{closed: {}}]}
`, []string{"4:5", `"a" used twice`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "x.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// want is what a scenario must end with: its status, and for a failure, text the failing
// verdict's message must have (the rule or packet that decided it).
type want struct {
	status Status
	says   string
}

func runPack(t *testing.T, path string, device string) map[string]*Result {
	t.Helper()
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*Result{}
	for _, r := range RunFile(context.Background(), f, Options{Device: device}, 4) {
		got[r.Scenario.Name] = r
	}
	return got
}

func checkPack(t *testing.T, got map[string]*Result, wants map[string]want) {
	t.Helper()
	for name, w := range wants {
		r, ok := got[name]
		if !ok {
			t.Errorf("%s: not run", name)
			continue
		}
		var msgs []string
		for _, v := range r.Verdicts {
			msgs = append(msgs, Line(v))
		}
		all := strings.Join(msgs, "\n") + r.Skip
		if r.Err != nil {
			all += r.Err.Error()
		}
		if r.Status != w.status || !strings.Contains(all, w.says) {
			t.Errorf("%s: %s, want %s saying %q:\n%s\ntimeline:\n%s\ndevice:\n%s", name, r.Status, w.status, w.says, all, r.Timeline, r.Device)
		}
	}
	if len(got) != len(wants) {
		t.Errorf("%d scenarios run, %d expected", len(got), len(wants))
	}
}

// The device packs against the built-in client: it sends what its steps say, so it breaks each
// granted limit (each such scenario fails with the finding of that limit) and reacts to the
// server's DISCONNECTs as a device must, but for the backoff it does not take and the alias its
// steps reuse on purpose.
func TestDevicePackBuiltinClient(t *testing.T) {
	t.Parallel()
	checkPack(t, runPack(t, "../../testdata/scenarios/device/limits.yaml", ""), map[string]want{
		"smaller Maximum Packet Size": {Failed, "MQTT-3.2.2-15: PUBLISH of 300 bytes is over the 100-byte Maximum Packet Size"},
		"Topic Alias Maximum 0":       {Failed, `seen: 1 so far, the last: PUBLISH "mqscope/device/alias"`},
		"Receive Maximum 1":           {Failed, "MQTT-3.3.4-7: QoS 1 PUBLISH while 1 are unacknowledged"},
		"Maximum QoS 0":               {Failed, `expected no PUBLISH at QoS 1 from client; seen: PUBLISH "mqscope/device/qos" QoS 1`},
		"Retain Available 0":          {Failed, `seen: 1 so far, the last: PUBLISH "mqscope/device/retain"`},
	})
}

func TestReactionPackBuiltinClient(t *testing.T) {
	t.Parallel()
	checkPack(t, runPack(t, "../../testdata/scenarios/device/reactions.yaml", ""), map[string]want{
		"server DISCONNECT 0x8B shutting down":      {Passed, "DISCONNECT 0x8B Server shutting down from server"},
		"server DISCONNECT 0x89 busy":               {Failed, "sooner than the minimum backoff 500ms"},
		"server DISCONNECT 0x9C use another server": {Passed, "DISCONNECT 0x9C Use another server from server"},
		"keep alive without PINGRESP":               {Passed, "CONNECT clean_start=true from client at +10"},
		"session resumption":                        {Passed, "QoS 1 DUP id 1 from client"},
		"disconnect mid-QoS 2":                      {Passed, "PUBREL 0x00 Success from client"},
		"reset mid-QoS 2":                           {Passed, "and sends its PUBREL again: PUBREL 0x00 Success from client"},
		"alias reset after reconnect":               {Failed, "MQSCOPE-ALIAS-UNKNOWN: empty topic with Topic Alias 1"},
	})
}

// An unmet requirement skips the scenario, saying which; a harness failure is an error.
func TestSkipAndError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	f, err := Parse([]byte(`
scenarios:
  - name: needs 3.1.1
    requires: {mqtt: 4}
    device: {client: {steps: [{connect: {client_id: a}}]}}
    expect: [{closed: {}}]
  - name: needs a command
    requires: {commands: [mqscope-no-such-command]}
    device: {run: "true"}
    expect: [{closed: {}}]
  - name: needs a capability the profile lacks
    profile: testdata/no-retain.yaml
    requires: {broker: [retain]}
    device: {client: {steps: [{connect: {client_id: a}}]}}
    expect: [{closed: {}}]
  - name: needs a granted alias maximum
    requires: {granted: [topic_alias_maximum]}
    device: {client: {steps: [{connect: {client_id: a}}, {disconnect: {}}]}}
    expect: [{closed: {}}]
  - name: cannot listen
    listen: "`+busy.Addr().String()+`"
    device: {client: {steps: [{connect: {client_id: a}}]}}
    expect: [{closed: {}}]
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := RunFile(context.Background(), f, Options{}, 1)
	for i, w := range []want{
		{Skipped, "requires MQTT 3.1.1; the client speaks 5"},
		{Skipped, "requires command mqscope-no-such-command, not found on PATH"},
		{Skipped, "requires broker capability retain; profile no-retain does not have it"},
		{Skipped, "requires granted topic_alias_maximum; the CONNACK has none"},
		{Errored, "address already in use"},
	} {
		r := res[i]
		msg := r.Skip
		if r.Err != nil {
			msg = r.Err.Error()
		}
		if r.Status != w.status || !strings.Contains(msg, w.says) {
			t.Errorf("%s: %s %q, want %s %q", r.Scenario.Name, r.Status, msg, w.status, w.says)
		}
	}
}

// The embedded broker playing apsaramq grants its limits and refuses what goes over them with
// the standard's reason codes; the same for a user's profile file, keep alive included.
func TestProfilePacks(t *testing.T) {
	t.Parallel()
	checkPack(t, runPack(t, "../../testdata/scenarios/apsaramq/limits.yaml", ""), map[string]want{
		"grants the profile's limits":                {Passed, "CONNACK grants 30 aliases"},
		"a packet over 128 KB":                       {Passed, "DISCONNECT 0x95 Packet too large from server"},
		"a body over 64 KB in a packet under 128 KB": {Passed, "DISCONNECT 0x95 Packet too large from server"},
		"alias 30 taken, alias 31 refused":           {Passed, "DISCONNECT 0x94 Topic Alias invalid from server"},
	})
	checkPack(t, runPack(t, "../../testdata/scenarios/embedded/small-broker.yaml", ""), map[string]want{
		"200 bytes taken, 201 refused": {Passed, "DISCONNECT 0x95 Packet too large from server"},
		"QoS 2 refused":                {Passed, "DISCONNECT 0x9B QoS not supported from server"},
		"retain refused":               {Passed, "DISCONNECT 0x9A Retain not supported from server"},
		"keep alive enforced":          {Passed, "conn 1 closed (server) at +3"},
	})
}

// mosquittoPub publishes what a limits scenario's vars say, as a device given with --device.
const mosquittoPub = `mosquitto_pub -V mqttv5 -h {host} -p {port} -i mosq-dev -t {topic} -q {qos} --repeat {count} ${MQSCOPE_RETAIN:+-r} -m "$(head -c {payload_size} /dev/zero | tr '\0' x)"`

// mosquittoSub subscribes, reconnecting as libmosquitto does, as a device given with --device.
const mosquittoSub = `exec mosquitto_sub -V mqttv5 -h {host} -p {port} -i mosq-sub -t {topic} -q 1 -k ${MQSCOPE_KEEP_ALIVE:-30}`

// The limits pack against mosquitto_pub 2.0 as the device: libmosquitto keeps to each granted
// limit (it refuses to send an oversize packet or a retained message, sends QoS 0 under
// Maximum QoS 0, one message at a time under Receive Maximum 1, no alias), so every scenario
// passes; and mosquitto_sub gives up on a connection whose PINGRESP does not come and connects
// again.
func TestDevicePackMosquitto(t *testing.T) {
	t.Parallel()
	peer.Require(t, "mosquitto_pub")
	peer.Require(t, "mosquitto_sub")
	checkPack(t, runPack(t, "../../testdata/scenarios/device/limits.yaml", mosquittoPub), map[string]want{
		"smaller Maximum Packet Size": {Passed, "none before the run ended (the device finished)"},
		"Topic Alias Maximum 0":       {Passed, "0 before the run ended"},
		"Receive Maximum 1":           {Passed, "every message still arrives: 3 before the run ended"},
		"Maximum QoS 0":               {Passed, "the device publishes at QoS 0 only: none"},
		"Retain Available 0":          {Passed, "the device sends no retained message: 0"},
	})
	f, err := Load("../../testdata/scenarios/device/reactions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ka *Scenario
	for _, sc := range f.Scenarios {
		if sc.Name == "keep alive without PINGRESP" {
			ka = sc
		}
	}
	r := Run(context.Background(), f, ka, Options{Device: mosquittoSub})
	checkPack(t, map[string]*Result{ka.Name: r}, map[string]want{ka.Name: {Passed, "and connects again: CONNECT clean_start=true from client"}})
}

// A run's timeline is rendered as events come and bounded: the first events and the latest
// are kept, the count of those left out between is said; a short run's is whole.
func TestTimelineBounded(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	rec := func(i int) *event {
		p := &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: fmt.Sprintf("t/%d", i)}
		return &event{t: t0, rec: &inspect.PacketRecord{Time: t0, Conn: 1, Packet: p, Index: i, Topic: p.Topic}}
	}
	var short timelineText
	for i := 1; i <= 3; i++ {
		short.add(rec(i))
	}
	if s := short.String(); strings.Count(s, "PUBLISH") != 3 || strings.Contains(s, "left out") {
		t.Fatalf("short timeline:\n%s", s)
	}
	var tl timelineText
	n := 0
	for size := 0; size < 3*(timelineHead+timelineTail); n++ {
		ev := rec(n + 1)
		tl.add(ev)
		size += len(inspect.AppendText(nil, ev.rec, inspect.TextOptions{}))
	}
	s := tl.String()
	if len(s) > timelineHead+timelineTail+200 {
		t.Errorf("timeline of %d bytes, over the bounds", len(s))
	}
	kept := strings.Count(s, "PUBLISH")
	if !strings.Contains(s, `"t/1"`) || !strings.Contains(s, fmt.Sprintf(`"t/%d"`, n)) ||
		!strings.Contains(s, fmt.Sprintf("... %d records and faults left out", n-kept)) {
		t.Errorf("timeline of %d events keeps %d: head %q, tail %q", n, kept, s[:200], s[len(s)-200:])
	}
}

// The resend expectation finds a PUBLISH sent again among thousands in flight (none
// acknowledged), under its own Packet Identifier or another; a new message under an identifier
// still in flight is not a resend; an acknowledged one is out of flight.
func TestResendMatch(t *testing.T) {
	rel := func(time.Time) string { return "" }
	v5 := decode.Base{Version: decode.V5}
	pub := func(id uint16, payload string, dup bool) *event {
		p := &decode.Publish{Base: v5, Topic: "r", QoS: 1, PacketID: id, Dup: dup, Payload: []byte(payload)}
		return &event{rec: &inspect.PacketRecord{Dir: stream.C2S, Packet: p, Topic: "r"}}
	}
	puback := func(id uint16) *event {
		return &event{rec: &inspect.PacketRecord{Dir: stream.S2C, Packet: &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: id}}}
	}
	m := newResendMatch(&ResendExpect{Dup: true, SamePacketID: true})
	for i := 1; i <= 20000; i++ {
		if s := m.see(pub(uint16(i), fmt.Sprint("m", i), false), rel); s.hit || s.fail != "" {
			t.Fatalf("message %d: %+v", i, s)
		}
	}
	if s := m.see(pub(7, "another message", false), rel); s.hit || s.fail != "" {
		t.Fatalf("a new message under a Packet Identifier in flight: %+v", s)
	}
	if s := m.see(pub(7, "m7", true), rel); s.hit {
		t.Fatalf("m7 was replaced in flight, yet its resend matched: %+v", s)
	}
	m.see(puback(9), rel)
	if s := m.see(pub(9, "m9", true), rel); s.hit {
		t.Fatalf("an acknowledged message matched as resent: %+v", s)
	}
	if s := m.see(pub(30000, "m12", true), rel); !strings.Contains(s.fail, "first sent as 12") {
		t.Fatalf("m12 resent under another identifier: %+v", s)
	}
	if s := m.see(pub(15000, "m15000", true), rel); !s.hit {
		t.Fatalf("m15000 resent: %+v", s)
	}
	loose := newResendMatch(&ResendExpect{})
	loose.see(pub(1, "x", false), rel)
	if s := loose.see(pub(2, "x", false), rel); !s.hit {
		t.Fatalf("resent under another identifier, DUP 0, allowed: %+v", s)
	}
}
