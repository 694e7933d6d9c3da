// Package pcapng writes pcapng files: packets as captured (PacketWriter), TCP conversations
// rebuilt from byte streams with their handshakes, sequence numbers and checksums
// (StreamWriter), and the Recorder, a stream.Observer that records every connection of a
// source that way (the proxy's --record). It imports no source of streams.
package pcapng

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/mqscope/mqscope/stream"
)

// Link types by their pcap numbers. gopacket's layers.LinkType is a byte, too small for
// LINKTYPE_LINUX_SLL2 (276), so the writer and the link decoder use these.
const (
	LinkNull     = 0
	LinkEthernet = 1
	LinkRaw      = 101
	LinkLoop     = 108
	LinkSLL      = 113
	LinkIPv4     = 228
	LinkIPv6     = 229
	LinkSLL2     = 276
)

// ngWriter writes a little-endian pcapng file: one section, interfaces added on demand,
// Enhanced Packet Blocks with nanosecond timestamps.
type ngWriter struct {
	w      *bufio.Writer
	ifaces map[int]uint32 // link type -> interface id
	buf    [32]byte
	err    error
}

func newNgWriter(w io.Writer) (*ngWriter, error) {
	nw := &ngWriter{w: bufio.NewWriterSize(w, 64<<10), ifaces: map[int]uint32{}}
	// Section Header Block: type, length, byte-order magic, version 1.0, section length -1,
	// an shb_userappl option, end of options, length.
	app := pad4([]byte("mqscope"))
	le := binary.LittleEndian
	blen := 24 + 4 + len(app) + 4 + 4
	b := make([]byte, 0, blen)
	b = le.AppendUint32(b, 0x0A0D0D0A)
	b = le.AppendUint32(b, uint32(blen))
	b = le.AppendUint32(b, 0x1A2B3C4D)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint64(b, ^uint64(0))
	b = le.AppendUint16(b, 4) // shb_userappl
	b = le.AppendUint16(b, uint16(len("mqscope")))
	b = append(b, app...)
	b = le.AppendUint32(b, 0) // opt_endofopt
	b = le.AppendUint32(b, uint32(blen))
	if _, err := nw.w.Write(b); err != nil {
		return nil, err
	}
	return nw, nil
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// iface returns the id of the interface with the given link type, writing its Interface
// Description Block the first time (snap length 0, if_tsresol 9: nanoseconds).
func (nw *ngWriter) iface(link int) (uint32, error) {
	if id, ok := nw.ifaces[link]; ok {
		return id, nil
	}
	le := binary.LittleEndian
	b := make([]byte, 0, 32)
	b = le.AppendUint32(b, 1)
	b = le.AppendUint32(b, 32)
	b = le.AppendUint16(b, uint16(link))
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, 0)  // snap length: none
	b = le.AppendUint16(b, 9)  // if_tsresol
	b = le.AppendUint16(b, 1)  //
	b = append(b, 9, 0, 0, 0)  // 10^-9, padded
	b = le.AppendUint32(b, 0)  // opt_endofopt
	b = le.AppendUint32(b, 32) // length
	if _, err := nw.w.Write(b); err != nil {
		return 0, err
	}
	id := uint32(len(nw.ifaces))
	nw.ifaces[link] = id
	return id, nil
}

// packet writes one Enhanced Packet Block, with an opt_comment when comment is not empty.
func (nw *ngWriter) packet(link int, t time.Time, data []byte, origLen int, comment string) error {
	if nw.err != nil {
		return nw.err
	}
	id, err := nw.iface(link)
	if err != nil {
		nw.err = err
		return err
	}
	if origLen < len(data) {
		origLen = len(data)
	}
	padded := (len(data) + 3) &^ 3
	var opts []byte
	if comment != "" {
		le := binary.LittleEndian
		c := comment[:min(len(comment), 0xFFFF)]
		opts = le.AppendUint16(opts, 1) // opt_comment
		opts = le.AppendUint16(opts, uint16(len(c)))
		opts = append(opts, pad4([]byte(c))...)
		opts = le.AppendUint32(opts, 0) // opt_endofopt
	}
	blen := 32 + padded + len(opts)
	le := binary.LittleEndian
	ts := uint64(t.UnixNano())
	h := nw.buf[:28]
	le.PutUint32(h[0:], 6)
	le.PutUint32(h[4:], uint32(blen))
	le.PutUint32(h[8:], id)
	le.PutUint32(h[12:], uint32(ts>>32))
	le.PutUint32(h[16:], uint32(ts))
	le.PutUint32(h[20:], uint32(len(data)))
	le.PutUint32(h[24:], uint32(origLen))
	nw.w.Write(h)
	nw.w.Write(data)
	var zero [4]byte
	nw.w.Write(zero[:padded-len(data)])
	nw.w.Write(opts)
	le.PutUint32(nw.buf[28:], uint32(blen))
	_, err = nw.w.Write(nw.buf[28:32])
	if err != nil {
		nw.err = err
	}
	return err
}

