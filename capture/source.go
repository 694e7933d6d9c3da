package capture

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"
	"github.com/google/gopacket/reassembly"
	"github.com/klauspost/compress/zstd"
	"github.com/mqscope/mqscope/pcapng"
	"github.com/mqscope/mqscope/stream"
	"github.com/pierrec/lz4/v4"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// packetSource is what pcapgo's readers have in common.
type packetSource interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// File is an open pcap or pcapng file.
type File struct {
	name    string
	f       io.Closer
	counter *countingReader
	src     packetSource // pcap
	ng      *ngReader    // pcapng
	link    int          // pcap: the file's link type
	n       int64        // packets read so far
	Size    int64        // bytes in the file; -1 for standard input
}

// Stdin is the name that stands for standard input.
const Stdin = "-"

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// maxWindow bounds the memory a zstd stream may ask for to decompress.
const maxWindow = 64 << 20

// decompressor reads a compressed capture, told by its first bytes: gzip, zstd or lz4 (as
// Wireshark writes and tcpdump users pipe through). It returns nil for anything else.
func decompressor(magic []byte, r io.Reader) (io.Reader, string, error) {
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(r)
		return zr, "gzip", err
	case len(magic) == 4 && binary.LittleEndian.Uint32(magic) == 0xFD2FB528:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(maxWindow))
		if err != nil {
			return nil, "zstd", err
		}
		return zr.IOReadCloser(), "zstd", nil
	case len(magic) == 4 && binary.LittleEndian.Uint32(magic) == 0x184D2204:
		return lz4.NewReader(r), "lz4", nil
	}
	return nil, "", nil
}

// OpenFile opens a pcap or pcapng file, telling them apart by their first bytes; a file
// compressed with gzip, zstd or lz4 is read through it. The name Stdin reads standard input.
func OpenFile(name string) (*File, error) {
	cf, br, size, err := openInput(name)
	if err != nil {
		return nil, err
	}
	var raw io.Reader = cf.counter // what br reads
	magic, err := br.Peek(4)
	if zr, how, zerr := decompressor(magic, br); zerr != nil {
		cf.f.Close()
		return nil, fmt.Errorf("%s: %s: %w", cf.name, how, zerr)
	} else if zr != nil {
		raw = zr
		br, size = bufio.NewReaderSize(zr, 64<<10), -1
		magic, err = br.Peek(4)
	}
	if len(magic) < 4 {
		cf.f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: reading the file header: %w", cf.name, err)
		}
		return nil, fmt.Errorf("%s: not a pcap or pcapng file: %d bytes", cf.name, len(magic))
	}
	name = cf.name
	f := cf.f
	switch binary.LittleEndian.Uint32(magic) {
	case 0x0A0D0D0A:
		// The pcapng reader reads the buffered bytes, then from under the buffer: its own
		// buffer is the only one.
		buffered, _ := br.Peek(br.Buffered())
		r, err := newNgReader(io.MultiReader(bytes.NewReader(buffered), raw), size)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: bad pcapng header: %w", name, err)
		}
		cf.ng = r
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0xa1b2cd34, 0x34cdb2a1:
		var in io.Reader = br
		if m := binary.LittleEndian.Uint32(magic); m == 0xa1b2cd34 || m == 0x34cdb2a1 {
			in = &patchedPcap{r: br} // the "modified" pcap of old Red Hat tcpdumps
		}
		r, err := pcapgo.NewReader(&pcapGuard{r: in})
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: bad pcap header: %w", name, err)
		}
		cf.src = r
		cf.link = fixLink(int(r.LinkType()))
	default:
		f.Close()
		return nil, fmt.Errorf("%s: not a pcap or pcapng file (starts with % x)", name, magic)
	}
	return cf, nil
}

