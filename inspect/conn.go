package inspect

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect/payload"
	"github.com/mqscope/mqscope/stream"
)

// Options configure the inspection of a connection.
type Options struct {
	// Profile holds the limits a broker is known to apply; nil means the standard alone.
	Profile *Profile
	// ShowSecrets shows passwords and authentication data in the text of findings.
	ShowSecrets bool
	// Payload is how much of payloads the consumers of the records show. Inspection itself
	// does not depend on it (findings are the same in every mode); PacketRecord.Rendered and
	// the writers take the mode they need.
	Payload payload.Mode
	// MaxFrame is the largest frame Feed accepts per direction; 0 means the protocol's maximum.
	// Bigger frames are skipped with a finding.
	MaxFrame int
	// Version, when valid (3, 4 or 5), is the protocol version of a connection whose CONNECT
	// is not seen; without it the version is told by the packets. A CONNECT's level wins.
	Version decode.Version
	// Sessions, when shared between the Conns of a capture or proxy, explains session
	// takeovers across connections; nil disables that.
	Sessions *Sessions
}

// recentLen is how many packets per direction a Conn remembers for cause links.
const recentLen = 16

// Conn is the inspected state of one MQTT connection. Feed it the bytes (or frames) of both
// directions in the order they were seen; it returns what it found out as records.
//
// Every method takes the Conn's lock, so a proxy may feed the two directions from two
// goroutines and call Snapshot from a third; the packets of the two directions are then
// inspected in the order the calls get the lock, which is the order the Conn assumes they
// happened in.
type Conn struct {
	mu   sync.Mutex // guards st and the fields Snapshot reads; held by every exported method
	opts Options
	prof *Profile

	streams [2]dirStream

	// Small fields together, so that a Conn fits in a smaller size class of the allocator.
	version      decode.Version
	versionKnown bool
	own          bool // the bytes being inspected are the proxy's own (FeedOwn)
	// startFromConnect: marked mid-stream, but the client's stream began with its CONNECT.
	startFromConnect bool
	closed           bool
	kaFlagged        bool
	lost             [2]bool // the capture lost bytes of the direction

	st ConnState // counters and negotiation; maps created on first use

	connect    *PacketRecord // the CONNECT, nil until seen
	connack    *PacketRecord // the first CONNACK
	disconnect [2]*PacketRecord
	// acked is the record of the PUBLISH the frame being inspected completed (its flow over):
	// the Conn keeps it no longer, and frame hands it back to the records' source.
	acked *PacketRecord
	// lent holds where records decoded from lent bytes went in flight, for Detach.
	lent []flightKey

	counts    [2]typeCount[int32] // packets by type, each direction
	aliases   [2]map[uint16]string
	flight    [2]map[uint16]inflight // by the direction of the PUBLISH (or SUBSCRIBE) sender
	inflight  [2]int                 // QoS 1 and 2 PUBLISH in flight per direction
	recent    [2]factRing            // compact facts about the last packets, for cause links
	lastC2S   time.Time
	requests  map[string]request // "response topic\x00correlation data" -> request
	authSteps int
	pending   []Note               // notes for the next packet in either direction
	tookFrom  int                  // the connection whose Client Identifier this one's CONNECT took over
	alters    [2]stream.AlterQueue // what the proxy's faults did, by direction, until their frames are seen
	tls       *stream.TLSInfo      // set on every record when the connection was decrypted from TLS
	src       *stream.Conn         // the source's description (NewConnOf): its TLS at the end, for the close record
}

// stream frames one direction.
type dirStream struct {
	fr      decode.Framer
	pending []Note // notes for the next packet of this direction
	topics  decode.TopicCache
	skipped bool // bytes of the direction were dropped or lost: its next frame is not its first byte
	dead    bool // after the sender's DISCONNECT
	// lossAtBoundary: the last loss came between two frames (none was half read), so the first
	// byte after it likely begins one.
	lossAtBoundary bool
}

// flightKey is where an entry of Conn.flight is.
type flightKey struct {
	dir stream.Dir
	id  uint16
}

// inflight is a PUBLISH, SUBSCRIBE or UNSUBSCRIBE waiting for its acknowledgement.
type inflight struct {
	rec   *PacketRecord
	qos   byte
	state byte // see the flight* constants
}

const (
	flightAck   byte = iota + 1 // QoS 1 PUBLISH waiting for PUBACK
	flightRec                   // QoS 2 PUBLISH waiting for PUBREC
	flightRel                   // PUBREC seen, waiting for PUBREL
	flightComp                  // PUBREL seen, waiting for PUBCOMP
	flightSub                   // SUBSCRIBE waiting for SUBACK
	flightUnsub                 // UNSUBSCRIBE waiting for UNSUBACK
)

type request struct {
	index int
	t     time.Time
}

