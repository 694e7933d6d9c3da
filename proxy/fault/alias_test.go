package fault

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

func aliasProp(a uint32) decode.Properties {
	return decode.Properties{decode.IntProp(decode.PropTopicAlias, a)}
}

// mappedView is a connection granted Topic Alias Maximum 5 whose client mapped aliases 1 and 2
// to t/1 and t/2.
func mappedView(t *testing.T) inspect.View {
	c := negotiatedConn(t, decode.Properties{decode.IntProp(decode.PropTopicAliasMaximum, 5)})
	c.Feed(stream.C2S, time.Unix(0, 0), pub(t, "t/1", 0, 0, aliasProp(1), "1"))
	c.Feed(stream.C2S, time.Unix(0, 0), pub(t, "t/2", 0, 0, aliasProp(2), "2"))
	return c.View()
}

// TestAliasFaults: each alias fault on a PUBLISH, with the sender's alias table given.
func TestAliasFaults(t *testing.T) {
	mapped := mappedView(t)
	none := negotiated(t, nil) // the broker allowed no aliases
	type want struct {
		topic     string
		alias     int // -1: none
		malformed bool
	}
	for _, tc := range []struct {
		name, rule string
		view       inspect.View
		in         []byte
		want       *want // nil: left alone
		did        string
	}{
		{"unmapped: lowest free", "alias_unmapped", mapped, pub(t, "x", 1, 5, nil, "p"), &want{"", 3, false},
			`PUBLISH to "x" sent alias-only with Topic Alias 3, which the sender has not mapped`},
		{"unmapped: given", "alias_unmapped to=topic_alias_maximum", mapped, pub(t, "x", 0, 0, nil, "p"), &want{"", 5, false}, ""},
		{"unmapped: given one is mapped", "alias_unmapped to=2", mapped, pub(t, "x", 0, 0, nil, "p"), nil, ""},
		{"unmapped: alias 0", "alias_unmapped to=0", mapped, pub(t, "x", 0, 0, nil, "p"), &want{"", 0, true}, "Topic Alias is 0"},
		{"alias 0 keeps the topic", "alias to=0", mapped, pub(t, "x", 0, 0, nil, "p"), &want{"x", 0, true}, "malformed"},
		{"none allowed", "alias", none, pub(t, "x", 0, 0, nil, "p"), &want{"x", 1, false}, `PUBLISH to "x" given Topic Alias 1`},
		{"remap: lowest other", "alias_remap", mapped, pub(t, "t/2", 0, 0, nil, "p"), &want{"t/2", 1, false},
			`Topic Alias 1 remapped from "t/1" to "t/2" (the sender still means "t/1" by it)`},
		{"remap: alias-only resolved", "alias_remap", mapped, pub(t, "", 0, 0, aliasProp(1), "p"), &want{"t/1", 2, false}, ""},
		{"remap: given", "alias_remap to=2", mapped, pub(t, "new", 0, 0, aliasProp(4), "p"), &want{"new", 2, false}, ""},
		{"remap: given one maps the same topic", "alias_remap to=2", mapped, pub(t, "t/2", 0, 0, nil, "p"), nil, ""},
		{"remap: nothing mapped", "alias_remap", none, pub(t, "t/2", 0, 0, nil, "p"), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, applied, err := run(t, tc.view, []string{tc.rule}, []dirFrame{{stream.C2S, tc.in}})
			if err != nil {
				t.Fatal(err)
			}
			b := out[stream.C2S][0]
			if tc.want == nil {
				if !bytes.Equal(b, tc.in) || len(applied) != 0 {
					t.Errorf("changed to % x, applied %v", b, applied)
				}
				return
			}
			p := decode5(b).(*decode.Publish)
			in := decode5(tc.in).(*decode.Publish)
			a, ok := p.Properties.TopicAlias()
			if !ok || int(a) != tc.want.alias || p.Topic != tc.want.topic || !bytes.Equal(p.Payload, in.Payload) || p.QoS != in.QoS || p.PacketID != in.PacketID {
				t.Errorf("got %+v, want %+v", p, tc.want)
			}
			if got := malformed(p) || len(p.Info().Problems) > 0; got != tc.want.malformed {
				t.Errorf("problems %v, want malformed %v", p.Info().Problems, tc.want.malformed)
			}
			if len(applied) != 1 || applied[0].Malformed != tc.want.malformed || !strings.Contains(applied[0].Did, tc.did) {
				t.Errorf("applied %+v, want Did with %q", applied, tc.did)
			}
		})
	}
}

