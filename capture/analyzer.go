package capture

import (
	"bytes"
	"net/netip"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/reassembly"
	"github.com/mqscope/mqscope/capture/tlsdecrypt"
	"github.com/mqscope/mqscope/stream"
)

// DefaultPort and DefaultTLSPort are the registered ports of MQTT and MQTT over TLS.
const (
	DefaultPort    = 1883
	DefaultTLSPort = 8883
)

// Options tune an Analyzer.
type Options struct {
	// Ports are the TCP ports whose connections are MQTT (DefaultPort when empty). On other
	// ports a connection is MQTT when the client's first bytes are a CONNECT, or an HTTP
	// upgrade to WebSocket with an mqtt subprotocol.
	Ports []uint16
	// TLSPorts are ports whose connections are TLS even when their handshake was not captured
	// (DefaultTLSPort when empty). A ClientHello on any port is recognised anyway.
	TLSPorts []uint16
	// Wait is how long, in capture time, reassembly waits for a missing segment before it
	// gives up and reports a gap (default 5s).
	Wait time.Duration
	// Keep, when set, is called with the number of every captured packet that carried part
	// of a wanted MQTT packet (see Conn.Data), and of the handshake and closing packets of
	// their connections. Numbers may repeat and come out of order.
	Keep func(packet int64)
	// Record, when set, receives every captured TCP packet of the connections reported to
	// the Observer (MQTT, MQTT over WebSocket, TLS), as captured, for live recording. Packets
	// that came before a connection was recognised are held (up to recordHeld) and passed
	// on when it is, so they may come after later packets of other connections. The bytes
	// are only valid during the call. IP fragments are not recorded.
	Record func(link int, ci gopacket.CaptureInfo, data []byte)
	// TLSKeys, when set, decrypts the TLS connections (those reported, see TLSPorts) with
	// the secrets it holds: their application data is framed like a plaintext connection's
	// (Transport TLS, or WSS over WebSocket), and those that cannot be decrypted are reported
	// without bytes, with the reason (stream.Conn.TLS).
	TLSKeys *tlsdecrypt.Keys
	// Idle, when above 0, is how long, in capture time, a connection carries nothing before it
	// is told to let go of memory it can do without (stream.Compacter), once per quiet spell.
	Idle time.Duration
}

// recordHeld bounds the packets held per connection for Options.Record until it is
// recognised (recognition takes the first bytes of each side, so a few packets).
const (
	recordHeldPackets = 16
	recordHeldBytes   = 64 << 10
	recordEnded       = 1024 // closed connections whose late acknowledgements are still recorded
)

// Stats counts what an Analyzer saw.
type Stats struct {
	Packets      int64 // packets given to the Analyzer
	TCP          int64 // TCP segments reassembled
	Skipped      int64 // not TCP over IP, or an unsupported link type
	Fragments    int64 // IP fragments of TCP datagrams
	Datagrams    int64 // fragmented datagrams rebuilt from them
	Malformed    int64 // truncated or malformed headers
	Filled       int64 // bytes known lost (acknowledged past, or cut by the snap length) and reported at once
	Connections  int   // connections reported to the Observer
	Decrypted    int   // TLS connections decrypted with Options.TLSKeys
	NotDecrypted int   // TLS connections Options.TLSKeys could not decrypt
	Secrets      int   // TLS secrets read from the capture's Decryption Secrets Blocks
	OtherTLS     int   // TLS connections on other ports that did not offer MQTT by ALPN: not reported
	// Unshown counts the connections to an MQTT port (Options.Ports, TLSPorts) that were not
	// reported, by why (unshown.go).
	Unshown map[string]int
	Open    int // TCP connections held by reassembly now (any protocol)
}

