package capture

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Limits on what a capture file may announce, so that a damaged or hostile file gets an
// error instead of a multi-gigabyte allocation inside pcapgo.
const (
	maxBlock   = 16 << 20  // the largest pcapng block read
	maxSnapLen = 256 << 10 // snap lengths above this are taken as this
)

// ngGuard hands pcapgo's pcapng reader one whole block at a time after checking its lengths:
// a block longer than maxBlock or than what is left of the file, an Enhanced Packet Block
// whose captured length exceeds the block, are errors; an interface's snap length is capped
// (pcapgo allocates it for every interface).
type ngGuard struct {
	r    io.Reader
	bo   binary.ByteOrder
	buf  []byte
	pos  int   // read position in buf
	off  int64 // file offset of the next block
	size int64 // file size
}

func (g *ngGuard) Read(p []byte) (int, error) {
	if g.pos == len(g.buf) {
		if err := g.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, g.buf[g.pos:])
	g.pos += n
	return n, nil
}

func (g *ngGuard) next() error {
	g.buf, g.pos = g.buf[:0], 0
	var h [12]byte
	n, err := io.ReadFull(g.r, h[:8])
	if err != nil {
		if n == 0 && err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("the file ends inside a block header at offset %d", g.off)
	}
	typ := g.bo.Uint32(h[:4])
	if typ == 0x0A0D0D0A { // a section header sets the byte order
		if _, err := io.ReadFull(g.r, h[8:12]); err != nil {
			return fmt.Errorf("the file ends inside a section header at offset %d", g.off)
		}
		switch {
		case binary.LittleEndian.Uint32(h[8:]) == 0x1A2B3C4D:
			g.bo = binary.LittleEndian
		case binary.BigEndian.Uint32(h[8:]) == 0x1A2B3C4D:
			g.bo = binary.BigEndian
		default:
			return fmt.Errorf("bad byte-order magic in the section header at offset %d", g.off)
		}
		n = 12
	}
	blen := int64(g.bo.Uint32(h[4:8]))
	if blen < 12 || blen%4 != 0 || blen > maxBlock || g.off+blen > g.size {
		return fmt.Errorf("damaged block at offset %d: type %#x announces %d bytes (%d left in the file)", g.off, typ, blen, g.size-g.off)
	}
	if cap(g.buf) < int(blen) {
		g.buf = make([]byte, blen)
	}
	g.buf = g.buf[:blen]
	copy(g.buf, h[:n])
	if _, err := io.ReadFull(g.r, g.buf[n:]); err != nil {
		return fmt.Errorf("the file ends inside the block at offset %d", g.off)
	}
	switch typ {
	case 1: // Interface Description: cap the snap length
		if blen >= 20 && g.bo.Uint32(g.buf[12:]) > maxSnapLen {
			g.bo.PutUint32(g.buf[12:], 0)
		}
	case 6: // Enhanced Packet
		if blen < 32 || int64(g.bo.Uint32(g.buf[20:])) > blen-32 {
			return fmt.Errorf("damaged packet block at offset %d: its captured length exceeds the block", g.off)
		}
	case 3: // Simple Packet: pcapgo reads its length from the block
	}
	g.off += blen
	return nil
}

// pcapGuard caps the snap length in a pcap file header.
type pcapGuard struct {
	r    io.Reader
	head bool
}

func (g *pcapGuard) Read(p []byte) (int, error) {
	if !g.head {
		g.head = true
		var h [24]byte
		if _, err := io.ReadFull(g.r, h[:]); err != nil {
			return 0, fmt.Errorf("the file ends inside its header")
		}
		bo := binary.ByteOrder(binary.LittleEndian)
		if m := binary.BigEndian.Uint32(h[:4]); m == 0xa1b2c3d4 || m == 0xa1b23c4d {
			bo = binary.BigEndian
		}
		if bo.Uint32(h[16:]) > maxSnapLen {
			bo.PutUint32(h[16:], maxSnapLen)
		}
		g.r = io.MultiReader(bytesReader(h[:]), g.r)
	}
	return g.r.Read(p)
}
