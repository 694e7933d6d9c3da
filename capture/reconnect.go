package capture

import (
	"net/netip"
	"time"

	"github.com/google/gopacket/reassembly"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// newSYN handles a SYN (without ACK) from src to dst, the IP addresses of the packet being
// analysed (a.tcp), when reassembly still holds a connection between those addresses and
// ports: two files of one capture session, or a device that reconnects from the same port
// after losing its connection unseen. Unless the SYN is a retransmission of the one that
// opened that connection (the same sequence number, nothing carried since), the old
// connection ends where the capture left it, and reassembly forgets it, so that the SYN begins
// a new one instead of being taken for bytes of the old (with the same initial sequence
// number, they would be dropped as retransmissions).
func (a *Analyzer) newSYN(src, dst []byte, t time.Time) {
	sa, _ := netip.AddrFromSlice(src)
	da, _ := netip.AddrFromSlice(dst)
	k := makeFlowKey(netip.AddrPortFrom(sa, uint16(a.tcp.SrcPort)), netip.AddrPortFrom(da, uint16(a.tcp.DstPort)))
	s := a.open[k]
	if s == nil || s.complete {
		return
	}
	if s.handshake && !s.carried && s.isn == reassembly.Sequence(a.tcp.Seq) {
		return // a retransmitted SYN
	}
	a.restart(k, s, t, "its end was not captured: a new connection between the same addresses and ports began")
}

// backwards is how far before the latest packet seen a packet must be for its connection to be
// taken for another one: packets of one capture come in time order, give or take the moments
// by which merged interfaces disagree.
const backwards = time.Second

// earlier handles a packet from src to dst (a.tcp) that is older than the latest packet seen by
// more than backwards, when reassembly holds a connection between those addresses and ports
// that saw a later packet: the packet belongs to another capture of the same addresses and
// ports (files that overlap in time), not to that connection, which ends where it was left.
func (a *Analyzer) earlier(src, dst []byte, t time.Time) {
	sa, _ := netip.AddrFromSlice(src)
	da, _ := netip.AddrFromSlice(dst)
	k := makeFlowKey(netip.AddrPortFrom(sa, uint16(a.tcp.SrcPort)), netip.AddrPortFrom(da, uint16(a.tcp.DstPort)))
	if s := a.open[k]; s != nil && !s.complete && t.Before(s.lastT.Add(-backwards)) {
		a.restart(k, s, t, "its end was not captured: packets from earlier in time, on the same addresses and ports, began another connection")
	}
}

// connectWindow is how far from where a connection's client stream is (in sequence numbers) a
// CONNECT must be to begin another connection: a new connection's initial sequence number is
// random, so one on the same addresses and ports lands this close by a chance of 1 in 2,048,
// while bytes lost by the capture (a hole before a second CONNECT of the same connection, a
// protocol error to report) are seldom more.
const connectWindow = 1 << 20

// newConnect handles a segment from src to dst (a.tcp) that begins with a CONNECT, when
// reassembly holds a connection between those addresses and ports whose client sent it: unless
// the segment lies where that connection's client stream is (within connectWindow of it: a
// second CONNECT, or a retransmission), it begins another connection whose handshake was not
// captured (a device reconnecting from the same port, another file of the capture), and the
// old connection ends where the capture left it.
func (a *Analyzer) newConnect(src, dst []byte, t time.Time) {
	if v, ok := decode.PeekVersion(a.tcp.Payload); !ok || !v.Valid() {
		return
	}
	sa, _ := netip.AddrFromSlice(src)
	da, _ := netip.AddrFromSlice(dst)
	from := netip.AddrPortFrom(sa, uint16(a.tcp.SrcPort))
	k := makeFlowKey(from, netip.AddrPortFrom(da, uint16(a.tcp.DstPort)))
	s := a.open[k]
	if s == nil || s.complete || !s.carried {
		return
	}
	ri := s.rd(stream.C2S)
	if s.addr[ri] != from || !s.posOK[ri] {
		return
	}
	if d := diff(s.pos[ri], reassembly.Sequence(a.tcp.Seq)); d >= -connectWindow && d <= connectWindow {
		return
	}
	a.restart(k, s, t, "its end was not captured: a CONNECT on the same addresses and ports, far from this connection's bytes, began another connection")
}

// restart ends connection s, keyed k, where the capture left it (why: how it ended), and has
// reassembly forget it, so that the packet being analysed begins a new one.
func (a *Analyzer) restart(k flowKey, s *tcpConn, t time.Time, why string) {
	delete(a.open, k)
	if s.end.By == stream.Unknown {
		s.end = stream.End{By: stream.SourceEnd, Detail: why}
	}
	s.finish(s.lastT)
	// Resets of its own (closeHalf) end both directions in reassembly, which then forgets it.
	for ri := range s.addr {
		a.closeHalf(s, ri, t)
	}
}
