package decode

import (
	"bytes"
	"runtime"
	"testing"
	"unsafe"
)

// Typical packets for the benchmarks.
var (
	benchPublish = mustEncode(&Publish{Base: v5base(), QoS: 1, PacketID: 42, Topic: "sensors/building-7/floor-3/temperature",
		Properties: Properties{IntProp(PropTopicAlias, 3)}, Payload: bytes.Repeat([]byte("x"), 100)})
	benchConnect = mustEncode(&Connect{Base: v5base(), ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 60,
		Properties: Properties{IntProp(PropSessionExpiry, 3600), IntProp(PropReceiveMaximum, 20),
			IntProp(PropTopicAliasMaximum, 10), UserProp("app", "mqscope")},
		ClientID: "device-0042",
		Will: &WillMessage{QoS: 1, Properties: Properties{IntProp(PropWillDelay, 5)}, Topic: "devices/0042/status",
			Payload: []byte("offline")},
		HasUsername: true, Username: "device", HasPassword: true, Password: []byte("s3cr3t")})
	benchSuback = mustEncode(&Suback{Base: v5base(), PacketID: 7, ReasonCodes: []ReasonCode{GrantedQoS1, GrantedQoS2, 0}})
)

func mustEncode(p Packet) []byte {
	b, err := Encode(nil, p)
	if err != nil {
		panic(err)
	}
	return b
}

func benchDecode(b *testing.B, frame []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	if p := Decode(frame, V5); len(p.Info().Problems) > 0 {
		b.Fatalf("problems:%s", problemList(p.Info().Problems))
	}
	for b.Loop() {
		Decode(frame, V5)
	}
}

func BenchmarkDecodePublish(b *testing.B) { benchDecode(b, benchPublish) }
func BenchmarkDecodeConnect(b *testing.B) { benchDecode(b, benchConnect) }
func BenchmarkDecodeSuback(b *testing.B)  { benchDecode(b, benchSuback) }

// benchFrame feeds a stream of 64 copies of frame to a Framer in 1460-byte segments.
func benchFrame(b *testing.B, frame []byte) {
	stream := bytes.Repeat(frame, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		f := NewFramer(1 << 20)
		n := 0
		for off := 0; off < len(stream); off += 1460 {
			f.Write(stream[off:min(off+1460, len(stream))])
			for {
				fr, err := f.Next()
				if err != nil {
					b.Fatal(err)
				}
				if fr == nil {
					break
				}
				n++
			}
		}
		if n != 64 {
			b.Fatalf("%d frames", n)
		}
	}
}

func BenchmarkFramePublish(b *testing.B) { benchFrame(b, benchPublish) }
func BenchmarkFrameConnect(b *testing.B) { benchFrame(b, benchConnect) }
func BenchmarkFrameSuback(b *testing.B)  { benchFrame(b, benchSuback) }

func BenchmarkSplitFramePublish(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if n, err := SplitFrame(benchPublish, 0); n != len(benchPublish) || err != nil {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkEncodePublish(b *testing.B) {
	p := Decode(benchPublish, V5)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = Encode(buf[:0], p)
	}
}

// TestDecodePublishAllocations: decoding a PUBLISH allocates its result and nothing else: one
// block for the packet with its Fields and properties (publishBlock), and the topic string.
func TestDecodePublishAllocations(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under -cover and -race")
	}
	n := testing.AllocsPerRun(200, func() { Decode(benchPublish, V5) })
	if n > 2 {
		t.Errorf("Decode(PUBLISH) does %v allocations, want at most 2", n)
	}
}

func TestCountProps(t *testing.T) {
	for _, c := range propertyCases {
		if n := countProps(c.b); n != 1 {
			t.Errorf("%s: countProps = %d", c.want.ID.Name(), n)
		}
		if n := countProps(append(append([]byte{}, c.b...), c.b...)); n != 2 {
			t.Errorf("%s twice: countProps = %d", c.want.ID.Name(), n)
		}
	}
	if n := countProps([]byte{0x23, 0x00, 0x01, 0x05, 0x00}); n != 2 {
		t.Errorf("unknown identifier: %d", n)
	}
	if n := countProps([]byte{0x03, 0x01}); n != 1 {
		t.Errorf("cut string: %d", n)
	}
}

// TestPublishAllocation: a PUBLISH without properties costs one small allocation, one with
// properties one larger block holding them, and the topic string of a stream is shared.
func TestPublishAllocation(t *testing.T) {
	bare, _ := Encode(nil, &Publish{Base: Base{Version: V5}, QoS: 1, PacketID: 7, Topic: "a/b", Payload: []byte("x")})
	withProps, _ := Encode(nil, &Publish{Base: Base{Version: V5}, QoS: 1, PacketID: 7, Topic: "a/b", Payload: []byte("x"),
		Properties: Properties{{ID: PropMessageExpiry, Int: 60}}})
	var topics TopicCache
	DecodeWith(bare, V5, Options{Lean: true, Topics: &topics}) // the first one allocates the topic
	for _, tc := range []struct {
		name  string
		frame []byte
		max   uintptr
	}{{"bare", bare, unsafe.Sizeof(Publish{})}, {"properties", withProps, unsafe.Sizeof(publishBlock{})}} {
		var p Packet
		if n := testing.AllocsPerRun(100, func() { p = DecodeWith(tc.frame, V5, Options{Lean: true, Topics: &topics}) }); n != 1 {
			t.Errorf("%s: %v allocations, want 1 (the packet; the topic comes from the cache)", tc.name, n)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 1000 {
			p = DecodeWith(tc.frame, V5, Options{Lean: true, Topics: &topics})
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / 1000; per > uint64(tc.max)*9/8 {
			t.Errorf("%s: %d bytes per packet, want at most %d", tc.name, per, tc.max*9/8)
		}
		if got := p.(*Publish); got.Topic != "a/b" || len(got.Problems) != 0 {
			t.Errorf("%s: topic %q problems %v", tc.name, got.Topic, got.Problems)
		}
		if tc.name == "properties" {
			if v, ok := p.(*Publish).Properties.Int(PropMessageExpiry); !ok || v != 60 {
				t.Errorf("expiry %v %v", v, ok)
			}
		}
	}
}

// TestTopicCacheKeepsProblems: a topic name with a problem is never cached, so every packet
// that carries it reports the problem.
func TestTopicCacheKeepsProblems(t *testing.T) {
	var topics TopicCache
	frame, _ := Encode(nil, &Publish{Base: Base{Version: V5}, Topic: "a\x01b"})
	for i := range 3 {
		p := DecodeWith(frame, V5, Options{Lean: true, Topics: &topics}).(*Publish)
		if p.Topic != "a\x01b" || len(p.Problems) == 0 {
			t.Errorf("packet %d: topic %q, problems %v", i, p.Topic, p.Problems)
		}
	}
	good, _ := Encode(nil, &Publish{Base: Base{Version: V5}, Topic: "a/b"})
	other, _ := Encode(nil, &Publish{Base: Base{Version: V5}, Topic: "a/c"})
	for i := range 12 { // more names than the cache holds, alternating
		f, want := good, "a/b"
		if i%2 == 1 {
			f, want = other, "a/c"
		}
		if p := DecodeWith(f, V5, Options{Lean: true, Topics: &topics}).(*Publish); p.Topic != want {
			t.Errorf("packet %d: topic %q, want %q", i, p.Topic, want)
		}
	}
}
