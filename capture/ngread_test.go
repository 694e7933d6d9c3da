package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"
)

// ngPacket is one packet as a pcapng reader returns it.
type ngPacket struct {
	link int
	ci   gopacket.CaptureInfo
	data []byte
}

// readNg reads every packet of a pcapng stream with ngReader, up to the first error.
func readNg(b []byte) ([]ngPacket, error) {
	r, err := newNgReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	var out []ngPacket
	for {
		link, ci, data, err := r.next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return out, err
		}
		out = append(out, ngPacket{link, ci, bytes.Clone(data)})
	}
}

// readPcapgo reads every packet of a pcapng stream with pcapgo, up to the first error (or
// panic, on some damaged files).
func readPcapgo(b []byte) (out []ngPacket, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("pcapgo panicked")
		}
	}()
	var links []int
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{WantMixedLinkType: true,
		SectionEndCallback: func([]pcapgo.NgInterface, pcapgo.NgSectionInfo) { links = links[:0] }})
	if err != nil {
		return nil, err
	}
	for {
		data, ci, err := r.ZeroCopyReadPacketData()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return out, err
		}
		for len(links) <= ci.InterfaceIndex {
			intf, err := r.Interface(len(links))
			if err != nil {
				return out, err
			}
			links = append(links, fixLink(int(intf.LinkType)))
		}
		ci.AncillaryData = nil
		out = append(out, ngPacket{links[ci.InterfaceIndex], ci, bytes.Clone(data)})
	}
}

// pcapgoSafe reports whether gopacket's reader can read b without allocating the gigabytes
// a damaged file may announce: every block within the file, every snap length small, every
// packet within its block.
func pcapgoSafe(b []byte) bool {
	r := &ngReader{in: bytes.NewReader(b), size: int64(len(b)), bo: binary.LittleEndian, buf: make([]byte, 4096)}
	for {
		typ, blk, err := r.block()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		n := int64(len(blk))
		switch typ {
		case 1:
			if n < 20 || r.bo.Uint32(blk[12:]) > maxSnapLen {
				return false
			}
		case 2, 6:
			if n < 32 || int64(r.bo.Uint32(blk[20:])) > n-32 {
				return false
			}
		case 3:
			if n < 16 || int64(r.bo.Uint32(blk[8:])) > n-16 {
				return false
			}
		}
	}
}

// ngBlock is a pcapng block of type typ around body (padded to 4 bytes), in byte order bo.
func ngBlock(bo binary.AppendByteOrder, typ uint32, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	b := bo.AppendUint32(nil, typ)
	b = bo.AppendUint32(b, n)
	b = append(b, body...)
	return bo.AppendUint32(b, n)
}

// ngSections is a pcapng stream of two sections of different byte orders, with interfaces
// of other link types and timestamp resolutions and offsets, every kind of packet block, and
// blocks a reader skips (statistics, secrets, one of an unknown type).
func ngSections() []byte {
	var out []byte
	for k, bo := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
		shb := bo.AppendUint32(nil, 0x1A2B3C4D)
		shb = bo.AppendUint16(shb, 1)
		shb = bo.AppendUint16(shb, 0)
		shb = bo.AppendUint64(shb, ^uint64(0))
		out = append(out, ngBlock(bo, 0x0A0D0D0A, shb)...)
		idb := func(link uint16, snap uint32, opts ...[]byte) []byte {
			b := bo.AppendUint16(nil, link)
			b = bo.AppendUint16(b, 0)
			b = bo.AppendUint32(b, snap)
			for _, o := range opts {
				b = append(b, o...)
			}
			return ngBlock(bo, 1, append(b, 0, 0, 0, 0))
		}
		opt := func(code uint16, v []byte) []byte {
			b := bo.AppendUint16(nil, code)
			b = bo.AppendUint16(b, uint16(len(v)))
			b = append(b, v...)
			for len(b)%4 != 0 {
				b = append(b, 0)
			}
			return b
		}
		out = append(out, idb(1, 0)...)                                                               // Ethernet, microseconds
		out = append(out, idb(101, 96, opt(9, []byte{9}), opt(2, []byte("eth1")))...)                 // raw IP, nanoseconds, snap 96
		out = append(out, idb(113, 65535, opt(9, []byte{0x88}), opt(14, bo.AppendUint64(nil, 7)))...) // SLL, 2^-8 s, offset 7 s
		pkt := func(iface uint32, ts uint64, data []byte, orig int) []byte {
			b := bo.AppendUint32(nil, iface)
			b = bo.AppendUint32(b, uint32(ts>>32))
			b = bo.AppendUint32(b, uint32(ts))
			b = bo.AppendUint32(b, uint32(len(data)))
			b = bo.AppendUint32(b, uint32(orig))
			return ngBlock(bo, 6, append(b, data...))
		}
		for i := range 3 {
			out = append(out, pkt(uint32(i), 1_700_000_000_123_456+uint64(k)*999_999_999_999, bytes.Repeat([]byte{byte(i + 1)}, 40+i), 60+i)...)
		}
		out = append(out, ngBlock(bo, 5, make([]byte, 12))...)                                                             // statistics
		out = append(out, ngBlock(bo, 0x0BAD, []byte("skipped"))...)                                                       // unknown
		out = append(out, ngBlock(bo, 10, append(bo.AppendUint32(bo.AppendUint32(nil, 0x544c534b), 3), 'a', 'b', 'c'))...) // secrets
		spb := bo.AppendUint32(nil, 50)
		out = append(out, ngBlock(bo, 3, append(spb, bytes.Repeat([]byte{9}, 50)...))...)
		ob := bo.AppendUint16(nil, 1)
		ob = bo.AppendUint16(ob, 0)
		ob = bo.AppendUint32(ob, 0)
		ob = bo.AppendUint32(ob, 1234567)
		ob = bo.AppendUint32(ob, 5)
		ob = bo.AppendUint32(ob, 5)
		out = append(out, ngBlock(bo, 2, append(ob, 1, 2, 3, 4, 5))...)
	}
	return out
}

