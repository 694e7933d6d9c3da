package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

// dropStage drops frames of one type and counts what it saw.
type dropStage struct {
	drop decode.Type
	mu   sync.Mutex
	seen []decode.Type
}

func (s *dropStage) Frame(f *Frame, emit func([]byte) error) error {
	s.mu.Lock()
	s.seen = append(s.seen, f.Type)
	s.mu.Unlock()
	if f.Type == s.drop {
		return nil
	}
	return emit(f.Bytes)
}

// dropPingProxy starts a proxy whose client-to-server direction has a stage dropping PINGREQ
// (st), in front of a broker that reads everything until EOF and sends it on got; it returns
// a connection of a device to it.
func dropPingProxy(t *testing.T, observers ...stream.Observer) (c net.Conn, st *dropStage, got chan []byte) {
	got = make(chan []byte, 1)
	addr := peer.Serve(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- b
		c.Close()
	})
	st = &dropStage{drop: decode.PINGREQ}
	srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: addr}, Observers: observers,
		Stages: func(_ *stream.Conn, d stream.Dir, env StageEnv) []Stage {
			if d == stream.C2S && env.Now != nil && env.Rand != nil {
				return []Stage{st}
			}
			return nil
		}})
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, st, got
}

func TestStages(t *testing.T) {
	c, st, got := dropPingProxy(t)
	connect, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "s"})
	ping := []byte{0xC0, 0x00}
	junk := []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0xC0, 0x00} // a malformed header, then what looks like PINGREQ
	// In pieces: however the proxy's reads cut them (TestFramePipe feeds a pipe byte by byte),
	// the stage sees one frame. Observers see only what the stages let through, so there is
	// nothing to wait on between the pieces.
	for _, piece := range [][]byte{connect[:1], connect[1:3], connect[3:]} {
		c.Write(piece)
	}
	c.Write(ping)
	c.Write(junk)
	c.(*net.TCPConn).CloseWrite()
	select {
	case b := <-got:
		want := append(append([]byte{}, connect...), junk...)
		if !bytes.Equal(b, want) {
			t.Errorf("broker got % x\nwant % x", b, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reached the broker")
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.seen) != 2 || st.seen[0] != decode.CONNECT || st.seen[1] != decode.PINGREQ {
		t.Errorf("stage saw %v", st.seen)
	}
}

// runFramePipe feeds data to a framePipe with the given stages in pieces of the sizes in plan
// (cycled) and returns what it forwarded, and what it said when it stopped framing (each time).
func runFramePipe(t testing.TB, stages []Stage, max int, data []byte, plan []int) (out []byte, bypassed []string) {
	t.Helper()
	fp := newFramePipe(stages, max, func(b []byte) error {
		out = append(out, b...)
		return nil
	}, nil)
	fp.bypass = func(_ stream.Dir, _ time.Time, why string) { bypassed = append(bypassed, why) }
	for i, off := 0, 0; off < len(data); i++ {
		n := min(len(data)-off, plan[i%len(plan)])
		if err := fp.feed(&stream.Conn{ID: 1}, stream.C2S, time.Unix(1, 0), data[off:off+n]); err != nil {
			t.Fatalf("feed: %v", err)
		}
		off += n
	}
	return out, bypassed
}

// pipeWant is what a framePipe whose stage drops frames of type drop forwards of data, from
// SplitFrame on the whole stream: the frames kept, then, once a header cannot be framed, every
// byte from there on; a last frame cut short is held. It returns the types of the frames the
// stage sees too, and the offset of the header that cannot be framed (-1: none).
func pipeWant(data []byte, max int, drop decode.Type) (out []byte, seen []decode.Type, stop int) {
	rest := data
	for len(rest) > 0 {
		n, err := decode.SplitFrame(rest, max)
		if err != nil {
			return append(out, rest...), seen, len(data) - len(rest)
		}
		if n == 0 {
			break
		}
		typ := decode.Type(rest[0] >> 4)
		seen = append(seen, typ)
		if typ != drop {
			out = append(out, rest[:n]...)
		}
		rest = rest[n:]
	}
	return out, seen, -1
}

// sameBypass fails t unless the pipe said once that it stopped framing at stop, or (stop < 0)
// never said it.
func sameBypass(t testing.TB, bypassed []string, stop int) {
	t.Helper()
	switch {
	case stop < 0 && len(bypassed) > 0:
		t.Fatalf("said it stopped framing: %q", bypassed)
	case stop >= 0 && (len(bypassed) != 1 || !strings.Contains(bypassed[0], fmt.Sprintf("stream offset %d ", stop))):
		t.Fatalf("said %q, want once that it stopped at %d", bypassed, stop)
	}
}

func TestFramePipe(t *testing.T) {
	stream, _ := trackStream(t)
	malformed := []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01, 0xC0, 0x00}
	cut := stream[:len(stream)-3]
	for _, tc := range []struct {
		name string
		data []byte
		max  int
		drop decode.Type
	}{
		{"every frame on", stream, 0, 0},
		{"PINGREQ dropped", stream, 0, decode.PINGREQ},
		{"PUBLISH dropped", stream, 0, decode.PUBLISH},
		{"a last frame cut short is held", cut, 0, 0},
		{"malformed header: the rest passes untouched", append(append([]byte{}, stream[:2]...), malformed...), 0, decode.PINGREQ},
		{"frame over the limit: the rest passes untouched", stream, 1000, decode.PINGREQ},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantSeen, stop := pipeWant(tc.data, tc.max, tc.drop)
			for _, plan := range [][]int{{len(tc.data)}, {1}, {7, 1460}} {
				st := &dropStage{drop: tc.drop}
				got, bypassed := runFramePipe(t, []Stage{st}, tc.max, tc.data, plan)
				sameBypass(t, bypassed, stop)
				if !bytes.Equal(got, want) {
					t.Fatalf("pieces %v: forwarded %d bytes, want %d", plan, len(got), len(want))
				}
				if !slices.Equal(st.seen, wantSeen) {
					t.Fatalf("pieces %v: the stage saw %v, want %v", plan, st.seen, wantSeen)
				}
			}
		})
	}
}

