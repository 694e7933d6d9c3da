package inspect

import (
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// TestObserverFilter: the Observer (what captures and the proxy feed) and a RecordFilter (what
// an Output and each event stream apply) keep the same records of the same connections: the
// packets the filter accepts, and a connection's session and close records only once one of
// its packets was accepted (here the session record comes before, with CONNACK, and is left
// out; the close record tells the negotiation all the same); Keep says which bytes completed a
// packet and which were wanted.
func TestObserverFilter(t *testing.T) {
	f, err := CompileFilter(`type == "PUBLISH"`)
	if err != nil {
		t.Fatal(err)
	}
	var viaObserver, all []Record
	o := &Observer{Match: f.Match, Emit: func(r Record) { viaObserver = append(viaObserver, r) }}
	everything := &Observer{Emit: func(r Record) { all = append(all, r) }}
	type step struct {
		dir    stream.Dir
		p      decode.Packet
		wanted bool
	}
	conns := [][]step{
		{ // publishes: kept with its session and close
			{stream.C2S, &decode.Connect{ClientID: "a", KeepAlive: 60}, false},
			{stream.S2C, &decode.Connack{}, false},
			{stream.C2S, publish("x", 0, 0, "1"), true},
			{stream.C2S, &decode.Pingreq{}, false},
		},
		{ // never publishes: nothing of it is kept
			{stream.C2S, &decode.Connect{ClientID: "b", KeepAlive: 60}, false},
			{stream.S2C, &decode.Connack{}, false},
			{stream.C2S, &decode.Disconnect{}, false},
		},
	}
	for i, steps := range conns {
		c := &stream.Conn{ID: i + 1}
		co, ce := o.Open(c), everything.Open(c)
		for _, s := range steps {
			completed, wanted := co.(stream.Keeper).Keep(s.dir, t0, enc(t, s.p))
			if !completed || wanted != s.wanted {
				t.Errorf("conn %d %s: completed %v wanted %v", i+1, s.p.Type(), completed, wanted)
			}
			ce.Data(s.dir, t0, enc(t, s.p))
		}
		if _, ok := o.Snapshot(i + 1); !ok {
			t.Errorf("conn %d: no snapshot while open", i+1)
		}
		co.Close(t0.Add(time.Second), stream.End{By: stream.Client, How: stream.FIN})
		ce.Close(t0.Add(time.Second), stream.End{By: stream.Client, How: stream.FIN})
		if _, ok := o.Snapshot(i + 1); ok {
			t.Errorf("conn %d: a snapshot after its close", i+1)
		}
	}
	kinds := func(rs []Record) (s string) {
		for _, r := range rs {
			s += r.Kind() + " "
		}
		return s
	}
	if got, want := kinds(viaObserver), "packet close "; got != want {
		t.Errorf("observer kept %q, want %q", got, want)
	}
	rf := NewRecordFilter(f)
	var viaFilter []Record
	for _, r := range all {
		if rf.Pass(r) {
			viaFilter = append(viaFilter, r)
		}
	}
	if kinds(viaFilter) != kinds(viaObserver) {
		t.Errorf("record filter kept %q, observer %q", kinds(viaFilter), kinds(viaObserver))
	}
	if len(rf.conns) != 0 {
		t.Errorf("the record filter still holds %d closed connections", len(rf.conns))
	}
}

// TestCloseWords: a close record says first the DISCONNECT that ended the connection (the
// first one sent, not an answer to it), then how the transport ended and by whom: a normal
// client DISCONNECT followed by the server's FIN is the client's close, never "server-eof".
func TestCloseWords(t *testing.T) {
	v5 := decode.Base{Version: decode.V5}
	for _, tc := range []struct {
		name     string
		feed     []decode.Packet // client's, then server's, alternately as given by dir
		dirs     []stream.Dir
		end      stream.End
		by, text string
	}{
		{"client DISCONNECT, server FIN", []decode.Packet{&decode.Disconnect{Base: v5}}, []stream.Dir{stream.C2S},
			stream.End{By: stream.Server, How: stream.FIN},
			"client", "closed by client: client sent DISCONNECT 0x00 Normal disconnection, then TCP FIN from the server"},
		{"server DISCONNECT answered by the client", []decode.Packet{
			&decode.Disconnect{Base: v5, ReasonCode: decode.TopicAliasInvalid, HasReason: true}, &decode.Disconnect{Base: v5}},
			[]stream.Dir{stream.S2C, stream.C2S}, stream.End{By: stream.Server, How: stream.RST},
			"server", "closed by server: server sent DISCONNECT 0x94 Topic Alias invalid, then TCP RST from the server"},
		{"DISCONNECT, then the capture ended", []decode.Packet{&decode.Disconnect{Base: v5}}, []stream.Dir{stream.C2S},
			stream.End{By: stream.SourceEnd},
			"client", "client sent DISCONNECT 0x00 Normal disconnection; the capture ended before the connection closed"},
		{"the proxy ended it", []decode.Packet{&decode.Disconnect{Base: v5, ReasonCode: decode.ServerShuttingDown, HasReason: true}},
			[]stream.Dir{stream.S2C}, stream.End{By: stream.Proxy, How: stream.Stopped, Detail: "shut down"},
			"proxy", "closed by proxy: shut down"},
		{"no DISCONNECT", nil, nil, stream.End{By: stream.Client, How: stream.FIN}, "client-eof", "closed by client-eof: TCP FIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConn(1, "c", "s", Options{})
			c.Feed(stream.C2S, t0, enc(t, &decode.Connect{Base: v5, ClientID: "w", KeepAlive: 60}))
			c.Feed(stream.S2C, t0, enc(t, &decode.Connack{Base: v5}))
			for i, p := range tc.feed {
				c.Feed(tc.dirs[i], t0, enc(t, p))
			}
			cr := c.Close(t0, tc.end)
			if cr.By() != tc.by || closeText(cr) != tc.text {
				t.Errorf("by %q, %q\nwant by %q, %q", cr.By(), closeText(cr), tc.by, tc.text)
			}
		})
	}
}