// Analyzer reassembles TCP connections from packets and hands the MQTT ones to a stream.Observer.
// It is not safe for concurrent use.
type Analyzer struct {
	h     stream.Observer
	opts  Options
	ports map[uint16]stream.Transport
	asm   *reassembly.Assembler
	tcp   layers.TCP
	ctx   asmContext
	stats Stats

	lastFlush time.Time
	latest    time.Time // the latest packet time seen
	// What Accept asks Packet to do once reassembly has returned (it cannot be re-entered):
	reset *tcpConn // close the other half of this connection, reset by the packet
	retry cutReq   // fill the bytes the packet acknowledges that the capture lacks, then retry
	tries int      // retries of the packet so far
	cutN  int      // bytes of the packet cut off by the snap length (set before Accept)
	cut   cutReq   // fill them, once Accept knows where they go
	// Bytes the capture missed (fill.go): holeFlows finds the connections that hold segments
	// beyond a hole; synthetic segments are built in fillTCP from zeros.
	holeFlows map[flowKey]*tcpConn
	fillCtx   asmContext
	fillTCP   layers.TCP
	zeros     []byte
	nextID    int
	randoms   []tlsdecrypt.Random // of the TLS connections decrypted (decrypt.go)
	// The files whose Decryption Secrets Blocks are read when first needed (needSecrets),
	// those found to have some, and the errors of reading them.
	secretsFrom []string
	scanned     map[string]bool
	secretsErrs []error
	frags       defragmenter

	// for Options.Record
	cur      recFrame             // the packet being analyzed
	curFrags []recFrame           // the other fragments of its datagram, when it completed one
	recFlows map[flowKey]*tcpConn // the connections, for their bare acknowledgements
	// open holds the connections reassembly holds, by addresses: a SYN on the addresses of
	// one that carried data begins another connection (reconnect.go).
	open     map[flowKey]*tcpConn
	recEnded []*tcpConn // the last closed ones, still in recFlows
	idle     idleList   // the reported connections by their last packet (idle.go)
}

type recFrame struct {
	link int
	ci   gopacket.CaptureInfo
	data []byte
}

// flowKey names a TCP connection by its endpoints, the lower first.
type flowKey [2]netip.AddrPort

func makeFlowKey(a, b netip.AddrPort) flowKey {
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	return flowKey{a, b}
}

// asmContext is the reassembly.AssemblerContext of the packet being assembled. One value is
// reused for every packet; reassembly keeps each page's CaptureInfo by value, and the
// packet number rides in its InterfaceIndex, so nothing is allocated per packet.
type asmContext struct{ ci gopacket.CaptureInfo }

func (c *asmContext) GetCaptureInfo() gopacket.CaptureInfo { return c.ci }

// NewAnalyzer returns an Analyzer that reports to h.
func NewAnalyzer(h stream.Observer, opts Options) *Analyzer {
	a := &Analyzer{h: h, opts: opts, ports: map[uint16]stream.Transport{}}
	if len(opts.Ports) == 0 {
		opts.Ports = []uint16{DefaultPort}
	}
	if len(opts.TLSPorts) == 0 {
		opts.TLSPorts = []uint16{DefaultTLSPort}
	}
	for _, p := range opts.TLSPorts {
		a.ports[p] = stream.TLS
	}
	for _, p := range opts.Ports {
		a.ports[p] = stream.TCP
	}
	if a.opts.Wait <= 0 {
		a.opts.Wait = 5 * time.Second
	}
	if keep := opts.Keep; keep != nil {
		// A segment rebuilt from IP fragments came in several packets: keep them all.
		a.opts.Keep = func(n int64) {
			keep(n)
			for _, f := range a.frags.carried(n) {
				keep(f)
			}
		}
	}
	a.asm = reassembly.NewAssembler(reassembly.NewStreamPool(factory{a}))
	// Bound what one connection may hold while waiting for a missing segment (pages are
	// about 1900 bytes): past this, reassembly gives up on the hole and reports a gap.
	a.asm.MaxBufferedPagesPerConnection = 1024
	a.asm.MaxBufferedPagesTotal = 1 << 16
	return a
}

// Stats returns the counts so far.
func (a *Analyzer) Stats() Stats { return a.stats }