// NewConn starts inspecting connection id between client and server (each "ip:port").
func NewConn(id int, client, server string, opts Options) *Conn {
	c := &Conn{opts: opts, prof: opts.Profile, version: decode.V5}
	if c.prof == nil {
		c.prof = specProfile
	}
	c.st = ConnState{ID: id, Client: client, Server: server, Version: decode.V5, Phase: "connecting", Profile: c.prof.Name}
	if v := opts.Version; v.Valid() {
		c.version, c.versionKnown = v, true
		c.st.Version, c.st.VersionFrom = v, VersionFromOption
	}
	for d := range c.streams {
		c.streams[d].fr = *decode.NewFramer(opts.MaxFrame)
	}
	return c
}

// SetTLS says that the connection was decrypted from TLS: its records carry t.
func (c *Conn) SetTLS(t *stream.TLSInfo) {
	c.mu.Lock()
	c.tls = t
	c.mu.Unlock()
}

// ID returns the connection's id.
func (c *Conn) ID() int { return c.st.ID }

// MidStream marks a connection whose start was not captured: negotiation is unknown and limits
// are not checked; the protocol version is detected from the packets.
func (c *Conn) MidStream() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.MidStream = true
	c.st.Phase = "connected"
	c.pending = append(c.pending, Note{Level: decode.LevelInfo, Rule: RuleMidStream,
		Text: "the capture starts in the middle of this connection: its CONNECT and CONNACK were not seen, so limits are not checked"})
	// The first bytes of each direction may be the middle of a packet.
	for d := range c.streams {
		if s := &c.streams[d]; s.fr.Buffered() == 0 {
			s.fr.Resync(resyncer{c, stream.Dir(d)})
		}
	}
}

// FeedOwn is Feed for bytes the proxy sent on its own in direction dir (stream.Originator):
// their packets are marked ByProxy and judged as the proxy's, not the peer's. They must begin
// at a packet boundary, as the proxy sends them only between frames.
func (c *Conn) FeedOwn(dir stream.Dir, t time.Time, b []byte) []Record {
	return c.feed(dir, t, b, true)
}

// Feed takes the next bytes of direction dir, in any split, frames and decodes them, updates
// the connection's state and returns the records produced: a packet record per whole packet,
// and a session record right after the CONNACK's.
func (c *Conn) Feed(dir stream.Dir, t time.Time, b []byte) []Record { return c.feed(dir, t, b, false) }

func (c *Conn) feed(dir stream.Dir, t time.Time, b []byte, own bool) []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.own = own // for the frames these bytes complete, and no others (Gap, Finish)
	s := &c.streams[dir&1]
	s.fr.Write(b)
	out := c.drain(dir, t, s)
	c.own = false
	return out
}

// drain frames, decodes and inspects the whole frames held for direction dir.
func (c *Conn) drain(dir stream.Dir, t time.Time, s *dirStream) []Record {
	var out []Record
	for {
		if s.fr.Resyncing() {
			if yes, more := c.firstAtStart(dir, s); more {
				break
			} else if yes {
				s.fr.Resume()
			}
		}
		frame, err := s.fr.Next()
		if err != nil {
			c.badHeader(dir, s, err)
			continue
		}
		if s.fr.Dropped() > 0 {
			s.skipped = true
		}
		if frame == nil {
			break
		}
		if n := s.fr.Resynced(); n > 0 {
			s.skipped = true
			s.pending = append(s.pending, Note{Level: decode.LevelInfo, Rule: RuleCaptureGap,
				Text: fmt.Sprintf("%d bytes from the %s before this packet were skipped: not a whole packet", n, dir.Sender().String())})
		}
		out = c.frame(dir, t, frame, nil, nil, out)
	}
	return out
}

// Note takes a finding of the source about direction dir (stream.Noter): it goes on the
// direction's next packet, or on the close.
func (c *Conn) Note(dir stream.Dir, t time.Time, n stream.SourceNote) {
	c.mu.Lock()
	defer c.mu.Unlock()
	level := decode.LevelError
	if n.Warning {
		level = decode.LevelWarning
	}
	s := &c.streams[dir&1]
	s.pending = append(s.pending, Note{Level: level, Rule: n.Rule, Text: n.Text})
}

// badHeader handles a fixed header that cannot be framed: too large (skip the frame) or
// malformed (look for the next plausible frame).
func (c *Conn) badHeader(dir stream.Dir, s *dirStream, err error) {
	// The header's own problem, located in the frame, not in the stream.
	h, ok, herr := decode.ParseHeader(s.fr.Pending())
	s.skipped = true
	if errors.Is(err, decode.ErrTooLarge) && ok {
		s.fr.Skip()
		size := h.HeaderLen + h.RemainingLength
		s.pending = append(s.pending, Note{Level: decode.LevelError, Rule: RuleTooLarge, Reason: decode.PacketTooLarge,
			Text: fmt.Sprintf("a %s frame of %d bytes from the %s was skipped: larger than the %d-byte frame limit", h.Type, size, dir.Sender().String(), c.opts.MaxFrame)})
		return
	}
	s.pending = append(s.pending, Note{Level: decode.LevelError, Rule: RuleMalformed, Reason: decode.MalformedPacket,
		Text: fmt.Sprintf("unreadable fixed header from the %s (%v); bytes skipped up to this packet", dir.Sender().String(), herr)})
	s.lossAtBoundary = false
	s.fr.Resync(resyncer{c, dir})
}

