package fault

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("hold", "[release=EXPR] [for=DURATION]", "hold acknowledgements (default all but PUBREL) so the sender's\nin-flight count grows; release them, in order, once EXPR are held\nor DURATION after the first (default for=5s); receive_maximum and\nin_flight are those of the flow acknowledged",
		func(r *Rule, params map[string]token) (Fault, error) {
			if len(r.Sel.Types) == 0 {
				r.Sel.Types = []decode.Type{decode.PUBACK, decode.PUBREC, decode.PUBCOMP, decode.SUBACK, decode.UNSUBACK}
			}
			if err := r.onlyTypes(ackTypes...); err != nil {
				return nil, err
			}
			h := &Hold{}
			var err error
			if _, ok := params["release"]; ok {
				if h.Release, err = takeExpr(params, "release", ""); err != nil {
					return nil, err
				}
			}
			def := time.Duration(0)
			if h.Release == nil {
				def = 5 * time.Second
			}
			h.For, err = takeDuration(params, "for", def)
			if err == nil && h.Release == nil && h.For == 0 {
				err = fmt.Errorf("hold needs release=EXPR or for=DURATION above 0")
			}
			return h, err
		})
}

// Hold holds the frames it selects and sends them all, in order, once Release of them are
// held, or For after the first of them (when not zero).
type Hold struct {
	Release *Expr // nil: on time only
	For     time.Duration
}

func (h *Hold) Apply(*proxy.Frame, *Values) (Result, error) {
	return Result{}, fmt.Errorf("hold works in a proxy's pipeline only")
}

func (h *Hold) open(env *dirEnv) Fault { return &holdIn{Hold: h, env: env} }

// holdIn is a Hold in one direction of a connection.
type holdIn struct {
	*Hold
	env   *dirEnv
	held  [][]byte
	whats []string
	typ   decode.Type // of the first held
	batch int         // counts the batches released, so a timer knows whether its batch still waits
}

// flowValues are the values of the flow f acknowledges: the PUBLISH (or SUBSCRIBE) sender's
// in-flight count and the Receive Maximum it must obey.
func flowValues(f *proxy.Frame) Values {
	g := *f
	if f.Type != decode.PUBREL {
		g.Dir = f.Dir.Peer()
	}
	v := valuesOf(&g)
	v.Size = len(f.Bytes)
	return v
}

func (h *holdIn) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	if len(h.held) == 0 {
		h.typ = f.Type
	}
	h.held = append(h.held, append([]byte(nil), f.Bytes...))
	h.whats = append(h.whats, describe(f))
	n := len(h.held)
	v := flowValues(f) // read once: the other direction may change them meanwhile
	var used string
	if h.Release != nil {
		release, u, err := h.Release.eval(&v)
		if err != nil {
			return Result{}, err
		}
		used = u
		if n >= release {
			out := h.take()
			return Result{Out: out, Did: fmt.Sprintf("%s held, %d held: all released in order", describe(f), n), Used: used}, nil
		}
	}
	if n == 1 && h.For > 0 {
		if later := h.env.env.Later; later != nil {
			batch := h.batch
			later.After(h.For, func(emit func([]byte) error) {
				if batch != h.batch || len(h.held) == 0 {
					return // released by count meanwhile
				}
				whats, typ := h.whats, h.typ
				out := h.take()
				h.env.report(typ, fmt.Sprintf("%d held released after %v: %s", len(out), h.For, strings.Join(whats, ", ")), bytes.Join(out, nil), out)
				for _, b := range out {
					if err := emit(b); err != nil {
						h.env.report(typ, fmt.Sprintf("releasing held %s after %v: %v", strings.Join(whats, ", "), h.For, err), bytes.Join(out, nil), nil)
						return
					}
				}
			}, func(err error) {
				if batch == h.batch {
					h.end()
				}
			})
		}
	}
	return Result{Did: fmt.Sprintf("%s held (%d held, in flight %d)", describe(f), n, v.InFlight), Used: used}, nil
}

// take returns the held frames and starts a new batch.
func (h *holdIn) take() [][]byte {
	out := h.held
	h.held, h.whats = nil, nil
	h.batch++
	return out
}

func (h *holdIn) end() {
	if len(h.held) == 0 {
		return
	}
	whats, typ := h.whats, h.typ
	h.env.report(typ, fmt.Sprintf("%d held never sent: %v: %s", len(whats), proxy.ErrDirClosed, strings.Join(whats, ", ")), bytes.Join(h.take(), nil), nil)
}
