package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"
)

// ngReader reads the packets of a pcapng stream. Each block is checked and read whole into
// its buffer, and a packet's bytes are a slice of that buffer: no copy between the file's
// bytes and the reassembly. The packet blocks (Enhanced, Simple, and the obsolete Packet
// Block) it reads itself; a section header or an interface description, rare, it has pcapgo
// read (fed that block alone, after the section's header), so that versions, options and
// timestamp resolutions are understood as pcapgo understands them. Decryption Secrets Blocks
// are kept for TakeSecrets; other blocks are skipped.
//
// What a file may announce is checked before it is believed: a block longer than maxBlock or
// than what is left of the file, a packet longer than its block, a timestamp resolution that
// cannot be, are errors that say where.
type ngReader struct {
	in       io.Reader
	buf      []byte
	pos, end int   // buf[pos:end]: read, not yet taken
	off      int64 // file offset of buf[pos]
	size     int64 // file size; -1 when unknown (standard input, a compressed file)
	rerr     error // what in returned last, once buf is drained
	empty    int   // reads in a row that returned nothing
	bo       binary.ByteOrder
	shb      []byte // the section header block, read before each interface block by pcapgo
	ifaces   []ngIface
	// secrets are the payloads of the Decryption Secrets Blocks read, not yet taken.
	secrets []Secrets
}

// ngIface is what a packet needs of its interface: its link type, and how its timestamps
// convert to time (as pcapgo converts them).
type ngIface struct {
	link           int
	snap           uint32
	mask, up, down uint64
	offset         uint64
}

// ngBufSize is the buffer's size: reads of the file are at least half of it.
const ngBufSize = 1 << 20

// newNgReader returns a reader of the pcapng stream in, of size bytes (-1: unknown), having
// read its first section header.
func newNgReader(in io.Reader, size int64) (*ngReader, error) {
	n := ngBufSize
	if size >= 0 && size < ngBufSize {
		n = max(int(size), 512) // a small file: no more than it
	}
	r := &ngReader{in: in, size: size, bo: binary.LittleEndian, buf: make([]byte, n)}
	typ, b, err := r.block()
	if err == nil && typ != 0x0A0D0D0A {
		err = errors.New("the first block is not a section header")
	}
	if err == nil {
		err = r.section(b)
	}
	return r, err
}

// fill makes at least n bytes available in buf[pos:end], reading more; the error is the
// reading's (io.EOF at the end) when fewer are left.
func (r *ngReader) fill(n int) error {
	for r.end-r.pos < n {
		if r.rerr != nil {
			return r.rerr
		}
		if len(r.buf)-r.pos < n || len(r.buf)-r.end < ngBufSize/2 {
			// Move what is left to the front (into a larger buffer for a larger block).
			nb := r.buf
			if len(nb) < n {
				nb = make([]byte, max(n, 2*len(r.buf)))
			}
			r.end = copy(nb, r.buf[r.pos:r.end])
			r.buf, r.pos = nb, 0
		}
		m, err := r.in.Read(r.buf[r.end:])
		r.end += m
		if m == 0 && err == nil {
			if r.empty++; r.empty >= 100 {
				err = io.ErrNoProgress // a reader that keeps returning nothing
			}
		} else {
			r.empty = 0
		}
		if err != nil {
			r.rerr = err
		}
	}
	return nil
}

// block reads the next block whole and returns its type and bytes (valid until the next
// call); io.EOF when the stream ends between blocks.
func (r *ngReader) block() (typ uint32, b []byte, err error) {
	if err := r.fill(8); err != nil {
		if r.end == r.pos && err == io.EOF {
			return 0, nil, io.EOF
		}
		return 0, nil, shortRead(err, "a block header", r.off)
	}
	h := r.buf[r.pos:r.end]
	typ = r.bo.Uint32(h)
	if typ == 0x0A0D0D0A { // a section header sets the byte order
		if err := r.fill(12); err != nil {
			return 0, nil, shortRead(err, "a section header", r.off)
		}
		h = r.buf[r.pos:r.end]
		switch {
		case binary.LittleEndian.Uint32(h[8:]) == 0x1A2B3C4D:
			r.bo = binary.LittleEndian
		case binary.BigEndian.Uint32(h[8:]) == 0x1A2B3C4D:
			r.bo = binary.BigEndian
		default:
			return 0, nil, fmt.Errorf("bad byte-order magic in the section header at offset %d", r.off)
		}
	}
	blen := int64(r.bo.Uint32(h[4:8]))
	if blen < 12 || blen%4 != 0 || blen > maxBlock || (r.size >= 0 && r.off+blen > r.size) {
		if r.size < 0 {
			return 0, nil, fmt.Errorf("damaged block at offset %d: type %#x announces %d bytes", r.off, typ, blen)
		}
		if blen >= 12 && blen%4 == 0 && blen <= maxBlock {
			return 0, nil, fmt.Errorf("the file is truncated: the block at offset %d announces %d bytes, %d are left", r.off, blen, r.size-r.off)
		}
		return 0, nil, fmt.Errorf("damaged block at offset %d: type %#x announces %d bytes (%d left in the file)", r.off, typ, blen, r.size-r.off)
	}
	if err := r.fill(int(blen)); err != nil {
		if err == io.EOF {
			return 0, nil, fmt.Errorf("the file ends inside the block at offset %d", r.off)
		}
		return 0, nil, shortRead(err, "a block", r.off)
	}
	b = r.buf[r.pos : r.pos+int(blen) : r.pos+int(blen)]
	r.pos += int(blen)
	r.off += blen
	return typ, b, nil
}

