package capture

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/reassembly"
	"github.com/mqscope/mqscope/stream"
)

// Bytes the capture missed. Reassembly holds what comes after a hole until the missing
// segment arrives or it gives up waiting (Options.Wait), and meanwhile the other direction
// goes on: a PUBACK would be decoded before the PUBLISH it acknowledges, seconds later. Two
// things tell sooner that the bytes will never come, and then a filler segment (zeros)
// takes their place, which ReassembledSG reports as a gap:
//   - the receiver acknowledged past the hole, and the capture holds data beyond it: the
//     receiver had the bytes, the capture did not;
//   - the packet was cut by the snap length: its IP header says how much is missing.
// An acknowledgement of bytes the capture does not have, with nothing beyond them yet, fills
// nothing: in captures merged from two taps an acknowledgement may come before the data it
// acknowledges. The connection is only told (Conn.Unseen), and the hole is filled if data
// beyond it comes first.
// Each stream knows the sequence number of the next byte it will be given (pos), so filler
// bytes are told from data wherever reassembly places them.

const (
	maxHoleSegments = 64      // segments tracked beyond a hole, per direction
	maxFillers      = 64      // filler segments not yet delivered, per direction
	maxFill         = 1 << 20 // the largest hole filled at once
)

// diff is b - a in sequence space. reassembly.Sequence.Difference is one short across 2^32.
func diff(a, b reassembly.Sequence) int { return int(int32(uint32(b) - uint32(a))) }

// cutReq asks for a filler segment of n bytes at seq in direction ri of s.
type cutReq struct {
	s   *tcpConn
	ri  int
	seq reassembly.Sequence
	n   int
}

// seqSpan is the sequence numbers [from, to).
type seqSpan struct{ from, to reassembly.Sequence }

// track notes, for the packet of direction ri just accepted, where reassembly starts and
// whether the packet lies beyond a hole. next is reassembly's next expected sequence number
// (-1 before the first packet).
func (s *tcpConn) track(ri int, tcp *layers.TCP, next reassembly.Sequence) {
	seq := reassembly.Sequence(tcp.Seq)
	if tcp.FIN && !s.finOK[ri] {
		s.fin[ri], s.finOK[ri] = seq.Add(len(tcp.Payload)), true
	}
	if next == -1 {
		// Reassembly starts here (Accept forces the start without a SYN).
		if tcp.SYN {
			seq = seq.Add(1)
		}
		s.pos[ri], s.posOK[ri] = seq, true
		return
	}
	q := s.ooo[ri]
	had := len(q) > 0
	if had {
		k := 0
		for _, x := range q {
			if diff(next, x) > 0 {
				q[k] = x
				k++
			}
		}
		q = q[:k]
	}
	if (len(tcp.Payload) > 0 || tcp.FIN) && diff(next, seq) > 0 && !slices.Contains(q, seq) {
		if len(q) < maxHoleSegments {
			q = append(q, seq)
		} else if i := farthest(next, q); diff(next, seq) < diff(next, q[i]) {
			q[i] = seq // the nearest segments are the ones that bound the hole
		}
	}
	s.ooo[ri] = q
	if had != (len(q) > 0) {
		s.holeFlow()
	}
}

// farthest returns the index of the sequence number in q farthest from next.
func farthest(next reassembly.Sequence, q []reassembly.Sequence) int {
	k := 0
	for i, x := range q {
		if diff(next, x) > diff(next, q[k]) {
			k = i
		}
	}
	return k
}

// dropFillers forgets the filler segments of direction ri that were delivered.
func (s *tcpConn) dropFillers(ri int) {
	f := s.fillers[ri]
	k := 0
	for _, x := range f {
		if diff(s.pos[ri], x.to) > 0 {
			f[k] = x
			k++
		}
	}
	s.fillers[ri] = f[:k]
}

