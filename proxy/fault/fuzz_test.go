package fault

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

var disconnectCodes = func() (cs []decode.ReasonCode) {
	for _, c := range decode.ReasonCodes() {
		if c.AllowedIn(decode.DISCONNECT) {
			cs = append(cs, c)
		}
	}
	return cs
}()

// FuzzRules runs random rules over random valid frames: none of the faults here is a malformed
// one, so every frame that goes on must decode without a malformed-packet problem, its
// Remaining Length agreeing with its bytes.
func FuzzRules(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{3, 200, 1, 1, 5, 0, 7, 2, 255, 4, 4, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		rules := []string{
			fmt.Sprintf("oversize size=%d", 2+next()*next()),
			"oversize size=max_packet_size+1",
			fmt.Sprintf("drop type=PUBACK,SUBACK every=%d", 1+next()%3),
			fmt.Sprintf("qos to=%d", next()%3),
			"qos",
			fmt.Sprintf("alias to=%d", next()*3),
			"alias",
			"retain topic=a/+",
			fmt.Sprintf("connack max_packet_size=%d receive_maximum=%d maximum_qos=%d retain_available=%d", next()*7, next(), next()%2, next()%2),
			// A reason code DISCONNECT does not have would be a malformed fault.
			fmt.Sprintf("disconnect reason=%d reason_string=x prob=0.5", disconnectCodes[next()%len(disconnectCodes)]),
		}
		var rs []string
		for n := next() % 4; n >= 0; n-- {
			rs = append(rs, rules[next()%len(rules)])
		}
		view := negotiated(t, decode.Properties{decode.IntProp(decode.PropMaximumPacketSize, uint32(20+next()*4)),
			decode.IntProp(decode.PropTopicAliasMaximum, uint32(next()%5)), decode.IntProp(decode.PropMaximumQoS, uint32(next()%2))})
		var frames []dirFrame
		for len(data) > 0 {
			var p decode.Packet
			dir := stream.Dir(next() % 2)
			switch next() % 5 {
			case 0:
				var ps decode.Properties
				if k := next() % 4; k > 0 {
					ps = decode.Properties{decode.IntProp(decode.PropTopicAlias, uint32(k))}
				}
				qos := byte(next() % 3)
				var id uint16
				if qos > 0 {
					id = uint16(1 + next())
				}
				p = &decode.Publish{Base: v5, Topic: []string{"a/b", "a/c", "x"}[next()%3], QoS: qos, PacketID: id, Retain: next()%2 == 1,
					Properties: ps, Payload: make([]byte, next())}
			case 1:
				p = &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: uint16(1 + next())}
			case 2:
				p = &decode.Suback{Base: v5, PacketID: uint16(1 + next()), ReasonCodes: []decode.ReasonCode{0}}
			case 3:
				p, dir = &decode.Connack{Base: v5, Properties: decode.Properties{decode.IntProp(decode.PropReceiveMaximum, uint32(1+next()))}}, stream.S2C
			default:
				p = &decode.Pingreq{Base: v5}
			}
			frames = append(frames, dirFrame{dir, enc(t, p)})
		}
		out, applied, err := run(t, view, rs, frames)
		if err != nil && !errors.Is(err, proxy.ErrStageClose) {
			t.Fatalf("rules %q: %v", rs, err)
		}
		meant := false // a fault made a malformed frame on purpose
		for _, a := range applied {
			meant = meant || a.Malformed
		}
		bad := 0
		for d := range out {
			for _, b := range out[d] {
				h, ok, herr := decode.ParseHeader(b)
				if !ok || herr != nil || h.HeaderLen+h.RemainingLength != len(b) {
					t.Fatalf("rules %q: frame % x: header %+v %v", rs, b, h, herr)
				}
				if malformed(decode.Decode(b, decode.V5)) {
					bad++
					if !meant {
						t.Fatalf("rules %q: malformed frame % x: %v", rs, b, decode.Decode(b, decode.V5).Info().Problems)
					}
				}
			}
		}
		if meant && bad == 0 {
			t.Fatalf("rules %q: a fault said it made a malformed frame, and none is", rs)
		}
	})
}