func (nw *ngWriter) flush() error {
	if nw.err != nil {
		return nw.err
	}
	return nw.w.Flush()
}

// PacketWriter copies captured packets into a new pcapng file, keeping their link types.
type PacketWriter struct{ nw *ngWriter }

// NewPacketWriter starts a pcapng file on w. Call Flush at the end.
func NewPacketWriter(w io.Writer) (*PacketWriter, error) {
	nw, err := newNgWriter(w)
	if err != nil {
		return nil, err
	}
	return &PacketWriter{nw}, nil
}

// WritePacket writes one packet of the given link type (a pcap LINKTYPE_ number) as it was
// captured; origLen is its length on the wire (0: len(data)).
func (pw *PacketWriter) WritePacket(link int, t time.Time, data []byte, origLen int) error {
	return pw.nw.packet(link, t, data, origLen, "")
}

// Flush writes out buffered data.
func (pw *PacketWriter) Flush() error { return pw.nw.flush() }

// StreamWriter writes TCP conversations given as byte streams (what a proxy relays) to a
// pcapng file as well-formed Ethernet/IPv4 or IPv6 packets: the three-way handshake, data
// split into segments of at most MSS bytes with the right sequence and acknowledgement
// numbers and checksums, and the closing FIN exchange. Wireshark and tshark decode the result
// like a capture of the real connection. It is safe for concurrent use: the streams of
// many connections, and both directions of one, may be written from different goroutines.
type StreamWriter struct {
	mu  sync.Mutex
	nw  *ngWriter
	buf gopacket.SerializeBuffer
	// MSS is the largest payload of one segment; 0 means 1460 for IPv4 and 1440 for IPv6.
	MSS int
}

// NewStreamWriter starts a pcapng file on w. Call Flush when done (and before reading the
// file); streams may be interleaved freely.
func NewStreamWriter(w io.Writer) (*StreamWriter, error) {
	nw, err := newNgWriter(w)
	if err != nil {
		return nil, err
	}
	return &StreamWriter{nw: nw, buf: gopacket.NewSerializeBuffer()}, nil
}

// Flush writes out buffered packets.
func (sw *StreamWriter) Flush() error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.nw.flush()
}

// TCPStream is one connection being written by a StreamWriter.
type TCPStream struct {
	sw             *StreamWriter
	client, server netip.AddrPort
	seq            [2]uint32 // next sequence number sent by each side
	ipid           [2]uint16
	comment        [2]string // for the next segment with data, by direction
	closed         bool
}

// Comment puts text in an opt_comment of the next segment carrying data in direction dir
// (Wireshark's frame.comment).
func (s *TCPStream) Comment(dir stream.Dir, text string) {
	s.sw.mu.Lock()
	defer s.sw.mu.Unlock()
	s.comment[dir] = text
}

var (
	clientMAC = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	serverMAC = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
)

// Open begins a connection from client to server at time t by writing the handshake (SYN,
// SYN-ACK, ACK). Both addresses must be of the same family.
func (sw *StreamWriter) Open(client, server netip.AddrPort, t time.Time) (*TCPStream, error) {
	if client.Addr().Is4() != server.Addr().Is4() {
		return nil, fmt.Errorf("pcapng: client %v and server %v are not of the same IP version", client, server)
	}
	s := &TCPStream{sw: sw}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	s.client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	s.server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	// Initial sequence numbers derived from the ports, so that files are reproducible.
	s.seq[stream.C2S] = 0x10000000 + uint32(client.Port())<<8
	s.seq[stream.S2C] = 0x20000000 + uint32(server.Port())<<8
	if err := s.segment(stream.C2S, t, SYN, nil); err != nil {
		return nil, err
	}
	if err := s.segment(stream.S2C, t, SYN|ACK, nil); err != nil {
		return nil, err
	}
	return s, s.segment(stream.C2S, t, ACK, nil)
}

