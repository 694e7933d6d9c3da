package proxy

import (
	"bytes"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
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

// BenchmarkOutputCostlySubscriber measures how long the output takes to write a 500 KB PUBLISH
// while an event stream subscriber has a filter that takes about a second on it: the
// subscriber's filter runs on its own goroutine, so the output should not wait for it.
//
//	go test -run '^$' -bench OutputCostlySubscriber -benchtime 20x ./proxy/
func BenchmarkOutputCostlySubscriber(b *testing.B) {
	pr := bigPublishRecord(b, 500_000)
	f, err := inspect.CompileFilter(`payload matches "(.*a){20}z"`)
	if err != nil {
		b.Fatal(err)
	}
	hub := NewHub(inspect.JSONOptions{})
	w := &chanWriter{got: make(chan inspect.Record, 1)}
	out := NewOutput(w, nil, hub, nil, 0)
	sub := hub.Subscribe(f)
	go func() {
		for e := range sub.C {
			sub.Line(nil, e)
		}
	}()
	defer out.Close()
	for b.Loop() {
		out.Emit(pr)
		<-w.got
	}
}

// bigPublishRecord returns the record of an MQTT 5 PUBLISH with a payload of n bytes of text.
func bigPublishRecord(b *testing.B, n int) *inspect.PacketRecord {
	v5 := decode.Base{Version: decode.V5}
	c := inspect.NewConn(1, "10.0.0.1:50000", "10.0.0.2:1883", inspect.Options{MaxFrame: 1 << 20})
	con, _ := decode.Encode(nil, &decode.Connect{Base: v5, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "big"})
	ack, _ := decode.Encode(nil, &decode.Connack{Base: v5})
	pub, _ := decode.Encode(nil, &decode.Publish{Base: v5, Topic: "t", Payload: bytes.Repeat([]byte("abcdefghij"), n/10)})
	now := time.Now()
	c.Feed(stream.C2S, now, con)
	c.Feed(stream.S2C, now, ack)
	for _, r := range c.Feed(stream.C2S, now, pub) {
		if pr, ok := r.(*inspect.PacketRecord); ok {
			return pr
		}
	}
	b.Fatal("no PUBLISH record")
	return nil
}
