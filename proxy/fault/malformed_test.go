package fault

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

func TestMalformed(t *testing.T) {
	view := negotiated(t, nil)
	p := pub(t, "a/b", 1, 7, decode.Properties{decode.IntProp(decode.PropMessageExpiry, 60)}, "hi")
	bare := pub(t, "a/b", 0, 0, nil, "hi")
	sub := enc(t, &decode.Subscribe{Base: v5, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a/#", QoS: 1}}})
	ack := enc(t, &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: 1}) // no property length on the wire
	for _, tc := range []struct {
		name, rule string
		in         []byte
		want       []byte // the bytes sent
		problem    string // in the decoded frame's problems
		category   error
	}{
		{"vbi5", "malformed kind=vbi5", bare, append([]byte{0x30, bare[1] | 0x80, 0x80, 0x80, 0x80, 0x00}, bare[2:]...), "", nil},
		{"length +3", "malformed kind=length by=+3", bare, append([]byte{0x30, bare[1] + 3}, bare[2:]...), "", nil},
		{"length -2", "malformed kind=length by=-2", bare, append([]byte{0x30, bare[1] - 2}, bare[2:]...), "", nil},
		{"utf8", "malformed kind=utf8", bare, append([]byte{0x30, bare[1], 0, 3, 0xFF}, bare[5:]...), "UTF-8", decode.ErrMalformed},
		{"flags", "malformed kind=flags type=SUBSCRIBE", sub, append([]byte{0x83}, sub[1:]...), "flags", decode.ErrMalformed},
		{"dup of the packet's own", "malformed kind=dup_property", p, nil, "Message Expiry Interval appears more than once", decode.ErrProtocol},
		// Reason String is not a PUBLISH's: the first of its list that is.
		{"dup of one added", "malformed kind=dup_property", bare, nil, "Message Expiry Interval appears more than once", decode.ErrProtocol},
		{"unknown", "malformed kind=unknown_property", p, nil, "", decode.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := runTimed(t, view, []string{tc.rule}, []timedFrame{{stream.C2S, 0, tc.in}})
			if tr.err != nil || len(tr.sent) != 1 || len(tr.applied) != 1 || !tr.applied[0].Malformed {
				t.Fatalf("error %v sent %+v applied %+v", tr.err, tr.sent, tr.applied)
			}
			out := tr.sent[0].b
			if tc.want != nil && !bytes.Equal(out, tc.want) {
				t.Fatalf("sent % x\nwant % x", out, tc.want)
			}
			h, ok, herr := decode.ParseHeader(out)
			headerOK := ok && herr == nil && h.HeaderLen+h.RemainingLength == len(out)
			switch tc.name {
			case "vbi5":
				if herr == nil {
					t.Errorf("a 5-byte Remaining Length parsed: %+v", h)
				}
				return
			case "length +3", "length -2":
				if headerOK {
					t.Errorf("Remaining Length agrees with the bytes: %+v", h)
				}
				return
			}
			if !headerOK {
				t.Fatalf("header %+v %v for %d bytes", h, herr, len(out))
			}
			probs := decode5(out).Info().Problems
			found := false
			for _, pr := range probs {
				if strings.Contains(pr.Error(), tc.problem) && (tc.category == nil || errors.Is(pr, tc.category)) {
					found = true
				}
			}
			if !found {
				t.Errorf("problems %v, want one with %q (%v)", probs, tc.problem, tc.category)
			}
		})
	}
	t.Run("dup and unknown keep the other bytes", func(t *testing.T) {
		// The PUBLISH's bytes after the properties are the same; only the lengths changed.
		for _, kind := range []string{"dup_property", "unknown_property"} {
			tr := runTimed(t, view, []string{"malformed kind=" + kind}, []timedFrame{{stream.C2S, 0, p}})
			out := tr.sent[0].b
			if !bytes.HasSuffix(out, p[len(p)-2:]) || !bytes.Equal(out[2:9], p[2:9]) || len(out) <= len(p) {
				t.Errorf("%s: % x from % x", kind, out, p)
			}
		}
	})
	t.Run("skipped where it cannot apply", func(t *testing.T) {
		ping := enc(t, &decode.Pingreq{Base: v5})
		for _, tc := range []struct {
			rule string
			in   []byte
		}{
			{"malformed kind=dup_property", ack},      // no properties on the wire
			{"malformed kind=unknown_property", ping}, // none at all
			{"malformed kind=flags", bare},            // a PUBLISH has no reserved flags
			{"malformed kind=length by=-100", ping},
		} {
			tr := runTimed(t, view, []string{tc.rule}, []timedFrame{{stream.C2S, 0, tc.in}})
			if len(tr.sent) != 1 || !bytes.Equal(tr.sent[0].b, tc.in) || len(tr.applied) != 0 {
				t.Errorf("%s on % x: sent %+v applied %+v", tc.rule, tc.in, tr.sent, tr.applied)
			}
		}
	})
	t.Run("truncate", func(t *testing.T) {
		tr := runTimed(t, view, []string{"malformed kind=truncate type=PUBLISH"}, []timedFrame{{stream.C2S, 0, p}, {stream.C2S, 0, bare}})
		if !errors.Is(tr.err, proxy.ErrStageClose) || len(tr.sent) != 1 || !bytes.Equal(tr.sent[0].b, p[:len(p)/2]) {
			t.Fatalf("error %v sent %+v", tr.err, tr.sent)
		}
		if a := tr.applied[0]; !a.Malformed || !a.Closed || a.After != len(p)/2 {
			t.Errorf("applied %+v", a)
		}
	})
}