// TestFramePipeChain: stages run in order, each emitting into the next; a stage sees the
// connection, direction and time of the frame; an error from the last emit comes back.
func TestFramePipeChain(t *testing.T) {
	var order []string
	rec := func(name string) Stage {
		return stageFunc(func(f *Frame, emit func([]byte) error) error {
			if f.Conn.ID != 7 || f.Dir != stream.S2C || !f.Time.Equal(time.Unix(5, 0)) {
				t.Errorf("%s: frame of %v %v at %v", name, f.Conn.ID, f.Dir, f.Time)
			}
			order = append(order, name+":"+f.Type.String())
			return emit(f.Bytes)
		})
	}
	// The second stage doubles each PINGRESP.
	double := stageFunc(func(f *Frame, emit func([]byte) error) error {
		if f.Type == decode.PINGRESP {
			if err := emit(f.Bytes); err != nil {
				return err
			}
		}
		return emit(f.Bytes)
	})
	refused := errors.New("refused")
	var out []byte
	fp := newFramePipe([]Stage{rec("a"), double, rec("b")}, 0, func(b []byte) error {
		out = append(out, b...)
		if len(out) > 8 { // the second PINGRESP, at its first copy
			return refused
		}
		return nil
	}, nil)
	if err := fp.feed(&stream.Conn{ID: 7}, stream.S2C, time.Unix(5, 0), []byte{0xD0, 0x00, 0x40, 0x02}); err != nil {
		t.Fatal(err)
	}
	if err := fp.feed(&stream.Conn{ID: 7}, stream.S2C, time.Unix(5, 0), []byte{0x00, 0x01, 0xD0, 0x00}); !errors.Is(err, refused) {
		t.Fatalf("feed = %v, want the final emit's error", err)
	}
	want := "a:PINGRESP b:PINGRESP b:PINGRESP a:PUBACK b:PUBACK a:PINGRESP b:PINGRESP"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("stages ran %s\nwant %s", got, want)
	}
}

type stageFunc func(f *Frame, emit func([]byte) error) error

func (s stageFunc) Frame(f *Frame, emit func([]byte) error) error { return s(f, emit) }

// FuzzFramePipe: in any split, a framePipe forwards what SplitFrame on the whole stream says it
// should (pipeWant), and its stage sees the same frames.
func FuzzFramePipe(f *testing.F) {
	stream, _ := trackStream(f)
	f.Add(stream, []byte{1}, uint16(0), uint8(decode.PINGREQ))
	f.Add(stream, []byte{0, 200, 3}, uint16(1000), uint8(decode.PUBLISH))
	f.Add([]byte{0xC0, 0x00, 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0xC0, 0x00}, []byte{2}, uint16(0), uint8(decode.PINGREQ))
	f.Fuzz(func(t *testing.T, data, splits []byte, max uint16, drop uint8) {
		plan := []int{len(data) + 1}
		if len(splits) > 0 {
			plan = plan[:0]
			for _, s := range splits {
				plan = append(plan, 1+int(s))
			}
		}
		want, wantSeen, stop := pipeWant(data, int(max), decode.Type(drop&15))
		st := &dropStage{drop: decode.Type(drop & 15)}
		got, bypassed := runFramePipe(t, []Stage{st}, int(max), data, plan)
		sameBypass(t, bypassed, stop)
		if !bytes.Equal(got, want) {
			t.Fatalf("forwarded % x\nwant % x", got, want)
		}
		if !slices.Equal(st.seen, wantSeen) {
			t.Fatalf("the stage saw %v, want %v", st.seen, wantSeen)
		}
	})
}

