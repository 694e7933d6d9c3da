package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits on what a capture file may announce, so that a damaged or hostile file gets an
// error instead of a multi-gigabyte allocation.
const (
	maxBlock   = 16 << 20  // the largest pcapng block read
	maxSnapLen = 256 << 10 // snap lengths above this are taken as this
)

// Secrets are the contents of a pcapng Decryption Secrets Block.
type Secrets struct {
	Type uint32 // pcapng.SecretsTLS, or another kind (WireGuard, ZigBee...)
	Data []byte
	Off  int64 // the block's offset in the file
}

// shortRead reports that reading what, at offset off, failed: the file ended in it, or the
// reading did (a damaged gzip stream, a broken pipe).
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

// checkTSResol refuses an interface block b, at offset off, whose timestamp resolution (option
// if_tsresol) cannot be: not one byte long, 2^-64 or finer, or 10^-20 or finer, on which
// pcapgo divides by zero.
func checkTSResol(b []byte, bo binary.ByteOrder, off int64) error {
	opts := b[16 : len(b)-4]
	for len(opts) >= 4 {
		code, n := bo.Uint16(opts), int(bo.Uint16(opts[2:]))
		if code == 0 || 4+n > len(opts) {
			return nil // end of options, or a damaged option pcapgo reports itself
		}
		if code == 9 && n != 1 { // pcapgo reads one byte, whatever the length: a stale one at 0
			return fmt.Errorf("damaged interface block at offset %d: its timestamp resolution option holds %d bytes, not 1", off, n)
		}
		if code == 9 {
			v := opts[4]
			if (v&0x80 != 0 && v&0x7f > 63) || (v&0x80 == 0 && v > 19) {
				return fmt.Errorf("damaged interface block at offset %d: a timestamp resolution of %s", off, tsresol(v))
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