// resyncer is the decode.Resyncer of a Conn's streams: where a plausible frame starts after
// lost bytes (resyncAt), for the connection's version, in direction dir.
type resyncer struct {
	c   *Conn
	dir stream.Dir
}

func (r resyncer) Resync(b []byte, first, ended bool) (off int, ok bool) {
	c := r.c
	limit := c.opts.MaxFrame
	if limit <= 0 || limit > 1<<20 {
		limit = 1 << 20
	}
	// A reading from the first byte after a loss between two frames is trusted as it is; any
	// other must also agree with the other direction.
	trusted := c.streams[r.dir].lossAtBoundary
	clean := func(frame []byte, skips bool) bool {
		if p := decode.DecodeWith(frame, c.version, decode.Options{Lean: true}); len(p.Info().Problems) == 0 {
			return !skips && trusted || c.agrees(r.dir, p)
		}
		if c.versionKnown {
			return false
		}
		other := decode.V311
		if c.version != decode.V5 {
			other = decode.V5
		}
		return len(decode.DecodeWith(frame, other, decode.Options{Lean: true}).Info().Problems) == 0
	}
	return resyncAt(b, first, ended, limit, c.version, clean)
}

// agrees reports whether packet p, read in direction d by a resynchronisation, agrees with the
// other direction: an acknowledgement must answer a request the other side has in flight,
// when every byte of the other side was seen (from its CONNECT or CONNACK on, no loss). A
// reading that holds an answer to nothing is not taken: it is more likely a false frame
// boundary (inside a payload) than a peer answering a request it never got.
func (c *Conn) agrees(d stream.Dir, p decode.Packet) bool {
	q := d.Peer()
	if c.st.MidStream || c.lost[q] {
		return true // what the other side has in flight is not known whole
	}
	switch p.Type() {
	case decode.PUBACK, decode.PUBREC, decode.PUBCOMP, decode.SUBACK, decode.UNSUBACK:
		id, _ := decode.PacketID(p)
		_, ok := c.flight[q][id]
		return ok
	}
	return true
}

// plausibleHeader reports whether a fixed header could start a real packet: the flags the
// standard fixes, and a Remaining Length the type can have.
func plausibleHeader(h decode.FixedHeader, v decode.Version) bool {
	if !plausibleFlags(h) {
		return false
	}
	n := h.RemainingLength
	switch h.Type {
	case decode.PINGREQ, decode.PINGRESP:
		return n == 0
	case decode.PUBACK, decode.PUBREC, decode.PUBREL, decode.PUBCOMP:
		return n >= 2 && (v == decode.V5 || n == 2)
	case decode.CONNACK:
		return n >= 2 && (v == decode.V5 || n == 2)
	case decode.DISCONNECT:
		return v == decode.V5 || n == 0
	case decode.CONNECT:
		return n >= 10
	case decode.SUBSCRIBE, decode.UNSUBSCRIBE:
		return n >= 5
	case decode.SUBACK, decode.UNSUBACK:
		return n >= 2
	case decode.PUBLISH:
		return n >= 2
	}
	return true
}

func plausibleFlags(h decode.FixedHeader) bool {
	switch h.Type {
	case decode.PUBLISH:
		return (h.Flags>>1)&3 != 3
	case decode.PUBREL, decode.SUBSCRIBE, decode.UNSUBSCRIBE:
		return h.Flags == 2
	default:
		return h.Flags == 0
	}
}

func hasMalformed(p decode.Packet) bool {
	for _, pr := range p.Info().Problems {
		if errors.Is(pr, decode.ErrMalformed) {
			return true
		}
	}
	return false
}

// Frame inspects one already-framed packet of direction dir. The packet record aliases frame.
func (c *Conn) Frame(dir stream.Dir, t time.Time, frame []byte) []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frame(dir&1, t, frame, nil, nil, nil)
}

// Unseen says the capture probably lost bytes of direction dir: the peer acknowledged bytes
// it does not have (yet). Nothing is skipped; acknowledgements of what those bytes may have
// held are only information from now on.
func (c *Conn) Unseen(dir stream.Dir) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost[dir&1] = true
}

