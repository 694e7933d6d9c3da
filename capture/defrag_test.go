package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// fragmentFile rewrites the capture at path, splitting every IP packet whose payload (the TCP
// segment) is longer than size bytes into fragments of size bytes (a multiple of 8); order
// may reorder or repeat each packet's fragments. It returns the new file's path.
func fragmentFile(t *testing.T, path string, size int, order func(frags [][]byte) [][]byte) string {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	must(t, err)
	var out bytes.Buffer
	pw, err := pcapng.NewPacketWriter(&out)
	must(t, err)
	id := uint32(0x4000)
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		must(t, err)
		frags := fragmentFrame(data, size, id)
		id++
		if order != nil && len(frags) > 1 {
			frags = order(frags)
		}
		for _, fr := range frags {
			must(t, pw.WritePacket(pcapng.LinkEthernet, ci.Timestamp, fr, 0))
		}
	}
	must(t, pw.Flush())
	p := filepath.Join(t.TempDir(), "fragmented.pcapng")
	must(t, os.WriteFile(p, out.Bytes(), 0o644))
	return p
}

// fragmentFrame splits an Ethernet frame's IPv4 or IPv6 packet into fragments of size bytes
// of payload, as a router would; a packet that fits is returned whole.
func fragmentFrame(frame []byte, size int, id uint32) [][]byte {
	eth, ip := frame[:14], frame[14:]
	var hdr, payload []byte
	v4 := ip[0]>>4 == 4
	if v4 {
		hdr, payload = ip[:20], ip[20:]
	} else {
		hdr, payload = ip[:40], ip[40:]
	}
	if len(payload) <= size {
		return [][]byte{frame}
	}
	var frags [][]byte
	for off := 0; off < len(payload); off += size {
		chunk := payload[off:min(off+size, len(payload))]
		more := off+size < len(payload)
		fr := append([]byte(nil), eth...)
		h := append([]byte(nil), hdr...)
		if v4 {
			binary.BigEndian.PutUint16(h[2:], uint16(20+len(chunk)))
			binary.BigEndian.PutUint16(h[4:], uint16(id))
			fo := uint16(off / 8)
			if more {
				fo |= 0x2000
			}
			binary.BigEndian.PutUint16(h[6:], fo)
			h[10], h[11] = 0, 0
			binary.BigEndian.PutUint16(h[10:], ipv4Checksum(h))
			fr = append(append(fr, h...), chunk...)
		} else {
			h[6] = 44 // a Fragment header follows
			binary.BigEndian.PutUint16(h[4:], uint16(8+len(chunk)))
			fh := []byte{6, 0, 0, 0, 0, 0, 0, 0}
			fo := uint16(off/8) << 3
			if more {
				fo |= 1
			}
			binary.BigEndian.PutUint16(fh[2:], fo)
			binary.BigEndian.PutUint32(fh[4:], id)
			fr = append(append(append(fr, h...), fh...), chunk...)
		}
		frags = append(frags, fr)
	}
	return frags
}