// Packet analyzes one captured packet: number n (1-based), its capture information and
// its bytes as captured on a link of the given pcap LINKTYPE_. The bytes are only used during
// the call.
func (a *Analyzer) Packet(n int64, link int, ci gopacket.CaptureInfo, data []byte) {
	a.stats.Packets++
	if a.idle.head != nil {
		a.compactIdle(ci.Timestamp) // before the packet: it may be the quiet connection's next
	}
	ip, why := ipPacket(link, data)
	var src, dst, seg []byte
	if why == skipNone {
		src, dst, seg, why = tcpSegment(ip)
	}
	switch why {
	case skipNone:
	case skipFragment:
		f, ok := ipFragment(ip)
		if !ok {
			a.stats.Skipped++
			return
		}
		a.stats.Fragments++
		var rec *recFrame
		if a.opts.Record != nil {
			rec = &recFrame{link, ci, data}
		}
		if src, dst, seg = a.frags.add(f, n, ci.Timestamp, a.opts.Keep != nil, rec); seg == nil {
			return
		}
		a.stats.Datagrams++
	case skipTruncated:
		a.stats.Malformed++
		return
	default:
		a.stats.Skipped++
		return
	}
	if err := a.tcp.DecodeFromBytes(seg, gopacket.NilDecodeFeedback); err != nil {
		a.stats.Malformed++
		return
	}
	a.stats.TCP++
	if a.tcp.SYN && !a.tcp.ACK && len(a.open) > 0 {
		a.newSYN(src, dst, ci.Timestamp)
	} else if ci.Timestamp.Before(a.latest.Add(-backwards)) && len(a.open) > 0 {
		a.earlier(src, dst, ci.Timestamp)
	} else if len(a.tcp.Payload) > 2 && a.tcp.Payload[0] == 0x10 && len(a.open) > 0 {
		a.newConnect(src, dst, ci.Timestamp)
	}
	if ci.Timestamp.After(a.latest) {
		a.latest = ci.Timestamp
	}
	bare := len(a.tcp.Payload) == 0 && !a.tcp.SYN && !a.tcp.FIN && !a.tcp.RST
	if bare && len(a.holeFlows) > 0 && a.tcp.ACK {
		// What it acknowledges past a hole was received (Accept sees to the other packets).
		a.acked(src, dst, ci.Timestamp)
	}
	if a.opts.Record != nil {
		a.cur, a.curFrags = recFrame{link, ci, data}, nil
		if why == skipFragment {
			a.curFrags = a.frags.frames // the datagram's other fragments go before this one
		}
		if bare && len(a.recFlows) > 0 {
			sa, _ := netip.AddrFromSlice(src)
			da, _ := netip.AddrFromSlice(dst)
			if s := a.recFlows[makeFlowKey(netip.AddrPortFrom(sa, uint16(a.tcp.SrcPort)), netip.AddrPortFrom(da, uint16(a.tcp.DstPort)))]; s != nil {
				s.record()
			}
		}
	}
	if bare {
		// A bare acknowledgement carries nothing to reassemble, and the last one of a closed
		// connection would make reassembly open a new, empty one. It may tell that bytes the
		// capture missed were received all the same.
		return
	}
	et := layers.EndpointIPv4
	if len(src) == 16 {
		et = layers.EndpointIPv6
	}
	ci.InterfaceIndex = int(n)
	a.ctx.ci = ci
	a.cutN = 0
	if ci.CaptureLength < ci.Length && why == skipNone && !a.tcp.SYN {
		a.cutN = ipCut(ip)
	}
	flow := gopacket.NewFlow(et, src, dst)
	a.tries = 0
	a.asm.AssembleWithContext(flow, &a.tcp, &a.ctx)
	for a.retry.s != nil {
		// Accept found this packet acknowledging bytes the capture never had: they go
		// first, as lost, then the packet.
		r := a.retry
		a.retry = cutReq{}
		a.tries++
		a.fillAt(r.s, r.ri, r.seq, r.n, ci.Timestamp)
		a.asm.AssembleWithContext(flow, &a.tcp, &a.ctx)
	}
	if s := a.reset; s != nil {
		a.reset = nil
		a.closeHalf(s, s.resetDir, ci.Timestamp)
	}
	if a.cut.s != nil {
		// Cut by the snap length: the rest of the segment will never come.
		c := a.cut
		a.cut = cutReq{}
		a.fillAt(c.s, c.ri, c.seq, c.n, ci.Timestamp)
	}
	if t := ci.Timestamp; t.Sub(a.lastFlush) >= time.Second || t.Before(a.lastFlush) {
		a.lastFlush = t
		a.asm.FlushWithOptions(reassembly.FlushOptions{T: t.Add(-a.opts.Wait)})
	}
}

