package proxy

import "github.com/mqscope/mqscope/inspect"

// Inspector is the proxy's inspection: an inspect.Observer inline with forwarding, whose
// records are counted in the metrics (findings by rule and level) and queued to an Output,
// which the Server flushes at Shutdown.
type Inspector struct {
	*inspect.Observer
	out *inspect.Output
}

// NewInspector inspects with opts and hands the records to out (nil: nowhere), counting
// findings in m (nil: not counted).
func NewInspector(opts inspect.Options, out *inspect.Output, m *Metrics) *Inspector {
	in := &Inspector{out: out}
	in.Observer = &inspect.Observer{Options: opts, Emit: func(r inspect.Record) {
		if pr, ok := r.(*inspect.PacketRecord); ok && m != nil {
			for _, n := range pr.Notes {
				m.Finding(n.Rule, n.Level.String())
			}
		}
		if out != nil {
			out.Emit(r)
		}
	}}
	return in
}

// Flush writes out what the output holds and closes it.
func (in *Inspector) Flush() error {
	if in.out == nil {
		return nil
	}
	return in.out.Close()
}