func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// TestFragments reads captures whose TCP segments were split into IP fragments (in order,
// reversed, with a fragment repeated) and decodes the same MQTT packets as from the
// unfragmented capture, as tshark does.
func TestFragments(t *testing.T) {
	c2sA, s2cA, c2sB, s2cB := v5Session(t)
	for _, family := range []struct {
		name     string
		cli, srv netip.AddrPort
	}{
		{"IPv4", cli, srv},
		{"IPv6", netip.MustParseAddrPort("[2001:db8::10]:50000"), netip.MustParseAddrPort("[2001:db8::1]:1883")},
	} {
		whole := file(t, func(sw *pcapng.StreamWriter) {
			s, err := sw.Open(family.cli, family.srv, ms(0))
			must(t, err)
			must(t, s.Write(stream.C2S, ms(1), c2sA))
			must(t, s.Write(stream.S2C, ms(2), s2cA))
			must(t, s.Write(stream.C2S, ms(3), c2sB))
			must(t, s.Write(stream.S2C, ms(4), s2cB))
			must(t, s.Close(stream.C2S, ms(30)))
		})
		want := mqscopeMsgs(t, whole, Options{})
		if len(want) != 17 {
			t.Fatalf("%d packets in the unfragmented capture, want 17", len(want))
		}
		for _, order := range []struct {
			name string
			fn   func([][]byte) [][]byte
		}{
			{"in order", nil},
			{"reversed", func(f [][]byte) [][]byte { slices.Reverse(f); return f }},
			{"first fragment twice", func(f [][]byte) [][]byte { return append([][]byte{f[0]}, f...) }},
		} {
			t.Run(family.name+" "+order.name, func(t *testing.T) {
				p := fragmentFile(t, whole, 32, order.fn)
				compare(t, mqscopeMsgs(t, p, Options{}), want)
				a := NewAnalyzer(&recorder{}, Options{})
				must(t, ReadFiles(context.Background(), []string{p}, a, nil))
				st := a.Stats()
				if st.Datagrams == 0 || st.Fragments < 3*st.Datagrams {
					t.Errorf("%d fragments rebuilt into %d datagrams", st.Fragments, st.Datagrams)
				}
				// --write: every fragment of a wanted segment is copied.
				keep := map[int64]bool{}
				in := &Inspector{Emit: func(inspect.Record) error { return nil }}
				must(t, ReadFiles(context.Background(), []string{p}, NewAnalyzer(in, Options{Keep: func(n int64) { keep[n] = true }}), nil))
				must(t, in.Close())
				var out bytes.Buffer
				pw, err := pcapng.NewPacketWriter(&out)
				must(t, err)
				must(t, CopyPackets([]string{p}, func(n int64) bool { return keep[n] }, pw))
				must(t, pw.Flush())
				copied := filepath.Join(t.TempDir(), "copied.pcapng")
				must(t, os.WriteFile(copied, out.Bytes(), 0o644))
				compare(t, mqscopeMsgs(t, copied, Options{}), want)
				// capture --write: every packet of the connection is recorded once, the
				// fragments too, and the recording tells the same story.
				var rec bytes.Buffer
				rw, err := pcapng.NewPacketWriter(&rec)
				must(t, err)
				frames := 0
				must(t, ReadFiles(context.Background(), []string{p}, NewAnalyzer(&recorder{}, Options{Record: func(link int, ci gopacket.CaptureInfo, data []byte) {
					frames++
					must(t, rw.WritePacket(link, ci.Timestamp, data, ci.Length))
				}}), nil))
				must(t, rw.Flush())
				if int64(frames) != st.Packets {
					t.Errorf("%d packets recorded of %d", frames, st.Packets)
				}
				recorded := filepath.Join(t.TempDir(), "recorded.pcapng")
				must(t, os.WriteFile(recorded, rec.Bytes(), 0o644))
				compare(t, mqscopeMsgs(t, recorded, Options{}), want)
				if order.fn == nil {
					theirs := tsharkMsgs(t, p, "1883")
					compare(t, mqscopeMsgs(t, p, Options{}), tsharkSharedAliases(t, theirs))
				}
			})
		}
	}
}

func TestAddSpan(t *testing.T) {
	var s []span
	for _, x := range []span{{16, 24}, {0, 8}, {40, 48}, {8, 16}, {20, 44}} {
		s = addSpan(s, x)
	}
	if !slices.Equal(s, []span{{0, 48}}) {
		t.Errorf("spans %v, want [{0 48}]", s)
	}
	if s := addSpan([]span{{0, 8}, {16, 24}}, span{32, 40}); !slices.Equal(s, []span{{0, 8}, {16, 24}, {32, 40}}) {
		t.Errorf("spans %v", s)
	}
}

