package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits on what a capture file may announce, so that a damaged or hostile file gets an
// error instead of a multi-gigabyte allocation inside pcapgo.
const (
	maxBlock   = 16 << 20  // the largest pcapng block read
	maxSnapLen = 256 << 10 // snap lengths above this are taken as this
)

// ngGuard checks each pcapng block's lengths before pcapgo's reader sees it: a block longer
// than maxBlock or than what is left of the file, an Enhanced Packet Block whose captured
// length exceeds the block, are errors; an interface's snap length is capped (pcapgo allocates
// it for every interface). Blocks pass through without a copy, but for the rare interface
// blocks, which are patched.
type ngGuard struct {
	r    *bufio.Reader
	bo   binary.ByteOrder
	left int64  // bytes of the current block still to pass through from r
	buf  []byte // a patched block to serve first
	pos  int
	off  int64 // file offset of the next block
	size int64 // file size; -1 when unknown (standard input, a compressed file)
	// secrets are the payloads of the Decryption Secrets Blocks passed, not yet taken.
	secrets []Secrets
}

// Secrets are the contents of a pcapng Decryption Secrets Block.
type Secrets struct {
	Type uint32 // pcapng.SecretsTLS, or another kind (WireGuard, ZigBee...)
	Data []byte
	Off  int64 // the block's offset in the file
}

func (g *ngGuard) Read(p []byte) (int, error) {
	if g.pos < len(g.buf) {
		n := copy(p, g.buf[g.pos:])
		g.pos += n
		return n, nil
	}
	if g.left == 0 {
		if err := g.next(); err != nil {
			return 0, err
		}
		if g.pos < len(g.buf) {
			return g.Read(p)
		}
	}
	n := 0
	for {
		m := p[n:]
		if int64(len(m)) > g.left {
			m = m[:g.left]
		}
		k, err := g.r.Read(m)
		n += k
		g.left -= int64(k)
		if err == io.EOF && g.left > 0 {
			err = fmt.Errorf("the file ends inside the block at offset %d", g.off)
		}
		if err != nil || g.left > 0 || n == len(p) || !g.packetBuffered() {
			return n, err
		}
		// The next block is a packet block, already buffered: it goes in the same read, so
		// that pcapgo's reader refills its buffer once per few kilobytes, not per block.
		// Other blocks are checked when they are asked for, as before; a packet block that
		// fails its check is reported by the next read.
		if g.next() != nil {
			return n, nil
		}
	}
}

// packetBuffered reports whether the next block is an Enhanced Packet Block whose header is
// buffered already: looking at it does not wait for a pipe.
func (g *ngGuard) packetBuffered() bool {
	if g.r.Buffered() < 24 {
		return false
	}
	h, err := g.r.Peek(8)
	return err == nil && g.bo.Uint32(h[:4]) == 6
}

// next checks the header of the next block.
func (g *ngGuard) next() error {
	g.buf, g.pos = g.buf[:0], 0
	h, err := g.r.Peek(8)
	if err != nil {
		if len(h) == 0 && err == io.EOF {
			return io.EOF
		}
		return g.short(err, "a block header")
	}
	typ := g.bo.Uint32(h[:4])
	if typ == 0x0A0D0D0A { // a section header sets the byte order
		if h, err = g.r.Peek(12); err != nil {
			return g.short(err, "a section header")
		}
		switch {
		case binary.LittleEndian.Uint32(h[8:]) == 0x1A2B3C4D:
			g.bo = binary.LittleEndian
		case binary.BigEndian.Uint32(h[8:]) == 0x1A2B3C4D:
			g.bo = binary.BigEndian
		default:
			return fmt.Errorf("bad byte-order magic in the section header at offset %d", g.off)
		}
	}
	blen := int64(g.bo.Uint32(h[4:8]))
	if blen < 12 || blen%4 != 0 || blen > maxBlock || (g.size >= 0 && g.off+blen > g.size) {
		if g.size < 0 {
			return fmt.Errorf("damaged block at offset %d: type %#x announces %d bytes", g.off, typ, blen)
		}
		if blen >= 12 && blen%4 == 0 && blen <= maxBlock {
			return fmt.Errorf("the file is truncated: the block at offset %d announces %d bytes, %d are left", g.off, blen, g.size-g.off)
		}
		return fmt.Errorf("damaged block at offset %d: type %#x announces %d bytes (%d left in the file)", g.off, typ, blen, g.size-g.off)
	}
	switch typ {
	case 6: // Enhanced Packet
		h, err := g.r.Peek(24)
		if err != nil {
			return g.short(err, "a packet block header")
		}
		if blen < 32 || int64(g.bo.Uint32(h[20:])) > blen-32 {
			return fmt.Errorf("damaged packet block at offset %d: its captured length exceeds the block", g.off)
		}
	case 1: // Interface Description: cap the snap length
		if err := g.hold(blen, "an interface description block"); err != nil {
			return err
		}
		if blen >= 20 && g.bo.Uint32(g.buf[12:]) > maxSnapLen {
			g.bo.PutUint32(g.buf[12:], 0)
		}
		if err := g.checkTSResol(blen); err != nil {
			return err
		}
		g.off += blen
		return nil
	case 10: // Decryption Secrets: kept for the reader; pcapgo skips the block
		if err := g.hold(blen, "a decryption secrets block"); err != nil {
			return err
		}
		if n := int64(g.bo.Uint32(g.buf[12:])); blen < 20 || 16+n > blen-4 {
			return fmt.Errorf("damaged decryption secrets block at offset %d: its secrets exceed the block", g.off)
		} else {
			g.secrets = append(g.secrets, Secrets{Type: g.bo.Uint32(g.buf[8:]), Data: bytes.Clone(g.buf[16 : 16+n]), Off: g.off})
		}
		g.off += blen
		return nil
	}
	g.left = blen
	g.off += blen
	return nil
}

