package fault

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/fakeclock"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

const ms = time.Millisecond

func TestLatency(t *testing.T) {
	a, b := pub(t, "a", 0, 0, nil, "1"), pub(t, "a", 0, 0, nil, "2")
	ack := enc(t, &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: 1})
	frames := []timedFrame{{stream.C2S, 0, a}, {stream.C2S, 10 * ms, b}, {stream.S2C, 20 * ms, ack}}
	t.Run("fixed", func(t *testing.T) {
		tr := runTimed(t, inspect.View{}, []string{"latency dir=c2s d=100ms"}, frames)
		c2s, s2c := tr.in(stream.C2S), tr.in(stream.S2C)
		if len(c2s) != 2 || c2s[0].at != 100*ms || c2s[1].at != 110*ms || !bytes.Equal(c2s[0].b, a) || !bytes.Equal(c2s[1].b, b) {
			t.Errorf("c2s %+v", c2s)
		}
		// The PUBACK is read at 20ms, after the stage held the c2s frames (the clock is past it).
		if len(s2c) != 1 || s2c[0].at != 110*ms || !bytes.Equal(s2c[0].b, ack) {
			t.Errorf("s2c %+v", s2c)
		}
		if len(tr.applied) != 2 || tr.applied[0].Did != "PUBLISH held 100ms" {
			t.Errorf("applied %+v", tr.applied)
		}
	})
	t.Run("jitter seeded, order kept", func(t *testing.T) {
		var many []timedFrame
		for i := range 50 {
			many = append(many, timedFrame{stream.C2S, time.Duration(i) * ms, pub(t, "a", 0, 0, nil, string(rune('A'+i)))})
		}
		x := runTimed(t, inspect.View{}, []string{"latency d=100ms jitter=30ms"}, many)
		y := runTimed(t, inspect.View{}, []string{"latency d=100ms jitter=30ms"}, many)
		spread := map[time.Duration]bool{}
		for i, s := range x.sent {
			if !bytes.Equal(s.b, many[i].b) || s.at != y.sent[i].at {
				t.Fatalf("frame %d: %+v, other run %+v", i, s, y.sent[i])
			}
			if i > 0 && s.at < x.sent[i-1].at {
				t.Fatalf("frame %d went at %v, before frame %d at %v", i, s.at, i-1, x.sent[i-1].at)
			}
			held := s.at - many[i].at
			if held > 130*ms || (held < 70*ms && s.at != x.sent[i-1].at) {
				t.Fatalf("frame %d held %v", i, held)
			}
			spread[held] = true
		}
		if len(spread) < 10 {
			t.Errorf("only %d distinct delays in 50 frames", len(spread))
		}
	})
}

func TestBandwidth(t *testing.T) {
	big := pub(t, "a", 0, 0, nil, strings.Repeat("x", 250-7))
	small := enc(t, &decode.Pingreq{Base: v5})
	tr := runTimed(t, inspect.View{}, []string{"bandwidth rate=1000"}, []timedFrame{{stream.C2S, 0, big}, {stream.C2S, 50 * ms, small}})
	if len(big) != 250 {
		t.Fatalf("big is %d bytes", len(big))
	}
	// 100-byte pieces (a tenth of a second at 1000 bytes/s), each once its bytes have crossed.
	want := []struct {
		at time.Duration
		n  int
	}{{100 * ms, 100}, {200 * ms, 100}, {250 * ms, 50}, {252 * ms, 2}}
	if len(tr.sent) != len(want) {
		t.Fatalf("sent %+v", tr.sent)
	}
	var all []byte
	for i, w := range want {
		if tr.sent[i].at != w.at || len(tr.sent[i].b) != w.n {
			t.Errorf("piece %d: %d bytes at %v, want %d at %v", i, len(tr.sent[i].b), tr.sent[i].at, w.n, w.at)
		}
		all = append(all, tr.sent[i].b...)
	}
	if !bytes.Equal(all, append(append([]byte(nil), big...), small...)) {
		t.Error("bytes altered")
	}
}

