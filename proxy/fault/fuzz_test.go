package fault

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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

// FuzzRules runs random rules over random valid frames, on a connection whose inspection sees
// what goes on (as the proxy's does), until the clock has sent what faults hold: what goes on
// in each direction (pieces put together) is whole frames, each with a Remaining Length
// agreeing with its bytes and decoding without a malformed-packet or protocol error, exactly
// when no fault said it made one on purpose (alias 0, Session Present in a refused CONNACK, a
// reason code the packet does not have, the malformed faults); a stream a reset cut may end
// inside a frame. The faults that wait in place (latency, bandwidth, a slicer's delay) are in
// FuzzTimedRules.
func FuzzRules(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzBytes(data)
		next := in.next
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
			// Any value, any reason: Session Present in a refusal, Maximum QoS 2, a reason
			// code CONNACK does not have are malformed faults the fault must own up to.
			fmt.Sprintf(`connack reason=%d session_present=%d maximum_qos=%d server_keep_alive=%d assigned_client_identifier="%s" server_reference=x reason_string=absent`,
				next(), next()%2, next()%3, next()*next(), strings.Repeat("i", next())),
			fmt.Sprintf("connack wildcard_subscription_available=%d subscription_identifier_available=%d shared_subscription_available=%d session_expiry_interval=%d",
				next()%2, next()%3, next()%2, next()*next()*next()),
			fmt.Sprintf("alias_unmapped to=%d", next()%4),
			"alias_unmapped",
			fmt.Sprintf("alias_remap to=%d", next()%4),
			"alias_remap",
			"alias_stale",
			"sub_wildcard",
			fmt.Sprintf("sub_id id=%d", next()%3),
			"sub_shared group=g",
			fmt.Sprintf("drop reason_code=%d", next()),
			fmt.Sprintf("drop retain=%d since=PUBACK", next()%2),
			// A reason code DISCONNECT does not have would be a malformed fault.
			fmt.Sprintf("disconnect reason=%d reason_string=x prob=0.5", disconnectCodes[next()%len(disconnectCodes)]),
			fmt.Sprintf("delay type=PUBACK,SUBACK d=%dms jitter=%dms", next()*10, next()),
			"duplicate",
			fmt.Sprintf("reorder frames=%d", 1+next()%3),
			fmt.Sprintf("hold release=%d for=%ds", 1+next()%4, next()%3),
			"hold release=receive_maximum",
			fmt.Sprintf("flood count=%d as_qos=%d", 1+next()%5, 1+next()%2),
			"flood dir=c2s",
			"reuse_id",
			fmt.Sprintf("dup_resend d=%dms", next()),
			"pubrel_unknown every=2",
			fmt.Sprintf("slicer size=%d", 1+next()%8),
			"slicer at=remaining_length",
			"slicer at=header",
			"slicer at=payload",
			fmt.Sprintf("stall type=PINGREQ,PUBACK every=%d", 1+next()%2),
			fmt.Sprintf("stall d=%dms", next()),
			fmt.Sprintf("reset bytes=%d", 1+next()*next()),
			"reset type=SUBACK",
			"half_close dir=s2c after=SUBACK",
			"slow_close d=1s",
		}
		rules = append(rules, malformedRules(next)...)
		var rs []string
		for n := next() % 4; n >= 0; n-- {
			rs = append(rs, rules[next()%len(rules)])
		}
		live := negotiatedConn(t, decode.Properties{decode.IntProp(decode.PropMaximumPacketSize, uint32(20+next()*4)),
			decode.IntProp(decode.PropTopicAliasMaximum, uint32(next()%5)), decode.IntProp(decode.PropMaximumQoS, uint32(next()%2)),
			decode.IntProp(decode.PropReceiveMaximum, uint32(1+next()%8))})
		var frames []dirFrame
		for len(in) > 0 {
			var p decode.Packet
			dir := stream.Dir(next() % 2)
			switch next() % 6 {
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
			case 4:
				subs := []decode.Subscription{{Filter: []string{"a/b", "a/+", "$share/g/c"}[next()%3], QoS: byte(next() % 3)}}
				p = &decode.Subscribe{Base: v5, PacketID: uint16(1 + next()), Subscriptions: subs}
			default:
				p = &decode.Pingreq{Base: v5}
			}
			frames = append(frames, dirFrame{dir, enc(t, p)})
		}
		out, applied, err := runLive(t, live, rs, frames)
		checkStreams(t, rs, out, applied, err)
	})
}

// fuzzBytes is a fuzz input read a byte at a time.
type fuzzBytes []byte

// next takes the next byte (0 once the input is used up).
func (b *fuzzBytes) next() int {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return int(c)
}

// fuzzSeeds are the fuzz tests' seed inputs.
func fuzzSeeds(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{3, 200, 1, 1, 5, 0, 7, 2, 255, 4, 4, 4})
}

