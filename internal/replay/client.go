package replay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/stream"
)

// Signature is how a replay compares packets: the type, the reason codes, and for a PUBLISH
// its topic, QoS and retain flag; packet identifiers and payloads are left out (identifiers
// are remapped). topic is the PUBLISH's topic resolved through its alias table.
func Signature(p decode.Packet, topic string) string {
	v := p.Info().Version
	code := func(t string, rc decode.ReasonCode) string {
		if rc == 0 && t != "DISCONNECT" {
			return t
		}
		return fmt.Sprintf("%s 0x%02X", t, byte(rc))
	}
	switch q := p.(type) {
	case *decode.Publish:
		s := fmt.Sprintf("PUBLISH %q q%d", topic, q.QoS)
		if q.Retain {
			s += " retain"
		}
		return s
	case *decode.Connack:
		return code("CONNACK", q.ReasonCode)
	case *decode.Ack:
		return code(q.PacketType.String(), q.ReasonCode)
	case *decode.Disconnect:
		return code("DISCONNECT", q.ReasonCode)
	case *decode.Suback:
		return "SUBACK " + codes(q.ReasonCodes)
	case *decode.Subscribe:
		fs := make([]string, len(q.Subscriptions))
		for i, sub := range q.Subscriptions {
			fs[i] = fmt.Sprintf("%q q%d", sub.Filter, sub.QoS)
		}
		return "SUBSCRIBE " + strings.Join(fs, ",")
	case *decode.Unsubscribe:
		fs := make([]string, len(q.Filters))
		for i, f := range q.Filters {
			fs[i] = fmt.Sprintf("%q", f)
		}
		return "UNSUBSCRIBE " + strings.Join(fs, ",")
	case *decode.Unsuback:
		if v != decode.V5 {
			return "UNSUBACK"
		}
		return "UNSUBACK " + codes(q.ReasonCodes)
	}
	return p.Type().String()
}

func codes(rcs []decode.ReasonCode) string {
	s := make([]string, len(rcs))
	for i, rc := range rcs {
		s[i] = fmt.Sprintf("0x%02X", byte(rc))
	}
	return strings.Join(s, ",")
}

// expected is a packet the peer sent in the capture.
type expected struct {
	sig   string
	index int                   // its number in the captured connection
	after *inspect.PacketRecord // the last packet sent to it before, nil if none
}

// player plays one side of a session.
type player struct {
	o    Options
	conn Conn
	res  *Result
	ours stream.Dir // the direction of the packets played

	got    []decode.Packet // the peer's packets so far
	closed error           // why the peer's side ended, once it did
	// bye is set once we sent a DISCONNECT: the peer closing after it is the normal end.
	bye bool
	// The packet identifiers of the peer's packets we answer (QoS 1 and 2 PUBLISH, SUBSCRIBE,
	// UNSUBSCRIBE), by kind: in the order received now, and in the capture (capOrd: captured
	// identifier -> ordinal, as of the packet being played), to rewrite our answers.
	newIDs  [idKinds][]uint16
	capOrd  [idKinds]map[uint16]int
	capSeen [idKinds]int
	// The peer's Topic Alias table in the new session, to resolve its PUBLISH topics.
	aliases map[uint16]string
	// Topic Alias Maximum the peer granted in the capture and now (for the packets played).
	capTAM, newTAM int
}

// AsClient plays the client's packets of s on conn, a fresh connection to a broker, and
// compares what the broker answers with the capture.
func AsClient(ctx context.Context, s *Session, conn Conn, o Options) (*Result, error) {
	return play(ctx, s, conn, o, stream.C2S)
}

// AsServer plays the broker's packets of s on conn, the server's side of a connection a device
// opened (mqttclient.NewServerSide), and compares what the device sends with the capture.
func AsServer(ctx context.Context, s *Session, conn Conn, o Options) (*Result, error) {
	return play(ctx, s, conn, o, stream.S2C)
}

