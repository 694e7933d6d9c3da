package proxy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// Stage is one step of a direction's pipeline at frame level, where fault rules plug in (in
// the manner of toxiproxy's toxics, but on MQTT frames): it gets each whole frame in order and
// calls emit for what should go on (the frame itself, nothing, other bytes, later...). A
// direction without stages forwards bytes as they come, without framing them.
//
// A direction with stages frames the stream itself, holding at most Config.StageMaxFrame
// bytes; when the stream cannot be framed (a malformed or oversized fixed header), the rest of
// it is forwarded untouched, past the stages: bytes that cannot be decoded still flow.
type Stage interface {
	Frame(f *Frame, emit func(b []byte) error) error
}

// Ender is a Stage that may hold frames (to send them after others, or later): End is called
// once its direction has ended, after the last Frame and with nothing more sent in the
// direction, so that it can report what it held and never sent.
type Ender interface {
	End()
}

// ErrStageClose, wrapped in the error a stage returns, ends the connection as the proxy's doing
// (a fault's DISCONNECT then close): what the stage emitted before is sent, both sides are
// closed, and the connection's end says the error.
var ErrStageClose = errors.New("closed by a stage")

// ErrStageReset, wrapped in the error a stage returns, ends the connection with a TCP reset
// (linger 0) to both sides after what the stage emitted: beneath TLS and WebSocket, so neither
// a close_notify nor a close frame goes first. A side in memory (the embedded broker) is
// closed, having no reset.
var ErrStageReset = errors.New("reset by a stage")

// ErrStageShut, wrapped in the error a stage returns, closes the sending half towards the
// direction's destination (TCP FIN, TLS close_notify, WebSocket close frame) after what the
// stage emitted, as if the source had closed: that direction ends, the other goes on.
var ErrStageShut = errors.New("half-closed by a stage")

// ErrSenderGone, wrapped in the error a stage returns, says that it gave up a frame it held
// because the direction's source went away meanwhile (StageEnv.Watch).
var ErrSenderGone = fmt.Errorf("the sender went away: %w", ErrDirClosed)

// EndHolder is a Stage that may hold its direction's end (the source closed or reset) before it
// is passed on: HoldEnd is called then, and may wait (StageEnv.Sleep: a slow close) while what
// Later sends still goes. Its error is not passed on: the end is, either way.
type EndHolder interface {
	HoldEnd() error
}

// Frame is one whole MQTT frame going through a direction's stages.
type Frame struct {
	Conn  *stream.Conn
	Dir   stream.Dir
	Time  time.Time // when its last byte was read
	Type  decode.Type
	Bytes []byte // the frame, fixed header included; valid during the call only
	// State is the connection's negotiated state as inspected so far (version, the limits of
	// each direction, both alias tables), read live; the zero View when the proxy inspects
	// nothing. Stages run before the observers, so it holds every frame forwarded before this
	// one, in both directions, and not this one.
	State inspect.View

	version decode.Version // of the device's CONNECT, when State does not know it
	packet  decode.Packet
	alter   func(stream.Dir, time.Time, *stream.Alteration)
}

// Alter tells the connection's observers (stream.Alterer) what a fault did to the frame, before
// the stage emits what it sends instead: the inspection then shows the fault right before the
// frames it sent, and a recording comments them.
func (f *Frame) Alter(a *stream.Alteration) {
	if f.alter != nil {
		f.alter(f.Dir, f.Time, a)
	}
}

// Packet returns the frame decoded (without field locations) with the connection's protocol
// version, decoding it on first use; a frame a stage rewrote is decoded anew in the next stage.
func (f *Frame) Packet() decode.Packet {
	if f.packet == nil {
		v := f.State.Version()
		if v == 0 {
			v = f.version
		}
		if v == 0 {
			v = decode.V5
		}
		f.packet = decode.DecodeWith(f.Bytes, v, decode.Options{Lean: true})
	}
	return f.packet
}

// StageEnv is what a stage may depend on besides the frames: the pipeline's clock and random
// source (from Config, so tests are deterministic), and its direction's Later.
type StageEnv struct {
	Now   func() time.Time // Clock.Now
	Rand  *rand.Rand
	Clock Clock // nil: the real clock
	// Later sends the stage's bytes in its direction when their time comes; nil where nothing
	// can be sent later (a stage must then forward at once).
	Later *Later
	// Done is closed when the proxy ends the connection, or the connection is going anyway (a
	// side reset or gone, not half-closed); nil: never. It ends a Sleep.
	Done <-chan struct{}
	// Alter tells the connection's observers what a stage did outside a Frame call (a frame
	// sent later, frames released), as Frame.Alter does, before it sends; nil: nobody listens.
	Alter func(*stream.Alteration)
	// Watch, called by a stage while it holds a frame in its Frame call, has the direction's
	// source read on meanwhile and returns a channel closed when the source has gone (reset,
	// closed, a read error): the stage then gives the frame up and returns an error wrapping
	// ErrSenderGone, and the direction ends as that read says. The bytes read meanwhile go
	// through the stages after the frame (up to Config.StageMaxFrame of them; beyond, the
	// source waits). nil: the source cannot be watched (an in-memory one, gone only when the
	// proxy ends the connection, which Done says).
	Watch func() <-chan struct{}
}