func TestSlicer(t *testing.T) {
	long := pub(t, "a/b", 1, 7, nil, strings.Repeat("p", 200)) // a 2-byte Remaining Length
	short := pub(t, "a/b", 0, 0, nil, "hi")
	sub := enc(t, &decode.Subscribe{Base: v5, PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a/#", QoS: 1}}})
	for _, tc := range []struct {
		name, rule string
		in         []byte
		pieces     []int // sizes
		at         []time.Duration
	}{
		{"inside a 2-byte remaining length", "slicer at=remaining_length", long, []int{2, len(long) - 2}, []time.Duration{0, 0}},
		{"before a 1-byte remaining length", "slicer at=remaining_length", short, []int{1, len(short) - 1}, []time.Duration{0, 0}},
		{"after the fixed header", "slicer at=header delay=20ms", long, []int{3, len(long) - 3}, []time.Duration{0, 20 * ms}},
		{"before the payload", "slicer at=payload delay=5ms", short, []int{len(short) - 2, 2}, []time.Duration{0, 5 * ms}},
		{"payload only applies to PUBLISH", "slicer at=payload", sub, []int{len(sub)}, []time.Duration{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := runTimed(t, inspect.View{}, []string{tc.rule}, []timedFrame{{stream.C2S, 0, tc.in}})
			var all []byte
			var sizes []int
			var at []time.Duration
			for _, s := range tr.sent {
				all = append(all, s.b...)
				sizes = append(sizes, len(s.b))
				at = append(at, s.at)
			}
			if !bytes.Equal(all, tc.in) {
				t.Fatalf("pieces do not make the frame: % x", all)
			}
			if !slices.Equal(sizes, tc.pieces) || !slices.Equal(at, tc.at) {
				t.Errorf("pieces %v at %v, want %v at %v", sizes, at, tc.pieces, tc.at)
			}
		})
	}
	t.Run("random, seeded", func(t *testing.T) {
		x := runTimed(t, inspect.View{}, []string{"slicer size=5"}, []timedFrame{{stream.C2S, 0, long}})
		y := runTimed(t, inspect.View{}, []string{"slicer size=5"}, []timedFrame{{stream.C2S, 0, long}})
		var all []byte
		seen := map[int]bool{}
		for i, s := range x.sent {
			if len(s.b) < 1 || len(s.b) > 5 || !bytes.Equal(s.b, y.sent[i].b) {
				t.Fatalf("piece %d: % x (other run % x)", i, s.b, y.sent[i].b)
			}
			seen[len(s.b)] = true
			all = append(all, s.b...)
		}
		if !bytes.Equal(all, long) || len(seen) != 5 {
			t.Errorf("%d pieces of %d sizes; bytes equal %v", len(x.sent), len(seen), bytes.Equal(all, long))
		}
	})
}

func TestStall(t *testing.T) {
	ping := enc(t, &decode.Pingresp{Base: v5})
	ack := enc(t, &decode.Ack{Base: v5, PacketType: decode.PUBACK, PacketID: 1})
	frames := []timedFrame{{stream.S2C, 0, ack}, {stream.S2C, 100 * ms, ping}, {stream.S2C, 200 * ms, ack}, {stream.S2C, 1100 * ms, ping}, {stream.S2C, 1200 * ms, ack}}
	for _, tc := range []struct {
		name, rule string
		kept       []int
	}{
		{"PINGRESP", "stall type=PINGRESP", []int{0, 2, 4}},
		// From the first frame selected (the PUBACK at 0) for a second.
		{"a second", "stall d=1s", []int{3, 4}},
		{"a second from the first PINGRESP", "stall type=PINGRESP d=1s", []int{0, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := runTimed(t, inspect.View{}, []string{tc.rule}, frames)
			var kept []int
			for _, s := range tr.sent {
				kept = append(kept, s.call)
			}
			if !slices.Equal(kept, tc.kept) {
				t.Errorf("kept %v, want %v", kept, tc.kept)
			}
		})
	}
}

func TestReset(t *testing.T) {
	a := pub(t, "a", 0, 0, nil, "123456") // 12 bytes
	sub := enc(t, &decode.Suback{Base: v5, PacketID: 1, ReasonCodes: []decode.ReasonCode{0}})
	frames := []timedFrame{{stream.C2S, 0, a}, {stream.S2C, 0, sub}, {stream.C2S, 0, a}, {stream.C2S, 0, a}}
	for _, tc := range []struct {
		name, rule string
		c2s        [][]byte
		s2c        [][]byte
		call       int
	}{
		{"at a packet", "reset type=SUBACK", [][]byte{a}, nil, 1},
		{"after a packet", "reset after=SUBACK", [][]byte{a}, [][]byte{sub}, 1},
		{"after bytes, inside a frame", "reset dir=c2s bytes=15", [][]byte{a, a[:3]}, [][]byte{sub}, 2},
		{"after bytes, at a frame's end", "reset dir=c2s bytes=24", [][]byte{a, a}, [][]byte{sub}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := runTimed(t, inspect.View{}, []string{tc.rule}, frames)
			if !errors.Is(tr.err, proxy.ErrStageReset) || tr.errCall != tc.call {
				t.Fatalf("error %v at frame %d, want ErrStageReset at %d", tr.err, tr.errCall, tc.call)
			}
			if got := pieces(tr.in(stream.C2S)); !equalFrames(got, tc.c2s) {
				t.Errorf("c2s % x", got)
			}
			if got := pieces(tr.in(stream.S2C)); !equalFrames(got, tc.s2c) {
				t.Errorf("s2c % x", got)
			}
			if len(tr.applied) != 1 || !tr.applied[0].Closed {
				t.Errorf("applied %+v", tr.applied)
			}
		})
	}
}

// TestResetBytesOfType: with type=, bytes=N counts the bytes of the frames the rule selects,
// not the others of the direction.
func TestResetBytesOfType(t *testing.T) {
	a := pub(t, "a", 0, 0, nil, "123456") // 12 bytes
	ping := enc(t, &decode.Pingreq{Base: v5})
	frames := []timedFrame{{stream.C2S, 0, a}, {stream.C2S, 0, ping}, {stream.C2S, 0, ping}, {stream.C2S, 0, a}}
	tr := runTimed(t, inspect.View{}, []string{"reset dir=c2s type=PUBLISH bytes=15"}, frames)
	if !errors.Is(tr.err, proxy.ErrStageReset) || tr.errCall != 3 {
		t.Fatalf("error %v at frame %d, want ErrStageReset at 3", tr.err, tr.errCall)
	}
	if got := pieces(tr.in(stream.C2S)); !equalFrames(got, [][]byte{a, ping, ping, a[:3]}) {
		t.Errorf("c2s % x", got)
	}
}

func pieces(ss []sent) [][]byte {
	var bs [][]byte
	for _, s := range ss {
		bs = append(bs, s.b)
	}
	return bs
}

func TestHalfClose(t *testing.T) {
	ack := enc(t, &decode.Connack{Base: v5})
	ping := enc(t, &decode.Pingresp{Base: v5})
	tr := runTimed(t, inspect.View{}, []string{"half_close dir=s2c after=CONNACK"}, []timedFrame{{stream.S2C, 0, ack}, {stream.S2C, 0, ping}})
	if !errors.Is(tr.err, proxy.ErrStageShut) || tr.errCall != 0 || len(tr.sent) != 1 || !bytes.Equal(tr.sent[0].b, ack) {
		t.Fatalf("error %v at %d, sent %+v", tr.err, tr.errCall, tr.sent)
	}
	if !strings.Contains(tr.err.Error(), "half-closed towards the device at CONNACK") {
		t.Errorf("error %q", tr.err)
	}
}

func TestSlowClose(t *testing.T) {
	tr := runTimed(t, inspect.View{}, []string{"slow_close dir=s2c d=3s"}, []timedFrame{{stream.S2C, 0, enc(t, &decode.Pingresp{Base: v5})}})
	if len(tr.sent) != 1 || len(tr.applied) != 0 {
		t.Fatalf("frames are not the slow close's: sent %+v applied %+v", tr.sent, tr.applied)
	}
	tr.stages[stream.C2S].(proxy.EndHolder).HoldEnd()
	if got := tr.clock.Now().Sub(t0); got != 0 {
		t.Errorf("the c2s end was held %v; the rule is s2c", got)
	}
	tr.stages[stream.S2C].(proxy.EndHolder).HoldEnd()
	if got := tr.clock.Now().Sub(t0); got != 3*time.Second {
		t.Errorf("the s2c end was held %v, want 3s", got)
	}
	if len(tr.applied) != 1 || tr.applied[0].Did != "close held 3s" || tr.applied[0].Dir != stream.S2C {
		t.Errorf("applied %+v", tr.applied)
	}
}

// TestSlowCloseCutShort: a close held while the connection is taken down ends at once, with an
// error and a record that says so (it used to be dropped by the proxy, and no record said why
// the hold was shorter).
func TestSlowCloseCutShort(t *testing.T) {
	var applied []Applied
	set := reportingSet(t, &applied, "slow_close dir=s2c d=3s")
	clock, done := fakeclock.New(t0), make(chan struct{})
	st := set.Stages(&stream.Conn{ID: 1}, stream.S2C, proxy.StageEnv{Now: clock.Now, Clock: clock, Done: done})[0]
	close(done)
	if err := st.(proxy.EndHolder).HoldEnd(); !errors.Is(err, proxy.ErrDirClosed) {
		t.Errorf("HoldEnd on a connection taken down: %v", err)
	}
	if len(applied) != 1 || !strings.HasPrefix(applied[0].Did, "close hold cut short: ") {
		t.Errorf("applied %+v", applied)
	}
}

// TestWaitInterrupted: a wait ends when the connection is taken down (StageEnv.Done).
func TestWaitInterrupted(t *testing.T) {
	done := make(chan struct{})
	e := &dirEnv{env: proxy.StageEnv{Done: done}}
	close(done)
	if err := e.waitUntil(time.Now().Add(time.Hour)); !errors.Is(err, proxy.ErrDirClosed) {
		t.Errorf("wait of an hour on a connection taken down: %v", err)
	}
}

func TestCheckTransports(t *testing.T) {
	for _, tc := range []struct {
		rule           string
		device, broker stream.Transport
		want           string
	}{
		{"reset", stream.TCP, stream.TCP, ""},
		{"reset dir=s2c", stream.WebSocket, stream.Memory, ""},
		{"reset", stream.TLS, stream.Memory, "reset towards the embedded broker: its connection is in memory"},
		{"reset dir=c2s", stream.TCP, stream.Memory, "in memory and has no reset"},
		{"slicer at=remaining_length", stream.WebSocket, stream.Memory, ""},
		{"half_close dir=c2s", stream.TLS, stream.Memory, ""},
	} {
		rs, err := ParseAll([]string{tc.rule})
		if err != nil {
			t.Fatal(err)
		}
		err = CheckTransports(rs, tc.device, tc.broker)
		if (tc.want == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrRule))) {
			t.Errorf("%q %s→%s: %v, want %q", tc.rule, tc.device, tc.broker, err, tc.want)
		}
	}
}

