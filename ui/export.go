package ui

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
)

// Scope is what an export holds.
type Scope int

// Scopes of an export.
const (
	ScopeMarked Scope = iota // the marked packets (the selected one when none is marked)
	ScopeConn                // every packet of one connection, with its session and close
	ScopeAll                 // every packet held, with the sessions and closes
)

// Export formats.
const (
	FormatPcapng = "pcapng"
	FormatJSONL  = "jsonl"
)

// ExportSeqs returns the packets of an export: the marked ones (or sel when none is), those
// of connection conn, or all.
func (m *Model) ExportSeqs(s Scope, sel, conn int) []int {
	switch s {
	case ScopeMarked:
		if marks := m.Marks(); len(marks) > 0 {
			return marks
		}
		if m.Packet(sel) != nil {
			return []int{sel}
		}
		return nil
	case ScopeConn:
		m.mu.Lock()
		defer m.mu.Unlock()
		if c := m.conns[conn]; c != nil {
			return append([]int(nil), c.seqs...)
		}
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]int, len(m.pkts))
	for i := range out {
		out[i] = m.base + i
	}
	return out
}

// Export writes packets seqs to w in format: JSON lines as mqscope read --format jsonl
// writes them (with each connection's session and close records when whole connections are
// exported), or a pcapng file of the connections' TCP conversations carrying exactly those
// packets' bytes. It returns how many packets were written.
func (m *Model) Export(w io.Writer, format string, seqs []int, whole bool, o inspect.JSONOptions) (int, error) {
	recs := make([]*inspect.PacketRecord, 0, len(seqs))
	m.mu.Lock()
	last := map[int]int{} // conn -> the index in recs of its last packet
	for _, s := range seqs {
		if r := m.packet(s); r != nil {
			last[r.Conn] = len(recs)
			recs = append(recs, r)
		}
	}
	conns := map[int]Conn{}
	for id := range last {
		conns[id] = m.conns[id].copy(false)
	}
	m.mu.Unlock()
	switch format {
	case FormatJSONL:
		if o.Payload == payload.None {
			o.Payload = payload.Preview
		}
		jw := inspect.NewJSONWriter(w, o)
		for i, r := range recs {
			if err := jw.Write(r); err != nil {
				return i, err
			}
			c := conns[r.Conn]
			if whole && r.Type() == decode.CONNACK && c.Session != nil {
				if err := jw.Write(c.Session); err != nil {
					return i, err
				}
			}
			if whole && c.Close != nil && last[r.Conn] == i {
				if err := jw.Write(c.Close); err != nil {
					return i, err
				}
			}
		}
		return len(recs), jw.Close()
	case FormatPcapng:
		sw, err := pcapng.NewStreamWriter(w)
		if err != nil {
			return 0, err
		}
		streams := map[int]*pcapng.TCPStream{}
		for i, r := range recs {
			ts := streams[r.Conn]
			if ts == nil {
				client, err1 := netip.ParseAddrPort(r.Client)
				server, err2 := netip.ParseAddrPort(r.Server)
				if err1 != nil || err2 != nil {
					return i, fmt.Errorf("export: connection %d: addresses %q and %q are not IP:port", r.Conn, r.Client, r.Server)
				}
				if ts, err = sw.Open(client, server, r.Time); err != nil {
					return i, fmt.Errorf("export: connection %d: %w", r.Conn, err)
				}
				streams[r.Conn] = ts
			}
			if err := ts.Write(r.Dir, r.Time, r.Packet.Info().Raw); err != nil {
				return i, err
			}
			if c := conns[r.Conn]; whole && c.Close != nil && last[r.Conn] == i {
				if err := closeStream(ts, c.Close); err != nil {
					return i, err
				}
			}
		}
		return len(recs), sw.Flush()
	}
	return 0, fmt.Errorf("export: format %q: want %s or %s", format, FormatPcapng, FormatJSONL)
}

// closeStream ends a written conversation as the connection ended.
func closeStream(ts *pcapng.TCPStream, c *inspect.CloseRecord) error {
	by := stream.C2S
	if c.End.By == stream.Server {
		by = stream.S2C
	}
	if c.End.Abrupt() {
		return ts.Reset(by, c.Time)
	}
	return ts.Close(by, c.Time)
}
