package fault

import (
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// TestSelectorsRetainReasonTime: retain=, reason_code=, start=, since= and for= select the
// frames they say, on the pipeline's clock.
func TestSelectorsRetainReasonTime(t *testing.T) {
	view := negotiated(t, nil)
	retained := enc(t, &decode.Publish{Base: v5, Topic: "a", Retain: true, Payload: []byte("r")})
	plain := pub(t, "a", 0, 0, nil, "p")
	ok1 := enc(t, &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: 1})                                     // 0x00 left out
	bad2 := enc(t, &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: 2, ReasonCode: 0x87, HasReason: true}) // Not authorized
	suback := enc(t, &decode.Suback{Base: v5, PacketID: 3, ReasonCodes: []decode.ReasonCode{0x01, 0x87}})
	discon := enc(t, &decode.Disconnect{Base: v5, ReasonCode: 0x87, HasReason: true})
	ping := enc(t, &decode.Pingreq{Base: v5})
	connack := enc(t, &decode.Connack{Base: v5})
	sec := time.Second
	for _, tc := range []struct {
		name, rule string
		frames     []dirFrame
		at         []time.Duration
		dropped    []int
	}{
		{"retain=1", "drop retain=1", []dirFrame{{stream.C2S, retained}, {stream.C2S, plain}, {stream.C2S, ping}}, nil, []int{0}},
		{"retain=0", "drop retain=0", []dirFrame{{stream.C2S, retained}, {stream.C2S, plain}, {stream.C2S, ping}}, nil, []int{1}},
		{"reason 0x87", "drop reason_code=0x87", []dirFrame{{stream.S2C, ok1}, {stream.S2C, bad2}, {stream.S2C, suback}, {stream.S2C, discon}, {stream.S2C, ping}}, nil, []int{1, 2, 3}},
		{"reason 0 left out", "drop reason_code=0 type=PUBACK", []dirFrame{{stream.S2C, ok1}, {stream.S2C, bad2}}, nil, []int{0}},
		{"start", "drop type=PINGREQ start=2s", []dirFrame{{stream.C2S, ping}, {stream.C2S, ping}, {stream.C2S, ping}},
			[]time.Duration{sec, 2 * sec, 3 * sec}, []int{1, 2}},
		{"for", "drop type=PINGREQ for=2s", []dirFrame{{stream.C2S, ping}, {stream.C2S, ping}, {stream.C2S, ping}},
			[]time.Duration{0, 1999 * time.Millisecond, 2 * sec}, []int{0, 1}},
		{"start and for", "drop type=PINGREQ start=1s for=1s", []dirFrame{{stream.C2S, ping}, {stream.C2S, ping}, {stream.C2S, ping}},
			[]time.Duration{999 * time.Millisecond, sec, 2 * sec}, []int{1}},
		// since=: from the first CONNACK on (in the other direction), not the CONNACK itself.
		{"since other direction", "drop since=CONNACK", []dirFrame{{stream.C2S, ping}, {stream.S2C, connack}, {stream.C2S, ping}, {stream.S2C, ok1}}, nil, []int{2, 3}},
		{"since excludes itself", "drop type=PUBLISH since=PUBLISH", []dirFrame{{stream.C2S, plain}, {stream.C2S, retained}, {stream.C2S, plain}}, nil, []int{1, 2}},
		{"since then start and for", "drop type=PINGREQ since=PUBACK start=1s for=1s",
			[]dirFrame{{stream.C2S, ping}, {stream.S2C, ok1}, {stream.C2S, ping}, {stream.C2S, ping}, {stream.S2C, ok1}, {stream.C2S, ping}},
			[]time.Duration{5 * sec, 10 * sec, 10500 * time.Millisecond, 11 * sec, 11500 * time.Millisecond, 12 * sec}, []int{3}},
		{"since never", "drop since=SUBACK", []dirFrame{{stream.C2S, ping}, {stream.S2C, ok1}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runAt(t, view, []string{tc.rule}, tc.frames, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			var want [2][][]byte
			for i, df := range tc.frames {
				if !contains(intsS(tc.dropped), string(rune('0'+i))) {
					want[df.dir] = append(want[df.dir], df.b)
				}
			}
			for d := range want {
				if !equalFrames(out[d], want[d]) {
					t.Errorf("%s: got % x, want % x", stream.Dir(d), out[d], want[d])
				}
			}
		})
	}
}
