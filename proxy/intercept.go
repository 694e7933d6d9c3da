package proxy

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// Intercept is a stage that holds the frames matching a filter (the --filter language) until a
// controller (the UI, the control API) forwards them, drops them or replaces them with others
// (mitmproxy's intercept, on MQTT frames).
//
// A held frame stops its direction of its connection only: the frames after it in that
// direction wait behind it (MQTT's order is kept), while the other direction and every other
// connection go on. When the connection ends while a frame is held (the proxy stops it, or the
// other direction fails), the frame is given up: not forwarded, and no longer held. So it is
// when the held direction's own sender goes away (resets, closes, fails) while its frame waits:
// that sender is read on meanwhile (StageEnv.Watch), and the connection then ends as the
// sender's end says; what it sent after the frame waits behind it until the frame goes.
//
// The filter sees each frame's fields as the records have them (type, topic resolved through
// aliases, client_id, qos, properties...), but not findings (notes, level): those come from
// inspecting the frame, after it has gone through.
type Intercept struct {
	// ShowSecrets shows the bytes of a held packet that carries a password or authentication
	// data (a CONNECT, an AUTH) in the control API; otherwise they are left out.
	ShowSecrets bool

	filter atomic.Pointer[inspect.Filter] // nil: intercepting nothing

	mu     sync.Mutex // guards what follows
	held   []*held    // oldest first
	nextID uint64
	notify func()
	conns  map[int]*icConn
}

// NewIntercept returns an Intercept holding nothing until SetFilter.
func NewIntercept() *Intercept { return &Intercept{conns: map[int]*icConn{}} }

// Held is a frame held by an Intercept.
type Held struct {
	ID       uint64
	Conn     int
	ClientID string
	Dir      stream.Dir
	Time     time.Time
	Version  decode.Version
	// Raw is what will be forwarded: the frame as it came, or as edited.
	Raw []byte
	// Original is the frame as it came.
	Original []byte
	Edited   bool
	// Warnings say what the edited frame breaks: a negotiated limit of its receiver, or the
	// packet format (an edit as bytes may be malformed on purpose).
	Warnings []string
}

// held is a frame waiting for its fate.
type held struct {
	Held
	state   inspect.View
	decided chan decision // buffered: whoever decides never waits
}

type decision struct {
	drop bool
	raw  []byte
}

// Errors of the controller's calls.
var (
	ErrNotHeld = errors.New("no held packet has that id")
	ErrEdit    = errors.New("edit")
)

// SetFilter holds, from now on, the frames matching src; "" stops holding new frames (those
// held stay held until released).
func (ic *Intercept) SetFilter(src string) error {
	if src == "" {
		ic.filter.Store(nil)
		return nil
	}
	f, err := inspect.CompileFilter(src)
	if err != nil {
		return err
	}
	ic.filter.Store(f)
	return nil
}

// Filter returns the filter in force ("" when none).
func (ic *Intercept) Filter() string {
	if f := ic.filter.Load(); f != nil {
		return f.String()
	}
	return ""
}

// Notify sets f to be called, from any goroutine, when the held frames change.
func (ic *Intercept) Notify(f func()) {
	ic.mu.Lock()
	ic.notify = f
	ic.mu.Unlock()
}

// changed calls the notify function; the caller does not hold mu.
func (ic *Intercept) changed() {
	ic.mu.Lock()
	f := ic.notify
	ic.mu.Unlock()
	if f != nil {
		f()
	}
}

// Held returns the frames held now, oldest first.
func (ic *Intercept) Held() []Held {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	out := make([]Held, len(ic.held))
	for i, h := range ic.held {
		out[i] = h.Held
	}
	return out
}

// take removes held frame id from the list.
func (ic *Intercept) take(id uint64) (*held, error) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	i := slices.IndexFunc(ic.held, func(h *held) bool { return h.ID == id })
	if i < 0 {
		return nil, fmt.Errorf("%w: %d", ErrNotHeld, id)
	}
	h := ic.held[i]
	ic.held = slices.Delete(ic.held, i, i+1)
	return h, nil
}

// Forward releases held frame id, as edited if it was.
func (ic *Intercept) Forward(id uint64) error {
	h, err := ic.take(id)
	if err != nil {
		return err
	}
	h.decided <- decision{raw: h.Raw}
	ic.changed()
	return nil
}

