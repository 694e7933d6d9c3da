package capture

import (
	"encoding/binary"
	"time"
)

// IP fragment reassembly, IPv4 and IPv6, for the datagrams that carry TCP. gopacket's
// ip4defrag knows only IPv4, assumes 20-byte headers and keeps references to the packet
// buffers, which the readers reuse; this one copies what it keeps.

const (
	maxDatagram     = 65535    // the largest payload a fragmented datagram can rebuild to
	maxFragHeld     = 16 << 20 // bytes charged to all incomplete datagrams together
	fragOverhead    = 256      // bytes charged to each incomplete datagram for its bookkeeping
	fragTimeout     = 30 * time.Second
	maxFragCarriers = 1 << 16 // completed datagrams whose fragments' packets are remembered for Options.Keep
	maxFragCarried  = 1 << 20 // packet numbers remembered for them, all together
)

type fragKey struct {
	src, dst [16]byte
	id       uint32
	v6       bool
}

// datagram is a fragmented datagram being rebuilt.
type datagram struct {
	src, dst []byte // addresses (4 or 16 bytes)
	data     []byte // the payload so far; len is the highest end seen
	spans    []span // the received ranges of data, sorted, not touching
	total    int    // the payload's length, known once the last fragment came; -1 before
	first    time.Time
	packets  []int64    // the numbers of the captured packets that carried fragments
	frames   []recFrame // copies of those packets, for Options.Record
	frameN   int        // bytes in frames
}

type span struct{ from, to int }

// defragmenter rebuilds fragmented datagrams.
type defragmenter struct {
	flows map[fragKey]*datagram
	held  int
	swept time.Time
	// carriers maps a packet that completed a datagram to the packets of its other
	// fragments (with Options.Keep only); order is their FIFO for the bound.
	carriers map[int64][]int64
	order    []int64
	carriedN int // packet numbers in carriers
	// frames are the copies of the other fragments of the datagram the last add completed
	// (with a frame to record only), valid until the next add.
	frames []recFrame
}

// fragment is one IP fragment of a TCP datagram.
type fragment struct {
	src, dst []byte
	id       uint32
	off      int  // in bytes
	more     bool // more fragments follow
	payload  []byte
}

// ipFragment reads the fragment fields of an IP packet that tcpSegment called a fragment.
// ok is false when the fragment is not of a TCP datagram or is malformed.
func ipFragment(ip []byte) (f fragment, ok bool) {
	switch ip[0] >> 4 {
	case 4:
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if total < len(ip) {
			ip = ip[:total]
		}
		if ip[9] != 6 || len(ip) < ihl {
			return f, false
		}
		fo := binary.BigEndian.Uint16(ip[6:])
		return fragment{src: ip[12:16], dst: ip[16:20], id: uint32(binary.BigEndian.Uint16(ip[4:])),
			off: int(fo&0x1fff) * 8, more: fo&0x2000 != 0, payload: ip[ihl:]}, true
	case 6:
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+plen < len(ip) && plen != 0 {
			ip = ip[:40+plen]
		}
		next, rest := ip[6], ip[40:]
		for next != 44 {
			if (next != 0 && next != 43 && next != 60) || len(rest) < 8 || len(rest) < (int(rest[1])+1)*8 {
				return f, false
			}
			next, rest = rest[0], rest[(int(rest[1])+1)*8:]
		}
		if len(rest) < 8 || rest[0] != 6 {
			return f, false // not TCP (the first fragment's header chain is taken as it comes)
		}
		fo := binary.BigEndian.Uint16(rest[2:])
		return fragment{src: ip[8:24], dst: ip[24:40], id: binary.BigEndian.Uint32(rest[4:]),
			off: int(fo>>3) * 8, more: fo&1 != 0, payload: rest[8:]}, true
	}
	return f, false
}