// Close ends the analysis: it delivers what reassembly still holds, reporting holes as gaps,
// and closes every connection still open.
func (a *Analyzer) Close() {
	a.asm.FlushAll()
}

type factory struct{ a *Analyzer }

func (f factory) New(netFlow, tcpFlow gopacket.Flow, tcp *layers.TCP, ac reassembly.AssemblerContext) reassembly.Stream {
	a := f.a
	ci := ac.GetCaptureInfo()
	a.stats.Open++
	s := &tcpConn{a: a, first: int64(ci.InterfaceIndex), start: ci.Timestamp, lastT: ci.Timestamp}
	srcIP, _ := netip.AddrFromSlice(netFlow.Src().Raw())
	dstIP, _ := netip.AddrFromSlice(netFlow.Dst().Raw())
	s.addr[0] = netip.AddrPortFrom(srcIP, uint16(tcp.SrcPort))
	s.addr[1] = netip.AddrPortFrom(dstIP, uint16(tcp.DstPort))
	// Who is the client: the sender of a SYN, else the side away from a known port.
	if a.open == nil {
		a.open = map[flowKey]*tcpConn{}
	}
	a.open[makeFlowKey(s.addr[0], s.addr[1])] = s
	switch {
	case tcp.SYN:
		s.handshake = true
		s.swapped = tcp.ACK // a SYN-ACK: its sender is the server
		s.isn = reassembly.Sequence(tcp.Seq)
	default:
		_, srcKnown := a.ports[uint16(tcp.SrcPort)]
		_, dstKnown := a.ports[uint16(tcp.DstPort)]
		s.swapped = srcKnown && !dstKnown
	}
	if a.opts.Record != nil {
		if a.recFlows == nil {
			a.recFlows = map[flowKey]*tcpConn{}
		}
		a.recFlows[makeFlowKey(s.addr[0], s.addr[1])] = s
	}
	return s
}

type kind uint8

const (
	kindUnknown kind = iota
	kindMQTT
	kindHTTP // waiting for a WebSocket upgrade
	kindWS
	kindTLS     // waiting for the rest of a ClientHello
	kindTLSOpen // reported: only its end is watched
	kindOther   // not ours: ignored from then on
	kindDone    // closed: ignored from then on
)

// stream is one TCP connection. Reassembly's directions are relative to the first packet
// seen; addr and half are indexed by those, and swapped says whether that packet came from
// the server.
type tcpConn struct {
	a         *Analyzer
	addr      [2]netip.AddrPort
	half      [2]half
	swapped   bool
	handshake bool
	kind      kind
	info      stream.Conn
	conn      stream.ConnObserver
	keeper    stream.Keeper // conn, when it says what it wanted (Options.Keep)
	unseer    stream.Unseer // conn, when it wants to hear of unseen bytes
	dec       *decrypter    // decrypting TLS (decrypt.go)
	first     int64
	start     time.Time
	lastT     time.Time
	end       stream.End // how the connection ended, once a FIN or RST was seen
	closed    bool

	// Holes, by reassembly direction (fill.go): the sequence number of the next byte
	// reassembly delivers, the segments it holds beyond a hole, and the filler segments.
	pos      [2]reassembly.Sequence
	posOK    [2]bool
	fin      [2]reassembly.Sequence // where the FIN is, once seen
	finOK    [2]bool
	ackd     [2]reassembly.Sequence // how far the other side acknowledged past pos, when unseen
	ackdOK   [2]bool
	resetDir int                 // after a reset: the direction still open in reassembly
	isn      reassembly.Sequence // the sequence number of the SYN that opened it (handshake)
	carried  bool                // reassembly delivered data of it
	complete bool                // reassembly is done with the connection (and forgot it)
	ooo      [2][]reassembly.Sequence
	fillers  [2][]seqSpan

	// for Options.Keep
	control []int64 // handshake and closing packets
	kept    bool
	keepCut bool // decrypting: packets of the connection were not held for Keep (decrypt.go)

	// for Options.Record
	recording bool
	held      []recFrame // copies, until the connection is recognised
	heldBytes int

	// for Options.Idle (idle.go)
	idlePrev, idleNext *tcpConn
	idleListed         bool
}

