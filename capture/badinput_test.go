package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// goodCapture is a small capture of one MQTT connection, and the offset where its fourth
// packet starts.
func goodCapture(t *testing.T) []byte {
	t.Helper()
	p := file(t, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(cli, srv, ms(0))
		must(t, s.Write(stream.C2S, ms(1), connect))
		must(t, s.Write(stream.S2C, ms(2), connack))
		must(t, s.Write(stream.C2S, ms(3), publish("a", 3000)))
		must(t, s.Close(stream.C2S, ms(4)))
	})
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}

// epb is an Enhanced Packet Block of blen bytes (little-endian) announcing caplen captured
// bytes, with nothing after its header but its trailing length.
func epb(blen, caplen uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 6)
	b = binary.LittleEndian.AppendUint32(b, blen)
	b = append(b, make([]byte, 12)...) // interface, timestamp
	b = binary.LittleEndian.AppendUint32(b, caplen)
	b = binary.LittleEndian.AppendUint32(b, caplen)
	b = append(b, make([]byte, int(blen)-32)...)
	return binary.LittleEndian.AppendUint32(b, blen)
}

func TestBadFiles(t *testing.T) {
	good := goodCapture(t)
	pcapHeader := func(caplen uint32) []byte {
		b := binary.LittleEndian.AppendUint32(nil, 0xa1b2c3d4)
		b = binary.LittleEndian.AppendUint16(b, 2)
		b = binary.LittleEndian.AppendUint16(b, 4)
		b = append(b, make([]byte, 8)...)
		b = binary.LittleEndian.AppendUint32(b, 65535) // snap length
		b = binary.LittleEndian.AppendUint32(b, 1)     // Ethernet
		// One packet header announcing caplen bytes, then 10 bytes.
		b = append(b, make([]byte, 8)...)
		b = binary.LittleEndian.AppendUint32(b, caplen)
		b = binary.LittleEndian.AppendUint32(b, caplen)
		return append(b, make([]byte, 10)...)
	}
	cases := []struct {
		name  string
		data  []byte
		want  []string // in the error
		conns int      // connections still reported
	}{
		{"empty", nil, []string{"bad.pcap", "not a pcap or pcapng file"}, 0},
		{"garbage", []byte("this is not a capture at all"), []string{"bad.pcap", "not a pcap or pcapng file"}, 0},
		{"truncated inside a packet", good[:len(good)-200], []string{"bad.pcap", "packet 9", "truncated: the block at offset", "are left"}, 1},
		{"truncated pcapng header", good[:20], []string{"bad.pcap"}, 0},
		{"pcap packet longer than the file", pcapHeader(1000), []string{"bad.pcap", "packet 1"}, 0},
		{"pcap packet of 4 GB", pcapHeader(0xffffffff), []string{"bad.pcap", "packet 1"}, 0},
		{"pcapng block of 4 GB", append(append([]byte{}, good...), 6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff), []string{"bad.pcap", "packet 12", "4294967295 bytes"}, 1},
		// Whole in the buffer, it is checked while the packet before it is read: the error
		// still comes with it.
		{"pcapng packet longer than its block", append(append([]byte{}, good...), epb(32, 1000)...), []string{"bad.pcap", "packet 12", "captured length exceeds the block"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.pcap")
			must(t, os.WriteFile(p, tc.data, 0o644))
			r := &recorder{}
			err := ReadFiles(context.Background(), []string{p}, NewAnalyzer(r, Options{}), nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if len(r.conns) != tc.conns {
				t.Errorf("%d connections reported, want %d", len(r.conns), tc.conns)
			}
		})
	}
}

// TestFilesInOrder reads a capture cut in two files as one.
func TestFilesInOrder(t *testing.T) {
	c2s := append(append([]byte{}, connect...), publish("x", 10)...)
	var bufs [2]bytes.Buffer
	sws := [2]*pcapng.StreamWriter{}
	for i := range sws {
		sws[i], _ = pcapng.NewStreamWriter(&bufs[i])
	}
	s, _ := sws[0].Open(cli, srv, ms(0))
	must(t, s.Write(stream.C2S, ms(1), c2s[:10]))
	s.MoveTo(sws[1])
	must(t, s.Write(stream.C2S, ms(2), c2s[10:]))
	must(t, s.Close(stream.C2S, ms(3)))
	var files []string
	for i := range sws {
		must(t, sws[i].Flush())
		p := filepath.Join(t.TempDir(), "part.pcapng")
		must(t, os.WriteFile(p, bufs[i].Bytes(), 0o644))
		files = append(files, p)
	}
	r := analyze(t, Options{}, files...)
	if len(r.conns) != 1 || !bytes.Equal(r.conns[0].data[0], c2s) {
		t.Errorf("streams across files: %d connections", len(r.conns))
	}
}

// TestLinkTypes reads the same connection framed by every supported link layer.
func TestLinkTypes(t *testing.T) {
	pkts := ethernetPackets(t, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(cli, srv, ms(0))
		must(t, s.Write(stream.C2S, ms(1), connect))
		must(t, s.Write(stream.S2C, ms(2), connack))
		must(t, s.Close(stream.C2S, ms(3)))
	})
	pkts6 := ethernetPackets(t, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(netip.MustParseAddrPort("[2001:db8::2]:40000"), netip.MustParseAddrPort("[2001:db8::1]:1883"), ms(0))
		must(t, s.Write(stream.C2S, ms(1), connect))
		must(t, s.Write(stream.S2C, ms(2), connack))
		must(t, s.Close(stream.C2S, ms(3)))
	})
	conv := map[string]struct {
		link int
		wrap func(eth []byte) []byte
	}{
		"ethernet": {pcapng.LinkEthernet, func(e []byte) []byte { return e }},
		"vlan": {pcapng.LinkEthernet, func(e []byte) []byte {
			b := append([]byte{}, e[:12]...)
			b = append(b, 0x88, 0xa8, 0x00, 0x2a) // 802.1ad service tag
			b = append(b, 0x81, 0x00, 0x00, 0x07) // 802.1Q customer tag
			return append(b, e[12:]...)
		}},
		"sll": {pcapng.LinkSLL, func(e []byte) []byte {
			b := []byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 0, 1, 0}
			return append(b, e[12:]...)
		}},
		"sll2": {pcapng.LinkSLL2, func(e []byte) []byte {
			b := append([]byte{}, e[12:14]...)
			b = append(b, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 6, 2, 0, 0, 0, 0, 0, 0)
			return append(b, e[14:]...)
		}},
		"null": {pcapng.LinkNull, func(e []byte) []byte {
			fam := uint32(2)
			if e[12] == 0x86 {
				fam = 30
			}
			return append(binary.LittleEndian.AppendUint32(nil, fam), e[14:]...)
		}},
		"loop": {pcapng.LinkLoop, func(e []byte) []byte {
			fam := uint32(2)
			if e[12] == 0x86 {
				fam = 24
			}
			return append(binary.BigEndian.AppendUint32(nil, fam), e[14:]...)
		}},
		"raw": {pcapng.LinkRaw, func(e []byte) []byte { return e[14:] }},
	}
	for name, cv := range conv {
		for ipv, src := range map[string][]gopacketPkt{"ipv4": pkts, "ipv6": pkts6} {
			t.Run(name+"/"+ipv, func(t *testing.T) {
				r := &recorder{}
				a := NewAnalyzer(r, Options{})
				for i, p := range src {
					a.Packet(int64(i+1), cv.link, p.ci, cv.wrap(p.data))
				}
				a.Close()
				if len(r.conns) != 1 || !bytes.Equal(r.conns[0].data[0], connect) || !bytes.Equal(r.conns[0].data[1], connack) {
					t.Fatalf("%d connections", len(r.conns))
				}
				if s := a.Stats(); s.TCP != int64(len(src)) {
					t.Errorf("stats %+v", s)
				}
			})
		}
	}
}