// add takes fragment f of packet n at time t. When it completes its datagram, add returns
// the addresses and the rebuilt payload (the TCP segment). With rec, the captured packet to
// record, a copy is kept, and the copies of the other fragments are in d.frames once the
// datagram is complete.
//
// Memory is bounded by maxFragHeld: each incomplete datagram is charged its payload so
// far, fragOverhead, and 8 bytes for each packet number kept; its spans, being at least
// 8 bytes apart, take no more than its payload. A datagram that would pass the bound is
// forgotten, as a host short of buffers would.
func (d *defragmenter) add(f fragment, n int64, t time.Time, keep bool, rec *recFrame) (src, dst, seg []byte) {
	d.frames = nil
	if d.flows == nil {
		d.flows = map[fragKey]*datagram{}
	}
	// Sweeping is a walk over every datagram: at most once per half timeout of capture
	// time, whichever way the timestamps go (merged captures are not always in order).
	if age := t.Sub(d.swept); age > fragTimeout/2 || age < -fragTimeout/2 {
		d.sweep(t)
	}
	end := f.off + len(f.payload)
	if end > maxDatagram || len(f.payload) == 0 || (f.more && len(f.payload)%8 != 0) {
		return nil, nil, nil // impossible as IP lays it out: dropped, like a host would
	}
	k := fragKey{id: f.id, v6: len(f.src) == 16}
	copy(k.src[:], f.src)
	copy(k.dst[:], f.dst)
	g := d.flows[k]
	if g == nil {
		if d.held+fragOverhead+end > maxFragHeld {
			return nil, nil, nil
		}
		g = &datagram{src: append([]byte(nil), f.src...), dst: append([]byte(nil), f.dst...), total: -1, first: t}
		d.flows[k] = g
		d.held += fragOverhead
	}
	if !f.more {
		g.total = end
	}
	if end > len(g.data) {
		if d.held+end-len(g.data) > maxFragHeld {
			d.drop(k, g)
			return nil, nil, nil
		}
		d.held += end - len(g.data)
		g.data = append(g.data, make([]byte, end-len(g.data))...)
	}
	copy(g.data[f.off:end], f.payload)
	g.spans = addSpan(g.spans, span{f.off, end})
	if keep {
		if d.held+8 > maxFragHeld || len(g.packets) >= maxDatagram/8 {
			d.drop(k, g) // more fragments than a datagram can have: copies without end
			return nil, nil, nil
		}
		d.held += 8
		g.packets = append(g.packets, n)
	}
	if g.total < 0 || len(g.spans) != 1 || g.spans[0] != (span{0, g.total}) {
		if rec != nil {
			if d.held+len(rec.data)+fragOverhead > maxFragHeld || len(g.frames) >= maxDatagram/8 {
				d.drop(k, g)
				return nil, nil, nil
			}
			d.held += len(rec.data) + fragOverhead
			g.frameN += len(rec.data) + fragOverhead
			g.frames = append(g.frames, recFrame{rec.link, rec.ci, append([]byte(nil), rec.data...)})
		}
		return nil, nil, nil
	}
	d.drop(k, g)
	d.frames = g.frames
	if keep {
		d.remember(n, g.packets[:len(g.packets)-1])
	}
	return g.src, g.dst, g.data[:g.total]
}

// addSpan adds s to the sorted, disjoint spans, merging what touches or overlaps it.
func addSpan(spans []span, s span) []span {
	out := spans[:0:0]
	for _, x := range spans {
		switch {
		case x.to < s.from:
			out = append(out, x)
		case s.to < x.from:
			out = append(out, s)
			s = x
		default:
			s = span{min(s.from, x.from), max(s.to, x.to)}
		}
	}
	return append(out, s)
}

func (d *defragmenter) drop(k fragKey, g *datagram) {
	d.held -= len(g.data) + fragOverhead + 8*len(g.packets) + g.frameN
	delete(d.flows, k)
}

// sweep forgets datagrams whose first fragment is older than fragTimeout.
func (d *defragmenter) sweep(t time.Time) {
	d.swept = t
	for k, g := range d.flows {
		if age := t.Sub(g.first); age > fragTimeout || age < -fragTimeout {
			d.drop(k, g)
		}
	}
}

// remember notes that packet n completed a datagram whose other fragments came in packets.
func (d *defragmenter) remember(n int64, packets []int64) {
	if d.carriers == nil {
		d.carriers = map[int64][]int64{}
	}
	for len(d.order) > 0 && (len(d.order) >= maxFragCarriers || d.carriedN+len(packets) > maxFragCarried) {
		d.carriedN -= len(d.carriers[d.order[0]])
		delete(d.carriers, d.order[0])
		d.order = d.order[1:]
	}
	d.carriers[n] = packets
	d.carriedN += len(packets)
	d.order = append(d.order, n)
}

// carried returns the packets of the other fragments of the datagram packet n completed.
func (d *defragmenter) carried(n int64) []int64 { return d.carriers[n] }