func play(ctx context.Context, s *Session, conn Conn, o Options, ours stream.Dir) (*Result, error) {
	o.defaults()
	if len(s.Packets) == 0 || s.Packets[0].Type() != decode.CONNECT || s.Packets[0].Dir != stream.C2S {
		return nil, ErrNoConnect
	}
	p := &player{o: o, conn: conn, res: &Result{}, ours: ours, aliases: map[uint16]string{}}
	for k := range p.capOrd {
		p.capOrd[k] = map[uint16]int{}
	}
	conn.SetVersion(s.Packets[0].Version)
	// The peer's frames resemble the captured ones, not byte for byte (another broker adds a
	// property, a topic is longer): a limit below twice the largest captured is raised to it.
	if l, ok := conn.(frameLimiter); ok {
		largest := 0
		for _, rec := range s.Packets {
			if rec.Dir != ours {
				largest = max(largest, rec.Size())
			}
		}
		if m := l.MaxFrame(); m > 0 && 2*largest > m {
			l.SetMaxFrame(2 * largest)
		}
	}
	var exp []expected
	var last *inspect.PacketRecord
	var t0, start = s.Packets[0].Time, o.Now()
	for _, rec := range s.Packets {
		if rec.Dir != p.ours {
			exp = append(exp, expected{sig: Signature(rec.Packet, rec.Topic), index: rec.Index, after: last})
			p.learnCaptured(rec)
			continue
		}
		last = rec
		// What the peer answered before this packet in the capture comes first.
		if err := p.await(ctx, len(exp)); err != nil {
			return nil, err
		}
		if p.closed != nil {
			break
		}
		if o.Speed > 0 {
			at := start.Add(time.Duration(float64(rec.Time.Sub(t0)) / o.Speed))
			if d := at.Sub(o.Now()); d > 0 {
				if err := o.Sleep(ctx, d); err != nil {
					return nil, err
				}
			}
		}
		b, err := p.rewrite(rec)
		if err != nil {
			return nil, fmt.Errorf("packet #%d (%s): %w", rec.Index, rec.Type(), err)
		}
		if err := conn.Write(b); err != nil {
			p.closed = err
			break
		}
		p.res.Sent++
		p.bye = p.bye || rec.Type() == decode.DISCONNECT
	}
	// The rest of the peer's answers; then, unless we closed first in the capture (the caller
	// closes now), until the peer closes or stays silent for Wait.
	if err := p.await(ctx, len(exp)); err != nil {
		return nil, err
	}
	if s.Close == nil || !strings.HasPrefix(s.Close.By(), ours.Sender().String()) {
		if err := p.drain(ctx, len(exp)+window); err != nil {
			return nil, err
		}
	}
	p.compare(exp, s)
	return p.res, nil
}

// frameLimiter is a Conn that refuses frames over a limit (mqttclient.Client).
type frameLimiter interface {
	MaxFrame() int
	SetMaxFrame(n int)
}

// The kinds of packet identifiers our packets answer.
const (
	idPublish = iota
	idSubscribe
	idUnsubscribe
	idKinds
)

// idOf returns the kind and packet identifier of a packet of the peer we answer.
func idOf(q decode.Packet) (kind int, id uint16, ok bool) {
	switch q := q.(type) {
	case *decode.Publish:
		return idPublish, q.PacketID, q.QoS > 0
	case *decode.Subscribe:
		return idSubscribe, q.PacketID, true
	case *decode.Unsubscribe:
		return idUnsubscribe, q.PacketID, true
	}
	return 0, 0, false
}

// peerTAM returns the Topic Alias Maximum a packet of the peer gives us: the server's in
// CONNACK, the client's in CONNECT.
func peerTAM(q decode.Packet) (int, bool) {
	switch q.Type() {
	case decode.CONNACK, decode.CONNECT:
		v, ok := decode.PropertiesOf(q).Int(decode.PropTopicAliasMaximum)
		return int(v), ok
	}
	return 0, false
}

// learnCaptured notes what a captured packet of the peer means for rewriting ours.
func (p *player) learnCaptured(rec *inspect.PacketRecord) {
	if k, id, ok := idOf(rec.Packet); ok {
		p.capOrd[k][id] = p.capSeen[k]
		p.capSeen[k]++
	}
	if v, ok := peerTAM(rec.Packet); ok {
		p.capTAM = v
	}
}

// receive takes in one packet from the peer.
func (p *player) receive(q decode.Packet) {
	p.got = append(p.got, q)
	p.res.Received++
	if k, id, ok := idOf(q); ok {
		p.newIDs[k] = append(p.newIDs[k], id)
	}
	if v, ok := peerTAM(q); ok {
		p.newTAM = v
	}
	if pub, ok := q.(*decode.Publish); ok {
		if a, ok := pub.Properties.TopicAlias(); ok && pub.Topic != "" {
			p.aliases[a] = pub.Topic
		}
	}
}