// funcStage is a stage written as a function.
type funcStage func(f *Frame, emit func([]byte) error) error

func (s funcStage) Frame(f *Frame, emit func([]byte) error) error { return s(f, emit) }

// readFrame reads one whole MQTT frame from c.
func readFrame(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b []byte
	one := make([]byte, 1)
	for {
		if n, err := decode.SplitFrame(b, 1<<20); err != nil {
			t.Fatal(err)
		} else if n > 0 {
			return b
		}
		if _, err := c.Read(one); err != nil {
			t.Fatalf("reading a frame: %v", err)
		}
		b = append(b, one[0])
	}
}

func encode(t *testing.T, p decode.Packet) []byte {
	t.Helper()
	b, err := decode.Encode(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStagesBeforeObservers: observers see what the stages let through, not what was read: a
// PUBACK a stage drops is neither forwarded nor inspected, so the PUBLISH it answered is still
// in flight for the inspection, as it is for the device.
func TestStagesBeforeObservers(t *testing.T) {
	v5 := decode.Base{Version: decode.V5}
	dropped := make(chan struct{}, 1)
	col := newCollector()
	in := inspector()
	srv := startProxy(t, Config{Embedded: true, Observers: []stream.Observer{in, col},
		Stages: func(_ *stream.Conn, d stream.Dir, _ StageEnv) []Stage {
			if d != stream.S2C {
				return nil
			}
			return []Stage{funcStage(func(f *Frame, emit func([]byte) error) error {
				if f.Type == decode.PUBACK {
					dropped <- struct{}{}
					return nil
				}
				return emit(f.Bytes)
			})}
		}})
	dev := connectDevice(t, srv.Addr().String(), "dropped-puback")
	dev.send(t, &decode.Publish{Base: v5, Topic: "a/b", QoS: 1, PacketID: 7, Payload: []byte("x")})
	select {
	case <-dropped:
	case <-time.After(10 * time.Second):
		t.Fatal("the broker's PUBACK never reached the stage")
	}
	dev.send(t, &decode.Pingreq{Base: v5})
	if typ := dev.readFrame(t); typ != decode.PINGRESP {
		t.Fatalf("device got %v after its PUBLISH, want PINGRESP (the PUBACK was dropped)", typ)
	}
	pingresp := encode(t, &decode.Pingresp{Base: v5})
	col.waitData(t, 1, stream.S2C, len(dev.received))
	col.mu.Lock()
	seen := append([]byte(nil), col.conns[1].data[stream.S2C].Bytes()...)
	col.mu.Unlock()
	if !bytes.Equal(seen, dev.received) || !bytes.HasSuffix(seen, pingresp) {
		t.Errorf("observers saw % x from the broker, the device got % x", seen, dev.received)
	}
	st, ok := in.Snapshot(1)
	if !ok || st.InFlightC2S != 1 {
		t.Errorf("inspection has %d PUBLISH in flight (open %v), want 1: the PUBACK was not delivered", st.InFlightC2S, ok)
	}
}

// TestStageState: a stage sees each frame decoded and the connection's negotiated state as it
// stands: the limits CONNACK granted and the aliases forwarded before the frame.
func TestStageState(t *testing.T) {
	v5 := decode.Base{Version: decode.V5}
	addr := peer.Serve(t, func(c net.Conn) {
		defer c.Close()
		readFrame(t, c) // CONNECT
		ack := encode(t, &decode.Connack{Base: v5, Properties: decode.Properties{
			decode.IntProp(decode.PropMaximumPacketSize, 200), decode.IntProp(decode.PropTopicAliasMaximum, 5)}})
		c.Write(ack)
		io.Copy(io.Discard, c)
	})
	type seen struct {
		typ      decode.Type
		topic    string
		negot    bool
		max      int
		aliasMax int
		alias1   string
	}
	got := make(chan seen, 8)
	srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: addr}, Observers: []stream.Observer{inspector()},
		Stages: func(_ *stream.Conn, d stream.Dir, _ StageEnv) []Stage {
			if d != stream.C2S {
				return nil
			}
			return []Stage{funcStage(func(f *Frame, emit func([]byte) error) error {
				s := seen{typ: f.Packet().Type(), negot: f.State.Negotiated(), max: f.State.Limits(stream.C2S).MaximumPacketSize,
					aliasMax: f.State.Limits(stream.C2S).TopicAliasMaximum}
				if p, ok := f.Packet().(*decode.Publish); ok {
					s.topic = p.Topic
				}
				s.alias1, _ = f.State.Alias(stream.C2S, 1)
				got <- s
				return emit(f.Bytes)
			})}
		}})
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(encode(t, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "state", KeepAlive: 30}))
	readFrame(t, c) // CONNACK
	alias := decode.IntProp(decode.PropTopicAlias, 1)
	c.Write(encode(t, &decode.Publish{Base: v5, Topic: "a/b", Properties: decode.Properties{alias}, Payload: []byte("1")}))
	c.Write(encode(t, &decode.Publish{Base: v5, Properties: decode.Properties{alias}, Payload: []byte("2")}))
	want := []seen{
		{typ: decode.CONNECT},
		{typ: decode.PUBLISH, topic: "a/b", negot: true, max: 200, aliasMax: 5},
		{typ: decode.PUBLISH, topic: "", negot: true, max: 200, aliasMax: 5, alias1: "a/b"},
	}
	for i, w := range want {
		select {
		case s := <-got:
			if s != w {
				t.Errorf("frame %d: stage saw %+v, want %+v", i+1, s, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the stage saw %d frames, want %d", i, len(want))
		}
	}
}

// TestStageClose: a stage that returns ErrStageClose after emitting bytes ends the connection:
// the device gets those bytes and then EOF (not a reset), the broker is closed too, and the end
// is the proxy's, saying the stage's error.
func TestStageClose(t *testing.T) {
	brokerDone := make(chan struct{})
	addr := peer.Serve(t, func(c net.Conn) {
		defer close(brokerDone)
		io.Copy(io.Discard, c) // until the proxy closes
		c.Close()
	})
	col := newCollector()
	bye := []byte{0xE0, 0x01, 0x89} // DISCONNECT 0x89
	srv := startProxy(t, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: addr}, Observers: []stream.Observer{col},
		Stages: func(_ *stream.Conn, d stream.Dir, _ StageEnv) []Stage {
			if d != stream.C2S {
				return nil
			}
			return []Stage{funcStage(func(f *Frame, emit func([]byte) error) error {
				if f.Type != decode.PINGREQ {
					return emit(f.Bytes)
				}
				return errors.Join(emit(bye), fmt.Errorf("%w: test fault", ErrStageClose))
			})}
		}})
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0xC0, 0x00})
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Errorf("device read % x, %v; want EOF", b, err)
	}
	select {
	case <-brokerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the broker's side was not closed")
	}
	if err := col.until(func() bool { cc := col.conns[1]; return cc != nil && cc.by != "" },
		func() error { return errors.New("no close event") }); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	cc := col.conns[1]
	if cc.by != "proxy" || !strings.Contains(cc.reason, "test fault") || !bytes.Equal(cc.data[stream.C2S].Bytes(), bye) {
		t.Errorf("end by %q: %q; c2s % x", cc.by, cc.reason, cc.data[stream.C2S].Bytes())
	}
}