// next returns the next packet: its link type, capture information and bytes (valid until the
// next call); io.EOF at the end.
func (r *ngReader) next() (link int, ci gopacket.CaptureInfo, data []byte, err error) {
	for {
		off := r.off
		typ, b, err := r.block()
		if err != nil {
			return 0, ci, nil, err
		}
		blen := len(b)
		switch typ {
		case 6, 2: // Enhanced Packet, Packet (obsolete)
			if blen < 32 || int64(r.bo.Uint32(b[20:])) > int64(blen-32) {
				return 0, ci, nil, fmt.Errorf("damaged packet block at offset %d: its captured length exceeds the block", off)
			}
			id := int(r.bo.Uint32(b[8:]))
			if typ == 2 {
				id = int(r.bo.Uint16(b[8:]))
			}
			if id >= len(r.ifaces) {
				return 0, ci, nil, fmt.Errorf("the packet block at offset %d names interface %d, and its section describes %d", off, id, len(r.ifaces))
			}
			ifc := &r.ifaces[id]
			ts := uint64(r.bo.Uint32(b[12:]))<<32 | uint64(r.bo.Uint32(b[16:]))
			caplen := int(r.bo.Uint32(b[20:]))
			ci = gopacket.CaptureInfo{CaptureLength: caplen, Length: int(r.bo.Uint32(b[24:])), InterfaceIndex: id,
				Timestamp: time.Unix(int64(ts/ifc.mask+ifc.offset), int64(ts%ifc.mask*ifc.up/ifc.down)).UTC()}
			return ifc.link, ci, b[28 : 28+caplen], nil
		case 3: // Simple Packet: the interface is the first, the time unknown
			if len(r.ifaces) == 0 {
				return 0, ci, nil, fmt.Errorf("the simple packet block at offset %d comes before any interface block", off)
			}
			if blen < 16 {
				return 0, ci, nil, fmt.Errorf("damaged packet block at offset %d: %d bytes", off, blen)
			}
			orig := int(r.bo.Uint32(b[8:]))
			caplen := min(orig, blen-16)
			if s := int(r.ifaces[0].snap); s != 0 && caplen > s {
				caplen = s
			}
			ci = gopacket.CaptureInfo{CaptureLength: caplen, Length: orig}
			return r.ifaces[0].link, ci, b[12 : 12+caplen], nil
		case 0x0A0D0D0A:
			if err := r.section(b); err != nil {
				return 0, ci, nil, fmt.Errorf("section header at offset %d: %w", off, err)
			}
		case 1:
			if err := r.iface(b, off); err != nil {
				return 0, ci, nil, err
			}
		case 10: // Decryption Secrets
			sec, err := secretsBlock(r.bo, b, off)
			if err != nil {
				return 0, ci, nil, err
			}
			r.secrets = append(r.secrets, sec)
		}
	}
}

// secretsBlock returns the contents of the Decryption Secrets Block b, at offset off.
func secretsBlock(bo binary.ByteOrder, b []byte, off int64) (Secrets, error) {
	if len(b) < 20 || 16+int64(bo.Uint32(b[12:])) > int64(len(b)-4) {
		return Secrets{}, fmt.Errorf("damaged decryption secrets block at offset %d: its secrets exceed the block", off)
	}
	return Secrets{Type: bo.Uint32(b[8:]), Data: bytes.Clone(b[16 : 16+bo.Uint32(b[12:])]), Off: off}, nil
}

// pcapgoRead runs read, which has pcapgo parse a block, and turns a panic of pcapgo's on a
// damaged block into an error.
func pcapgoRead(read func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the block cannot be read (%v)", p)
		}
	}()
	return read()
}

// section begins a new section at its header block b: its interfaces are numbered afresh.
func (r *ngReader) section(b []byte) error {
	if err := pcapgoRead(func() error {
		_, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{WantMixedLinkType: true})
		return err
	}); err != nil {
		return err
	}
	r.shb = append(r.shb[:0], b...)
	r.ifaces = r.ifaces[:0]
	return nil
}

// iface adds the interface of the description block b, at offset off.
func (r *ngReader) iface(b []byte, off int64) error {
	if len(b) < 20 {
		return fmt.Errorf("damaged interface block at offset %d: %d bytes", off, len(b))
	}
	if err := checkTSResol(b, r.bo, off); err != nil {
		return err
	}
	// pcapgo reads the block after the section's header: its errors, its options.
	var intf pcapgo.NgInterface
	err := pcapgoRead(func() error {
		ng, err := pcapgo.NewNgReader(io.MultiReader(bytes.NewReader(r.shb), bytes.NewReader(b)), pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return err
		}
		if _, _, err = ng.ZeroCopyReadPacketData(); err != io.EOF {
			return err
		}
		intf, err = ng.Interface(0)
		return err
	})
	if err != nil {
		return fmt.Errorf("damaged interface block at offset %d: %w", off, err)
	}
	ifc := ngIface{link: fixLink(int(intf.LinkType)), snap: intf.SnapLength, offset: intf.TimestampOffset, mask: 1, up: 1, down: 1}
	if ifc.snap > maxSnapLen {
		ifc.snap = 0
	}
	res := intf.TimestampResolution
	if res.Binary() {
		ifc.mask = 1 << res.Exponent()
	} else {
		for range res.Exponent() {
			ifc.mask *= 10
		}
	}
	if ifc.mask < 1e9 {
		ifc.up = 1e9 / ifc.mask
	} else {
		ifc.down = ifc.mask / 1e9
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}
