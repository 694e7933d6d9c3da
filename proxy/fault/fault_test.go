package fault

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

var v5 = decode.Base{Version: decode.V5}

func enc(t testing.TB, p decode.Packet) []byte {
	t.Helper()
	b, err := decode.Encode(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// negotiated is the state of a connection whose broker granted ack's properties.
func negotiated(t testing.TB, ack decode.Properties) inspect.View {
	return negotiatedConn(t, ack).View()
}

func negotiatedConn(t testing.TB, ack decode.Properties) *inspect.Conn {
	c := inspect.NewConn(1, "127.0.0.1:1", "127.0.0.1:2", inspect.Options{MaxFrame: 1 << 20})
	now := time.Unix(0, 0)
	c.Feed(stream.C2S, now, enc(t, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "dev-7", KeepAlive: 30}))
	c.Feed(stream.S2C, now, enc(t, &decode.Connack{Base: v5, Properties: ack}))
	return c
}

// run passes frames through a set of the given rules (one connection), returning what went on
// in each direction, what was reported, and the error that ended it. Then the clock advances a
// day (what faults send later goes) and the connection ends.
func run(t testing.TB, view inspect.View, rules []string, frames []dirFrame) (out [2][][]byte, applied []Applied, err error) {
	t.Helper()
	return runAt(t, view, rules, frames, nil)
}

// runAt is run with the pipeline's clock at at[i] after the connection opened while frame i
// goes through (as it was past the end of at).
func runAt(t testing.TB, view inspect.View, rules []string, frames []dirFrame, at []time.Duration) (out [2][][]byte, applied []Applied, err error) {
	t.Helper()
	return runWith(newPipeline(t, view, nil, rules), frames, at)
}

// runLive is run on a connection whose inspection is fed what goes on, as the proxy's is.
func runLive(t testing.TB, live *inspect.Conn, rules []string, frames []dirFrame) (out [2][][]byte, applied []Applied, err error) {
	t.Helper()
	return runWith(newPipeline(t, live.View(), live, rules), frames, nil)
}

func runWith(p *pipeline, frames []dirFrame, at []time.Duration) (out [2][][]byte, applied []Applied, err error) {
	err = p.err
	for i, df := range frames {
		if i < len(at) {
			d := t0.Add(at[i]).Sub(p.clock.Now())
			if d < 0 {
				p.t.Fatalf("frame %d at %v, before the one before it", i, at[i])
			}
			p.clock.Advance(d)
		}
		if err != nil {
			break
		}
		err = p.feed(df.dir, df.b)
	}
	p.clock.Advance(24 * time.Hour)
	p.end()
	return p.out, p.applied, err
}

type dirFrame struct {
	dir stream.Dir
	b   []byte
}

func pub(t testing.TB, topic string, qos byte, id uint16, props decode.Properties, payload string) []byte {
	return enc(t, &decode.Publish{Base: v5, Topic: topic, QoS: qos, PacketID: id, Properties: props, Payload: []byte(payload)})
}

func decode5(b []byte) decode.Packet { return decode.Decode(b, decode.V5) }

func TestOversize(t *testing.T) {
	view := negotiated(t, decode.Properties{decode.IntProp(decode.PropMaximumPacketSize, 200)})
	for _, tc := range []struct {
		name, rule string
		want       int
	}{
		{"max plus one", "oversize dir=c2s size=max_packet_size+1", 201},
		{"expression", "oversize size=127+1", 128},
		{"remaining length boundary", "oversize size=129", 129},
		// No packet has 130 bytes: a Remaining Length of 127 makes 129, of 128 makes 131.
		{"impossible size", "oversize size=130", 131},
		{"large", "oversize size=20000", 20000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := pub(t, "a/b", 1, 7, decode.Properties{decode.UserProp("k", "v")}, "hi")
			out, applied, err := run(t, view, []string{tc.rule}, []dirFrame{{stream.C2S, in}})
			if err != nil {
				t.Fatal(err)
			}
			b := out[stream.C2S][0]
			if len(b) != tc.want {
				t.Fatalf("frame is %d bytes, want %d", len(b), tc.want)
			}
			h, ok, err := decode.ParseHeader(b)
			if !ok || err != nil || h.HeaderLen+h.RemainingLength != len(b) {
				t.Fatalf("header %+v ok %v err %v for %d bytes", h, ok, err, len(b))
			}
			p := decode5(b).(*decode.Publish)
			if len(p.Info().Problems) > 0 || p.Topic != "a/b" || p.PacketID != 7 || !strings.HasPrefix(string(p.Payload), "hi") ||
				len(p.Properties.UserProperties()) != 1 {
				t.Errorf("grown PUBLISH %+v problems %v", p, p.Info().Problems)
			}
			if len(applied) != 1 || applied[0].Before != len(in) || applied[0].After != tc.want {
				t.Errorf("applied %+v", applied)
			}
		})
	}
	t.Run("used value reported", func(t *testing.T) {
		_, applied, _ := run(t, view, []string{"oversize size=max_packet_size+1"}, []dirFrame{{stream.C2S, pub(t, "a", 0, 0, nil, "")}})
		if len(applied) != 1 || applied[0].Used != "max_packet_size+1 = 201 with max_packet_size=200" {
			t.Errorf("applied %+v", applied)
		}
	})
	t.Run("already larger is left alone", func(t *testing.T) {
		in := pub(t, "a", 0, 0, nil, strings.Repeat("z", 50))
		out, applied, _ := run(t, view, []string{"oversize size=10"}, []dirFrame{{stream.C2S, in}})
		if !bytes.Equal(out[stream.C2S][0], in) || len(applied) != 0 {
			t.Errorf("out % x applied %v", out[stream.C2S][0], applied)
		}
	})
	t.Run("other direction untouched", func(t *testing.T) {
		in := pub(t, "a", 0, 0, nil, "")
		out, _, _ := run(t, view, []string{"oversize dir=c2s size=100"}, []dirFrame{{stream.S2C, in}})
		if !bytes.Equal(out[stream.S2C][0], in) {
			t.Errorf("s2c PUBLISH changed: % x", out[stream.S2C][0])
		}
	})
}