// await reads the peer's packets until n have come, the peer closes, or Wait passes without
// one.
func (p *player) await(ctx context.Context, n int) error {
	for len(p.got) < n && p.closed == nil {
		wctx, cancel := context.WithTimeout(ctx, p.o.Wait)
		q, err := p.conn.Next(wctx)
		cancel()
		switch {
		case err == nil:
			p.receive(q)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			return nil // not answered: the comparison will say so
		default:
			p.closed = err
		}
	}
	return nil
}

// drain reads until the peer closes, stays silent for Wait, or has sent most packets: a peer
// that never stops sending (a flood, a subscription's traffic) neither holds the replay nor
// fills memory. compare looks at no packet past the captured count plus window (the packets
// it matches are the first ones, each found among the next window not yet matched), so a
// bound of at least that changes no divergence.
func (p *player) drain(ctx context.Context, most int) error {
	for p.closed == nil && len(p.got) < most {
		before := len(p.got)
		if err := p.await(ctx, len(p.got)+1); err != nil {
			return err
		}
		if len(p.got) == before {
			return nil
		}
	}
	return nil
}

// rewrite returns the bytes to send for a captured packet of ours: as captured, but for what
// the new session requires.
func (p *player) rewrite(rec *inspect.PacketRecord) ([]byte, error) {
	raw := rec.Packet.Info().Raw
	switch rec.Packet.Type() {
	case decode.CONNECT:
		if p.o.ClientID == "" || p.ours != stream.C2S {
			return raw, nil
		}
		b, old, err := spliceClientID(raw, rec.Version, p.o.ClientID)
		if err != nil {
			return nil, fmt.Errorf("CONNECT #%d: --client-id: %w", rec.Index, err)
		}
		p.note("CONNECT #%d: Client Identifier %q → %q", rec.Index, old, p.o.ClientID)
		return b, nil
	case decode.PUBACK, decode.PUBREC, decode.PUBCOMP, decode.SUBACK, decode.UNSUBACK:
		// The answer to a packet of the peer: its identifier is the new session's.
		k := idPublish
		switch rec.Packet.Type() {
		case decode.SUBACK:
			k = idSubscribe
		case decode.UNSUBACK:
			k = idUnsubscribe
		}
		q := decode.Decode(raw, rec.Version)
		id, _ := decode.PacketID(q)
		n, ok := p.capOrd[k][id]
		if !ok || n >= len(p.newIDs[k]) || p.newIDs[k][n] == id {
			return raw, nil
		}
		to := p.newIDs[k][n]
		p.note("%s #%d: packet identifier %d → %d", q.Type(), rec.Index, id, to)
		// In place, first in the variable header: the rest goes as captured, malformed or not.
		h := q.Info().Header
		if len(raw) < h.HeaderLen+2 {
			return raw, nil
		}
		b := bytes.Clone(raw)
		binary.BigEndian.PutUint16(b[h.HeaderLen:], to)
		return b, nil
	case decode.PUBLISH:
		// An alias the capture's peer allowed but the new one does not is replaced by the
		// topic; an alias over the captured maximum was a breach, and is kept.
		pub := rec.Packet.(*decode.Publish)
		a, ok := pub.Properties.TopicAlias()
		if !ok || int(a) <= p.newTAM || int(a) > p.capTAM || rec.Topic == "" {
			return raw, nil
		}
		q := decode.Decode(raw, rec.Version).(*decode.Publish)
		q.Properties = slices.DeleteFunc(q.Properties, func(pr decode.Property) bool { return pr.ID == decode.PropTopicAlias })
		q.Topic = rec.Topic
		p.note("PUBLISH #%d: Topic Alias %d (granted %d in the capture, %d now) → topic %q", rec.Index, a, p.capTAM, p.newTAM, rec.Topic)
		return decode.Encode(nil, q)
	}
	return raw, nil
}

func (p *player) note(format string, args ...any) {
	p.res.Remapped = append(p.res.Remapped, fmt.Sprintf(format, args...))
}

// peerName is who the peer is: "server" when we play the client.
func (p *player) peerName() string { return p.ours.Peer().Sender().String() }

