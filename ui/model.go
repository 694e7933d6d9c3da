package ui

import (
	"sort"
	"sync"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
)

// DefaultCap is how many packets a Model keeps unless told otherwise: past it the oldest are
// dropped (and the screens say how many). A packet costs about 500 bytes of heap
// (BenchmarkUIMillion in cmd/mqscope), so the default is about 500 MB.
const DefaultCap = 1_000_000

// Model is what the screens show, fed with records (Add) from any goroutine and read by the
// screens: the connections, the packets of one connection or of all, passing a filter, with
// marks, the topics, and the selection. It knows nothing of the terminal.
//
// Packets are numbered by a sequence number (Seq) that grows from 0 with each packet added
// and survives the dropping of the oldest ones.
type Model struct {
	mu  sync.Mutex
	cap int

	pkts    []*inspect.PacketRecord // pkts[i] has Seq base+i
	base    int
	dropped int // packets dropped past the cap
	lost    int // records a live source could not deliver
	status  string

	conns     map[int]*Conn
	connOrder []int // ids, in order of their first record
	topics    *Topic

	// The list shown: the packets of conn (0: all) passing filter. When neither is set, it
	// is every packet and shown is nil.
	conn      int
	filter    *inspect.Filter
	shown     []int // Seqs, ascending
	shownUpTo int   // the Seq up to which shown was computed (exclusive)

	marks map[int]bool
	last  time.Time // time of the newest record: "now" on a capture
	gen   uint64    // bumped by every change (changed), for the screens to redraw
}

// changed bumps the generation, for the screens to redraw. The caller holds m.mu.
func (m *Model) changed() { m.gen++ }

// Touch marks the model changed (the held packets of an intercept changed), so the screens
// redraw.
func (m *Model) Touch() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.changed()
}

// Conn is one connection as the screens show it.
type Conn struct {
	ID       int
	Client   string
	Server   string
	ClientID string
	Version  decode.Version
	Packets  int
	Bytes    int64
	Findings [decode.LevelInfo + 1]int // by level
	Session  *inspect.SessionRecord    // nil until the CONNACK
	Close    *inspect.CloseRecord      // nil while open
	TLS      string                    // an encrypted connection: what is known of it

	// Aliases are the Topic Alias tables by the sender's direction (copies, in what the
	// model returns).
	Aliases [2]map[uint16]Alias
	// InFlight counts the QoS 1 and 2 PUBLISH packets each sender has unacknowledged.
	InFlight [2]int
	LastSeen [2]time.Time // the last packet of each direction

	// Faults are the faults mqscope's proxy applied on the connection, in order.
	Faults []*inspect.FaultRecord

	seqs     []int                          // the Seqs of its packets, ascending
	faultAt  map[int][]*inspect.FaultRecord // by the Index of the packet they sent
	aliases  [2]map[uint16]*Alias
	inflight [2]map[uint16]bool
}

// copy returns c without what the model goes on changing, with its alias tables copied when
// aliases is set.
func (c *Conn) copy(aliases bool) Conn {
	out := *c
	out.seqs, out.faultAt, out.aliases, out.inflight = nil, nil, [2]map[uint16]*Alias{}, [2]map[uint16]bool{}
	out.Faults = append([]*inspect.FaultRecord(nil), c.Faults...)
	for d := range 2 {
		out.InFlight[d] = len(c.inflight[d])
		if aliases {
			out.Aliases[d] = make(map[uint16]Alias, len(c.aliases[d]))
			for k, v := range c.aliases[d] {
				out.Aliases[d][k] = *v
			}
		}
	}
	return out
}

// Alias is one entry of a Topic Alias table.
type Alias struct {
	Topic string
	Hits  int // PUBLISH packets that used the alias without the topic
	Set   int // PUBLISH packets that set it (alias and topic)
}

// State says where the connection is: "connecting", "open", "refused" or "closed by ...".
func (c *Conn) State() string {
	switch {
	case c.Close != nil:
		return "closed by " + c.Close.By()
	case c.TLS != "":
		return "encrypted"
	case c.Session == nil:
		return "connecting"
	case c.Session.Granted.ReasonCode >= 0x80:
		return "refused"
	}
	return "open"
}

// NewModel returns an empty model keeping at most capacity packets (DefaultCap when 0).
func NewModel(capacity int) *Model {
	if capacity <= 0 {
		capacity = DefaultCap
	}
	return &Model{cap: capacity, conns: map[int]*Conn{}, marks: map[int]bool{}, topics: newTopic("")}
}

