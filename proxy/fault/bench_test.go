package fault

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/proxy"
	"github.com/mqscope/mqscope/stream"
)

// BenchmarkLiveRoundTrip measures what the fault stage adds to a round trip (a PINGREQ and its
// echo) on loopback, against the proxy without stages (mqscope proxy without rules or --api):
// with a Live set and no rule (--api), and with a rule that selects no frame of the trip.
//
//	go test -run '^$' -bench LiveRoundTrip ./proxy/fault/
func BenchmarkLiveRoundTrip(b *testing.B) {
	echo := peer.Serve(b, func(c net.Conn) { io.Copy(c, c); c.Close() })
	rule, _ := Parse("drop type=PUBACK", 1)
	for _, tc := range []struct {
		name string
		set  *Set
	}{
		{"no-stages", nil},
		{"live-no-rule", &Set{Live: true}},
		{"one-rule", &Set{Rules: []*Rule{rule}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := proxy.Config{Listen: proxy.Endpoint{Transport: stream.TCP, Addr: "127.0.0.1:0"},
				Upstream: proxy.Endpoint{Transport: stream.TCP, Addr: echo}, Logf: func(string, ...any) {}}
			if tc.set != nil {
				cfg.Stages = tc.set.Stages
			}
			srv, err := proxy.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			}()
			c, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			peer.RoundTrips(b, c, []byte{0xC0, 0x00}) // PINGREQ
		})
	}
}