// compare finds the first divergence between the peer's captured packets and its new ones.
// Each captured packet is looked for among the next few new ones not yet matched (the order of
// answers to packets sent together may differ); then a new packet the capture did not have;
// then how the connection ended.
func (p *player) compare(exp []expected, s *Session) {
	got := make([]string, len(p.got))
	for i, q := range p.got {
		topic := ""
		if pub, ok := q.(*decode.Publish); ok {
			topic = pub.Topic
			if a, ok := pub.Properties.TopicAlias(); ok && topic == "" {
				topic = p.aliases[a]
			}
		}
		got[i] = Signature(q, topic)
	}
	p.res.Replayed = got
	for _, e := range exp {
		p.res.Captured = append(p.res.Captured, e.sig)
	}
	used := make([]bool, len(got))
	next := 0 // the first new packet not matched
	for _, e := range exp {
		found := -1
		for j, seen := next, 0; j < len(got) && seen < window; j++ {
			if used[j] {
				continue
			}
			seen++
			if got[j] == e.sig {
				found = j
				break
			}
		}
		if found < 0 {
			p.res.Divergence = &Divergence{Index: e.index, Captured: e.describe(), Replayed: p.instead(got, used, next)}
			return
		}
		used[found] = true
		for next < len(used) && used[next] {
			next++
		}
	}
	if next < len(got) {
		p.res.Divergence = &Divergence{Captured: "nothing more from the " + p.peerName(), Replayed: got[next]}
		return
	}
	// The end: a peer that closed in the capture closes now, and the other way round.
	capClosed := s.Close != nil && strings.HasPrefix(s.Close.By(), p.peerName())
	switch {
	case capClosed && p.closed == nil:
		p.res.Divergence = &Divergence{Captured: "closed by the " + p.peerName() + ": " + s.Close.Reason(),
			Replayed: fmt.Sprintf("still open %s after the last packet", p.o.Wait)}
	case !capClosed && p.closed != nil && !p.bye && s.Close != nil:
		p.res.Divergence = &Divergence{Captured: "closed by " + s.Close.By() + ": " + s.Close.Reason(),
			Replayed: "closed by the " + p.peerName() + " (" + errText(p.closed) + ")"}
	}
}

// window is how many new packets not yet matched compare looks at for each captured one.
const window = 8

// describe is a captured packet with what preceded it: "DISCONNECT 0x95 after PUBLISH #3".
func (e expected) describe() string {
	if e.after == nil {
		return e.sig
	}
	return fmt.Sprintf("%s after %s #%d", e.sig, e.after.Type(), e.after.Index)
}

// instead says what came in place of a captured packet that did not come.
func (p *player) instead(got []string, used []bool, next int) string {
	for j := next; j < len(got); j++ {
		if !used[j] {
			return got[j]
		}
	}
	if p.closed != nil {
		return "nothing: closed by the " + p.peerName() + " (" + errText(p.closed) + ")"
	}
	return fmt.Sprintf("nothing within %s", p.o.Wait)
}

// errText says how the peer's side ended.
func errText(err error) string {
	if errors.Is(err, mqttclient.ErrClosed) {
		return "FIN"
	}
	return err.Error()
}

// spliceClientID returns raw, a CONNECT, with its Client Identifier replaced by id, and the
// identifier it had: every other byte goes as captured (a CONNECT malformed elsewhere stays
// so), but the Remaining Length, written anew for the new size.
func spliceClientID(raw []byte, v decode.Version, id string) ([]byte, string, error) {
	c, ok := decode.Decode(raw, v).(*decode.Connect)
	if !ok {
		return nil, "", errors.New("not a CONNECT")
	}
	var f *decode.Field
	for i := range c.Fields {
		if c.Fields[i].Name == "client_id" {
			f = &c.Fields[i]
		}
	}
	if f == nil || !c.Read(decode.PartClientID) {
		return nil, "", errors.New("the captured CONNECT ends before its Client Identifier")
	}
	if len(id) > 0xFFFF {
		return nil, "", fmt.Errorf("a Client Identifier of %d bytes does not fit in a UTF-8 string (65,535 at most)", len(id))
	}
	h := c.Header
	rl := h.RemainingLength - (f.Len - 2) + len(id)
	if rl > decode.MaxVarInt {
		return nil, "", fmt.Errorf("the CONNECT would be %d bytes long, over the largest Remaining Length", rl)
	}
	b := append([]byte{raw[0]}, decode.AppendVarInt(nil, uint32(rl))...)
	b = append(b, raw[h.HeaderLen:f.Offset]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	return append(b, raw[f.Offset+f.Len:]...), c.ClientID, nil
}