func TestGrowBy(t *testing.T) {
	// Across the Remaining Length's 1/2 and 2/3 byte boundaries: every size is reached exactly
	// but 130 and 16387, which no packet has (the next size up is given instead).
	for size := 11; size < 20000; size++ {
		g, ok := growBy(10, 2, size)
		if !ok {
			t.Fatalf("size %d: no growth found", size)
		}
		rl := 8 + g
		got := 1 + len(decode.AppendVarInt(nil, uint32(rl))) + rl
		want := size
		if size == 130 || size == 16387 {
			want++
		}
		if got != want {
			t.Fatalf("size %d: growth %d makes %d bytes", size, g, got)
		}
	}
	if _, ok := growBy(10, 2, 10); ok {
		t.Error("shrinking found a growth")
	}
}

func TestDrop(t *testing.T) {
	view := negotiated(t, nil)
	ack1 := enc(t, &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: 1})
	ack2 := enc(t, &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: 2})
	rec := enc(t, &decode.Ack{Base: v5, PacketType: decode.PUBREC, PacketID: 3})
	frames := []dirFrame{{stream.S2C, ack1}, {stream.S2C, rec}, {stream.S2C, ack2}, {stream.C2S, ack1}}
	for _, tc := range []struct {
		name, rule string
		s2c, c2s   [][]byte
	}{
		{"first PUBACK s2c", "drop type=PUBACK dir=s2c count=1", [][]byte{rec, ack2}, [][]byte{ack1}},
		{"every PUBACK", "drop type=PUBACK", [][]byte{rec}, nil},
		{"second PUBACK or PUBREC", "drop type=PUBACK,PUBREC nth=2 dir=s2c", [][]byte{ack1, ack2}, [][]byte{ack1}},
		{"every other", "drop type=puback every=2", [][]byte{ack1, rec}, [][]byte{ack1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := run(t, view, []string{tc.rule}, frames)
			if err != nil {
				t.Fatal(err)
			}
			if !equalFrames(out[stream.S2C], tc.s2c) || !equalFrames(out[stream.C2S], tc.c2s) {
				t.Errorf("s2c % x\nc2s % x", out[stream.S2C], out[stream.C2S])
			}
		})
	}
}

