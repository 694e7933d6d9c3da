package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/stream"
)

// BenchmarkRoundTrip measures what the proxy adds to a round trip (a PINGREQ-sized write and
// its echo) on loopback: direct to an echo server, through the proxy, and through the proxy
// with inspection on. It reports the p50 and p99 round trip.
//
//	go test -run '^$' -bench RoundTrip ./proxy/
func BenchmarkRoundTrip(b *testing.B) {
	echo := peer.Serve(b, func(c net.Conn) { io.Copy(c, c) })
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
			peer.RoundTrips(b, c, []byte{0xC0, 0x00}) // PINGREQ
		})
	}
}

// BenchmarkLargeFrame measures what the proxy does with each read of a direction, inspection
// and the tracking of frame boundaries, for one PUBLISH of 1 MB (the default --max-frame is
// 1 MiB) arriving in 1,460-byte reads and in 16 KiB reads: the cost must follow the frame's size,
// not its size times the number of reads.
//
//	go test -run '^$' -bench LargeFrame ./proxy/
func BenchmarkLargeFrame(b *testing.B) {
	connect, err := decode.Encode(nil, &decode.Connect{Base: decode.Base{Version: decode.V5}, ProtocolName: "MQTT", ProtocolLevel: 5, ClientID: "big"})
	if err != nil {
		b.Fatal(err)
	}
	frame, err := decode.Encode(nil, &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "big", Payload: make([]byte, 1000000)})
	if err != nil {
		b.Fatal(err)
	}
	t := time.Unix(1, 0)
	for _, size := range []int{1460, 16 << 10} {
		b.Run(fmt.Sprintf("reads=%d", size), func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			frames := 0
			for b.Loop() {
				co := inspector().Open(&stream.Conn{ID: 1, Client: netip.MustParseAddrPort("127.0.0.1:20000"), Server: netip.MustParseAddrPort("127.0.0.1:1883")})
				tr := newTracker()
				count := func(_ byte, start bool, _ int) {
					if start {
						frames++
					}
				}
				co.Data(stream.C2S, t, connect)
				tr.feed(connect, count)
				for off := 0; off < len(frame); off += size {
					piece := frame[off:min(off+size, len(frame))]
					co.Data(stream.C2S, t, piece)
					tr.feed(piece, count)
				}
				co.Close(t, stream.End{By: stream.Client, How: stream.FIN})
			}
			if frames != 2*b.N {
				b.Fatalf("%d frames tracked in %d rounds", frames, b.N)
			}
		})
	}
}

// BenchmarkTracker measures the tracking of frame boundaries the proxy runs on every byte it
// forwards, per frame: a stream of PINGREQs (2 bytes), of 20-byte PUBLISHes and of 1 KB
// PUBLISHes, fed in pieces of 1 byte, 1,460 bytes (a TCP segment) and 64 KiB (a large read).
//
//	go test -run '^$' -bench Tracker ./proxy/
func BenchmarkTracker(b *testing.B) {
	for _, fc := range []struct {
		name    string
		payload int
	}{{"pingreq", -1}, {"publish20", 20 - 2 - 3 - 1}, {"publish1k", 1024 - 3 - 3 - 1}} {
		var p decode.Packet = &decode.Pingreq{}
		if fc.payload >= 0 {
			p = &decode.Publish{Base: decode.Base{Version: decode.V5}, Topic: "a", Payload: make([]byte, fc.payload)}
		}
		frame, err := decode.Encode(nil, p)
		if err != nil {
			b.Fatal(err)
		}
		if want := map[string]int{"pingreq": 2, "publish20": 20, "publish1k": 1024}[fc.name]; len(frame) != want {
			b.Fatalf("%s: %d bytes, want %d", fc.name, len(frame), want)
		}
		// About 256 KiB of whole frames.
		n := (256 << 10) / len(frame)
		data := bytes.Repeat(frame, n)
		for _, size := range []int{1, 1460, 64 << 10} {
			b.Run(fmt.Sprintf("%s/pieces=%d", fc.name, size), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				frames := 0
				count := func(_ byte, start bool, _ int) {
					if start {
						frames++
					}
				}
				for b.Loop() {
					tr := newTracker()
					for off := 0; off < len(data); off += size {
						tr.feed(data[off:min(off+size, len(data))], count)
					}
					if tr.frames != n {
						b.Fatalf("%d frames whole, want %d", tr.frames, n)
					}
				}
				if frames != n*b.N {
					b.Fatalf("%d frames seen in %d rounds of %d", frames, b.N, n)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/frame")
			})
		}
	}
}