// ForwardAll releases every held frame; it returns how many.
func (ic *Intercept) ForwardAll() int {
	ic.mu.Lock()
	hs := ic.held
	ic.held = nil
	ic.mu.Unlock()
	for _, h := range hs {
		h.decided <- decision{raw: h.Raw}
	}
	if len(hs) > 0 {
		ic.changed()
	}
	return len(hs)
}

// Drop discards held frame id: its receiver never gets it.
func (ic *Intercept) Drop(id uint64) error {
	h, err := ic.take(id)
	if err != nil {
		return err
	}
	h.decided <- decision{drop: true}
	ic.changed()
	return nil
}

// Replace makes raw, a whole packet (fixed header included), what held frame id is forwarded
// as. raw must be exactly one frame by its Remaining Length; it may be malformed inside on
// purpose. It returns the warnings: what raw breaks of the receiver's negotiated limits or of
// the packet format.
func (ic *Intercept) Replace(id uint64, raw []byte) ([]string, error) {
	return ic.edit(id, func(*held) ([]byte, error) { return raw, nil })
}

// Edit changes fields of held frame id (re-encoded, every length right) and returns the
// warnings, as Replace does. It edits the frame as it is then, edits made before included.
func (ic *Intercept) Edit(id uint64, e FieldEdit) ([]string, error) {
	return ic.edit(id, func(h *held) ([]byte, error) { return e.Apply(h.Raw, h.Version) })
}

// edit makes what change returns, from held frame id, what the frame is forwarded as: reading
// the frame, changing it and storing the change is one step (mu held throughout), so that an
// edit is never lost to another made at the same time, nor made to a frame already released.
func (ic *Intercept) edit(id uint64, change func(*held) ([]byte, error)) ([]string, error) {
	ic.mu.Lock()
	i := slices.IndexFunc(ic.held, func(h *held) bool { return h.ID == id })
	if i < 0 {
		ic.mu.Unlock()
		return nil, fmt.Errorf("%w: %d", ErrNotHeld, id)
	}
	h := ic.held[i]
	raw, err := change(h)
	if err == nil {
		err = wholeFrame(raw)
	}
	if err != nil {
		ic.mu.Unlock()
		return nil, err
	}
	raw = slices.Clone(raw)
	warnings := checkEdit(h, raw)
	h.Raw, h.Edited, h.Warnings = raw, true, warnings
	ic.mu.Unlock()
	ic.changed()
	return warnings, nil
}

// wholeFrame checks that raw is exactly one frame by its Remaining Length.
func wholeFrame(raw []byte) error {
	n, err := decode.SplitFrame(raw, 0)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrEdit, err)
	case n == 0:
		return fmt.Errorf("%w: %d bytes are not a whole packet (the Remaining Length says more)", ErrEdit, len(raw))
	case n != len(raw):
		return fmt.Errorf("%w: %d bytes after the packet's %d (the Remaining Length says %d)", ErrEdit, len(raw)-n, n, n)
	}
	return nil
}

// checkEdit says what raw breaks, sent in h's direction.
func checkEdit(h *held, raw []byte) []string {
	var w []string
	p := decode.DecodeWith(raw, h.Version, decode.Options{})
	for _, pr := range p.Info().Problems {
		w = append(w, "malformed: "+pr.Error())
	}
	if t := decode.Type(h.Original[0] >> 4); p.Type() != t {
		w = append(w, fmt.Sprintf("the packet was a %s and is now a %s", t, p.Type()))
	}
	lim := h.state.Limits(h.Dir)
	receiver := h.Dir.Peer().Sender().String()
	if lim.MaximumPacketSize > 0 && len(raw) > lim.MaximumPacketSize {
		w = append(w, fmt.Sprintf("%d bytes, over the %d-byte Maximum Packet Size the %s allowed [MQTT-3.1.2-24] [MQTT-3.2.2-15]", len(raw), lim.MaximumPacketSize, receiver))
	}
	if q, ok := p.(*decode.Publish); ok {
		if a, ok := q.Properties.TopicAlias(); ok && int(a) > lim.TopicAliasMaximum {
			w = append(w, fmt.Sprintf("Topic Alias %d, over the Topic Alias Maximum %d the %s allowed [MQTT-3.3.2-9]", a, lim.TopicAliasMaximum, receiver))
		}
		if int(q.QoS) > lim.MaximumQoS {
			w = append(w, fmt.Sprintf("QoS %d, over the Maximum QoS %d the server granted [MQTT-3.2.2-11]", q.QoS, lim.MaximumQoS))
		}
		if q.Retain && !lim.RetainAvailable {
			w = append(w, "RETAIN set, but the server's Retain Available is 0 [MQTT-3.2.2-14]")
		}
	}
	return w
}