func equalFrames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestSelectors(t *testing.T) {
	view := negotiated(t, decode.Properties{decode.IntProp(decode.PropTopicAliasMaximum, 5)})
	mapped := pub(t, "sensors/1/temp", 0, 0, decode.Properties{decode.IntProp(decode.PropTopicAlias, 1)}, "1")
	// The view learns the alias only from what it is fed (the observers, after the stages).
	c2 := negotiatedConn(t, decode.Properties{decode.IntProp(decode.PropTopicAliasMaximum, 5)})
	c2.Feed(stream.C2S, time.Unix(0, 0), mapped)
	view2 := c2.View()
	aliased := pub(t, "", 0, 0, decode.Properties{decode.IntProp(decode.PropTopicAlias, 1)}, "2")
	other := pub(t, "other", 1, 4, nil, "3")
	for _, tc := range []struct {
		name, rule string
		view       inspect.View
		dropped    []int // indexes of frames dropped
	}{
		{"topic wildcard", "drop topic=sensors/+/temp", view2, []int{0, 1}},
		{"topic hash", "drop topic=#", view2, []int{0, 1, 2}},
		{"alias unresolved", "drop topic=sensors/#", view, []int{0}},
		{"qos", "drop qos=1", view2, []int{2}},
		{"client glob", "drop type=PUBLISH client=dev-*", view2, []int{0, 1, 2}},
		{"client glob no match", "drop type=PUBLISH client=other*", view2, nil},
		{"count", "drop type=PUBLISH count=2", view2, []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := [][]byte{mapped, aliased, other}
			var frames []dirFrame
			for _, b := range in {
				frames = append(frames, dirFrame{stream.C2S, b})
			}
			out, _, _ := run(t, tc.view, []string{tc.rule}, frames)
			var want [][]byte
			for i, b := range in {
				if !contains(intsS(tc.dropped), string(rune('0'+i))) {
					want = append(want, b)
				}
			}
			if !equalFrames(out[stream.C2S], want) {
				t.Errorf("got %d frames % x, want %d", len(out[stream.C2S]), out[stream.C2S], len(want))
			}
		})
	}
}

func intsS(is []int) []string {
	s := make([]string, len(is))
	for i, n := range is {
		s[i] = string(rune('0' + n))
	}
	return s
}

func TestProbabilityIsSeeded(t *testing.T) {
	view := negotiated(t, nil)
	var frames []dirFrame
	for i := range 200 {
		frames = append(frames, dirFrame{stream.S2C, enc(t, &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: uint16(i + 1)})})
	}
	a, _, _ := run(t, view, []string{"drop prob=0.25"}, frames)
	b, _, _ := run(t, view, []string{"drop prob=0.25"}, frames)
	if !equalFrames(a[stream.S2C], b[stream.S2C]) {
		t.Error("two runs with the same seed differ")
	}
	if n := 200 - len(a[stream.S2C]); n < 20 || n > 80 {
		t.Errorf("dropped %d of 200 at p=0.25", n)
	}
}

func TestQoS(t *testing.T) {
	view := negotiated(t, decode.Properties{decode.IntProp(decode.PropMaximumQoS, 1)})
	out, applied, _ := run(t, view, []string{"qos dir=c2s"}, []dirFrame{{stream.C2S, pub(t, "a", 1, 9, nil, "x")}, {stream.C2S, pub(t, "a", 0, 0, nil, "y")}})
	p1, p2 := decode5(out[stream.C2S][0]).(*decode.Publish), decode5(out[stream.C2S][1]).(*decode.Publish)
	if p1.QoS != 2 || p1.PacketID != 9 || string(p1.Payload) != "x" || len(p1.Info().Problems) > 0 {
		t.Errorf("first %+v", p1)
	}
	if p2.QoS != 2 || p2.PacketID != 0xFFFF || string(p2.Payload) != "y" || len(p2.Info().Problems) > 0 {
		t.Errorf("second %+v", p2)
	}
	if len(applied) != 2 || applied[0].Used != "maximum_qos+1 = 2 with maximum_qos=1" {
		t.Errorf("applied %+v", applied)
	}
}