// TestDefragBounds checks what the defragmenter refuses and forgets.
func TestDefragBounds(t *testing.T) {
	src, dst := []byte{192, 0, 2, 10}, []byte{192, 0, 2, 1}
	frag := func(id uint32, off int, more bool, n int) fragment {
		return fragment{src: src, dst: dst, id: id, off: off, more: more, payload: make([]byte, n)}
	}
	var d defragmenter
	if _, _, seg := d.add(frag(1, 65528, false, 16), 1, t0, false, nil); seg != nil || d.held != 0 {
		t.Error("a fragment ending past 65,535 bytes was taken")
	}
	if _, _, seg := d.add(frag(2, 0, true, 12), 2, t0, false, nil); seg != nil || d.held != 0 {
		t.Error("a non-final fragment whose length is not a multiple of 8 was taken")
	}
	// Incomplete datagrams are forgotten after fragTimeout, in capture time.
	d.add(frag(3, 8, false, 8), 3, t0, false, nil)
	if d.held != 16+fragOverhead || len(d.flows) != 1 {
		t.Fatalf("held %d bytes in %d datagrams", d.held, len(d.flows))
	}
	d.add(frag(4, 8, false, 8), 4, t0.Add(fragTimeout+time.Second), false, nil)
	if len(d.flows) != 1 || d.flows[fragKey{src: [16]byte{192, 0, 2, 10}, dst: [16]byte{192, 0, 2, 1}, id: 4}] == nil || d.held != 16+fragOverhead {
		t.Errorf("the old datagram was not forgotten: %d held", len(d.flows))
	}
	// All incomplete datagrams together hold at most maxFragHeld bytes.
	var e defragmenter
	for id := uint32(0); id < maxFragHeld/60000+10; id++ {
		e.add(frag(id, 60000-8, false, 8), int64(id), t0, false, nil)
	}
	if e.held > maxFragHeld {
		t.Errorf("held %d bytes, over %d", e.held, maxFragHeld)
	}
	// Empty fragments carry nothing and are refused: they would cost bookkeeping for free.
	var z defragmenter
	for id := uint32(0); id < 1000; id++ {
		z.add(frag(id, 8, true, 0), int64(id), t0, false, nil)
	}
	if len(z.flows) != 0 || z.held != 0 {
		t.Errorf("empty fragments made %d datagrams, %d bytes held", len(z.flows), z.held)
	}
	// Many small datagrams are bounded by their bookkeeping too, not just their bytes.
	var m defragmenter
	for id := uint32(0); id < maxFragHeld/fragOverhead+1000; id++ {
		m.add(frag(id, 8, true, 8), int64(id), t0, false, nil)
	}
	if m.held > maxFragHeld || len(m.flows) > maxFragHeld/fragOverhead {
		t.Errorf("%d datagrams of 8 bytes held, %d bytes charged", len(m.flows), m.held)
	}
	// The same fragment over and over, with Keep: the packet numbers are bounded.
	var r defragmenter
	for i := range int64(maxDatagram/8 + 100) {
		r.add(frag(1, 0, true, 8), i, t0, true, nil)
	}
	for _, g := range r.flows {
		if len(g.packets) >= maxDatagram/8 {
			t.Errorf("%d packets kept for one datagram", len(g.packets))
		}
	}
	if r.held > maxFragHeld || (len(r.flows) == 0) != (r.held == 0) {
		t.Errorf("%d bytes charged for %d datagrams", r.held, len(r.flows))
	}
	// Timestamps going back a little do not walk all datagrams each time.
	var b defragmenter
	b.add(frag(1, 8, true, 8), 1, t0, false, nil)
	for i := range 100 {
		b.add(frag(uint32(i+2), 8, true, 8), int64(i+2), t0.Add(-time.Duration(i)*time.Millisecond), false, nil)
	}
	if !b.swept.Equal(t0) || len(b.flows) != 101 {
		t.Errorf("swept at %v, %d datagrams", b.swept.Sub(t0), len(b.flows))
	}
	// A IPv4 and an IPv6 datagram with the same leading address bytes and id are two.
	var v defragmenter
	v.add(fragment{src: src, dst: dst, id: 7, off: 8, payload: make([]byte, 8)}, 1, t0, false, nil)
	v.add(fragment{src: append(append([]byte{}, src...), make([]byte, 12)...), dst: append(append([]byte{}, dst...), make([]byte, 12)...), id: 7, off: 0, more: true, payload: make([]byte, 8)}, 2, t0, false, nil)
	if len(v.flows) != 2 {
		t.Errorf("IPv4 and IPv6 fragments shared a datagram: %d", len(v.flows))
	}
	// The copies kept for recording count against the bound too, and go with the datagram.
	var w defragmenter
	copyOf := &recFrame{data: make([]byte, 1500)}
	for id := range uint32(maxFragHeld/1500 + 100) {
		w.add(frag(id, 0, true, 8), int64(id), t0, false, copyOf)
	}
	if w.held > maxFragHeld || len(w.flows) >= maxFragHeld/1500 {
		t.Errorf("%d datagrams with their copies: %d bytes charged", len(w.flows), w.held)
	}
	w.add(frag(5, 8, false, 8), 1, t0, false, copyOf)
	if len(w.frames) != 1 || len(w.frames[0].data) != 1500 {
		t.Errorf("completed: %d copies of the other fragments", len(w.frames))
	}
	// The packets remembered for completed datagrams are bounded.
	var c defragmenter
	big := make([]int64, maxFragCarried/4)
	for i := range int64(10) {
		c.remember(i, big)
	}
	if c.carriedN > maxFragCarried || c.carried(0) != nil || c.carried(9) == nil {
		t.Errorf("%d packet numbers remembered", c.carriedN)
	}
	// Completing a datagram returns its payload and the other fragments' packets.
	var g defragmenter
	g.add(frag(9, 8, false, 8), 10, t0, true, nil)
	_, _, seg := g.add(frag(9, 0, true, 8), 11, t0, true, nil)
	if len(seg) != 16 || !slices.Equal(g.carried(11), []int64{10}) || g.held != 0 {
		t.Errorf("segment of %d bytes, carried %v, %d held", len(seg), g.carried(11), g.held)
	}
}