// openInput opens a file, or standard input for Stdin, and returns it with a buffered reader
// and its size (-1 when unknown).
func openInput(name string) (*File, *bufio.Reader, int64, error) {
	var r io.Reader
	cf := &File{name: name, Size: -1}
	if name == Stdin {
		cf.name, cf.f, r = "standard input", io.NopCloser(nil), os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, 0, err
		}
		if fi.IsDir() {
			f.Close()
			return nil, nil, 0, fmt.Errorf("%s: a directory, not a pcap or pcapng file", name)
		}
		cf.f, r = f, f
		if fi.Mode().IsRegular() {
			cf.Size = fi.Size()
		}
	}
	cf.counter = &countingReader{r: r}
	return cf, bufio.NewReaderSize(cf.counter, 64<<10), cf.Size, nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// fixLink undoes gopacket's truncation of link types to a byte: LINKTYPE 276 (SLL2) reads
// as 20, a number no link type uses.
func fixLink(l int) int {
	if l == pcapng.LinkSLL2&0xff {
		return pcapng.LinkSLL2
	}
	return l
}

// TakeSecrets returns the Decryption Secrets Blocks of a pcapng file read since the last
// call, in file order (the blocks before the packet Next returned last, and perhaps a few
// after it).
func (f *File) TakeSecrets() []Secrets {
	if f.ng == nil || len(f.ng.secrets) == 0 {
		return nil
	}
	s := f.ng.secrets
	f.ng.secrets = nil
	return s
}

// Offset returns how many bytes of the file have been read.
func (f *File) Offset() int64 { return f.counter.n }

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// Next reads the next packet: its link type, capture information and bytes (valid until
// the next call). It returns io.EOF at the end, and an error naming the file and the packet
// number for a damaged or truncated file.
func (f *File) Next() (link int, ci gopacket.CaptureInfo, data []byte, err error) {
	if f.ng != nil {
		link, ci, data, err = f.ng.next()
	} else {
		link = f.link
		data, ci, err = f.src.ZeroCopyReadPacketData()
	}
	if err != nil {
		if err == io.EOF {
			return 0, ci, nil, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("the file is truncated")
		}
		return 0, ci, nil, fmt.Errorf("%s: packet %d: %w", f.name, f.n+1, err)
	}
	f.n++
	return link, ci, data, nil
}