// record passes the packet being analyzed to Options.Record when the connection is being
// recorded, or holds a copy while it is not recognised yet.
func (s *tcpConn) record() {
	for i := range s.a.curFrags {
		s.recordFrame(&s.a.curFrags[i])
	}
	s.recordFrame(&s.a.cur)
}

func (s *tcpConn) recordFrame(c *recFrame) {
	switch {
	case c.data == nil:
	case s.recording:
		s.a.opts.Record(c.link, c.ci, c.data)
	case s.kind >= kindOther:
		s.held = nil
	case len(s.held) < recordHeldPackets && s.heldBytes+len(c.data) <= recordHeldBytes:
		s.held = append(s.held, recFrame{c.link, c.ci, append([]byte(nil), c.data...)})
		s.heldBytes += len(c.data)
	}
}

// startRecording passes on the packets held so far, once the connection is recognised.
func (s *tcpConn) startRecording() {
	s.recording = true
	for _, f := range s.held {
		s.a.opts.Record(f.link, f.ci, f.data)
	}
	s.held, s.heldBytes = nil, 0
}

type half struct {
	pre     []byte // bytes held until the connection is classified
	preGap  int    // bytes lost before classification
	ws      wsReader
	wsText  bool    // a WebSocket text frame was seen (and said)
	pending []int64 // packets with payload since the last completed MQTT packet
	opened  bool    // the first MQTT packet of this direction is complete
}

// dir turns a reassembly direction into a client/server one.
func (s *tcpConn) dir(rd reassembly.TCPFlowDirection) stream.Dir {
	d := stream.C2S
	if rd == reassembly.TCPDirServerToClient {
		d = stream.S2C
	}
	if s.swapped {
		d ^= 1
	}
	return d
}

// rd is the index into addr and half of a client/server direction.
func (s *tcpConn) rd(d stream.Dir) int {
	if s.swapped {
		return int(d ^ 1)
	}
	return int(d)
}

func (s *tcpConn) Accept(tcp *layers.TCP, ci gopacket.CaptureInfo, rdir reassembly.TCPFlowDirection, nextSeq reassembly.Sequence, start *bool, ac reassembly.AssemblerContext) bool {
	if ci.InterfaceIndex < 0 {
		return true // a filler segment (fill.go): not a captured packet
	}
	if s.kind < kindTLSOpen && !tcp.RST && s.a.tries < 3 {
		if r := s.missing(s.rd(s.dir(rdir)), tcp, nextSeq, ci.Timestamp); r.n > 0 {
			s.a.retry = r // filled, then given again (Packet)
			return false
		}
	}
	s.lastT = ci.Timestamp
	if s.a.opts.Idle > 0 && s.conn != nil {
		s.a.idle.touch(s)
	}
	if s.a.opts.Record != nil {
		s.record()
	}
	if !*start && nextSeq == -1 {
		// First packet of this direction without a SYN: start anyway (a capture that began
		// in the middle of the connection, or a lost SYN).
		*start = true
	}
	if s.kind >= kindTLSOpen {
		// Nothing more to decode, but reassembly goes on seeing the packets (ReassembledSG
		// drops their bytes at once) so that it notices the end and forgets the connection.
		if s.kind == kindTLSOpen && (tcp.FIN || tcp.RST) {
			s.end = tcpEnd(s.dir(rdir), tcp)
			s.finish(ci.Timestamp)
		}
		return true
	}
	n := int64(ci.InterfaceIndex)
	d := s.dir(rdir)
	s.track(s.rd(d), tcp, nextSeq)
	if s.a.cutN > 0 {
		s.a.cut = cutReq{s, s.rd(d), reassembly.Sequence(tcp.Seq).Add(len(tcp.Payload)), s.a.cutN}
	}
	if s.a.opts.Keep != nil {
		if tcp.SYN || tcp.FIN || tcp.RST {
			if s.kept {
				s.a.opts.Keep(n)
			} else if len(s.control) < 64 {
				s.control = append(s.control, n)
			}
		}
		if len(tcp.Payload) > 0 && s.decrypting() {
			s.keepTLS(n)
		} else if len(tcp.Payload) > 0 && s.kind != kindTLS {
			h := &s.half[s.rd(d)]
			if k := len(h.pending); k == 0 || h.pending[k-1] != n {
				h.pending = append(h.pending, n)
			}
		}
	}
	if (tcp.FIN || tcp.RST) && s.end.By == stream.Unknown {
		s.end = tcpEnd(d, tcp)
	}
	if tcp.RST {
		// A reset ends both directions now; reassembly would wait for the other side, and
		// take a new connection on the same addresses for this one (Packet closes it).
		s.finish(ci.Timestamp)
		s.a.reset = s
		s.resetDir = s.rd(d) ^ 1
	}
	return true
}