// TestAddChecksTransports: a rule added at run time (the control API) that cannot act on the
// proxy's transports is refused, and the set's rules stay as they were.
func TestAddChecksTransports(t *testing.T) {
	s := &Set{Device: stream.TCP, Broker: stream.Memory}
	r, err := Parse("reset dir=c2s", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(r); err == nil || !strings.Contains(err.Error(), "in memory and has no reset") {
		t.Errorf("Add: %v", err)
	}
	if n := len(s.List()); n != 0 {
		t.Errorf("%d rules after a refused one", n)
	}
	r, _ = Parse("reset dir=s2c", 2)
	if err := s.Add(r); err != nil || len(s.List()) != 1 {
		t.Errorf("Add towards the device: %v, %d rules", err, len(s.List()))
	}
}

func TestTransportParseErrors(t *testing.T) {
	for _, tc := range []struct{ rule, want string }{
		{"latency", "d= is required"},
		{"latency d=fast", "column 9: d: \"fast\" is not a duration"},
		{"latency d=-1s", "is not a duration"},
		{"bandwidth", "rate= is required"},
		{"bandwidth rate=0", "rate: \"0\" is not a number from 1"},
		{"slicer at=middle", "at: \"middle\" is not one of"},
		{"slicer at=header size=3", "size= applies to at=random only"},
		{"slicer at=payload type=PUBACK", "slicer does not apply to PUBACK"},
		{"half_close", "give dir=c2s (towards the broker) or dir=s2c"},
		{"slow_close", "d= is required"},
		{"stall after=PUBLISH", "after= applies to disconnect, reset and half_close only"},
		{"reset bytes=0", "bytes: \"0\" is not a number from 1"},
		{"malformed", "kind= is required"},
		{"malformed kind=weird", "kind: \"weird\" is not one of"},
		{"malformed kind=length by=0", "by=0 leaves the Remaining Length right"},
		{"malformed kind=utf8 type=SUBSCRIBE", "malformed does not apply to SUBSCRIBE"},
		{"malformed kind=flags type=PUBLISH", "a PUBLISH's flags are DUP, QoS and RETAIN"},
		{"malformed kind=vbi5 by=2", "by does not apply to malformed"},
	} {
		_, err := Parse(tc.rule, 1)
		if err == nil || !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.rule, err, tc.want)
		}
	}
}