// holeFlow keeps the stream in Analyzer.holeFlows while it has holes.
func (s *tcpConn) holeFlow() {
	k := makeFlowKey(s.addr[0], s.addr[1])
	if len(s.ooo[0])+len(s.ooo[1]) == 0 {
		if s.a.holeFlows[k] == s {
			delete(s.a.holeFlows, k)
		}
		return
	}
	if s.a.holeFlows == nil {
		s.a.holeFlows = map[flowKey]*tcpConn{}
	}
	s.a.holeFlows[k] = s
}

func (s *tcpConn) forgetHoles() {
	if len(s.ooo[0])+len(s.ooo[1]) == 0 {
		return
	}
	s.ooo[0], s.ooo[1] = nil, nil
	s.holeFlow()
}

// acked looks at the acknowledgement of the packet from src to dst being analyzed: when it
// covers a hole of the other direction, that hole is filled.
func (a *Analyzer) acked(src, dst []byte, t time.Time) {
	sa, _ := netip.AddrFromSlice(src)
	da, _ := netip.AddrFromSlice(dst)
	from := netip.AddrPortFrom(sa, uint16(a.tcp.SrcPort))
	s := a.holeFlows[makeFlowKey(from, netip.AddrPortFrom(da, uint16(a.tcp.DstPort)))]
	if s == nil {
		return
	}
	ri := 0 // the direction acknowledged: away from the sender of the acknowledgement
	if s.addr[0] == from {
		ri = 1
	}
	if len(s.ooo[ri]) == 0 || s.kind >= kindTLSOpen {
		return
	}
	if r := s.unseen(ri, reassembly.Sequence(a.tcp.Ack)); r.n > 0 {
		a.fillAt(r.s, r.ri, r.seq, r.n, t)
	}
}

// unseen returns the filler for the bytes of direction ri that an acknowledgement up to ack
// says were received but that the capture lacks, from the next byte to deliver up to the
// first segment held beyond (or to ack, or to the FIN); n is 0 when there are none.
func (s *tcpConn) unseen(ri int, ack reassembly.Sequence) cutReq {
	if !s.posOK[ri] {
		return cutReq{}
	}
	next := s.pos[ri]
	end := ack
	for _, seq := range s.ooo[ri] {
		if diff(next, seq) < diff(next, end) {
			end = seq
		}
	}
	if s.finOK[ri] && diff(next, s.fin[ri]) < diff(next, end) {
		end = s.fin[ri] // the FIN takes a sequence number, not a byte
	}
	n := diff(next, end)
	if n <= 0 || n > maxFill || len(s.fillers[ri]) >= maxFillers {
		return cutReq{}
	}
	return cutReq{s, ri, next, n}
}

// fillAt hands reassembly a filler segment for the n bytes at seq of direction ri of s. It
// must not be called from reassembly's callbacks.
func (a *Analyzer) fillAt(s *tcpConn, ri int, seq reassembly.Sequence, n int, t time.Time) {
	if n <= 0 || n > maxFill || len(s.fillers[ri]) >= maxFillers || s.complete {
		return
	}
	// Kept in sequence order: ReassembledSG walks them along the bytes.
	f := s.fillers[ri]
	i := len(f)
	for i > 0 && diff(f[i-1].from, seq) < 0 {
		i--
	}
	s.fillers[ri] = slices.Insert(f, i, seqSpan{seq, seq.Add(n)})
	a.stats.Filled += int64(n)
	a.synthetic(s, ri, seq, n, 0, t)
	s.dropFillers(ri)
}