// icConn is what both directions of a connection share: the client identifier of its CONNECT.
type icConn struct {
	clientID atomic.Pointer[string]
	stages   int
}

// Stages is proxy.Config.Stages for the intercept: one stage per direction.
func (ic *Intercept) Stages(c *stream.Conn, dir stream.Dir, env StageEnv) []Stage {
	ic.mu.Lock()
	cc := ic.conns[c.ID]
	if cc == nil {
		cc = &icConn{}
		ic.conns[c.ID] = cc
	}
	// Both directions take their stage at the start; the second takes it out of the map.
	if cc.stages++; cc.stages == 2 {
		delete(ic.conns, c.ID)
	}
	ic.mu.Unlock()
	return []Stage{&interceptStage{ic: ic, cc: cc, env: env}}
}

type interceptStage struct {
	ic  *Intercept
	cc  *icConn
	env StageEnv
}

// Frame holds f when the filter matches it, until it is forwarded, dropped or replaced, or the
// connection ends.
func (st *interceptStage) Frame(f *Frame, emit func([]byte) error) error {
	if f.Type == decode.CONNECT && f.Dir == stream.C2S {
		if c, ok := f.Packet().(*decode.Connect); ok {
			id := c.ClientID
			st.cc.clientID.Store(&id)
		}
	}
	flt := st.ic.filter.Load()
	if flt == nil {
		return emit(f.Bytes)
	}
	rec := st.record(f)
	if !flt.Match(rec) {
		return emit(f.Bytes)
	}
	h := &held{state: f.State, decided: make(chan decision, 1)}
	h.Conn, h.ClientID, h.Dir, h.Time, h.Version = rec.Conn, rec.ClientID, f.Dir, f.Time, rec.Version
	h.Original = slices.Clone(f.Bytes)
	h.Raw = h.Original
	st.ic.mu.Lock()
	st.ic.nextID++
	h.ID = st.ic.nextID
	st.ic.held = append(st.ic.held, h)
	st.ic.mu.Unlock()
	st.ic.changed()
	var gone <-chan struct{} // nil: never
	if st.env.Watch != nil {
		gone = st.env.Watch()
	}
	select {
	case d := <-h.decided:
		if d.drop {
			return nil
		}
		return emit(d.raw)
	case <-st.env.Done: // nil: never
		return st.giveUp(h, emit, fmt.Errorf("%w: the %s held by intercept (#%d) was not forwarded", ErrDirClosed, f.Type, h.ID))
	case <-gone:
		return st.giveUp(h, emit, fmt.Errorf("%w: the %s held by intercept (#%d) was given up", ErrSenderGone, f.Type, h.ID))
	}
}

// giveUp stops holding h, as the connection or its sender went: it returns err, unless h was
// decided meanwhile (the decision stands).
func (st *interceptStage) giveUp(h *held, emit func([]byte) error, err error) error {
	if _, terr := st.ic.take(h.ID); terr != nil {
		if d := <-h.decided; !d.drop {
			return emit(d.raw)
		}
		return nil
	}
	st.ic.changed()
	return err
}

// record is f as the filter sees it.
func (st *interceptStage) record(f *Frame) *inspect.PacketRecord {
	p := f.Packet()
	r := &inspect.PacketRecord{Time: f.Time, Conn: f.Conn.ID, Client: f.Conn.ClientString(), Server: f.Conn.ServerString(),
		Dir: f.Dir, Version: p.Info().Version, Packet: p}
	if id := st.cc.clientID.Load(); id != nil {
		r.ClientID = *id
	}
	if q, ok := p.(*decode.Publish); ok {
		r.Topic = q.Topic
		if a, ok := q.Properties.TopicAlias(); ok && r.Topic == "" {
			r.Topic, _ = f.State.Alias(f.Dir, a)
		}
	}
	return r
}