// malformedRules are the malformed faults, for the fuzz tests.
func malformedRules(next func() int) []string {
	return []string{
		"malformed kind=vbi5 nth=2",
		fmt.Sprintf("malformed kind=length by=%d", []int{-2, -1, 1, 2, 100}[next()%5]),
		"malformed kind=utf8",
		"malformed kind=dup_property type=PUBLISH,CONNACK,SUBACK,SUBSCRIBE",
		"malformed kind=unknown_property",
		"malformed kind=flags type=PUBACK,PINGREQ,SUBACK,SUBSCRIBE",
		"malformed kind=truncate prob=0.3",
	}
}

// checkStreams checks what went on in each direction: whole, well-formed frames exactly when
// no fault applied says it made a malformed one; err is the error that ended the run.
func checkStreams(t *testing.T, rs []string, out [2][][]byte, applied []Applied, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, proxy.ErrStageClose) && !errors.Is(err, proxy.ErrStageReset) && !errors.Is(err, proxy.ErrStageShut) {
		t.Fatalf("rules %q: %v", rs, err)
	}
	meant := false // a fault made a malformed frame on purpose
	for _, a := range applied {
		// Not the harness's CONNECT, whose bytes are not in out.
		meant = meant || a.Malformed && a.Type != decode.CONNECT
	}
	bad := 0
	for d := range out {
		if why := malformedRun(bytes.Join(out[d], nil), errors.Is(err, proxy.ErrStageReset)); why != "" {
			bad++
			if !meant {
				t.Fatalf("rules %q: %s: %s", rs, stream.Dir(d), why)
			}
		}
	}
	if meant && bad == 0 {
		t.Fatalf("rules %q: a fault said it made a malformed frame, and none is", rs)
	}
}

// malformedRun says what is wrong with b as a run of frames ("" when nothing is): a frame that
// cannot be framed, or is malformed or a protocol error on its own, or bytes left over that are
// not a whole frame (allowed when a reset cut them).
func malformedRun(b []byte, reset bool) string {
	fr := decode.NewFramer(1 << 28)
	fr.Write(b)
	for {
		f, err := fr.Next()
		if err != nil {
			return err.Error()
		}
		if f == nil {
			break
		}
		if why := broken(f, decode.V5); why != "" {
			return fmt.Sprintf("frame % x: %s", f, why)
		}
	}
	if n := fr.Buffered(); n > 0 && !reset {
		return fmt.Sprintf("%d bytes left over, not a whole frame", n)
	}
	return ""
}

// FuzzTimedRules runs the faults that wait in place (latency, bandwidth, a slicer's delay),
// with others that do not send later, over random valid frames read 1 ms apart, on a clock
// that moves as they wait; what goes on is checked as in FuzzRules, and each direction's
// frames keep their order.
func FuzzTimedRules(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzBytes(data)
		next := in.next
		rules := append([]string{
			fmt.Sprintf("latency d=%dms jitter=%dms", next(), next()),
			fmt.Sprintf("latency dir=s2c type=PUBACK d=%dms", next()),
			fmt.Sprintf("bandwidth rate=%d", 1+next()*next()*10),
			fmt.Sprintf("slicer size=%d delay=%dms", 1+next()%8, next()%3),
			"slicer at=remaining_length delay=5ms",
			"slicer at=payload delay=1ms",
			fmt.Sprintf("stall d=%dms", next()),
			fmt.Sprintf("reset bytes=%d", 1+next()*next()),
			fmt.Sprintf("oversize size=%d", 2+next()*next()),
			fmt.Sprintf("drop type=PUBACK,SUBACK every=%d", 1+next()%3),
		}, malformedRules(next)...)
		var rs []string
		for n := next() % 4; n >= 0; n-- {
			rs = append(rs, rules[next()%len(rules)])
		}
		var frames []timedFrame
		for i := 0; len(in) > 0; i++ {
			var p decode.Packet
			switch next() % 4 {
			case 0:
				p = &decode.Publish{Base: v5, Topic: []string{"a/b", "x"}[next()%2], QoS: 1, PacketID: uint16(1 + next()), Payload: make([]byte, next()*next()/8)}
			case 1:
				p = &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: uint16(1 + next())}
			case 2:
				p = &decode.Subscribe{Base: v5, PacketID: uint16(1 + next()), Subscriptions: []decode.Subscription{{Filter: "a/+", QoS: 1}}}
			default:
				p = &decode.Pingreq{Base: v5}
			}
			frames = append(frames, timedFrame{stream.Dir(next() % 2), time.Duration(i) * time.Millisecond, enc(t, p)})
		}
		tr := runTimed(t, negotiated(t, nil), rs, frames)
		var out [2][][]byte
		last := [2]time.Duration{}
		for _, s := range tr.sent {
			out[s.dir] = append(out[s.dir], s.b)
			if s.at < last[s.dir] {
				t.Fatalf("rules %q: %s bytes sent at %v after some at %v", rs, s.dir, s.at, last[s.dir])
			}
			last[s.dir] = s.at
		}
		checkStreams(t, rs, out, tr.applied, tr.err)
	})
}
