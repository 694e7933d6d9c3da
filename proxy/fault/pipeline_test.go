package fault

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/fakeclock"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// pipeline is one connection's two directions through a set of rules, as the proxy runs them
// but without sockets: on a fake clock, each direction with a Later sending to out, and (with
// live) what goes on fed to an inspection whose View the stages see.
type pipeline struct {
	t       testing.TB
	clock   *fakeclock.Clock
	live    *inspect.Conn
	view    inspect.View
	conn    *stream.Conn
	stages  [2]proxy.Stage
	laters  [2]*proxy.Later
	out     [2][][]byte
	applied []Applied
	records []inspect.Record // of the live inspection
	err     error            // that ended the connection at its CONNECT (a disconnect rule)
}

var t0 = time.Unix(1000, 0)

func newPipeline(t testing.TB, view inspect.View, live *inspect.Conn, rules []string) *pipeline {
	t.Helper()
	p := &pipeline{t: t, clock: fakeclock.New(t0), view: view, conn: &stream.Conn{ID: 1}}
	set := reportingSet(t, &p.applied, rules...)
	for d := range 2 {
		dir := stream.Dir(d)
		p.laters[d] = proxy.NewLater(p.clock, func(b []byte) error { p.sent(dir, b); return nil })
		env := proxy.StageEnv{Now: p.clock.Now, Rand: rand.New(rand.NewPCG(1, 2)), Clock: p.clock, Later: p.laters[d]}
		p.stages[d] = set.Stages(p.conn, dir, env)[0]
	}
	// The device's CONNECT, for the client identifier; the live inspection has had its own.
	p.err = p.feed(stream.C2S, enc(t, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "dev-7"}))
	p.out[stream.C2S] = nil
	p.live = live
	return p
}

func (p *pipeline) sent(dir stream.Dir, b []byte) {
	p.out[dir] = append(p.out[dir], append([]byte(nil), b...))
	if p.live != nil {
		p.records = append(p.records, p.live.Feed(dir, p.clock.Now(), b)...)
	}
}

// feed passes b through its direction's stage.
func (p *pipeline) feed(dir stream.Dir, b []byte) error {
	f := &proxy.Frame{Conn: p.conn, Dir: dir, Time: p.clock.Now(), Type: decode.Type(b[0] >> 4), Bytes: b, State: p.view}
	return p.stages[dir].Frame(f, func(b []byte) error { p.sent(dir, b); return nil })
}

// end ends both directions, as the proxy does: Later first, then the stages hear of it.
func (p *pipeline) end() {
	for d := range 2 {
		p.laters[d].Close()
		p.stages[d].(proxy.Ender).End()
	}
}

// notes returns the rules of the live inspection's notes on the packets that went on.
func (p *pipeline) notes() []string {
	var rules []string
	for _, r := range p.records {
		if pr, ok := r.(*inspect.PacketRecord); ok {
			for _, n := range pr.Notes {
				rules = append(rules, n.Rule)
			}
		}
	}
	return rules
}