// Add takes one record of inspect's pipeline.
func (m *Model) Add(r inspect.Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.changed()
	switch r := r.(type) {
	case *inspect.PacketRecord:
		m.addPacket(r)
	case *inspect.SessionRecord:
		c := m.connOf(r.Conn, r.Client, r.Server)
		c.Session, c.Version, c.ClientID = r, r.Version, r.ClientID
		m.seen(r.Time)
	case *inspect.CloseRecord:
		c := m.connOf(r.Conn, r.Client, r.Server)
		c.Close = r
		if r.ClientID != "" {
			c.ClientID = r.ClientID
		}
		for _, n := range r.Notes {
			c.Findings[n.Level]++
		}
		m.seen(r.Time)
	case *inspect.FaultRecord:
		c := m.connOf(r.Conn, r.Client, r.Server)
		c.Faults = append(c.Faults, r)
		if r.Index > 0 {
			if c.faultAt == nil {
				c.faultAt = map[int][]*inspect.FaultRecord{}
			}
			c.faultAt[r.Index] = append(c.faultAt[r.Index], r)
		}
		m.seen(r.Time)
	case *inspect.EncryptedRecord:
		c := m.connOf(r.Conn, r.Client, r.Server)
		c.TLS = "TLS, not decrypted"
		if r.ServerName != "" {
			c.TLS += " (server name " + r.ServerName + ")"
		}
		m.seen(r.Time)
	}
}

func (m *Model) seen(t time.Time) {
	if t.After(m.last) {
		m.last = t
	}
}

func (m *Model) connOf(id int, client, server string) *Conn {
	c := m.conns[id]
	if c == nil {
		c = &Conn{ID: id, Client: client, Server: server}
		c.aliases = [2]map[uint16]*Alias{{}, {}}
		c.inflight = [2]map[uint16]bool{{}, {}}
		m.conns[id] = c
		m.connOrder = append(m.connOrder, id)
	}
	return c
}

func (m *Model) addPacket(r *inspect.PacketRecord) {
	seq := m.base + len(m.pkts)
	m.pkts = append(m.pkts, r)
	c := m.connOf(r.Conn, r.Client, r.Server)
	c.seqs = append(c.seqs, seq)
	c.Packets++
	c.Bytes += int64(r.Size())
	c.Version = r.Version
	if r.ClientID != "" {
		c.ClientID = r.ClientID
	}
	c.LastSeen[r.Dir&1] = r.Time
	for _, n := range r.Notes {
		c.Findings[n.Level]++
	}
	track(c, r)
	if _, ok := r.Packet.(*decode.Publish); ok {
		m.topics.add(r)
	}
	m.seen(r.Time)
	if len(m.pkts) > m.cap {
		m.dropOldest(max(m.cap/16, 1))
	}
}

// track follows the alias tables and the in-flight window of c with packet r.
func track(c *Conn, r *inspect.PacketRecord) {
	d := r.Dir & 1
	switch p := r.Packet.(type) {
	case *decode.Publish:
		if a, ok := p.Properties.Int(decode.PropTopicAlias); ok {
			e := c.aliases[d][uint16(a)]
			if e == nil {
				e = &Alias{}
				c.aliases[d][uint16(a)] = e
			}
			if p.Topic != "" {
				e.Topic = p.Topic
				e.Set++
			} else {
				e.Hits++
			}
		}
		if p.QoS > 0 {
			c.inflight[d][p.PacketID] = true
		}
	case *decode.Ack:
		// PUBACK and PUBCOMP end a QoS 1 and 2 exchange; a PUBREC with an error code too.
		if p.PacketType == decode.PUBACK || p.PacketType == decode.PUBCOMP || p.PacketType == decode.PUBREC && p.ReasonCode >= 0x80 {
			delete(c.inflight[1-d], p.PacketID)
		}
	}
}

// dropOldest forgets the n oldest packets.
func (m *Model) dropOldest(n int) {
	// The array under pkts outlives the slicing until an append outgrows it: the records
	// dropped must not stay reachable from it.
	clear(m.pkts[:n])
	m.pkts = m.pkts[n:]
	m.base += n
	m.dropped += n
	for _, c := range m.conns {
		c.seqs = c.seqs[sort.SearchInts(c.seqs, m.base):]
	}
	if m.shown != nil {
		m.shown = m.shown[sort.SearchInts(m.shown, m.base):]
	}
	for s := range m.marks {
		if s < m.base {
			delete(m.marks, s)
		}
	}
}

// Gen returns a number that changes with every change of the model.
func (m *Model) Gen() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// Dropped returns how many of the oldest packets were dropped to stay within the cap.
func (m *Model) Dropped() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped
}

// Total returns how many packets the model holds.
func (m *Model) Total() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pkts)
}

// Now is the time of the newest record.
func (m *Model) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Conns returns copies of the connections (without their alias tables) in the order they
// were first seen.
func (m *Model) Conns() []Conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Conn, 0, len(m.connOrder))
	for _, id := range m.connOrder {
		out = append(out, m.conns[id].copy(false))
	}
	return out
}

// Conn returns a copy of connection id, alias tables included.
func (m *Model) Conn(id int) (Conn, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.conns[id]
	if c == nil {
		return Conn{}, false
	}
	return c.copy(true), true
}

// Packet returns the packet of sequence number seq (nil when dropped or not yet added).
func (m *Model) Packet(seq int) *inspect.PacketRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.packet(seq)
}

