package capture

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/gopacket"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// TestRecord checks Options.Record (capture --write): every packet of the MQTT connections,
// found by port or by their CONNECT, and of the TLS ones, from the SYN to the last
// acknowledgement, and nothing of the others.
func TestRecord(t *testing.T) {
	addr := func(port uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), port)
	}
	srvAt := func(port uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port)
	}
	conv := func(sw *pcapng.StreamWriter, from, to uint16, at int, c2s, s2c []byte) {
		s, err := sw.Open(addr(from), srvAt(to), ms(at))
		must(t, err)
		must(t, s.Write(stream.C2S, ms(at+1), c2s))
		if s2c != nil {
			must(t, s.Write(stream.S2C, ms(at+2), s2c))
		}
		must(t, s.Close(stream.C2S, ms(at+3)))
	}
	pkts := ethernetPackets(t, func(sw *pcapng.StreamWriter) {
		conv(sw, 40001, 1883, 0, connect, connack)                                                                // MQTT on its port
		conv(sw, 40002, 4000, 10, connect, connack)                                                               // MQTT found by its CONNECT
		conv(sw, 40003, 8080, 20, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\n\r\n")) // not ours
		conv(sw, 40004, 8883, 30, clientHello("broker.example"), nil)                                             // TLS
	})
	var want [][]byte
	for _, p := range pkts {
		if sp, dp := binary.BigEndian.Uint16(p.data[14+20:]), binary.BigEndian.Uint16(p.data[14+22:]); sp != 8080 && dp != 8080 {
			want = append(want, p.data)
		}
	}
	var got [][]byte
	a := NewAnalyzer(&recorder{}, Options{Record: func(link int, ci gopacket.CaptureInfo, data []byte) {
		if link != pcapng.LinkEthernet {
			t.Errorf("link type %d", link)
		}
		got = append(got, append([]byte(nil), data...))
	}})
	for i, p := range pkts {
		a.Packet(int64(i+1), pcapng.LinkEthernet, p.ci, p.data)
	}
	a.Close()
	less := func(x, y []byte) int { return bytes.Compare(x, y) }
	slices.SortFunc(got, less)
	slices.SortFunc(want, less)
	if len(got) != len(want) {
		t.Fatalf("%d packets recorded, want %d (of %d)", len(got), len(want), len(pkts))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("recorded packet %d differs:\n%x\nwant\n%x", i, got[i], want[i])
		}
	}
}
