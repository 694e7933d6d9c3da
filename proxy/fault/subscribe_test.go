package fault

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// TestSubscriptionFaults: a SUBSCRIBE made to use a wildcard, a Subscription Identifier or a
// shared subscription where the server said it has none; the rest of the packet is kept.
func TestSubscriptionFaults(t *testing.T) {
	view := negotiated(t, decode.Properties{decode.IntProp(decode.PropWildcardSubAvailable, 0),
		decode.IntProp(decode.PropSubIDAvailable, 0), decode.IntProp(decode.PropSharedSubAvailable, 0)})
	sub := func(props decode.Properties, subs ...decode.Subscription) []byte {
		return enc(t, &decode.Subscribe{Base: v5, PacketID: 7, Properties: props, Subscriptions: subs})
	}
	ab := decode.Subscription{Filter: "a/b", QoS: 1, RetainAsPublished: true}
	wild := decode.Subscription{Filter: "w/+", QoS: 0}
	user := decode.Properties{decode.UserProp("k", "v")}
	for _, tc := range []struct {
		name, rule string
		in         []byte
		filters    []string // nil: left alone
		subID      int      // -1: none
		did, used  string
		malformed  bool
	}{
		{"wildcard appended", "sub_wildcard", sub(user, wild, ab), []string{"w/+", "a/b/#"}, -1,
			`SUBSCRIBE filter "a/b" → "a/b/#"`, "wildcard_subscription_available=0", false},
		{"wildcard given", "sub_wildcard filter=+/b", sub(nil, ab), []string{"+/b"}, -1, "", "", false},
		{"wildcard: all have one", "sub_wildcard", sub(nil, wild), nil, -1, "", "", false},
		{"subscription identifier", "sub_id id=268435455", sub(user, ab), []string{"a/b"}, 268435455,
			"SUBSCRIBE given Subscription Identifier 268435455", "subscription_identifier_available=0", false},
		{"subscription identifier replaced", "sub_id", sub(decode.Properties{decode.IntProp(decode.PropSubscriptionID, 9)}, ab), []string{"a/b"}, 1, "", "", false},
		{"subscription identifier 0", "sub_id id=0", sub(nil, ab), []string{"a/b"}, 0, "Subscription Identifier is 0", "", true},
		{"shared", "sub_shared", sub(nil, ab, wild), []string{"$share/mqscope/a/b", "w/+"}, -1,
			`SUBSCRIBE filter "a/b" → "$share/mqscope/a/b"`, "shared_subscription_available=0", false},
		{"shared group", "sub_shared group=g1", sub(nil, decode.Subscription{Filter: "$share/x/a", QoS: 0}, ab),
			[]string{"$share/x/a", "$share/g1/a/b"}, -1, "", "", false},
		// No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4].
		{"shared with no local", "sub_shared", sub(nil, decode.Subscription{Filter: "n", NoLocal: true}), []string{"$share/mqscope/n"}, -1, "malformed", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, applied, err := run(t, view, []string{tc.rule}, []dirFrame{{stream.C2S, tc.in}})
			if err != nil {
				t.Fatal(err)
			}
			b := out[stream.C2S][0]
			if tc.filters == nil {
				if !bytes.Equal(b, tc.in) || len(applied) != 0 {
					t.Errorf("changed to % x, applied %v", b, applied)
				}
				return
			}
			p, in := decode5(b).(*decode.Subscribe), decode5(tc.in).(*decode.Subscribe)
			if p.PacketID != 7 || len(p.Subscriptions) != len(tc.filters) || len(p.Properties.UserProperties()) != len(in.Properties.UserProperties()) {
				t.Fatalf("got %+v", p)
			}
			for i, s := range p.Subscriptions {
				o := in.Subscriptions[i]
				if s.Filter != tc.filters[i] || s.QoS != o.QoS || s.NoLocal != o.NoLocal || s.RetainAsPublished != o.RetainAsPublished {
					t.Errorf("subscription %d: %+v, want filter %q and the options of %+v", i, s, tc.filters[i], o)
				}
			}
			ids := p.Properties.SubscriptionIDs()
			if (tc.subID < 0 && len(ids) != 0) || (tc.subID >= 0 && (len(ids) != 1 || int(ids[0]) != tc.subID)) {
				t.Errorf("subscription identifiers %v, want %d", ids, tc.subID)
			}
			if len(applied) != 1 || applied[0].Malformed != tc.malformed || !strings.Contains(applied[0].Did, tc.did) || !strings.Contains(applied[0].Used, tc.used) {
				t.Errorf("applied %+v", applied)
			}
		})
	}
}