// ReadFiles feeds every packet of the named files, in order, to a, numbering packets from 1
// across files, and closes a at the end. progress, when set, is called now and then with the
// bytes read so far of all files. A damaged file stops its own reading, not the others';
// the errors are returned together.
func ReadFiles(ctx context.Context, names []string, a *Analyzer, progress func(read int64)) error {
	var errs []error
	var n, done int64
	a.secretsFrom = names // read for their secrets blocks when a TLS connection needs them
	for _, name := range inTimeOrder(names) {
		f, err := OpenFile(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for {
			link, ci, data, err := f.Next()
			if s := f.TakeSecrets(); s != nil {
				if a.needSecrets(); !a.scanned[name] {
					if err := a.addSecrets(f.name, s); err != nil {
						errs = append(errs, err)
					}
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				errs = append(errs, err)
				break
			}
			n++
			a.Packet(n, link, ci, data)
			if n&0xfff == 0 {
				if progress != nil {
					progress(done + f.Offset())
				}
				if ctx.Err() != nil {
					f.Close()
					a.Close()
					return ctx.Err()
				}
			}
		}
		done += max(f.Size, 0)
		f.Close()
	}
	if progress != nil {
		progress(done)
	}
	a.Close()
	return errors.Join(append(a.secretsErrs, errs...)...)
}

// Files is a stream.Source: the connections of capture files (pcap or pcapng, compressed or
// not), read as one capture (ReadFiles).
type Files struct {
	Names    []string
	Options  Options
	Progress func(read int64) // see ReadFiles
	a        *Analyzer
}

// Run implements stream.Source.
func (f *Files) Run(ctx context.Context, o stream.Observer) error {
	f.a = NewAnalyzer(o, f.Options)
	return ReadFiles(ctx, f.Names, f.a, f.Progress)
}

// Analyzer returns the analysis of the last Run, once it has returned.
func (f *Files) Analyzer() *Analyzer { return f.a }

// scanSecrets returns the Decryption Secrets Blocks of an uncompressed pcapng file, wherever
// they are in it, skipping its other blocks; nil for standard input, a pcap or compressed
// file (which would cost a second decompression), or a file that cannot be read (reading it
// for its packets then says why). A damaged block ends the skim: what came before counts.
func scanSecrets(name string) []Secrets {
	if name == Stdin {
		return nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	r, err := newNgReader(f, fi.Size()) // not pcapng (pcap, or compressed): an error
	if err != nil {
		return nil
	}
	var out []Secrets
	for {
		off := r.off
		typ, b, err := r.block()
		if err != nil {
			return out
		}
		if typ == 10 {
			s, err := secretsBlock(r.bo, b, off)
			if err != nil {
				return out
			}
			out = append(out, s)
		}
	}
}

// CopyPackets copies the packets numbered in keep (1-based across files, as ReadFiles
// numbers them) from the named files to w.
func CopyPackets(names []string, keep func(n int64) bool, w *pcapng.PacketWriter) error {
	var n int64
	for _, name := range inTimeOrder(names) {
		f, err := OpenFile(name)
		if err != nil {
			return err
		}
		for {
			link, ci, data, err := f.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return err
			}
			n++
			if keep(n) {
				if err := w.WritePacket(link, ci.Timestamp, data, ci.Length); err != nil {
					f.Close()
					return err
				}
			}
		}
		f.Close()
	}
	return w.Flush()
}

// ErrPermission is returned by Live when the process may not capture packets.
var ErrPermission = errors.New("capturing packets needs root or the CAP_NET_RAW capability")

// Live captures on a network interface with an AF_PACKET socket (Linux only, no libpcap)
// and feeds every packet to a until ctx is done, then closes a.
func Live(ctx context.Context, iface string, a *Analyzer) error {
	src, err := OpenLive(iface)
	if err != nil {
		return err
	}
	defer src.Close()
	return src.feed(ctx, a)
}

// LiveSource is an open capture on a network interface.
type LiveSource struct {
	iface string
	h     *pcapgo.EthernetHandle
	// dedupe drops the second copy of each packet on loopback when the kernel filter that
	// keeps only received packets could not be set.
	dedupe bool
	// Packets counts the packets Run has read.
	Packets int64
	// Options tune the analysis of Run.
	Options Options
	a       *Analyzer
}

// Analyzer returns the analysis of the last Run, once it has returned (its Stats, the TLS
// secrets of the connections it decrypted).
func (l *LiveSource) Analyzer() *Analyzer { return l.a }

// Dropped returns how many packets the kernel dropped (its buffer full) since the capture
// began, or since the last call.
func (l *LiveSource) Dropped() (uint32, error) {
	st, err := l.h.Stats()
	if err != nil {
		return 0, fmt.Errorf("capture on %s: %w", l.iface, err)
	}
	return st.Drops, nil
}

// receivedOnly is a socket filter that drops the packets the host sends (PACKET_OUTGOING):
// on loopback every packet is seen twice, sent and received.
func receivedOnly() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 1},
		bpf.RetConstant{Val: 1 << 18},
		bpf.RetConstant{Val: 0},
	})
}