func (m *Model) packet(seq int) *inspect.PacketRecord {
	if seq < m.base || seq >= m.base+len(m.pkts) {
		return nil
	}
	return m.pkts[seq-m.base]
}

// Find returns the Seq of packet index of connection conn.
func (m *Model) Find(conn, index int) (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.find(conn, index)
}

func (m *Model) find(conn, index int) (int, bool) {
	c := m.conns[conn]
	if c == nil {
		return 0, false
	}
	i := sort.Search(len(c.seqs), func(i int) bool { return m.pkts[c.seqs[i]-m.base].Index >= index })
	if i < len(c.seqs) && m.pkts[c.seqs[i]-m.base].Index == index {
		return c.seqs[i], true
	}
	return 0, false
}

// SetView shows the packets of connection conn (0: of every connection) passing filter
// (nil: all).
func (m *Model) SetView(conn int, filter *inspect.Filter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.conn, m.filter = conn, filter
	m.shown, m.shownUpTo = nil, m.base
	m.changed()
}

// ViewConn returns the connection the list shows (0: all) and the filter.
func (m *Model) ViewConn() (int, *inspect.Filter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conn, m.filter
}

// refresh brings the shown list up to date with the packets added since.
func (m *Model) refresh() {
	if m.conn == 0 && m.filter == nil {
		return
	}
	if m.shown == nil {
		m.shown = []int{}
	}
	end := m.base + len(m.pkts)
	from := max(m.shownUpTo, m.base)
	if m.conn != 0 {
		c := m.conns[m.conn]
		if c != nil {
			for _, s := range c.seqs[sort.SearchInts(c.seqs, from):] {
				if m.filter == nil || m.filter.Match(m.pkts[s-m.base]) {
					m.shown = append(m.shown, s)
				}
			}
		}
	} else {
		for s := from; s < end; s++ {
			if m.filter.Match(m.pkts[s-m.base]) {
				m.shown = append(m.shown, s)
			}
		}
	}
	m.shownUpTo = end
}

// Len returns how many packets the list shows.
func (m *Model) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refresh()
	if m.shown == nil {
		return len(m.pkts)
	}
	return len(m.shown)
}

// At returns the Seq of row i of the list (-1 when there is no such row).
func (m *Model) At(i int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refresh()
	return m.at(i)
}

// at is At on a list the caller has refreshed.
func (m *Model) at(i int) int {
	switch {
	case i < 0:
		return -1
	case m.shown == nil && i < len(m.pkts):
		return m.base + i
	case m.shown != nil && i < len(m.shown):
		return m.shown[i]
	}
	return -1
}

// Row returns the row of the list showing seq, or the row of the first packet after it when
// seq is not shown (Len when there is none); ok reports an exact match.
func (m *Model) Row(seq int) (row int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refresh()
	if m.shown == nil {
		row = min(max(seq-m.base, 0), len(m.pkts))
		return row, seq >= m.base && seq < m.base+len(m.pkts)
	}
	row = sort.SearchInts(m.shown, seq)
	return row, row < len(m.shown) && m.shown[row] == seq
}

// Mark toggles the mark of seq.
func (m *Model) Mark(seq int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.marks[seq] {
		delete(m.marks, seq)
	} else if m.packet(seq) != nil {
		m.marks[seq] = true
	}
	m.changed()
}

// Marked reports whether seq is marked.
func (m *Model) Marked(seq int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.marks[seq]
}

// Marks returns the marked Seqs, ascending.
func (m *Model) Marks() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]int, 0, len(m.marks))
	for s := range m.marks {
		out = append(out, s)
	}
	sort.Ints(out)
	return out
}

// Next returns the row after (forward) or before row whose packet satisfies match, searching
// the list in order and wrapping around once; -1 when none does.
func (m *Model) Next(row int, forward bool, match func(seq int, r *inspect.PacketRecord) bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refresh()
	n := len(m.pkts)
	if m.shown != nil {
		n = len(m.shown)
	}
	if n == 0 {
		return -1
	}
	step := 1
	if !forward {
		step = -1
	}
	i := row
	for range n {
		i = ((i+step)%n + n) % n
		s := m.at(i)
		if match(s, m.packet(s)) {
			return i
		}
	}
	return -1
}

// HasFinding matches the packets with findings (for Next).
func HasFinding(_ int, r *inspect.PacketRecord) bool { return len(r.Notes) > 0 }

// SetStatus says what the source is doing ("reading", "read", an error), for the header.
func (m *Model) SetStatus(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status = s
	m.changed()
}

// Status returns what SetStatus said.
func (m *Model) Status() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// FaultsOf returns the faults the proxy applied to make packet r (nil when none).
func (m *Model) FaultsOf(r *inspect.PacketRecord) []*inspect.FaultRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.conns[r.Conn]; c != nil {
		return c.faultAt[r.Index]
	}
	return nil
}