// The packets of every testdata capture, and of two sections with every kind of block, are
// those pcapng's reader in gopacket reads: link types, times, lengths, interfaces, bytes.
func TestNgReaderAsPcapgo(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "captures", "*.pcapng"))
	inputs := map[string][]byte{"sections": ngSections()}
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		inputs[filepath.Base(f)] = b
	}
	for name, b := range inputs {
		got, err := readNg(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := readPcapgo(b)
		if err != nil {
			t.Fatalf("%s: pcapgo: %v", name, err)
		}
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("%s: %d packets, pcapgo %d", name, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.link != w.link || !g.ci.Timestamp.Equal(w.ci.Timestamp) || g.ci.CaptureLength != w.ci.CaptureLength ||
				g.ci.Length != w.ci.Length || g.ci.InterfaceIndex != w.ci.InterfaceIndex || !bytes.Equal(g.data, w.data) {
				t.Fatalf("%s: packet %d: %+v\npcapgo: %+v", name, i+1, g, w)
			}
		}
	}
	// The secrets of both sections, in order.
	r, err := newNgReader(bytes.NewReader(inputs["sections"]), -1)
	must(t, err)
	for {
		if _, _, _, err := r.next(); err != nil {
			break
		}
	}
	if len(r.secrets) != 2 || string(r.secrets[0].Data) != "abc" || string(r.secrets[1].Data) != "abc" {
		t.Errorf("secrets %+v", r.secrets)
	}
}

// FuzzNgReader reads damaged pcapng streams: never a panic, never a packet's bytes from
// outside its block, and, while both read packets, the packets gopacket's reader reads.
func FuzzNgReader(f *testing.F) {
	f.Add(ngSections())
	for _, name := range []string{"mqtt5-session.pcapng", "mqtt-tls.pcapng"} {
		if b, err := os.ReadFile(filepath.Join("..", "testdata", "captures", name)); err == nil {
			f.Add(b[:min(len(b), 4000)])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _ := readNg(b)
		for _, p := range got {
			if p.ci.CaptureLength != len(p.data) || len(p.data) > len(b) {
				t.Fatalf("packet of %d bytes, capture length %d", len(p.data), p.ci.CaptureLength)
			}
		}
		if !pcapgoSafe(b) {
			return
		}
		want, _ := readPcapgo(b)
		for i := range min(len(got), len(want)) {
			g, w := got[i], want[i]
			if g.link != w.link || !g.ci.Timestamp.Equal(w.ci.Timestamp) || g.ci.Length != w.ci.Length ||
				g.ci.InterfaceIndex != w.ci.InterfaceIndex || !bytes.Equal(g.data, w.data) {
				t.Fatalf("packet %d: %+v\npcapgo: %+v", i+1, g, w)
			}
		}
	})
}

// nothingReader returns nothing, and no error, forever.
type nothingReader struct{}

func (nothingReader) Read([]byte) (int, error) { return 0, nil }

// A stream that stops giving bytes without saying it ended is an error, not a loop.
func TestNgReaderNoProgress(t *testing.T) {
	b := ngSections()
	r, err := newNgReader(io.MultiReader(bytes.NewReader(b[:100]), nothingReader{}), -1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, _, _, err = r.next(); err != nil {
			break
		}
		if i > 100 {
			t.Fatal("packets from 100 bytes")
		}
	}
	if !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("error %v, want io.ErrNoProgress", err)
	}
}

// Damaged blocks too short for what their type holds are errors that say where, in the
// reading and in the skim for secrets, never a panic.
func TestNgReaderShortBlocks(t *testing.T) {
	shb := ngSections()[:28] // the first section header
	for _, tc := range []struct {
		typ  uint32
		body []byte
		want string
	}{
		{10, nil, "damaged decryption secrets block at offset 28"},
		{10, []byte{1, 0, 0, 0}, "damaged decryption secrets block at offset 28"},
		{3, nil, "damaged packet block at offset 28"},
		{6, make([]byte, 16), "damaged packet block at offset 28"},
		{1, []byte{1, 0, 0, 0}, "damaged interface block at offset 28"},
	} {
		b := append(append([]byte{}, shb...), ngBlock(binary.LittleEndian, tc.typ, tc.body)...)
		if tc.typ == 3 { // an interface first, so that the simple packet has one
			b = append(append(append([]byte{}, shb...), ngBlock(binary.LittleEndian, 1, make([]byte, 8))...), ngBlock(binary.LittleEndian, 3, nil)...)
			tc.want = "damaged packet block at offset 48"
		}
		_, err := readNg(b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("type %d, %d bytes: error %v, want %q", tc.typ, len(tc.body), err, tc.want)
		}
		p := filepath.Join(t.TempDir(), "short.pcapng")
		must(t, os.WriteFile(p, b, 0o644))
		scanSecrets(p) // must not panic
	}
}