func (s *tcpConn) ReassembledSG(sg reassembly.ScatterGather, ac reassembly.AssemblerContext) {
	rdir, _, _, skip := sg.Info()
	avail, _ := sg.Lengths()
	if s.kind >= kindTLSOpen {
		return
	}
	d := s.dir(rdir)
	t := s.lastT
	if ac != nil {
		t = ac.GetCaptureInfo().Timestamp
	}
	if skip > 0 {
		s.wireGap(d, t, skip)
	}
	ri := s.rd(d)
	at, known := s.pos[ri].Add(max(skip, 0)), s.posOK[ri] && skip >= 0
	s.pos[ri], s.posOK[ri] = at.Add(avail), known
	if avail == 0 {
		return
	}
	s.carried = true
	b := sg.Fetch(avail)
	if len(s.fillers[ri]) == 0 || !known {
		s.wireData(d, t, b)
		return
	}
	// Filler bytes (fill.go) among them are bytes the capture missed.
	cur := 0
	for _, f := range s.fillers[ri] {
		from, to := min(max(diff(at, f.from), cur), avail), min(max(diff(at, f.to), cur), avail)
		if from == to {
			continue
		}
		if from > cur {
			s.wireData(d, t, b[cur:from])
		}
		s.wireGap(d, t, to-from)
		cur = to
	}
	if cur < avail {
		s.wireData(d, t, b[cur:])
	}
	s.dropFillers(ri)
}

func (s *tcpConn) ReassemblyComplete(ac reassembly.AssemblerContext) bool {
	s.complete = true
	if k := makeFlowKey(s.addr[0], s.addr[1]); s.a.open[k] == s {
		delete(s.a.open, k)
	}
	s.finish(s.lastT)
	s.a.stats.Open--
	return true
}

// finish closes the connection once.
func (s *tcpConn) finish(t time.Time) {
	if s.closed {
		return
	}
	s.closed = true
	s.a.idle.remove(s)
	s.forgetHoles()
	if s.kind == kindUnknown && s.handshake && s.a.isPort(s.addr[s.rd(stream.S2C)].Port()) != nil {
		// A connection on a known port whose bytes (if any) were all lost: still worth a line.
		s.classify(t)
	}
	if s.kind == kindTLS {
		s.reportTLS()
	}
	if s.dec != nil {
		s.closeDecrypt(t)
	}
	if s.conn != nil {
		e := s.end
		if e.By == stream.Unknown {
			e.By = stream.SourceEnd // no FIN or RST: the capture ended first
		}
		s.conn.Close(t, e)
	}
	s.kind = kindDone
	s.held = nil
	if s.a.opts.Record != nil {
		// The last acknowledgement comes after the close: forget the connection a little later.
		a := s.a
		a.recEnded = append(a.recEnded, s)
		if len(a.recEnded) > recordEnded {
			old := a.recEnded[0]
			a.recEnded = a.recEnded[1:]
			if k := makeFlowKey(old.addr[0], old.addr[1]); a.recFlows[k] == old {
				delete(a.recFlows, k)
			}
		}
	}
}

// isPort returns the transport registered for a port, or nil.
func (a *Analyzer) isPort(p uint16) *stream.Transport {
	if t, ok := a.ports[p]; ok {
		return &t
	}
	return nil
}

// gap handles n bytes lost in direction d.
func (s *tcpConn) gap(d stream.Dir, t time.Time, n int) {
	h := &s.half[s.rd(d)]
	switch s.kind {
	case kindUnknown, kindHTTP:
		h.preGap += n
		if s.kind == kindHTTP {
			s.drop(whyHTTPGap) // the upgrade cannot be followed
		}
	case kindMQTT:
		s.conn.Gap(d, t, n)
	case kindWS:
		// The WebSocket framing is lost too: look for the next frame header.
		s.conn.Gap(d, t, n)
		h.ws.lose()
	}
}