// hold reads the whole next block, of blen bytes, into buf, to serve from there.
func (g *ngGuard) hold(blen int64, what string) error {
	if cap(g.buf) < int(blen) {
		g.buf = make([]byte, blen)
	}
	g.buf = g.buf[:blen]
	if _, err := io.ReadFull(g.r, g.buf); err != nil {
		return g.short(err, what)
	}
	return nil
}

// short reports that reading what, at the guard's offset, failed: the file ended in it, or
// the reading did (a damaged gzip stream, a broken pipe).
func (g *ngGuard) short(err error, what string) error {
	return shortRead(err, what, g.off)
}

func shortRead(err error, what string, off int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the file ends inside %s at offset %d", what, off)
	}
	return fmt.Errorf("reading %s at offset %d: %w", what, off, err)
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
			return 0, shortRead(err, "the pcap file header", 0)
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

// patchedPcap reads the "modified" pcap format (magic 0xa1b2cd34, Alexey Kuznetzov's patches
// to tcpdump, as written by old Red Hat systems) as a standard pcap: the same file header
// with the standard magic, and each record header without its 8 extra bytes (interface
// index, protocol, packet type, padding).
type patchedPcap struct {
	r    io.Reader
	bo   binary.ByteOrder
	out  []byte // header bytes to hand out
	left int    // packet bytes to pass through
	head bool
	hdr  [24]byte
	n    int64 // records read, for errors
}

func (p *patchedPcap) Read(b []byte) (int, error) {
	if !p.head {
		p.head = true
		if _, err := io.ReadFull(p.r, p.hdr[:]); err != nil {
			return 0, shortRead(err, "the pcap file header", 0)
		}
		p.bo = binary.LittleEndian
		if binary.BigEndian.Uint32(p.hdr[:]) == 0xa1b2cd34 {
			p.bo = binary.BigEndian
		}
		p.bo.PutUint32(p.hdr[:], 0xa1b2c3d4)
		p.out = p.hdr[:24]
	}
	for len(p.out) == 0 && p.left == 0 {
		if _, err := io.ReadFull(p.r, p.hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, fmt.Errorf("the file ends inside the header of record %d", p.n+1)
			}
			return 0, fmt.Errorf("reading the header of record %d: %w", p.n+1, err)
		}
		p.n++
		p.out, p.left = p.hdr[:16], int(p.bo.Uint32(p.hdr[8:]))
	}
	if len(p.out) > 0 {
		n := copy(b, p.out)
		p.out = p.out[n:]
		return n, nil
	}
	n, err := p.r.Read(b[:min(len(b), p.left)])
	p.left -= n
	if errors.Is(err, io.EOF) && p.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// checkTSResol refuses an interface block (held in buf, blen bytes) whose timestamp resolution
// (option if_tsresol) cannot be: not one byte long, 2^-64 or finer, or 10^-20 or finer, on
// which pcapgo divides by zero.
func (g *ngGuard) checkTSResol(blen int64) error {
	opts := g.buf[16 : blen-4]
	for len(opts) >= 4 {
		code, n := g.bo.Uint16(opts), int(g.bo.Uint16(opts[2:]))
		if code == 0 || 4+n > len(opts) {
			return nil // end of options, or a damaged option pcapgo reports itself
		}
		if code == 9 && n != 1 { // pcapgo reads one byte, whatever the length: a stale one at 0
			return fmt.Errorf("damaged interface block at offset %d: its timestamp resolution option holds %d bytes, not 1", g.off, n)
		}
		if code == 9 {
			v := opts[4]
			if (v&0x80 != 0 && v&0x7f > 63) || (v&0x80 == 0 && v > 19) {
				return fmt.Errorf("damaged interface block at offset %d: a timestamp resolution of %s", g.off, tsresol(v))
			}
		}
		opts = opts[4+(n+3)&^3:]
	}
	return nil
}

func tsresol(v byte) string {
	if v&0x80 != 0 {
		return fmt.Sprintf("2^-%d s", v&0x7f)
	}
	return fmt.Sprintf("10^-%d s", v)
}
