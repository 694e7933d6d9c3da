package inspect

import (
	"sync"

	"github.com/mqscope/mqscope/decode"
)

// recordSlab hands out packet records from blocks, one allocation for slabLen records: a
// record allocated alone costs the allocator as much again as its bytes (400,000 packets of
// one connection: 371 to 347 CPU ms). A block lives as long as any of its records, so only
// records the Conn never keeps come from one (transient): a connection open for hours keeps
// its CONNECT and CONNACK records, and with them it would keep a block each.
type recordSlab struct{ recs []PacketRecord }

const slabLen = 64

// slabs holds the blocks being handed out, one per P in use, for Conn.Framed.
var slabs = sync.Pool{New: func() any { return new(recordSlab) }}

// recordSource hands out zero packet records, and the decoded packets given back with them
// (nil: none); release offers it a record the Conn no longer keeps.
type recordSource interface {
	hands(frame []byte) bool // whether the record of frame comes from next
	next() *PacketRecord
	packets() *decode.Reuse
	release(*PacketRecord)
}

func (*recordSlab) hands(frame []byte) bool { return transient(frame) }

func (*recordSlab) packets() *decode.Reuse { return nil }
func (*recordSlab) release(*PacketRecord)  {}

// next returns a zero record.
func (s *recordSlab) next() *PacketRecord {
	if len(s.recs) == 0 {
		s.recs = make([]PacketRecord, slabLen)
	}
	r := &s.recs[0]
	s.recs = s.recs[1:]
	return r
}

// transient reports whether the record of frame is one the Conn never keeps: a QoS 0
// PUBLISH, an acknowledgement, a ping. It keeps the CONNECT, CONNACK and DISCONNECT for the
// connection's life, and a PUBLISH, SUBSCRIBE or UNSUBSCRIBE until its acknowledgement
// (inflight).
func transient(frame []byte) bool {
	if len(frame) == 0 {
		return false
	}
	switch decode.Type(frame[0] >> 4) {
	case decode.PUBLISH:
		return frame[0]&0x06 == 0
	case decode.PUBACK, decode.PUBREC, decode.PUBREL, decode.PUBCOMP, decode.SUBACK, decode.UNSUBACK, decode.PINGREQ, decode.PINGRESP:
		return true
	}
	return false
}

// Records hands out the packet records of Conn.FramedWith and takes back (Put) those its
// caller is done with, to hand them out again: for a reader whose consumer keeps no packet
// record once it has seen it (a summary, counting), so that the records of a long capture
// cost their allocation once. Not safe for concurrent use.
type Records struct {
	// Counted says the caller is done with each record once FramedWith returns it (it counts
	// them, as a summary does): the Conn then hands back at once the records it kept and
	// no longer keeps (a PUBLISH once acknowledged), which Put never sees.
	Counted bool

	free []*PacketRecord
	slab recordSlab
	pkts decode.Reuse // the packets of the records taken back, for the Conn to decode into
}

func (p *Records) packets() *decode.Reuse { return &p.pkts }

// hands every record when Counted (those the Conn keeps come back by release, or never),
// else those of transient packets.
func (p *Records) hands(frame []byte) bool { return p.Counted || transient(frame) }

func (p *Records) release(r *PacketRecord) {
	if p.Counted && len(p.free) < maxFree {
		p.pkts.Put(r.Packet)
		p.free = append(p.free, r)
	}
}

// maxFree bounds what Records holds for reuse: a burst of records taken back beyond what the
// next frames need is left to the collector.
const maxFree = 4096

func (p *Records) next() *PacketRecord {
	if n := len(p.free); n > 0 {
		r := p.free[n-1]
		p.free = p.free[:n-1]
		*r = PacketRecord{}
		return r
	}
	if p.Counted {
		// Alone: this one may be kept for the connection's life (a CONNECT), and a block
		// would live as long.
		return new(PacketRecord)
	}
	return p.slab.next()
}

// Put takes back the records of transient packets among recs (those the Conn keeps no
// pointer to), and their decoded packets, to be handed out again: nothing else may hold them,
// or anything they point to but their packet's bytes and strings.
func (p *Records) Put(recs []Record) {
	for _, r := range recs {
		if pr, ok := r.(*PacketRecord); ok && pr.Packet != nil && transient(pr.Packet.Info().Raw) && len(p.free) < maxFree {
			p.pkts.Put(pr.Packet)
			p.free = append(p.free, pr)
		}
	}
}