// synthetic hands reassembly a segment of direction ri of s that was not captured: n zeros
// at seq, with the TCP flags given. Accept knows it by its packet number, -1.
func (a *Analyzer) synthetic(s *tcpConn, ri int, seq reassembly.Sequence, n int, flags byte, t time.Time) {
	if s.complete {
		return // reassembly would take it for a new connection
	}
	// A TCP header and n zeros, decoded: reassembly takes the ports from what was decoded.
	if len(a.zeros) < 20+n {
		a.zeros = make([]byte, max(20+n, 2*len(a.zeros)))
	}
	src, dst := s.addr[ri], s.addr[1-ri]
	h := a.zeros[:20]
	binary.BigEndian.PutUint16(h[0:], src.Port())
	binary.BigEndian.PutUint16(h[2:], dst.Port())
	binary.BigEndian.PutUint32(h[4:], uint32(seq))
	h[12], h[13] = 5<<4, flags // data offset: 20 bytes
	err := a.fillTCP.DecodeFromBytes(a.zeros[:20+n], gopacket.NilDecodeFeedback)
	h[13] = 0
	if err != nil {
		return
	}
	et := layers.EndpointIPv4
	if !src.Addr().Is4() {
		et = layers.EndpointIPv6
	}
	a.fillCtx.ci = gopacket.CaptureInfo{Timestamp: t, CaptureLength: n, Length: n, InterfaceIndex: -1}
	a.asm.AssembleWithContext(gopacket.NewFlow(et, src.Addr().AsSlice(), dst.Addr().AsSlice()), &a.fillTCP, &a.fillCtx)
}

// closeHalf ends direction ri of s in reassembly with a reset of its own (a segment Accept
// ignores), so that the connection is forgotten and the addresses can serve a new one.
func (a *Analyzer) closeHalf(s *tcpConn, ri int, t time.Time) {
	seq := s.pos[ri]
	if !s.posOK[ri] {
		seq = 0 // never started: reassembly starts it here
	}
	a.synthetic(s, ri, seq, 0, 0x04, t)
}

// ipCut returns how many bytes of the IP packet ip the capture cut off, by its header.
func ipCut(ip []byte) int {
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4:
		return int(binary.BigEndian.Uint16(ip[2:])) - len(ip)
	case len(ip) >= 40 && ip[0]>>4 == 6:
		return 40 + int(binary.BigEndian.Uint16(ip[4:])) - len(ip)
	}
	return 0
}

// missing is what Accept asks before it takes a packet of direction ri: the filler that must
// go first, if any (n is 0 when none). It is one for the other direction when the packet
// acknowledges bytes of it that the capture lacks while holding data beyond them, and one
// for this direction when the packet lies beyond bytes the other side acknowledged before.
// An acknowledgement of unseen bytes with nothing beyond them only tells the connection.
func (s *tcpConn) missing(ri int, tcp *layers.TCP, next reassembly.Sequence, t time.Time) cutReq {
	oi := ri ^ 1
	if ack := reassembly.Sequence(tcp.Ack); tcp.ACK && s.posOK[oi] && diff(s.pos[oi], ack) > 0 {
		// Usually the acknowledgement is of what was delivered, no further.
		if r := s.unseen(oi, ack); r.n > 0 {
			if len(s.ooo[oi]) > 0 {
				return r
			}
			// One sequence number may be a FIN the capture missed: not a byte.
			if r.n > 1 && (!s.ackdOK[oi] || diff(s.ackd[oi], ack) > 0) {
				told := s.ackdOK[oi] && diff(s.pos[oi], s.ackd[oi]) > 0
				s.ackd[oi], s.ackdOK[oi] = ack, true
				if !told && s.conn != nil {
					if s.unseer != nil {
						s.unseer.Unseen(s.dirOf(oi), t)
					}
				}
			}
		}
	}
	if !s.ackdOK[ri] || next == -1 || (len(tcp.Payload) == 0 && !tcp.FIN) {
		return cutReq{}
	}
	beyond, acked := diff(next, reassembly.Sequence(tcp.Seq)), diff(next, s.ackd[ri])
	if n := min(beyond, acked); n > 0 && n <= maxFill && len(s.fillers[ri]) < maxFillers {
		return cutReq{s, ri, next, n}
	}
	return cutReq{}
}

// dirOf is the client/server direction of the reassembly direction index i.
func (s *tcpConn) dirOf(i int) stream.Dir {
	if s.swapped {
		return stream.Dir(i ^ 1)
	}
	return stream.Dir(i)
}