// data handles bytes of direction d in order.
func (s *tcpConn) data(d stream.Dir, t time.Time, b []byte) {
	switch s.kind {
	case kindMQTT:
		s.deliver(d, t, b)
		return
	case kindWS:
		s.wsData(d, t, b)
		return
	}
	if s.kind == kindTLS && d == stream.S2C && s.a.opts.TLSKeys == nil {
		return
	}
	// Not classified yet (or an HTTP upgrade in progress): hold the bytes.
	h := &s.half[s.rd(d)]
	if len(h.pre)+len(b) > maxPre {
		s.drop(whyTooLong)
		return
	}
	h.pre = append(h.pre, b...)
	s.classify(t)
}

// maxPre bounds the bytes held per direction to classify a connection (an HTTP upgrade
// request or a TLS ClientHello).
const maxPre = 32 << 10

// classify decides what the connection carries from its ports and first bytes.
func (s *tcpConn) classify(t time.Time) {
	c := &s.half[s.rd(stream.C2S)]
	sv := &s.half[s.rd(stream.S2C)]
	server := s.addr[s.rd(stream.S2C)].Port()
	switch s.kind {
	case kindHTTP:
		s.upgrade(t)
		return
	case kindTLS:
		s.tls(t)
		return
	}
	if s.dec != nil {
		s.classifyDecrypted(t)
		return
	}
	port := s.a.isPort(server)
	if port == nil && !s.handshake {
		// Ports unknown and no SYN: whoever sends a CONNECT is the client.
		if ok, _ := looksLikeConnect(sv.pre); ok {
			s.swapped = !s.swapped
			c, sv = sv, c
		}
	}
	cb := c.pre
	switch {
	case len(cb) >= 3 && cb[0] == 0x16 && cb[1] == 0x03:
		s.tls(t)
	case len(cb) > 0 && (bytes.HasPrefix(cb, []byte("GET ")) || bytes.HasPrefix([]byte("GET "), cb)):
		s.kind = kindHTTP
		s.upgrade(t)
	case port != nil && *port == stream.TLS:
		s.tls(t)
	case port != nil:
		s.open(t, stream.TCP)
	default:
		ok, sure := looksLikeConnect(cb)
		switch {
		case ok && sure:
			s.open(t, stream.TCP)
		case ok:
			// Too few bytes to tell yet.
		case len(cb) > 0 || len(sv.pre) > 0:
			s.kind = kindOther
			c.pre, sv.pre = nil, nil
		}
	}
}

// looksLikeConnect says whether b begins with an MQTT CONNECT (ok) and whether there were
// enough bytes to be sure.
func looksLikeConnect(b []byte) (ok, sure bool) {
	if len(b) == 0 {
		return false, false
	}
	if b[0] != 0x10 {
		return false, true
	}
	// Remaining Length, then protocol name "MQTT" (3.1.1, 5) or "MQIsdp" (3.1).
	i := 1
	for ; i < len(b) && i < 5 && b[i]&0x80 != 0; i++ {
	}
	if i >= 5 {
		return false, true
	}
	i++
	rest := b[min(i, len(b)):]
	for _, name := range []string{"\x00\x04MQTT", "\x00\x06MQIsdp"} {
		n := min(len(rest), len(name))
		if string(rest[:n]) == name[:n] {
			if n == len(name) {
				return true, true
			}
			return true, false
		}
	}
	return false, true
}

// open reports the connection as MQTT and delivers what was held.
func (s *tcpConn) open(t time.Time, tr stream.Transport) {
	if tr == stream.WebSocket {
		s.kind = kindWS
	} else {
		s.kind = kindMQTT
	}
	s.report(tr)
	for _, d := range []stream.Dir{stream.C2S, stream.S2C} {
		h := &s.half[s.rd(d)]
		if h.preGap > 0 {
			s.gap(d, t, h.preGap)
			h.preGap = 0
		}
		pre := h.pre
		h.pre = nil
		if len(pre) > 0 {
			s.data(d, t, pre)
		}
	}
}