// Gap says n bytes of direction dir were lost by the capture. The next packet of dir carries a
// finding, and framing resumes at the next plausible frame boundary.
func (c *Conn) Gap(dir stream.Dir, t time.Time, n int) []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.streams[dir&1]
	c.lost[dir&1] = true
	s.lossAtBoundary = s.fr.AtBoundary()
	// Lost bytes inside a frame being skipped anyway cost nothing; otherwise the partial frame
	// held is useless without its lost middle.
	if n = s.fr.Gap(n); n == 0 {
		return nil
	}
	s.skipped = true
	s.pending = append(s.pending, Note{Level: decode.LevelWarning, Rule: RuleCaptureGap,
		Text: fmt.Sprintf("the capture lost %d bytes from the %s (at %s); topic aliases and in-flight messages may be incomplete", n, dir.Sender().String(), t.Format("15:04:05.000000"))})
	s.fr.Resync(resyncer{c, dir})
	return nil
}

// decodeFrame decodes a frame with the connection's protocol version, learning it from CONNECT
// or, when no CONNECT was seen, from the packets (detectVersion). pre, when not nil, is the
// frame as a Preframer framed it: its packet serves if it was decoded with that same version
// (decoding depends on nothing else).
func (c *Conn) decodeFrame(dir stream.Dir, frame []byte, pre *Framed, reuse *decode.Reuse) decode.Packet {
	connect := dir == stream.C2S && isConnect(frame)
	if v, ok := connectVersion(dir, frame); ok {
		c.version, c.versionKnown = v, true
		c.st.VersionFrom = VersionFromConnect
	}
	if !connect && !c.versionKnown {
		return c.detectVersion(dir, frame)
	}
	if pre != nil && pre.p != nil && pre.v == c.version {
		return pre.p
	}
	return decode.DecodeWith(frame, c.version, decode.Options{Lean: true, Topics: &c.streams[dir&1].topics, Reuse: reuse})
}

// isConnect reports whether frame is a CONNECT.
func isConnect(frame []byte) bool {
	return len(frame) > 0 && decode.Type(frame[0]>>4) == decode.CONNECT
}

// connectVersion returns the protocol version a client's CONNECT frame asks for, when it is
// one a Conn decodes with: the CONNECT's level wins over anything told before.
func connectVersion(dir stream.Dir, frame []byte) (decode.Version, bool) {
	if dir&1 != stream.C2S || !isConnect(frame) {
		return 0, false
	}
	v, ok := decode.PeekVersion(frame)
	return v, ok && v.Valid()
}

// packetAlloc puts a record and a small result slice in one allocation.
type packetAlloc struct {
	r   PacketRecord
	out [2]Record
}

// frame decodes and inspects one frame, appending its records to out. pre is the frame as a
// Preframer framed it, or nil; sl, when not nil, hands out the records the Conn will not keep.
func (c *Conn) frame(dir stream.Dir, t time.Time, frame []byte, pre *Framed, sl recordSource, out []Record) []Record {
	if c.st.MidStream || c.startFromConnect {
		c.startSeen(dir, frame)
	}
	al := c.matchAlter(dir, frame)
	own := c.own
	if al.sent() && al.a.Own {
		c.own = true // a fault's DISCONNECT is the proxy's
	}
	var reuse *decode.Reuse
	if sl != nil {
		reuse = sl.packets()
	}
	p := c.decodeFrame(dir, frame, pre, reuse)
	var r *PacketRecord
	switch {
	case sl != nil && sl.hands(frame):
		r = sl.next()
	case out == nil:
		a := &packetAlloc{}
		r, out = &a.r, a.out[:0:2]
	default:
		r = &PacketRecord{} // the caller's slice has room: 32 bytes less to allocate and clear
	}
	if al.sent() {
		r.Fault, r.alt = al.a.Rule, al.a
	}
	r.lent = pre != nil && pre.lent
	c.inspect(r, dir, t, p)
	if c.acked != nil {
		if sl != nil {
			sl.release(c.acked)
		}
		c.acked = nil
	}
	c.own = own
	if al.a != nil && al.i == al.a.Kept {
		out = append(out, c.faultRecord(dir, t, al.a, r.Index)) // right before the frame it sent
	}
	out = append(out, r)
	if al.a != nil && al.a.Kept == len(al.a.After) && al.i == al.a.Kept-1 {
		out = append(out, c.faultRecord(dir, t, al.a, 0)) // it sent nothing after the frame
	}
	if r.Type() == decode.CONNACK && c.connack == r {
		out = append(out, c.sessionRecord(t))
	}
	return out
}

func (c *Conn) sessionRecord(t time.Time) *SessionRecord {
	return &SessionRecord{Time: t, Conn: c.st.ID, Client: c.st.Client, Server: c.st.Server, ClientID: c.st.ClientID,
		Version: c.st.Version, VersionFrom: c.st.VersionFrom, Requested: c.st.Requested, Granted: c.st.Granted, Effective: c.st.Effective, TLS: c.tls}
}