type gopacketPkt struct {
	ci   gopacket.CaptureInfo
	data []byte
}

// ethernetPackets returns the packets a pcapng.StreamWriter writes.
func ethernetPackets(t *testing.T, fn func(sw *pcapng.StreamWriter)) []gopacketPkt {
	t.Helper()
	p := file(t, fn)
	f, err := OpenFile(p)
	must(t, err)
	defer f.Close()
	var out []gopacketPkt
	for {
		_, ci, data, err := f.Next()
		if err != nil {
			break
		}
		out = append(out, gopacketPkt{ci, append([]byte{}, data...)})
	}
	return out
}

// FuzzAnalyzer feeds arbitrary frames of every link type: nothing may panic.
func FuzzAnalyzer(f *testing.F) {
	for _, p := range ethernetPackets(&testing.T{}, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(cli, srv, ms(0))
		s.Write(stream.C2S, ms(1), connect)
	}) {
		f.Add(byte(pcapng.LinkEthernet), p.data)
		for _, fr := range fragmentFrame(p.data, 16, 7) {
			f.Add(byte(pcapng.LinkEthernet), fr)
		}
	}
	f.Fuzz(func(t *testing.T, link byte, data []byte) {
		a := NewAnalyzer(&recorder{}, Options{})
		for _, l := range []int{int(link), pcapng.LinkEthernet, pcapng.LinkRaw, pcapng.LinkSLL, pcapng.LinkSLL2, pcapng.LinkNull} {
			a.Packet(1, l, gopacket.CaptureInfo{Timestamp: time.Unix(1, 0)}, data)
		}
		a.Close()
	})
}