// report tells the handler about the connection.
func (s *tcpConn) report(tr stream.Transport) {
	s.a.nextID++
	s.a.stats.Connections++
	s.info.ID = s.a.nextID
	s.info.Client = s.addr[s.rd(stream.C2S)]
	s.info.Server = s.addr[s.rd(stream.S2C)]
	s.info.Start = s.start
	s.info.Packet = s.first
	s.info.MidStream = !s.handshake
	s.info.Transport = tr
	if s.dec != nil {
		s.decryptedOpen() // over TLS, decrypted
	}
	s.conn = s.a.h.Open(&s.info)
	if s.conn == nil {
		s.conn = ignored{}
	}
	s.keeper, _ = s.conn.(stream.Keeper)
	s.unseer, _ = s.conn.(stream.Unseer)
	if s.a.opts.Record != nil {
		s.startRecording()
	}
}

// deliver hands MQTT bytes to the connection and selects packets for Options.Keep.
func (s *tcpConn) deliver(d stream.Dir, t time.Time, b []byte) {
	keep := s.a.opts.Keep
	if keep == nil || s.keeper == nil {
		s.conn.Data(d, t, b)
		return
	}
	completed, wanted := s.keeper.Keep(d, t, b)
	if !completed {
		return
	}
	h := &s.half[s.rd(d)]
	if !h.opened {
		// The packets of the first MQTT packet of each direction (CONNECT, CONNACK) go with
		// any kept packet of the connection: they give the version and the negotiation.
		h.opened = true
		if s.kept {
			for _, n := range h.pending {
				keep(n)
			}
		} else {
			s.control = append(s.control, h.pending...)
		}
	}
	if wanted {
		if !s.kept {
			s.kept = true
			for _, n := range s.control {
				keep(n)
			}
			s.control = nil
		}
		for _, n := range h.pending {
			keep(n)
		}
	}
	if k := len(h.pending); k > 1 {
		// The last packet may hold the beginning of the next MQTT packet.
		h.pending = append(h.pending[:0], h.pending[k-1])
	}
}

// tcpEnd is how the sender in direction d ended the connection with this segment.
func tcpEnd(d stream.Dir, tcp *layers.TCP) stream.End {
	e := stream.End{By: d.Sender(), How: stream.FIN}
	if tcp.RST {
		e.How = stream.RST
	}
	return e
}

// ignored is the ConnObserver of a connection its Observer is not interested in.
type ignored struct{}

func (ignored) Data(stream.Dir, time.Time, []byte) {}
func (ignored) Gap(stream.Dir, time.Time, int)     {}
func (ignored) Close(time.Time, stream.End)        {}

// tls reports an encrypted connection once its ClientHello is complete (or cannot be).
func (s *tcpConn) tls(t time.Time) {
	s.a.needSecrets() // before anything asks for the keys
	s.kind = kindTLS
	c := &s.half[s.rd(stream.C2S)]
	if _, complete := parseClientHello(c.pre); !complete && c.preGap == 0 {
		return // wait for the rest of the ClientHello
	}
	s.reportTLS()
}

// On a port not known to carry MQTT (1883, 8883, Options.Ports and TLSPorts), only a
// ClientHello that offers MQTT by ALPN makes the connection one of ours: the HTTPS and
// other TLS traffic of a capture is counted (Stats.OtherTLS), not listed.
func (s *tcpConn) reportTLS() {
	c := &s.half[s.rd(stream.C2S)]
	var h hello
	if c.preGap == 0 {
		h, _ = parseClientHello(c.pre)
	}
	if s.a.isPort(s.addr[s.rd(stream.S2C)].Port()) == nil && !h.mqttALPN() {
		s.a.stats.OtherTLS++
		s.kind = kindOther
		s.half[0].pre, s.half[1].pre = nil, nil
		return
	}
	s.info.ServerName, s.info.ALPN = h.serverName, h.alpn
	if s.a.opts.TLSKeys != nil {
		s.startDecrypt(s.lastT)
		return
	}
	s.report(stream.TLS)
	s.half[0].pre, s.half[1].pre = nil, nil
	// Nothing more to learn from this connection but its end: stop reassembling it.
	s.kind = kindTLSOpen
}