// Write writes bytes sent in direction dir at time t, as many segments as needed.
func (s *TCPStream) Write(dir stream.Dir, t time.Time, b []byte) error {
	s.sw.mu.Lock()
	defer s.sw.mu.Unlock()
	if s.closed {
		return errors.New("pcapng: write on a closed stream")
	}
	mss := s.sw.MSS
	if mss <= 0 {
		mss = 1460
		if !s.client.Addr().Is4() {
			mss = 1440
		}
	}
	for len(b) > 0 {
		n := min(len(b), mss)
		if err := s.segment(dir, t, ACK|PSH, b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// Close ends the connection at time t: the side by sends FIN, the other answers FIN, and
// the first acknowledges.
func (s *TCPStream) Close(by stream.Dir, t time.Time) error {
	s.sw.mu.Lock()
	defer s.sw.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	other := by ^ 1
	if err := s.segment(by, t, FIN|ACK, nil); err != nil {
		return err
	}
	if err := s.segment(other, t, FIN|ACK, nil); err != nil {
		return err
	}
	return s.segment(by, t, ACK, nil)
}

// Reset ends the connection at time t with a RST from the side by.
func (s *TCPStream) Reset(by stream.Dir, t time.Time) error {
	s.sw.mu.Lock()
	defer s.sw.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.segment(by, t, RST|ACK, nil)
}

// Flags are the TCP flags of a segment written with Segment or SegmentAt.
type Flags uint8

// TCP flags.
const (
	FIN Flags = 1 << iota
	SYN
	RST
	PSH
	ACK
)

// Segment writes one TCP segment from dir carrying payload at the next sequence number, and
// advances it. Tests use it, with Skip and SegmentAt, to build captures with losses,
// retransmissions and overlaps.
func (s *TCPStream) Segment(dir stream.Dir, t time.Time, flags Flags, payload []byte) error {
	s.sw.mu.Lock()
	defer s.sw.mu.Unlock()
	return s.segment(dir, t, flags, payload)
}

// SegmentAt writes a segment with an explicit sequence number and advances nothing.
func (s *TCPStream) SegmentAt(dir stream.Dir, t time.Time, flags Flags, seq uint32, payload []byte) error {
	s.sw.mu.Lock()
	defer s.sw.mu.Unlock()
	return s.rawSegment(dir, t, flags, seq, payload)
}

// Next returns the next sequence number of direction dir.
func (s *TCPStream) Next(dir stream.Dir) uint32 {
	s.sw.mu.Lock()
	defer s.sw.mu.Unlock()
	return s.seq[dir]
}

// Skip advances the sequence number of direction dir by n bytes without writing them: bytes
// sent but not captured (n < 0 goes back, to write bytes again).
func (s *TCPStream) Skip(dir stream.Dir, n int) {
	s.sw.mu.Lock()
	defer s.sw.mu.Unlock()
	s.seq[dir] += uint32(n)
}

// Writer returns the StreamWriter the connection is written to.
func (s *TCPStream) Writer() *StreamWriter { return s.sw }

// MoveTo goes on writing the connection to another StreamWriter (a capture cut in files).
func (s *TCPStream) MoveTo(sw *StreamWriter) {
	s.sw.mu.Lock()
	defer s.sw.mu.Unlock()
	s.sw = sw
}

// OpenMid begins a connection from client to server whose handshake was not captured: its
// next sequence numbers are seqC (client) and seqS (server).
func (sw *StreamWriter) OpenMid(client, server netip.AddrPort, seqC, seqS uint32) *TCPStream {
	return &TCPStream{sw: sw, client: netip.AddrPortFrom(client.Addr().Unmap(), client.Port()),
		server: netip.AddrPortFrom(server.Addr().Unmap(), server.Port()), seq: [2]uint32{seqC, seqS}}
}

// segment writes one TCP segment from dir carrying payload, and advances the sequence number.
func (s *TCPStream) segment(dir stream.Dir, t time.Time, flags Flags, payload []byte) error {
	err := s.rawSegment(dir, t, flags, s.seq[dir], payload)
	n := uint32(len(payload))
	if flags&(SYN|FIN) != 0 {
		n++
	}
	s.seq[dir] += n
	return err
}

// rawSegment writes a segment with an explicit sequence number and does not advance anything.
// The caller holds sw.mu.
func (s *TCPStream) rawSegment(dir stream.Dir, t time.Time, flags Flags, seq uint32, payload []byte) error {
	src, dst := s.client, s.server
	smac, dmac := clientMAC, serverMAC
	if dir == stream.S2C {
		src, dst = dst, src
		smac, dmac = dmac, smac
	}
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(src.Port()),
		DstPort: layers.TCPPort(dst.Port()),
		Seq:     seq,
		FIN:     flags&FIN != 0,
		SYN:     flags&SYN != 0,
		RST:     flags&RST != 0,
		PSH:     flags&PSH != 0,
		ACK:     flags&ACK != 0,
		Window:  65535,
	}
	if tcp.ACK {
		tcp.Ack = s.seq[dir^1]
	}
	eth := &layers.Ethernet{SrcMAC: smac, DstMAC: dmac}
	var ip gopacket.NetworkLayer
	var ipl gopacket.SerializableLayer
	if src.Addr().Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		s.ipid[dir]++
		v4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Id: s.ipid[dir],
			Flags: layers.IPv4DontFragment, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		ip, ipl = v4, v4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		ip, ipl = v6, v6
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		return err
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(s.sw.buf, opts, eth, ipl, tcp, gopacket.Payload(payload)); err != nil {
		return fmt.Errorf("pcapng: building a segment: %w", err)
	}
	comment := ""
	if len(payload) > 0 {
		comment, s.comment[dir] = s.comment[dir], ""
	}
	return s.sw.nw.packet(LinkEthernet, t, s.sw.buf.Bytes(), 0, comment)
}
