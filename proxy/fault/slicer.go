package fault

import (
	"fmt"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("slicer", "[at=random|remaining_length|header|payload] [size=N] [delay=DURATION]",
		"write each frame in pieces, each its own write (TCP segment, TLS record,\nWebSocket message): random sizes from 1 to size (default 4, seeded); or\ncut after the first byte of a Remaining Length of 2 or more bytes (before it\nwhen it has one), after the fixed header, or before a PUBLISH's payload;\nwith delay between the pieces",
		func(r *Rule, params map[string]token) (Fault, error) {
			s := &Slicer{}
			var err error
			if s.At, err = takeWord(params, "at", "random", "remaining_length", "header", "payload"); err != nil {
				return nil, err
			}
			if s.At == "payload" {
				if err := r.onlyTypes(decode.PUBLISH); err != nil {
					return nil, err
				}
			}
			def := 0
			if s.At == "random" {
				def = 4
			}
			if s.Size, err = takeInt(params, "size", def, 1, 1<<20); err != nil {
				return nil, err
			}
			if s.At != "random" && s.Size != 0 {
				return nil, fmt.Errorf("size= applies to at=random only")
			}
			s.Delay, err = takeDuration(params, "delay", 0)
			return s, err
		})
}

// Slicer writes a frame in pieces: of random sizes (1 to Size), or cut at a place of the
// frame's format (At); Delay apart.
type Slicer struct {
	At    string
	Size  int
	Delay time.Duration
	env   *dirEnv
}

func (s *Slicer) open(env *dirEnv) Fault { c := *s; c.env = env; return &c }

func (s *Slicer) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	b := f.Bytes
	var cuts []int // offsets where a piece begins, after the first
	var where string
	switch s.At {
	case "random":
		for off := 1 + s.env.intN(s.Size); off < len(b); off += 1 + s.env.intN(s.Size) {
			cuts = append(cuts, off)
		}
		where = "at random"
	case "remaining_length":
		h, ok, err := decode.ParseHeader(b)
		if !ok || err != nil {
			return Result{Skip: true}, nil
		}
		if h.HeaderLen > 2 {
			cuts, where = []int{2}, fmt.Sprintf("inside its %d-byte Remaining Length", h.HeaderLen-1)
		} else {
			cuts, where = []int{1}, "before its 1-byte Remaining Length"
		}
	case "header":
		h, ok, err := decode.ParseHeader(b)
		if !ok || err != nil || h.HeaderLen == len(b) {
			return Result{Skip: true}, nil
		}
		cuts, where = []int{h.HeaderLen}, "after its fixed header"
	case "payload":
		p, ok := f.Packet().(*decode.Publish)
		if !ok || malformed(p) || len(p.Payload) == 0 {
			return Result{Skip: true}, nil
		}
		cuts, where = []int{len(b) - len(p.Payload)}, "before its payload"
	}
	if len(cuts) == 0 {
		return Result{Skip: true}, nil
	}
	res := Result{Pieces: true, Did: fmt.Sprintf("%s written in %d pieces, cut %s", describe(f), len(cuts)+1, where)}
	start := 0
	for _, c := range append(cuts, len(b)) {
		res.Out = append(res.Out, b[start:c])
		start = c
	}
	if s.Delay > 0 {
		now := s.env.now()
		for k := range res.Out {
			res.At = append(res.At, now.Add(time.Duration(k)*s.Delay))
		}
		res.Did += fmt.Sprintf(", %v apart", s.Delay)
	}
	return res, nil
}