// TestAliasStale: the client's first connection maps alias 3 to s/t; on its next connection
// (same client id) its first PUBLISH to s/t is sent alias-only with alias 3, which that
// connection never mapped. Another client id, or a topic the old connection did not alias, is
// left alone, as is an alias the new connection mapped itself.
func TestAliasStale(t *testing.T) {
	var applied []Applied
	set := reportingSet(t, &applied, "alias_stale dir=c2s")
	env := proxy.StageEnv{Now: func() time.Time { return time.Unix(0, 0) }, Rand: rand.New(rand.NewPCG(1, 2))}
	// send passes frame b from client through conn c (with the view of c's state) and returns
	// what went on.
	send := func(c *stream.Conn, st proxy.Stage, view inspect.View, b []byte) []byte {
		var got []byte
		f := &proxy.Frame{Conn: c, Dir: stream.C2S, Type: decode.Type(b[0] >> 4), Bytes: b, State: view}
		if err := st.Frame(f, func(o []byte) error { got = append([]byte(nil), o...); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	open := func(id int, client string) (*stream.Conn, proxy.Stage, *inspect.Conn) {
		c := &stream.Conn{ID: id}
		st := set.Stages(c, stream.C2S, env)[0]
		set.Stages(c, stream.S2C, env)
		ic := negotiatedConn(t, decode.Properties{decode.IntProp(decode.PropTopicAliasMaximum, 5)})
		send(c, st, ic.View(), enc(t, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: client}))
		return c, st, ic
	}
	first := pub(t, "s/t", 0, 0, aliasProp(3), "a")
	c1, st1, ic1 := open(1, "dev-7")
	if got := send(c1, st1, ic1.View(), first); !bytes.Equal(got, first) {
		t.Fatalf("first connection's PUBLISH changed: % x", got)
	}
	c2, st2, ic2 := open(2, "dev-7")
	other := pub(t, "u", 0, 0, nil, "b")
	if got := send(c2, st2, ic2.View(), other); !bytes.Equal(got, other) {
		t.Errorf("a topic the old connection never aliased changed: % x", got)
	}
	got := send(c2, st2, ic2.View(), pub(t, "s/t", 1, 9, nil, "c"))
	p := decode5(got).(*decode.Publish)
	if a, _ := p.Properties.TopicAlias(); a != 3 || p.Topic != "" || p.PacketID != 9 || string(p.Payload) != "c" {
		t.Fatalf("second connection's PUBLISH % x: %+v", got, p)
	}
	if len(applied) != 1 || !strings.Contains(applied[0].Did, `Topic Alias 3, mapped on client "dev-7"'s previous connection only`) {
		t.Errorf("applied %+v", applied)
	}
	// Once the new connection mapped alias 3 itself, it is no fault to use it.
	ic2.Feed(stream.C2S, time.Unix(0, 0), pub(t, "s/t", 0, 0, aliasProp(3), "d"))
	again := pub(t, "s/t", 0, 0, nil, "e")
	if got := send(c2, st2, ic2.View(), again); !bytes.Equal(got, again) {
		t.Errorf("alias the connection mapped itself: PUBLISH changed to % x", got)
	}
	c3, st3, ic3 := open(3, "someone-else")
	if got := send(c3, st3, ic3.View(), again); !bytes.Equal(got, again) {
		t.Errorf("another client's PUBLISH changed: % x", got)
	}
}

// TestAliasStaleBounded: alias_stale remembers a bounded number of client ids, forgetting the
// oldest first (and the connections it held for them).
func TestAliasStaleBounded(t *testing.T) {
	s := &AliasStale{max: 3}
	first := pub(t, "s/t", 0, 0, aliasProp(3), "a")
	for i := 1; i <= 5; i++ {
		c := &stream.Conn{ID: i}
		s.watch(&proxy.Frame{Conn: c, Dir: stream.C2S, Type: decode.PUBLISH, Bytes: first}, fmt.Sprintf("dev-%d", i))
	}
	if len(s.clients) != 3 || len(s.conns) != 3 || len(s.order) != 3 {
		t.Fatalf("%d clients, %d connections, %d in order; want 3", len(s.clients), len(s.conns), len(s.order))
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := s.clients[fmt.Sprintf("dev-%d", i+1)]; ok != want {
			t.Errorf("dev-%d remembered: %v, want %v", i+1, ok, want)
		}
	}
}