// OpenLive starts capturing on a network interface: packets are queued from now on. The
// error wraps ErrPermission when the process has neither root nor CAP_NET_RAW.
func OpenLive(iface string) (*LiveSource, error) {
	// pcapgo hides the errno; probe for the privilege first to say what is missing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("capture on %s: %w: %v", iface, ErrPermission, err)
		}
		return nil, fmt.Errorf("capture on %s: %v", iface, err)
	}
	unix.Close(fd)
	h, err := pcapgo.NewEthernetHandle(iface)
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %v", iface, err)
	}
	if err := h.SetCaptureLength(262144); err != nil {
		h.Close()
		return nil, err
	}
	// The descriptor is not exported: a receive timeout lets Run notice its context, and a
	// larger buffer loses fewer packets in bursts.
	fd = -1
	if v := reflect.ValueOf(h).Elem().FieldByName("fd"); v.IsValid() && v.CanInt() {
		fd = int(v.Int())
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	l := &LiveSource{iface: iface, h: h}
	if ifc, err := net.InterfaceByName(iface); err == nil && ifc.Flags&net.FlagLoopback != 0 {
		prog, err := receivedOnly()
		if err == nil {
			err = h.SetBPF(prog)
		}
		l.dedupe = err != nil || fd < 0
		if !l.dedupe {
			// The socket took packets between its bind and the filter, sent copies too:
			// drop them, as libpcap does when it sets a filter.
			// (Bounded, so that a flood after the filter cannot keep it here.)
			buf := make([]byte, 64)
			for range 1 << 14 {
				if _, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC); err != nil {
					break
				}
			}
		}
	}
	return l, nil
}

// Close stops capturing. Call it after Run has returned.
func (l *LiveSource) Close() { l.h.Close() }

// Run implements stream.Source: it analyses every captured packet with Options and feeds the
// connections found to o until ctx is done.
func (l *LiveSource) Run(ctx context.Context, o stream.Observer) error {
	l.a = NewAnalyzer(o, l.Options)
	return l.feed(ctx, l.a)
}

// feed feeds every captured packet to a until ctx is done, then closes a. On the loopback
// interface each packet is seen twice (sent and received); only the received one is kept.
func (l *LiveSource) feed(ctx context.Context, a *Analyzer) error {
	var n int64
	var prev []byte
	var prevT time.Time
	for ctx.Err() == nil {
		data, ci, err := l.h.ZeroCopyReadPacketData()
		if err != nil {
			if isTimeout(err) {
				a.Tick(time.Now())
				continue
			}
			a.Close()
			return fmt.Errorf("capture on %s: %v", l.iface, err)
		}
		if l.dedupe {
			if bytes.Equal(data, prev) && ci.Timestamp.Sub(prevT) < 10*time.Millisecond {
				continue // the loopback copy
			}
			prev = append(prev[:0], data...)
			prevT = ci.Timestamp
		}
		n++
		l.Packets = n
		a.Packet(n, pcapng.LinkEthernet, ci, data)
	}
	a.Close()
	return nil
}

// isTimeout reports a read that found nothing or was interrupted by a signal (the Go runtime
// preempts goroutines with one): both mean "read again", not a failed capture.
func isTimeout(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) ||
		bytes.Contains([]byte(err.Error()), []byte("resource temporarily unavailable")) ||
		bytes.Contains([]byte(err.Error()), []byte("interrupted system call"))
}

// Tick lets reassembly give up on missing segments when no packet comes (live capture).
func (a *Analyzer) Tick(now time.Time) {
	if now.Sub(a.lastFlush) >= time.Second {
		a.lastFlush = now
		a.asm.FlushWithOptions(reassembly.FlushOptions{T: now.Add(-a.opts.Wait)})
		a.compactIdle(now)
	}
}

// inTimeOrder returns the files ordered by the time of their first packet (stable; a file that
// cannot be read or holds no packet stays right after the file given before it), so that files
// given in any order are read as one capture. Standard input cannot be read twice: with "-"
// among them, the order is the one given.
func inTimeOrder(names []string) []string {
	if len(names) < 2 || slices.Contains(names, "-") {
		return names
	}
	first := make(map[string]time.Time, len(names))
	var last time.Time
	for _, name := range names {
		if f, err := OpenFile(name); err == nil {
			if _, ci, _, err := f.Next(); err == nil {
				last = ci.Timestamp
			}
			f.Close()
		}
		first[name] = last
	}
	out := slices.Clone(names)
	slices.SortStableFunc(out, func(a, b string) int { return first[a].Compare(first[b]) })
	return out
}