// inspect builds the record of one decoded packet in r, a zero record, and updates the state.
func (c *Conn) inspect(r *PacketRecord, dir stream.Dir, t time.Time, p decode.Packet) {
	s := &c.streams[dir]
	// Field by field: assigning a whole PacketRecord copies it through a temporary.
	r.Time, r.Conn, r.Client, r.Server, r.Dir = t, c.st.ID, c.st.Client, c.st.Server, dir
	r.Version, r.Packet, r.TLS, r.ByProxy = p.Info().Version, p, c.tls, c.own
	r.Index = int(c.counts[stream.C2S].total+c.counts[stream.S2C].total) + 1
	if n := len(p.Info().Problems) + len(s.pending) + len(c.pending); n > 0 {
		r.Notes = make([]Note, 0, n+1)
		for _, pr := range p.Info().Problems {
			r.Notes = append(r.Notes, Note{Level: pr.Level, Rule: problemRule(pr), Text: pr.Message, Reason: pr.Reason})
		}
		r.Notes = append(r.Notes, s.pending...)
		r.Notes = append(r.Notes, c.pending...)
		s.pending, c.pending = nil, nil
	}

	if c.st.Started.IsZero() {
		c.st.Started = t
	}
	c.st.LastSeen = t
	c.checkOrder(r)
	c.checkKeepAlive(r)
	switch q := p.(type) {
	case *decode.Connect:
		c.onConnect(r, q)
	case *decode.Connack:
		c.onConnack(r, q)
	case *decode.Publish:
		c.onPublish(r, q)
	case *decode.Ack:
		c.onAck(r, q)
	case *decode.Subscribe:
		c.onSubscribe(r, q)
	case *decode.Suback:
		c.onSuback(r, q.PacketID, q.ReasonCodes, decode.SUBACK)
	case *decode.Unsubscribe:
		c.onUnsubscribe(r, q)
	case *decode.Unsuback:
		if r.Version == decode.V5 {
			c.onSuback(r, q.PacketID, q.ReasonCodes, decode.UNSUBACK)
		} else {
			c.onSuback(r, q.PacketID, nil, decode.UNSUBACK)
		}
	case *decode.Disconnect:
		c.onDisconnect(r, q)
	case *decode.Auth:
		c.onAuth(r, q)
	}
	c.checkSize(r)
	c.checkProblemInfo(r)
	if dir == stream.C2S {
		c.lastC2S = t
		c.kaFlagged = false
	}
	r.ClientID = c.st.ClientID
	c.account(r)
	c.remember(r)
}

// account counts a record's packet, bytes, reason codes and notes.
func (c *Conn) account(r *PacketRecord) {
	d := r.Dir
	c.counts[d].add(r.Type())
	c.st.PacketsC2S, c.st.PacketsS2C = int(c.counts[stream.C2S].total), int(c.counts[stream.S2C].total)
	if d == stream.C2S {
		c.st.BytesC2S += int64(r.Size())
	} else {
		c.st.BytesS2C += int64(r.Size())
	}
	for i := range r.Notes {
		c.count1(r.Notes[i].Rule, r.Notes[i].Level)
	}
	if r.Version == decode.V5 || r.Type() == decode.CONNACK || r.Type() == decode.SUBACK {
		for _, rc := range reasonCodes(r.Packet) {
			if rc == 0 && r.Type() != decode.CONNACK {
				continue
			}
			if c.st.Reasons == nil {
				c.st.Reasons = map[string]int{}
			}
			c.st.Reasons[fmt.Sprintf("%s 0x%02X %s", r.Type(), byte(rc), decode.ReasonName(r.Version, r.Type(), rc))]++
		}
	}
}

// count1 counts one finding.
func (c *Conn) count1(rule string, l decode.Level) {
	if c.st.Findings == nil {
		c.st.Findings, c.st.Levels = map[string]int{}, map[string]int{}
	}
	c.st.Findings[rule]++
	c.st.Levels[l.String()]++
}

// fact is what cause links need to know about a recent packet: kept instead of the record so
// that an open connection holds no packets beyond those in flight.
type fact struct {
	t       int64              // UnixNano
	topic   string             // resolved
	alt     *stream.Alteration // the fault that altered the packet; nil when none
	notes   []causeNote
	index   int32
	size    int32
	payload int32
	pid     uint16
	alias   uint16 // Topic Alias, 0 when none
	typ     decode.Type
	qos     byte
	retain  bool
}

// causeNote is a finding that calls for a reason code.
type causeNote struct {
	reason decode.ReasonCode
	level  decode.Level
	why    string
}

// summary describes the packet for a cause link: "PUBLISH #41, 300 bytes, why".
func (f *fact) summary(why string) string {
	s := fmt.Sprintf("%s #%d, %d bytes", f.typ, f.index, f.size)
	if why != "" {
		s += ", " + why
	}
	if f.alt != nil && !f.alt.Own {
		s += "; altered by fault `" + f.alt.Rule + "`: " + f.alt.Did
	}
	return s
}