func TestAlias(t *testing.T) {
	view := negotiated(t, decode.Properties{decode.IntProp(decode.PropTopicAliasMaximum, 3)})
	in := pub(t, "a/b", 0, 0, decode.Properties{decode.IntProp(decode.PropTopicAlias, 1)}, "x")
	out, _, _ := run(t, view, []string{"alias"}, []dirFrame{{stream.C2S, in}})
	p := decode5(out[stream.C2S][0]).(*decode.Publish)
	if a, _ := p.Properties.TopicAlias(); a != 4 || p.Topic != "a/b" || len(p.Properties) != 1 {
		t.Errorf("got %+v", p)
	}
	// An alias-only PUBLISH with an alias never mapped has no topic to keep: left alone.
	lone := pub(t, "", 0, 0, decode.Properties{decode.IntProp(decode.PropTopicAlias, 2)}, "x")
	out, applied, _ := run(t, view, []string{"alias to=0"}, []dirFrame{{stream.C2S, lone}})
	if !bytes.Equal(out[stream.C2S][0], lone) || len(applied) != 0 {
		t.Errorf("unmapped alias rewritten: % x", out[stream.C2S][0])
	}
}

func TestRetain(t *testing.T) {
	view := negotiated(t, decode.Properties{decode.IntProp(decode.PropRetainAvailable, 0)})
	out, applied, _ := run(t, view, []string{"retain topic=a"}, []dirFrame{{stream.C2S, pub(t, "a", 1, 3, nil, "x")}, {stream.C2S, pub(t, "b", 0, 0, nil, "x")}})
	if p := decode5(out[stream.C2S][0]).(*decode.Publish); !p.Retain || p.PacketID != 3 || p.QoS != 1 {
		t.Errorf("got %+v", p)
	}
	if p := decode5(out[stream.C2S][1]).(*decode.Publish); p.Retain {
		t.Errorf("topic b got RETAIN")
	}
	if len(applied) != 1 || applied[0].Used != "retain_available=0" {
		t.Errorf("applied %+v", applied)
	}
}

func TestConnack(t *testing.T) {
	ack := enc(t, &decode.Connack{Base: v5, Properties: decode.Properties{decode.IntProp(decode.PropMaximumPacketSize, 1000),
		decode.IntProp(decode.PropTopicAliasMaximum, 10), decode.StrProp(decode.PropAssignedClientID, "abc")}})
	out, applied, _ := run(t, inspect.View{}, []string{"connack max_packet_size=100 topic_alias_maximum=0 receive_maximum=1 maximum_qos=0 retain_available=0 reason=0x97"},
		[]dirFrame{{stream.S2C, ack}})
	p := decode5(out[stream.S2C][0]).(*decode.Connack)
	ps := p.Properties
	mps, _ := ps.Int(decode.PropMaximumPacketSize)
	rm, _ := ps.Int(decode.PropReceiveMaximum)
	mq, hasMQ := ps.Int(decode.PropMaximumQoS)
	ra, hasRA := ps.Int(decode.PropRetainAvailable)
	id, _ := ps.String(decode.PropAssignedClientID)
	if len(p.Info().Problems) > 0 || mps != 100 || ps.Has(decode.PropTopicAliasMaximum) || rm != 1 || !hasMQ || mq != 0 || !hasRA || ra != 0 ||
		id != "abc" || p.ReasonCode != 0x97 {
		t.Errorf("got %+v, problems %v", p, p.Info().Problems)
	}
	if len(applied) != 1 || !strings.Contains(applied[0].Did, "Maximum Packet Size 1000 → 100") {
		t.Errorf("applied %+v", applied)
	}
}

func TestDisconnect(t *testing.T) {
	view := negotiated(t, nil)
	pubIn := pub(t, "a", 0, 0, nil, "x")
	out, applied, err := run(t, view, []string{`disconnect dir=s2c reason=0x89 reason_string="busy, try later" after=PUBLISH`},
		[]dirFrame{{stream.S2C, pubIn}, {stream.S2C, pubIn}})
	if !errors.Is(err, proxy.ErrStageClose) {
		t.Fatalf("error %v, want ErrStageClose", err)
	}
	if len(out[stream.S2C]) != 2 || !bytes.Equal(out[stream.S2C][0], pubIn) {
		t.Fatalf("s2c % x", out[stream.S2C])
	}
	d := decode5(out[stream.S2C][1]).(*decode.Disconnect)
	rs, _ := d.Properties.String(decode.PropReasonString)
	if d.ReasonCode != 0x89 || rs != "busy, try later" || len(d.Info().Problems) > 0 {
		t.Errorf("got %+v", d)
	}
	if len(applied) != 1 || !applied[0].Closed {
		t.Errorf("applied %+v", applied)
	}
}