// Sleep waits d on the clock, in the direction's goroutine: nothing else goes in the direction
// meanwhile (latency). It returns ErrDirClosed, early, when the proxy ends the connection.
func (e StageEnv) Sleep(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	c := e.Clock
	if c == nil {
		c = realClock{now: time.Now}
	}
	woke := make(chan struct{})
	stop := c.AfterFunc(d, func() { close(woke) })
	select {
	case <-woke:
		return nil
	case <-e.Done:
		stop()
		return ErrDirClosed
	}
}

// framePipe runs a direction's stages. Its Later's mu is held while bytes go through them.
type framePipe struct {
	stages      []Stage
	later       *Later
	fr          decode.Framer
	passthrough bool
	emits       []func([]byte) error
	cur         Frame // the connection, direction and time of the frame going through
	// State and version give each frame its Frame.State and version; alter its Alter.
	state   inspect.View
	version func() decode.Version
	alter   func(stream.Dir, time.Time, *stream.Alteration)
	// bypass hears once that the direction cannot be framed any more (nil: nobody).
	bypass func(stream.Dir, time.Time, string)
}

// newFramePipe makes a direction's pipeline ending in final; later (nil: one of its own, on the
// real clock) sends what stages emit later, with final.
func newFramePipe(stages []Stage, max int, final func([]byte) error, later *Later) *framePipe {
	if later == nil {
		later = newLater(nil)
	}
	fp := &framePipe{stages: stages, later: later, fr: *decode.NewFramer(max)}
	later.send = func(t time.Time, b []byte) error {
		fp.cur.Time = t // as final reads it; mu is held
		return final(b)
	}
	later.framed = func() bool { return !fp.passthrough }
	fp.emits = make([]func([]byte) error, len(stages)+1)
	fp.emits[len(stages)] = final
	for i := len(stages) - 1; i >= 0; i-- {
		next := fp.emits[i+1]
		fp.emits[i] = func(b []byte) error {
			f := fp.cur
			f.Bytes, f.packet = b, nil
			if len(b) > 0 {
				f.Type = decode.Type(b[0] >> 4)
			}
			return stages[i].Frame(&f, next)
		}
	}
	return fp
}

// feed takes the bytes just read and forwards what the stages let through.
func (fp *framePipe) feed(info *stream.Conn, dir stream.Dir, t time.Time, b []byte) error {
	fp.later.mu.Lock()
	defer fp.later.mu.Unlock()
	final := fp.emits[len(fp.stages)]
	fp.cur.Time = t
	if fp.passthrough {
		return final(b)
	}
	fp.fr.Write(b)
	for {
		frame, err := fp.fr.Next()
		if err != nil {
			// The stages cannot see frames any more: the bytes go on unchanged, said once.
			fp.passthrough = true
			if fp.bypass != nil {
				fp.bypass(dir, t, fmt.Sprintf("the bytes from stream offset %d cannot be cut into frames (%v)", fp.fr.Offset(), err))
			}
			rest := fp.fr.Pending()
			fp.fr.Reset()
			return final(rest)
		}
		if frame == nil {
			break
		}
		fp.cur = Frame{Conn: info, Dir: dir, Time: t, State: fp.state, alter: fp.alter}
		if fp.version != nil {
			fp.cur.version = fp.version()
		}
		if err := fp.emits[0](frame); err != nil {
			return err
		}
	}
	if fp.fr.Buffered() == 0 {
		fp.fr.Release() // hold no memory between frames; the offset goes on
	}
	return nil
}

// end tells the stages that hold frames (Ender) that the direction has ended, once nothing
// more can be sent later in it.
func (fp *framePipe) end() {
	fp.later.Close()
	for _, s := range fp.stages {
		if e, ok := s.(Ender); ok {
			e.End()
		}
	}
}

// holdEnd lets the stages that hold their direction's end (EndHolder) hold it, in order, and
// returns the first error: a hold cut short, which the stage has reported (fault.Set records
// it); the stages after it are not asked to hold.
func (fp *framePipe) holdEnd() error {
	for _, s := range fp.stages {
		if e, ok := s.(EndHolder); ok {
			if err := e.HoldEnd(); err != nil {
				return err
			}
		}
	}
	return nil
}