// ref links to the packet.
func (f *fact) ref(why string) *CauseRef {
	return &CauseRef{Index: int(f.index), Type: f.typ, Summary: f.summary(why)}
}

// remember keeps the facts of a record among the recent packets of its direction.
func (c *Conn) remember(r *PacketRecord) {
	d := r.Dir
	f := c.recent[d].push()
	*f = fact{index: int32(r.Index), t: r.Time.UnixNano(), typ: r.Type(), size: int32(r.Size()), topic: r.Topic, alt: r.alt}
	f.pid, _ = decode.PacketID(r.Packet)
	if p, ok := r.Packet.(*decode.Publish); ok {
		f.qos, f.retain, f.payload = p.QoS, p.Retain, int32(len(p.Payload))
		f.alias, _ = p.Properties.TopicAlias()
	}
	for i := range r.Notes {
		if n := &r.Notes[i]; n.Reason.IsError() {
			f.notes = append(f.notes, causeNote{reason: n.Reason, level: n.Level, why: n.whyText()})
		}
	}
}

// eachRecent calls f with the remembered packets of direction d, newest first, until f
// returns true.
func (c *Conn) eachRecent(d stream.Dir, f func(*fact) bool) {
	r := &c.recent[d]
	for i := range r.buf {
		if f(r.newest(i)) {
			return
		}
	}
}

// Compact lets go of what a connection that carried nothing since last holds beyond its
// negotiated state, to bound the memory of connections that stay open and quiet in a long
// capture: the framing buffers (when no packet is half read), the facts of all but the last
// packet of each direction (older packets are then out of reach of cause links), and the
// framing buffers the packets in flight were cut from. It
// says so in a note on the connection's next record. Nothing is done on a closed connection.
func (c *Conn) Compact(t, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for d := range c.streams {
		c.streams[d].fr.Release()
		c.recent[d].keepLast()
	}
	// The CONNECT and CONNACK, the first packets of their streams, have buffers of their own
	// (decode.Framer); the packets in flight are copied out of the framing buffer.
	for d := range c.flight {
		for id, e := range c.flight[d] {
			e.rec = detach(e.rec)
			c.flight[d][id] = e
		}
	}
	before := ""
	if f := c.newestFact(); f != nil {
		before = fmt.Sprintf(": cause links do not reach packets before #%d", f.index)
	}
	c.pending = append(c.pending, Note{Level: decode.LevelInfo, Rule: RuleIdle,
		Text: fmt.Sprintf("nothing for %s of capture time (since %s); mqscope kept the negotiated state and let go of buffers and older packets%s",
			t.Sub(last).Round(time.Second), last.Format("15:04:05.000000"), before)})
}

// newestFact is the last packet remembered in either direction.
func (c *Conn) newestFact() *fact {
	var last *fact
	for d := range c.recent {
		if r := c.recent[d].last(); r != nil && (last == nil || r.index > last.index) {
			last = r
		}
	}
	return last
}

// detach returns a copy of r whose packet holds its own bytes (decoded again from a copy), so
// that keeping it does not keep the framing buffer the packet was cut from.
func detach(r *PacketRecord) *PacketRecord {
	if r == nil || r.Packet == nil {
		return r
	}
	p := decode.DecodeWith(bytes.Clone(r.Packet.Info().Raw), r.Version, decode.Options{Lean: true})
	return &PacketRecord{Time: r.Time, Conn: r.Conn, Client: r.Client, Server: r.Server, ClientID: r.ClientID,
		Dir: r.Dir, Version: r.Version, Packet: p, Index: r.Index, Topic: r.Topic, Notes: r.Notes,
		Response: r.Response, ByProxy: r.ByProxy, Fault: r.Fault, TLS: r.TLS, alt: r.alt}
}

// factRing holds the facts of a direction's last recentLen packets. It grows as packets come
// (a short connection holds few), and keeps them in order: oldest first until it is full, then
// next is the slot of the oldest, overwritten by the next fact.
type factRing struct {
	buf  []fact
	next int
}

// push returns the slot for the next fact.
func (r *factRing) push() *fact {
	if len(r.buf) < recentLen {
		r.buf = append(r.buf, fact{})
		return &r.buf[len(r.buf)-1]
	}
	f := &r.buf[r.next]
	r.next = (r.next + 1) % recentLen
	return f
}

// newest returns the ith newest fact (0: the last one); i < len(r.buf).
func (r *factRing) newest(i int) *fact {
	n := len(r.buf)
	return &r.buf[(r.next-1-i+2*n)%n]
}

// last returns the newest fact, nil when none.
func (r *factRing) last() *fact {
	if len(r.buf) == 0 {
		return nil
	}
	return r.newest(0)
}

