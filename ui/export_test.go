package ui

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/stream"
)

// TestExportJSONL: an export is the JSON lines mqscope read writes for the same records: the
// marked packets alone, or whole connections with their session and close records.
func TestExportJSONL(t *testing.T) {
	recs := fixture(t)
	m := fixtureModel(t)
	o := inspect.JSONOptions{}
	var want []byte
	for _, r := range recs {
		if r.Kind() != "tls" {
			want = inspect.AppendJSONLine(want, r, inspect.JSONOptions{Payload: payload.Preview})
		}
	}
	var got bytes.Buffer
	n, err := m.Export(&got, FormatJSONL, m.ExportSeqs(ScopeAll, -1, 0), true, o)
	if err != nil || n != m.Total() {
		t.Fatalf("export: %d packets, %v", n, err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("export of everything differs from the records' JSON lines:\n%s\nwant:\n%s", got.Bytes(), want)
	}

	s3, s7 := find(t, m, 1, 3), find(t, m, 2, 4)
	m.Mark(s7)
	m.Mark(s3)
	got.Reset()
	if _, err := m.Export(&got, FormatJSONL, m.ExportSeqs(ScopeMarked, -1, 0), false, o); err != nil {
		t.Fatal(err)
	}
	want = inspect.AppendJSONLine(inspect.AppendJSONLine(nil, m.Packet(s3), inspect.JSONOptions{Payload: payload.Preview}), m.Packet(s7), inspect.JSONOptions{Payload: payload.Preview})
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("marked export:\n%s\nwant:\n%s", got.Bytes(), want)
	}
}

// TestExportPcapng: the pcapng export of a connection carries exactly its packets' bytes, in
// order, in each direction, between its addresses: read back with gopacket, independently of
// our writer.
func TestExportPcapng(t *testing.T) {
	m := fixtureModel(t)
	var buf bytes.Buffer
	if _, err := m.Export(&buf, FormatPcapng, m.ExportSeqs(ScopeConn, -1, 1), true, inspect.JSONOptions{}); err != nil {
		t.Fatal(err)
	}
	var want [2][]byte
	for _, s := range m.ExportSeqs(ScopeConn, -1, 1) {
		r := m.Packet(s)
		want[r.Dir] = append(want[r.Dir], r.Packet.Info().Raw...)
	}
	rd, err := pcapgo.NewNgReader(&buf, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var got [2][]byte
	fins := 0
	for {
		data, _, err := rd.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := gopacket.NewPacket(data, rd.LinkType(), gopacket.Default)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil {
			t.Fatalf("not TCP: %v", p)
		}
		if tcp.FIN {
			fins++
		}
		d := stream.C2S
		if tcp.SrcPort == 1883 {
			d = stream.S2C
		} else if tcp.SrcPort != 50001 || tcp.DstPort != 1883 {
			t.Errorf("ports %d → %d, want 50001 → 1883", tcp.SrcPort, tcp.DstPort)
		}
		got[d] = append(got[d], tcp.Payload...)
	}
	for d := range 2 {
		if !bytes.Equal(got[d], want[d]) {
			t.Errorf("%s: % x\nwant % x", stream.Dir(d), got[d], want[d])
		}
	}
	if fins != 2 {
		t.Errorf("%d FINs, want 2 (the connection was closed)", fins)
	}
}