// FuzzReadFile reads arbitrary files: errors, never a panic.
func FuzzReadFile(f *testing.F) {
	f.Add(goodCapture(&testing.T{}))
	// A patched pcap (magic 0xa1b2cd34) of one 60-byte record.
	patched := binary.LittleEndian.AppendUint32(nil, 0xa1b2cd34)
	patched = append(patched, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0)
	patched = append(patched, make([]byte, 8)...)
	patched = append(patched, 60, 0, 0, 0, 60, 0, 0, 0, 2, 0, 0, 0, 0, 8, 0, 0)
	f.Add(append(patched, make([]byte, 60)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_ = ReadFiles(context.Background(), []string{p}, NewAnalyzer(&recorder{}, Options{}), nil)
	})
}

// FuzzWebSocket feeds arbitrary WebSocket bytes, in arbitrary pieces and with gaps, to a
// connection upgraded to MQTT over WebSocket: nothing may panic or hold unbounded memory.
func FuzzWebSocket(f *testing.F) {
	f.Add(wsFrame(true, 2, connect, []byte{1, 2, 3, 4}), uint8(7), uint8(3))
	f.Add([]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, uint8(1), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, piece, gapEvery uint8) {
		a := NewAnalyzer(&recorder{}, Options{})
		s := &tcpConn{a: a, kind: kindUnknown, handshake: true}
		s.addr[0], s.addr[1] = cli, srv
		s.open(ms(0), stream.WebSocket)
		n := int(piece) + 1
		for i := 0; len(data) > 0; i++ {
			k := min(n, len(data))
			d := stream.Dir(i & 1)
			if gapEvery > 0 && i%int(gapEvery) == 0 {
				s.gap(d, ms(i), k)
			}
			s.data(d, ms(i), data[:k])
			data = data[k:]
		}
		for _, h := range s.half {
			if len(h.ws.hold) > maxHold {
				t.Fatalf("holding %d bytes", len(h.ws.hold))
			}
		}
	})
}

func TestReadDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenFile(dir)
	if err == nil || !strings.Contains(err.Error(), dir+": a directory") {
		t.Errorf("error %v, want one saying %s is a directory", err, dir)
	}
}

// FuzzClientHello parses arbitrary ClientHellos: never a panic, at most 16 ALPN protocols,
// and a well-formed hello read back whole.
func FuzzClientHello(f *testing.F) {
	f.Add(clientHello("broker.example", "mqtt"))
	f.Add(clientHello("", "h2", "x-amzn-mqtt-ca"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, _ := parseClientHello(b)
		if len(h.alpn) > 16 {
			t.Errorf("%d ALPN protocols", len(h.alpn))
		}
		if h.serverName != "" || len(h.alpn) > 0 {
			again, complete := parseClientHello(clientHello(h.serverName, h.alpn...))
			if !complete || again.serverName != h.serverName || !slices.Equal(again.alpn, h.alpn) {
				t.Errorf("%+v read back as %+v", h, again)
			}
		}
	})
}