// keepLast forgets all but the newest fact.
func (r *factRing) keepLast() {
	if f := r.last(); f != nil {
		r.buf, r.next = []fact{*f}, 0
	}
}

// reasonCodes returns the reason codes a packet carries.
func reasonCodes(p decode.Packet) []decode.ReasonCode {
	switch q := p.(type) {
	case *decode.Connack:
		return []decode.ReasonCode{q.ReasonCode}
	case *decode.Ack:
		if q.HasReason {
			return []decode.ReasonCode{q.ReasonCode}
		}
	case *decode.Disconnect:
		if q.HasReason {
			return []decode.ReasonCode{q.ReasonCode}
		}
	case *decode.Auth:
		if q.HasReason {
			return []decode.ReasonCode{q.ReasonCode}
		}
	case *decode.Suback:
		return q.ReasonCodes
	case *decode.Unsuback:
		return q.ReasonCodes
	}
	return nil
}

// Close ends the connection, as end says. It returns the close record; a second call returns
// nil.
func (c *Conn) Close(t time.Time, end stream.End) *CloseRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.st.Phase = "closed"
	if c.src != nil && c.src.TLS != nil {
		c.tls = c.src.TLS // what the source learnt of the TLS until the end
	}
	if t.IsZero() {
		t = c.st.LastSeen
	}
	cr := &CloseRecord{Time: t, Conn: c.st.ID, Client: c.st.Client, Server: c.st.Server, ClientID: c.st.ClientID, End: end, TLS: c.tls}
	// The DISCONNECT that ended the connection is the first one sent: an answer to the other
	// side's (a client replying to the server's 0x94) does not end it again.
	var first *PacketRecord
	for _, r := range c.disconnect {
		if r != nil && (first == nil || r.Index < first.Index) {
			first = r
		}
	}
	if first != nil {
		cr.Disconnect = &DisconnectRef{Dir: first.Dir, Code: first.Packet.(*decode.Disconnect).ReasonCode}
	}
	c.unfinishedNotes(cr)
	c.closeNotes(cr)
	c.flight = [2]map[uint16]inflight{}
	if c.opts.Sessions != nil && c.connect != nil {
		c.opts.Sessions.release(c.sessionKey(), c.st.ID)
	}
	for i := range cr.Notes {
		c.count1(cr.Notes[i].Rule, cr.Notes[i].Level)
	}
	for i := range c.streams {
		c.streams[i].fr.Reset()
	}
	cr.State = c.snapshot()
	return cr
}

// unfinishedNotes reports, at the close, what each direction left unsaid: the bytes of a packet
// that never finished, and notes that were waiting for a next packet (a capture gap just
// before the end) that never came.
func (c *Conn) unfinishedNotes(cr *CloseRecord) {
	subject, l := "connection", decode.LevelWarning
	if cr.endedOpen() {
		subject, l = "capture", decode.LevelInfo
	}
	for _, d := range []stream.Dir{stream.C2S, stream.S2C} {
		s := &c.streams[d]
		cr.Notes = append(cr.Notes, s.pending...)
		s.pending = nil
		rest := s.fr.Pending()
		if len(rest) == 0 && !(s.fr.Resyncing() && s.fr.Dropped() > 0) {
			continue
		}
		var text string
		h, ok, err := decode.ParseHeader(rest)
		switch {
		case s.fr.Resyncing():
			text = fmt.Sprintf("the %s ended with %d bytes from the %s in which no packet boundary was found after lost bytes", subject, len(rest)+s.fr.Dropped(), d.Sender().String())
		case ok && err == nil:
			text = fmt.Sprintf("the %s ended inside a %s from the %s: %d of its %d bytes arrived", subject, h.Type, d.Sender().String(), len(rest), h.HeaderLen+h.RemainingLength)
		default:
			text = fmt.Sprintf("the %s ended inside a packet from the %s: %d bytes arrived, not a whole fixed header", subject, d.Sender().String(), len(rest))
		}
		cr.Notes = append(cr.Notes, Note{Level: l, Rule: RuleUnfinished, Text: text})
	}
	cr.Notes = append(cr.Notes, c.pending...)
	c.pending = nil
}

