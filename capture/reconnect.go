package capture

import (
	"net/netip"
	"time"

	"github.com/google/gopacket/reassembly"

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
	delete(a.open, k)
	if s.end.By == stream.Unknown {
		s.end = stream.End{By: stream.SourceEnd, Detail: "its end was not captured: a new connection between the same addresses and ports began"}
	}
	s.finish(s.lastT)
	// Resets of its own (closeHalf) end both directions in reassembly, which then forgets it.
	for ri := range s.addr {
		a.closeHalf(s, ri, t)
	}
}
