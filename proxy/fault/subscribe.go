package fault

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
)

// The subscription faults make a SUBSCRIBE use what a server may have said it does not
// support in its CONNACK: a wildcard, a Subscription Identifier, a shared subscription. The
// server answers a SUBACK 0xA2, 0xA1 or 0x9E, or a DISCONNECT with that reason.
func init() {
	register("sub_wildcard", "[filter=FILTER]", "make a SUBSCRIBE's first filter without a wildcard FILTER (default\n"+
		"the filter with /# appended)",
		func(r *Rule, params map[string]token) (Fault, error) {
			w := &SubWildcard{}
			if t, ok := params["filter"]; ok {
				delete(params, "filter")
				if msg, _ := decode.FilterProblem(t.val); msg != "" {
					return nil, t.errorf("filter %q: %s", t.val, msg)
				}
				if !strings.ContainsAny(t.val, "+#") {
					return nil, t.errorf("filter %q has no wildcard", t.val)
				}
				w.Filter = t.val
			}
			return w, subscribeRule(r)
		})
	register("sub_id", "[id=EXPR]", "give a SUBSCRIBE the Subscription Identifier EXPR (default 1)",
		func(r *Rule, params map[string]token) (Fault, error) {
			id, err := takeExpr(params, "id", "1")
			if err != nil {
				return nil, err
			}
			return &SubID{ID: id}, subscribeRule(r)
		})
	register("sub_shared", "[group=NAME]", "make a SUBSCRIBE's first filter a shared subscription,\n"+
		"$share/NAME/filter (default group mqscope)",
		func(r *Rule, params map[string]token) (Fault, error) {
			s := &SubShared{Group: "mqscope"}
			if t, ok := params["group"]; ok {
				delete(params, "group")
				if t.val == "" || strings.ContainsAny(t.val, "/+#") {
					return nil, t.errorf("group %q: a share name is not empty and has no /, + or #", t.val)
				}
				s.Group = t.val
			}
			return s, subscribeRule(r)
		})
}

// subscribeRule restricts r to SUBSCRIBE, client to server.
func subscribeRule(r *Rule) error {
	if r.Dirs == S2C {
		return errors.New("SUBSCRIBE goes client to server: dir=s2c does not apply")
	}
	r.Dirs = C2S
	return r.onlyTypes(decode.SUBSCRIBE)
}

// subscribeOf returns f's MQTT 5 SUBSCRIBE for rewriting (a copy), nil when it is none or
// malformed.
func subscribeOf(f *proxy.Frame) *decode.Subscribe {
	p, ok := f.Packet().(*decode.Subscribe)
	if !ok || p.Version != decode.V5 || malformed(p) {
		return nil
	}
	q := *p
	q.Properties = append(decode.Properties(nil), p.Properties...)
	q.Subscriptions = append([]decode.Subscription(nil), p.Subscriptions...)
	return &q
}

// SubWildcard makes the first filter without a wildcard Filter, or that filter with /# (which
// still matches the topics the filter did).
type SubWildcard struct{ Filter string }

func (w *SubWildcard) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	p := subscribeOf(f)
	if p == nil {
		return Result{Skip: true}, nil
	}
	for i, s := range p.Subscriptions {
		if strings.ContainsAny(s.Filter, "+#") {
			continue
		}
		to := w.Filter
		if to == "" {
			to = s.Filter + "/#"
		}
		p.Subscriptions[i].Filter = to
		used := fmt.Sprintf("wildcard_subscription_available=%d", b2i(f.State.Limits(f.Dir).WildcardSubscriptionAvailable))
		return rewritten(p, fmt.Sprintf("SUBSCRIBE filter %q → %q", s.Filter, to), used)
	}
	return Result{Skip: true}, nil
}

// SubID gives a SUBSCRIBE the Subscription Identifier ID, in place of any it had.
type SubID struct{ ID *Expr }

func (s *SubID) Apply(f *proxy.Frame, v *Values) (Result, error) {
	p := subscribeOf(f)
	if p == nil {
		return Result{Skip: true}, nil
	}
	id, used, err := s.ID.eval(v)
	if err != nil {
		return Result{}, err
	}
	if id < 0 || id > decode.MaxVarInt {
		return Result{}, fmt.Errorf("sub_id: %d is not a Variable Byte Integer", id)
	}
	ps := p.Properties[:0]
	for _, pr := range p.Properties {
		if pr.ID != decode.PropSubscriptionID {
			ps = append(ps, pr)
		}
	}
	p.Properties = append(ps, decode.IntProp(decode.PropSubscriptionID, uint32(id)))
	avail := fmt.Sprintf("subscription_identifier_available=%d", b2i(f.State.Limits(f.Dir).SubscriptionIdentifiersAvailable))
	if used != "" {
		avail = used + "; " + avail
	}
	return rewritten(p, fmt.Sprintf("SUBSCRIBE given Subscription Identifier %d", id), avail)
}

// SubShared makes the first filter that is not a shared subscription $share/Group/filter.
type SubShared struct{ Group string }

func (s *SubShared) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	p := subscribeOf(f)
	if p == nil {
		return Result{Skip: true}, nil
	}
	for i, sub := range p.Subscriptions {
		if strings.HasPrefix(sub.Filter, "$share/") {
			continue
		}
		to := "$share/" + s.Group + "/" + sub.Filter
		p.Subscriptions[i].Filter = to
		used := fmt.Sprintf("shared_subscription_available=%d", b2i(f.State.Limits(f.Dir).SharedSubscriptionAvailable))
		return rewritten(p, fmt.Sprintf("SUBSCRIBE filter %q → %q", sub.Filter, to), used)
	}
	return Result{Skip: true}, nil
}