// TestStagesBypassNote: once a direction's bytes cannot be cut into frames, the fault stages
// see no more of it and the bytes pass unchanged; the inspection says so, once, naming the
// sender and where.
func TestStagesBypassNote(t *testing.T) {
	recs := make(chan inspect.Record, 64)
	c, st, got := dropPingProxy(t, &inspect.Observer{Options: inspect.Options{MaxFrame: 1 << 20}, Emit: func(r inspect.Record) { recs <- r }})
	connect, _ := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "b"})
	junk := []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0xC0, 0x00, 0xC0, 0x00} // a malformed header, then PINGREQs
	c.Write(connect)
	c.Write(junk)
	c.(*net.TCPConn).CloseWrite()
	select {
	case b := <-got:
		if want := append(append([]byte{}, connect...), junk...); !bytes.Equal(b, want) {
			t.Errorf("broker got % x\nwant % x", b, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reached the broker")
	}
	var notes []inspect.Note
	for done := false; !done; {
		select {
		case r := <-recs:
			switch r := r.(type) {
			case *inspect.PacketRecord:
				notes = append(notes, r.Notes...)
			case *inspect.CloseRecord:
				notes = append(notes, r.Notes...)
				done = true
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no close record")
		}
	}
	var bypassed []string
	for _, n := range notes {
		if n.Rule == inspect.RuleFaultsBypassed {
			bypassed = append(bypassed, n.Text)
		}
	}
	if len(bypassed) != 1 || !strings.Contains(bypassed[0], "client") || !strings.Contains(bypassed[0], fmt.Sprintf("offset %d", len(connect))) {
		t.Errorf("notes that the rules stopped applying: %q", bypassed)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !slices.Equal(st.seen, []decode.Type{decode.CONNECT}) {
		t.Errorf("the stage saw %v, want the CONNECT only", st.seen)
	}
}
