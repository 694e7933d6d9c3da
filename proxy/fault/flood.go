package fault

import (
	"fmt"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("flood", "[count=EXPR] [as_qos=1|2]", "after a PUBLISH, send EXPR copies (default receive_maximum+1) at\nQoS as_qos (default its own, 1 for QoS 0) with fresh Packet\nIdentifiers: over the receiver's Receive Maximum; 64 MiB of\ncopies at most. Once per connection (count= is the copies\nhere, not a selector)",
		func(r *Rule, params map[string]token) (Fault, error) {
			if err := r.onlyTypes(decode.PUBLISH); err != nil {
				return nil, err
			}
			if r.Sel.Count == 0 {
				r.Sel.Count = 1
			}
			fl := &Flood{}
			var err error
			if fl.Count, err = takeExpr(params, "count", "receive_maximum+1"); err != nil {
				return nil, err
			}
			fl.QoS, err = takeInt(params, "as_qos", 0, 1, 2)
			return fl, err
		})
}

// Flood sends the selected PUBLISH, then Count copies of it at QoS (0: its own, 1 for QoS 0),
// each with a Packet Identifier the sender does not have in use, counting down from 65535 (as
// many as are free: MQTT 3.1.1 has no Receive Maximum, and receive_maximum+1 is 65536 there),
// and no more than 64 MiB of copies (said in what it did).
type Flood struct {
	Count *Expr
	QoS   int
}

func (fl *Flood) Apply(f *proxy.Frame, v *Values) (Result, error) {
	p := publishOf(f)
	if p == nil {
		return Result{Skip: true}, nil
	}
	n, used, err := fl.Count.eval(v)
	if err != nil {
		return Result{}, err
	}
	if n < 1 {
		return Result{Skip: true}, nil
	}
	qos := byte(fl.QoS)
	if qos == 0 {
		qos = max(p.QoS, 1)
	}
	q := *p
	q.QoS, q.Dup, q.PacketID = qos, false, 1
	first, err := decode.Encode(nil, &q)
	if err != nil {
		return Result{}, fmt.Errorf("flood: encoding a copy: %w", err)
	}
	// Every copy is built before the first is sent: their bytes are bounded, not their count
	// alone (a PUBLISH of 1 MiB times 65,535 would not fit in memory).
	capped := min(n, max(1, maxFloodBytes/len(first)))
	ids := freshIDs(f, p.PacketID, capped)
	if len(ids) == 0 {
		return Result{Skip: true}, nil
	}
	out := [][]byte{f.Bytes}
	for _, id := range ids {
		q.PacketID = id
		b, err := decode.Encode(make([]byte, 0, len(first)), &q)
		if err != nil {
			return Result{}, fmt.Errorf("flood: encoding a copy: %w", err)
		}
		out = append(out, b)
	}
	did := fmt.Sprintf("%s followed by %d copies at QoS %d, Packet Identifiers %d down to %d, with %d in flight and a Receive Maximum of %d",
		describe(f), len(ids), qos, ids[0], ids[len(ids)-1], v.InFlight, v.ReceiveMaximum)
	switch {
	case len(ids) < capped:
		did += fmt.Sprintf(" (%d asked: no more identifiers are free)", n)
	case capped < n:
		did += fmt.Sprintf(" (%d asked: copies are bounded to %d MiB)", n, maxFloodBytes>>20)
	}
	return Result{Out: out, Did: did, Used: used}, nil
}

// maxFloodBytes bounds the bytes of one flood's copies.
const maxFloodBytes = 64 << 20

// freshIDs returns n Packet Identifiers that f's sender does not have in use, nor is mine,
// counting down from 65535 (senders count up from 1); fewer when there are not so many.
func freshIDs(f *proxy.Frame, mine uint16, n int) []uint16 {
	var ids []uint16
	for id := 0xFFFF; id > 0 && len(ids) < n; id-- {
		if uint16(id) != mine && !f.State.IDInUse(f.Dir, uint16(id)) {
			ids = append(ids, uint16(id))
		}
	}
	return ids
}
