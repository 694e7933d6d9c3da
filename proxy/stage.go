package proxy

import (
	"math/rand/v2"
	"time"

	"github.com/mqscope/mqscope/decode"
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

// Frame is one whole MQTT frame going through a direction's stages.
type Frame struct {
	Conn  *stream.Conn
	Dir   stream.Dir
	Time  time.Time // when its last byte was read
	Type  decode.Type
	Bytes []byte // the frame, fixed header included; valid during the call only
}

// StageEnv is what a stage may depend on besides the frames: the pipeline's clock and random
// source (from Config, so tests are deterministic).
type StageEnv struct {
	Now  func() time.Time
	Rand *rand.Rand
}

// framePipe runs a direction's stages.
type framePipe struct {
	stages      []Stage
	fr          decode.Framer
	passthrough bool
	emits       []func([]byte) error
	cur         Frame // the connection, direction and time of the frame going through
}

func newFramePipe(stages []Stage, max int, final func([]byte) error) *framePipe {
	fp := &framePipe{stages: stages, fr: *decode.NewFramer(max)}
	fp.emits = make([]func([]byte) error, len(stages)+1)
	fp.emits[len(stages)] = final
	for i := len(stages) - 1; i >= 0; i-- {
		next := fp.emits[i+1]
		fp.emits[i] = func(b []byte) error {
			f := fp.cur
			f.Bytes = b
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
	final := fp.emits[len(fp.stages)]
	if fp.passthrough {
		return final(b)
	}
	fp.fr.Write(b)
	for {
		frame, err := fp.fr.Next()
		if err != nil {
			fp.passthrough = true
			rest := fp.fr.Pending()
			fp.fr.Reset()
			return final(rest)
		}
		if frame == nil {
			break
		}
		fp.cur = Frame{Conn: info, Dir: dir, Time: t}
		if err := fp.emits[0](frame); err != nil {
			return err
		}
	}
	if fp.fr.Buffered() == 0 {
		fp.fr.Reset() // hold no memory between frames
	}
	return nil
}