// TestPatchedPcap reads the "modified" pcap format (magic 0xa1b2cd34, 8 more bytes in each
// record header), in both byte orders: the same connections as the standard pcap it was
// made from, and tshark, which reads the format, counts the same packets.
func TestPatchedPcap(t *testing.T) {
	pkts := ethernetPackets(t, func(sw *pcapng.StreamWriter) {
		s, _ := sw.Open(cli, srv, ms(0))
		s.Write(stream.C2S, ms(1), connect)
		s.Write(stream.S2C, ms(2), connack)
		s.Write(stream.C2S, ms(3), publish("a/b", 300))
		s.Close(stream.C2S, ms(4))
	})
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		var plain, patched bytes.Buffer
		hdr := make([]byte, 24)
		bo.PutUint32(hdr[0:], 0xa1b2c3d4)
		bo.PutUint16(hdr[4:], 2)
		bo.PutUint16(hdr[6:], 4)
		bo.PutUint32(hdr[16:], 65535)
		bo.PutUint32(hdr[20:], pcapng.LinkEthernet)
		plain.Write(hdr)
		bo.PutUint32(hdr[0:], 0xa1b2cd34)
		patched.Write(hdr)
		for _, p := range pkts {
			rec := make([]byte, 24)
			bo.PutUint32(rec[0:], uint32(p.ci.Timestamp.Unix()))
			bo.PutUint32(rec[4:], uint32(p.ci.Timestamp.Nanosecond()/1000))
			bo.PutUint32(rec[8:], uint32(len(p.data)))
			bo.PutUint32(rec[12:], uint32(len(p.data)))
			bo.PutUint32(rec[16:], 2) // interface index
			plain.Write(rec[:16])
			plain.Write(p.data)
			patched.Write(rec)
			patched.Write(p.data)
		}
		dir := t.TempDir()
		files := [2]string{filepath.Join(dir, "plain.pcap"), filepath.Join(dir, "patched.pcap")}
		must(t, os.WriteFile(files[0], plain.Bytes(), 0o644))
		must(t, os.WriteFile(files[1], patched.Bytes(), 0o644))
		a, b := analyze(t, Options{}, files[0]), analyze(t, Options{}, files[1])
		if len(a.conns) != 1 || len(b.conns) != 1 || !slices.Equal(a.conns[0].events, b.conns[0].events) ||
			!bytes.Equal(a.conns[0].data[0], b.conns[0].data[0]) || b.a.Stats().Packets != int64(len(pkts)) {
			t.Fatalf("%v: the patched pcap reads differently: %d packets", bo, b.a.Stats().Packets)
		}
		// Cut inside a record header: said as such.
		cut := filepath.Join(dir, "cut.pcap")
		must(t, os.WriteFile(cut, patched.Bytes()[:24+24+len(pkts[0].data)+10], 0o644))
		if err := ReadFiles(context.Background(), []string{cut}, NewAnalyzer(&recorder{}, Options{}), nil); err == nil || !strings.Contains(err.Error(), "the header of record 2") {
			t.Errorf("%v: cut patched pcap: %v", bo, err)
		}
		t.Run(fmt.Sprintf("tshark %v", bo), func(t *testing.T) {
			tshark := peer.Require(t, "tshark")
			out, err := exec.Command(tshark, "-r", files[1], "-T", "fields", "-e", "frame.len").Output()
			if n := strings.Count(string(out), "\n"); err != nil || n != len(pkts) {
				t.Errorf("tshark reads %d packets of %d: %v", n, len(pkts), err)
			}
		})
	}
}

// TestTimestampResolution: an interface block whose timestamp resolution pcapgo cannot use (an
// option of 0 bytes, 2^-70 s) is an error naming it, not a division by zero (FuzzReadFile found
// the empty option).
func TestTimestampResolution(t *testing.T) {
	for _, opt := range [][]byte{{9, 0, 0, 0}, {9, 0, 1, 0, 0x80 | 70, 0, 0, 0}} {
		var b []byte
		le := binary.LittleEndian
		shb := []byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0}
		b = append(b, shb...)
		idb := make([]byte, 16, 64)
		le.PutUint32(idb, 1)
		le.PutUint16(idb[8:], 1)
		le.PutUint32(idb[12:], 65535)
		idb = append(append(idb, opt...), 0, 0, 0, 0, 0, 0, 0, 0)
		le.PutUint32(idb[4:], uint32(len(idb)))
		le.PutUint32(idb[len(idb)-4:], uint32(len(idb)))
		b = append(b, idb...)
		p := filepath.Join(t.TempDir(), "tsresol.pcapng")
		must(t, os.WriteFile(p, b, 0o600))
		err := ReadFiles(context.Background(), []string{p}, NewAnalyzer(&recorder{}, Options{}), nil)
		if err == nil || !strings.Contains(err.Error(), "timestamp resolution") {
			t.Errorf("option % x: %v", opt, err)
		}
	}
}
