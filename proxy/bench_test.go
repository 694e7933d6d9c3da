package proxy

import (
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/mqscope/mqscope/stream"
)

// BenchmarkRoundTrip measures what the proxy adds to a round trip (a PINGREQ-sized write and
// its echo) on loopback: direct to an echo server, through the proxy, and through the proxy
// with inspection on. It reports the p50 and p99 round trip.
//
//	go test -run '^$' -bench RoundTrip ./proxy/
func BenchmarkRoundTrip(b *testing.B) {
	echo := rawServer(b, func(c net.Conn) { io.Copy(c, c) })
	plain := startProxy(b, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: echo}, Logf: func(string, ...any) {}})
	inspected := startProxy(b, Config{Upstream: Endpoint{Transport: stream.TCP, Addr: echo}, Observers: []stream.Observer{inspector()}, Logf: func(string, ...any) {}})
	for _, tc := range []struct{ name, addr string }{
		{"direct", echo},
		{"proxy", plain.Addr().String()},
		{"proxy+inspect", inspected.Addr().String()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := []byte{0xC0, 0x00}
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				s := time.Now()
				c.Write(msg)
				if _, err := io.ReadFull(c, msg); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(s))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}