// TestDisconnectServerReference: 0x9C with a Server Reference to the client; the reference is
// refused towards the server.
func TestDisconnectServerReference(t *testing.T) {
	view := negotiated(t, nil)
	pubIn := pub(t, "a", 0, 0, nil, "x")
	out, applied, err := run(t, view, []string{`disconnect dir=s2c reason=0x9C server_reference=backup.example.com:1883 reason_string=moving`},
		[]dirFrame{{stream.S2C, pubIn}})
	if !errors.Is(err, proxy.ErrStageClose) || len(out[stream.S2C]) != 1 {
		t.Fatalf("error %v, s2c % x", err, out[stream.S2C])
	}
	d := decode5(out[stream.S2C][0]).(*decode.Disconnect)
	ref, _ := d.Properties.String(decode.PropServerReference)
	rs, _ := d.Properties.String(decode.PropReasonString)
	if d.ReasonCode != 0x9C || ref != "backup.example.com:1883" || rs != "moving" || len(d.Info().Problems) > 0 {
		t.Errorf("got %+v", d)
	}
	if len(applied) != 1 || !strings.Contains(applied[0].Did, `Server Reference "backup.example.com:1883"`) {
		t.Errorf("applied %+v", applied)
	}
	if _, err := Parse(`disconnect reason=0x9C server_reference=x`, 1); err == nil || !strings.Contains(err.Error(), "dir=s2c") {
		t.Errorf("towards both sides: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ rule, want string }{
		{"", "empty rule"},
		{"explode", "column 1: unknown action \"explode\""},
		{"drop dir=up", "column 6: dir: \"up\" is not c2s, s2c or both"},
		{"oversize dir=c2s", "size= is required"},
		{"oversize size=max_packet_sise+1", "column 10: size: expression \"max_packet_sise+1\""},
		{"drop type=PUBLSH", "column 6: type: unknown packet type \"PUBLSH\""},
		{"drop nth=0", "column 6: nth: \"0\" is not a number from 1"},
		{"drop prob=2", "column 6: prob: 2 is not in (0, 1]"},
		{`disconnect reason_string="open`, "column 12: unterminated quoted value"},
		{"drop size=3", "column 6: size does not apply to drop"},
		{"oversize type=PUBACK size=3", "oversize does not apply to PUBACK"},
		{"connack dir=c2s reason=0x80", "dir=c2s does not apply"},
		{"drop after=PUBLISH", "after= applies to disconnect, reset and half_close only"},
		{"drop topic=a/#/b", "column 6: topic: topic filter"},
		{"drop dir", "column 6: \"dir\" has no value"},
		{"drop retain=2", "column 6: retain: \"2\" is not a number from 0 to 1"},
		{"drop reason_code=0x100", "column 6: reason_code: \"0x100\" is not a number from 0 to 255"},
		{"drop start=soon", "column 6: start: \"soon\" is not a duration"},
		{"drop for=0s", "column 6: for: 0s is not a positive duration"},
		{"drop start=-1s", "column 6: start: -1s is not a positive duration"},
		{"drop since=PUBLSH", "column 6: since: unknown packet type \"PUBLSH\""},
		{"connack", "connack needs a value to rewrite: reason, session_present, "},
		{"connack keep_alive=3", "keep_alive does not apply to connack"},
		{"connack server_keep_alive=later", "server_keep_alive: expression \"later\""},
		{"sub_wildcard dir=s2c", "SUBSCRIBE goes client to server"},
		{"sub_wildcard filter=a/b", "filter \"a/b\" has no wildcard"},
		{"sub_wildcard filter=a/#/b", "filter \"a/#/b\":"},
		{"sub_shared group=a/b", "group \"a/b\": a share name"},
		{"sub_id type=PUBLISH", "sub_id does not apply to PUBLISH"},
		{"reorder frames=0", "column 9: frames: \"0\" is not a number from 1 to 1048576"},
		{"flood as_qos=3", "column 7: as_qos: \"3\" is not a number from 1 to 2"},
	} {
		_, err := Parse(tc.rule, 1)
		if err == nil || !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.rule, err, tc.want)
		}
	}
}
