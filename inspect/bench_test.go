package inspect

import (
	"runtime"
	"testing"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

type benchFrame struct {
	dir   stream.Dir
	frame []byte
}

// benchCycle is a steady-state exchange that can repeat forever on one connection: QoS 1 both
// ways with acknowledgements, topic aliases, a QoS 0 PUBLISH and a ping.
func benchCycle(b *testing.B) (setup, cycle []benchFrame) {
	setup = []benchFrame{
		{stream.C2S, enc(b, &decode.Connect{ClientID: "bench", KeepAlive: 60, CleanStart: true, Properties: props(ip(decode.PropTopicAliasMaximum, 10))})},
		{stream.S2C, enc(b, &decode.Connack{Properties: props(ip(decode.PropTopicAliasMaximum, 10), ip(decode.PropReceiveMaximum, 20))})},
	}
	payload := `{"temperature":21.5,"humidity":40,"ts":1764158400}`
	cycle = []benchFrame{
		{stream.C2S, enc(b, publish("sensors/building-1/floor-2/room-3/temp", 1, 1, payload, ip(decode.PropTopicAlias, 1)))},
		{stream.S2C, enc(b, ack(decode.PUBACK, 1, 0))},
		{stream.C2S, enc(b, publish("", 0, 0, payload, ip(decode.PropTopicAlias, 1)))},
		{stream.S2C, enc(b, publish("cmd/bench/set", 1, 7, `{"interval":30}`))},
		{stream.C2S, enc(b, ack(decode.PUBACK, 7, 0))},
		{stream.C2S, enc(b, &decode.Pingreq{})},
		{stream.S2C, enc(b, &decode.Pingresp{})},
	}
	return setup, cycle
}

// BenchmarkDecode is the baseline: decoding alone, per packet.
func BenchmarkDecode(b *testing.B) {
	_, cycle := benchCycle(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := range b.N {
		f := cycle[i%len(cycle)]
		decode.Decode(f.frame, decode.V5)
	}
	reportCPU(b, cpu)
}

// reportCPU adds the CPU time per packet, which a loaded machine does not inflate the way it
// does ns/op.
func reportCPU(b *testing.B, start int64) {
	if start > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkInspect is decoding plus inspection (Conn.Frame), per packet; the difference with
// BenchmarkDecode is the cost of inspection.
func BenchmarkInspect(b *testing.B) {
	setup, cycle := benchCycle(b)
	c := NewConn(1, "10.0.0.2:50000", "10.0.0.1:1883", Options{})
	now := t0
	for _, f := range setup {
		c.Frame(f.dir, now, f.frame)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := range b.N {
		f := cycle[i%len(cycle)]
		now = now.Add(time.Millisecond)
		recs := c.Frame(f.dir, now, f.frame)
		if len(recs) != 1 || len(recs[0].(*PacketRecord).Notes) != 0 {
			b.Fatalf("unexpected %v", notesText(recs[0].(*PacketRecord)))
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkFeed adds framing from a byte stream to BenchmarkInspect.
func BenchmarkFeed(b *testing.B) {
	setup, cycle := benchCycle(b)
	c := NewConn(1, "10.0.0.2:50000", "10.0.0.1:1883", Options{})
	for _, f := range setup {
		c.Feed(f.dir, t0, f.frame)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := range b.N {
		f := cycle[i%len(cycle)]
		c.Feed(f.dir, t0, f.frame)
	}
	reportCPU(b, cpu)
}

// BenchmarkJSON is the cost of one JSON line per packet record.
func BenchmarkJSON(b *testing.B) {
	setup, cycle := benchCycle(b)
	c := NewConn(1, "10.0.0.2:50000", "10.0.0.1:1883", Options{})
	for _, f := range setup {
		c.Frame(f.dir, t0, f.frame)
	}
	var recs []Record
	for _, f := range cycle {
		recs = append(recs, c.Frame(f.dir, t0, f.frame)...)
	}
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := range b.N {
		buf = AppendJSON(buf[:0], recs[i%len(recs)], JSONOptions{})
	}
	reportCPU(b, cpu)
}

// BenchmarkConnMemory reports the heap one open connection holds after CONNECT, CONNACK and
// a few packets: capture keeps thousands of them.
func BenchmarkConnMemory(b *testing.B) {
	setup, cycle := benchCycle(b)
	const n = 2000
	conns := make([]*Conn, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range b.N {
		for i := range conns {
			c := NewConn(i, "10.0.0.2:50000", "10.0.0.1:1883", Options{})
			for _, f := range setup {
				c.Frame(f.dir, t0, f.frame)
			}
			for _, f := range cycle {
				c.Frame(f.dir, t0, f.frame)
			}
			conns[i] = c
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/conn")
	runtime.KeepAlive(conns)
}