// closeNotes explains how the connection ended.
func (c *Conn) closeNotes(cr *CloseRecord) {
	last := c.newestFact()
	if last == nil {
		return
	}
	// By "unknown": the capture ended with the connection open. Nothing closed, so nothing is
	// said about a close (its reason says the capture ended).
	open := cr.endedOpen()
	if !open && c.disconnect[stream.C2S] == nil && c.disconnect[stream.S2C] == nil && !c.refused() {
		l := decode.LevelInfo
		text := "the connection closed without a DISCONNECT"
		if by := cr.By(); by != "" {
			text = fmt.Sprintf("the connection closed (%s) without a DISCONNECT", by)
		}
		switch {
		case c.connect != nil && c.connack == nil && !c.st.MidStream:
			l = decode.LevelWarning
			text += fmt.Sprintf(", before any CONNACK: the server dropped CONNECT #%d (%d bytes) without saying why", c.connect.Index, c.connect.Size())
		case last == c.recent[stream.C2S].last() && c.version != decode.V5:
			text += fmt.Sprintf("; in MQTT %s a server closes this way when it refuses a packet", c.version)
		}
		if ka := c.keepAlive(); ka > 0 && !c.lastC2S.IsZero() && !c.st.MidStream {
			if gap := cr.Time.Sub(c.lastC2S); gap > time.Duration(ka)*time.Second*3/2 {
				text += fmt.Sprintf("; the client had sent nothing for %.1f s, more than 1.5 × its %d s keep alive: a keep alive timeout", gap.Seconds(), ka)
			}
		}
		if c.connect != nil && c.st.Requested.Will != nil {
			text += "; the server publishes the Will message"
		}
		cr.Notes = append(cr.Notes, Note{Level: l, Rule: RuleCloseNoDisc, Text: text,
			Cause: last.ref("the last packet before the close")})
	}
	if o, ok := c.takenOverBy(); ok && c.closedByTakeover(cr, o) {
		cr.Notes = append(cr.Notes, Note{Level: decode.LevelWarning, Rule: RuleTakenOver,
			Text:  fmt.Sprintf("connection %d connected to this server with the same Client Identifier %q, and the server closed this one %s later (session takeover)", o.conn, c.st.Requested.ClientID, cr.Time.Sub(o.t).Round(time.Microsecond)),
			Cause: &CauseRef{Conn: o.conn, Index: o.index, Type: decode.CONNECT, Summary: fmt.Sprintf("CONNECT #%d of connection %d at %s", o.index, o.conn, o.t.Format("15:04:05.000000"))}})
	}
	when := "at the close"
	if open {
		when = "when the capture ended"
	}
	for _, d := range []stream.Dir{stream.C2S, stream.S2C} {
		if n := c.inflight[d]; n > 0 {
			cr.Notes = append(cr.Notes, Note{Level: decode.LevelInfo, Rule: RuleUnacked,
				Text: fmt.Sprintf("%d QoS 1/2 PUBLISH from the %s left unacknowledged %s", n, d.Sender().String(), when)})
		}
	}
}

// takenOverBy returns the connection that took this one's Client Identifier after it.
func (c *Conn) takenOverBy() (sessionOwner, bool) {
	if c.opts.Sessions == nil || c.connect == nil || c.st.Requested.ClientID == "" {
		return sessionOwner{}, false
	}
	o, ok := c.opts.Sessions.owner(c.sessionKey())
	return o, ok && o.conn != c.st.ID && !o.t.Before(c.connect.Time)
}

// takeoverWindow is how long after a later CONNECT with the same Client Identifier a close by
// the server is put down to the takeover (a broker closes the old connection at once; the
// slack covers capture timestamps).
const takeoverWindow = 5 * time.Second

// closedByTakeover reports whether this connection's end is the server's answer to o's CONNECT:
// the server closed it (no DISCONNECT from the client, which ends a connection its own way;
// a DISCONNECT 0x8E from the server says so itself) within takeoverWindow of that CONNECT.
func (c *Conn) closedByTakeover(cr *CloseRecord, o sessionOwner) bool {
	if c.disconnect[stream.C2S] != nil || c.disconnect[stream.S2C] != nil || cr.End.By != stream.Server {
		return false
	}
	d := cr.Time.Sub(o.t)
	return d >= -time.Second && d <= takeoverWindow
}

// sessionKey names the session of this connection's Client Identifier on its server: the same
// identifier on another server is another session.
func (c *Conn) sessionKey() string { return c.st.Server + "\x00" + c.st.Requested.ClientID }

// Snapshot returns a copy of the connection's negotiated state and counters. It is safe to call
// while another goroutine feeds the Conn.
func (c *Conn) Snapshot() ConnState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshot()
}

func (c *Conn) snapshot() ConnState {
	s := c.st.clone()
	s.Packets = map[string]int{}
	for t := range 16 {
		if n := c.counts[stream.C2S].byType[t] + c.counts[stream.S2C].byType[t]; n > 0 {
			s.Packets[decode.Type(t).String()] = int(n)
		}
	}
	s.AliasesC2S = cloneAliases(c.aliases[stream.C2S])
	s.AliasesS2C = cloneAliases(c.aliases[stream.S2C])
	s.InFlightC2S, s.InFlightS2C = c.inflight[stream.C2S], c.inflight[stream.S2C]
	return s
}

func cloneAliases(m map[uint16]string) map[uint16]string {
	out := make(map[uint16]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
