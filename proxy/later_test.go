package proxy

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/fakeclock"
	"github.com/mqscope/mqscope/stream"
)

// delayStage sends the frames of one type later, by d on env's clock, and lets others pass;
// it records what was dropped and whether End was called.
type delayStage struct {
	env   StageEnv
	typ   decode.Type
	d     time.Duration
	mu    sync.Mutex
	drops []error
	ended bool
}

func (s *delayStage) Frame(f *Frame, emit func([]byte) error) error {
	if f.Type != s.typ {
		return emit(f.Bytes)
	}
	b := append([]byte(nil), f.Bytes...)
	s.env.Later.After(s.d, func(emit func([]byte) error) { emit(b) }, func(err error) {
		s.mu.Lock()
		s.drops = append(s.drops, err)
		s.mu.Unlock()
	})
	return nil
}

func (s *delayStage) End() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
}

func (s *delayStage) dropped() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.drops...)
}

func puback(id byte) []byte { return []byte{0x40, 0x02, 0x00, id} }

var pingresp = []byte{0xD0, 0x00}

// TestLater: frames a stage sends later go out when the clock reaches their time, whole, after
// what was sent before, in the order of their times (and of their scheduling for equal times),
// stamped with the time they go; once the direction ends, what is pending is dropped and
// reported, and nothing more is sent.
func TestLater(t *testing.T) {
	t0 := time.Unix(100, 0)
	clock := fakeclock.New(t0)
	later := newLater(clock)
	st := &delayStage{env: StageEnv{Clock: clock, Later: later}, typ: decode.PUBACK, d: 2 * time.Second}
	type sent struct {
		b  []byte
		at time.Time
	}
	var out []sent
	var fp *framePipe
	fp = newFramePipe([]Stage{st}, 0, func(b []byte) error {
		out = append(out, sent{append([]byte(nil), b...), fp.cur.Time})
		return nil
	}, later)
	feed := func(b []byte) {
		t.Helper()
		if err := fp.feed(&stream.Conn{ID: 1}, stream.S2C, clock.Now(), b); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(step string, want ...sent) {
		t.Helper()
		if len(out) != len(want) {
			t.Fatalf("%s: sent %d frames %v, want %v", step, len(out), out, want)
		}
		for i := range want {
			if !bytes.Equal(out[i].b, want[i].b) || !out[i].at.Equal(want[i].at) {
				t.Fatalf("%s: frame %d is % x at %v, want % x at %v", step, i, out[i].b, out[i].at, want[i].b, want[i].at)
			}
		}
	}
	// PUBACK 1, then a PINGRESP cut in two reads.
	feed(append(puback(1), pingresp[0]))
	feed(pingresp[1:])
	expect("at once", sent{pingresp, t0})
	clock.Advance(time.Second)
	expect("after 1s", sent{pingresp, t0})
	feed(puback(2)) // due at 3s
	feed(puback(3)) // due at 3s too, after 2
	clock.Advance(time.Second)
	expect("after 2s", sent{pingresp, t0}, sent{puback(1), t0.Add(2 * time.Second)})
	clock.Advance(5 * time.Second)
	t3 := t0.Add(3 * time.Second)
	expect("after 7s", sent{pingresp, t0}, sent{puback(1), t0.Add(2 * time.Second)}, sent{puback(2), t3}, sent{puback(3), t3})
	if n := later.Pending(); n != 0 || len(st.dropped()) != 0 {
		t.Fatalf("%d pending, dropped %v", n, st.dropped())
	}

	// The direction ends with one pending: it is dropped and reported, and one scheduled after
	// the end is too.
	feed(puback(4))
	fp.end()
	if !st.ended {
		t.Error("the stage was not told that its direction ended")
	}
	feed(puback(5))
	clock.Advance(time.Minute)
	if len(out) != 4 {
		t.Errorf("sent %d frames after the end, want none", len(out)-4)
	}
	if d := st.dropped(); len(d) != 2 || !errors.Is(d[0], ErrDirClosed) || !errors.Is(d[1], ErrDirClosed) {
		t.Errorf("dropped %v, want ErrDirClosed twice", d)
	}
}

// TestLaterNotFramed: once a direction's stream cannot be framed, a frame due later has no
// boundary to go at: it is dropped, saying so.
func TestLaterNotFramed(t *testing.T) {
	clock := fakeclock.New(time.Unix(0, 0))
	later := newLater(clock)
	st := &delayStage{env: StageEnv{Clock: clock, Later: later}, typ: decode.PUBACK, d: time.Second}
	var out []byte
	fp := newFramePipe([]Stage{st}, 0, func(b []byte) error { out = append(out, b...); return nil }, later)
	junk := []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}
	if err := fp.feed(&stream.Conn{ID: 1}, stream.S2C, clock.Now(), append(puback(1), junk...)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if !bytes.Equal(out, junk) {
		t.Errorf("sent % x, want the unframed bytes % x only", out, junk)
	}
	if d := st.dropped(); len(d) != 1 || !errors.Is(d[0], ErrNotFramed) {
		t.Errorf("dropped %v, want ErrNotFramed", d)
	}
}

// TestStageSleep: Sleep waits on the stage's clock, and ends early, with ErrDirClosed, when the
// proxy ends the connection.
func TestStageSleep(t *testing.T) {
	clock := fakeclock.New(time.Unix(0, 0))
	done := make(chan struct{})
	env := StageEnv{Clock: clock, Done: done}
	woke := make(chan error, 1)
	go func() { woke <- env.Sleep(5 * time.Second) }()
	if !clock.WaitTimers(1, 10*time.Second) {
		t.Fatal("Sleep set no timer")
	}
	clock.Advance(4 * time.Second)
	select {
	case err := <-woke:
		t.Fatalf("Sleep returned %v after 4s of 5", err)
	default:
	}
	clock.Advance(time.Second)
	if err := <-woke; err != nil {
		t.Fatalf("Sleep = %v", err)
	}
	go func() { woke <- env.Sleep(time.Hour) }()
	if !clock.WaitTimers(1, 10*time.Second) {
		t.Fatal("Sleep set no timer")
	}
	close(done)
	if err := <-woke; !errors.Is(err, ErrDirClosed) {
		t.Fatalf("Sleep = %v, want ErrDirClosed", err)
	}
	if n := clock.Timers(); n != 0 {
		t.Errorf("%d timers left set", n)
	}
}

// TestLaterThroughProxy: a PUBACK the broker sent, delayed 2 s on the proxy's clock, reaches the
// device after the PINGRESP the broker sent after it, and the observers see the broker's
// direction as the device received it. A PUBACK still delayed when the connection closes is
// never sent nor observed, and the stage hears it was dropped.
func TestLaterThroughProxy(t *testing.T) {
	v5 := decode.Base{Version: decode.V5}
	clock := fakeclock.New(time.Unix(1000, 0))
	col := newCollector()
	stages := make(chan *delayStage, 1)
	srv := startProxy(t, Config{Embedded: true, Clock: clock, Observers: []stream.Observer{col},
		Stages: func(_ *stream.Conn, d stream.Dir, env StageEnv) []Stage {
			if d != stream.S2C {
				return nil
			}
			st := &delayStage{env: env, typ: decode.PUBACK, d: 2 * time.Second}
			stages <- st
			return []Stage{st}
		}})
	dev := connectDevice(t, srv.Addr().String(), "later")
	st := <-stages
	dev.send(t, &decode.Publish{Base: v5, Topic: "a/b", QoS: 1, PacketID: 7, Payload: []byte("x")})
	if !clock.WaitTimers(1, 10*time.Second) {
		t.Fatal("the PUBACK was not delayed")
	}
	dev.send(t, &decode.Pingreq{Base: v5})
	if typ := dev.readFrame(t); typ != decode.PINGRESP {
		t.Fatalf("device got %v first, want PINGRESP", typ)
	}
	clock.Advance(2 * time.Second)
	if typ := dev.readFrame(t); typ != decode.PUBACK {
		t.Fatalf("device got %v, want the delayed PUBACK", typ)
	}
	col.waitData(t, 1, stream.S2C, len(dev.received))
	col.mu.Lock()
	seen := append([]byte(nil), col.conns[1].data[stream.S2C].Bytes()...)
	col.mu.Unlock()
	if !bytes.Equal(seen, dev.received) {
		t.Errorf("observers saw % x from the broker, the device got % x", seen, dev.received)
	}

	dev.send(t, &decode.Publish{Base: v5, Topic: "a/b", QoS: 1, PacketID: 8, Payload: []byte("y")})
	if !clock.WaitTimers(1, 10*time.Second) {
		t.Fatal("the second PUBACK was not delayed")
	}
	dev.send(t, &decode.Disconnect{Base: v5})
	if rest := dev.readToEnd(t); len(rest) != 0 {
		t.Errorf("device got % x after its DISCONNECT, want nothing", rest)
	}
	col.waitClosed(t, 1)
	clock.Advance(time.Minute)
	if d := st.dropped(); len(d) != 1 || !errors.Is(d[0], ErrDirClosed) {
		t.Errorf("dropped %v, want the second PUBACK with ErrDirClosed", d)
	}
	col.mu.Lock()
	after := col.conns[1].data[stream.S2C].Len()
	col.mu.Unlock()
	if after != len(seen) {
		t.Errorf("observers saw %d more bytes from the broker after the first PUBACK", after-len(seen))
	}
}
