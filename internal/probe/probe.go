// Package probe asks an MQTT broker what it grants and checks what it enforces: it reads the
// CONNACK (with the standard's defaults filled in for absent properties), then breaks each
// granted limit on a fresh connection and reads the broker's reaction, and searches for limits
// the broker does not announce (the largest payload, the number of subscriptions, how many
// messages it sends unacknowledged). It is bounded: a cap on connections and on messages.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/stream"
)

// Config says which broker to probe and how far to go.
type Config struct {
	Endpoint stream.Endpoint
	Dial     mqttclient.DialOptions
	// Version is the protocol to speak: MQTT 5 (0 or 5) or 3.1.1 (4), which has no limits in
	// its CONNACK: only the searches and the keep alive are probed then.
	Version decode.Version
	// Credentials for every CONNECT. The password is sent, never shown.
	Username    string
	HasUsername bool
	Password    []byte
	HasPassword bool
	// ClientID prefixes the Client Identifier of each connection ("-1", "-2", ...).
	ClientID string
	// Topic prefixes every topic the probe publishes or subscribes to.
	Topic string
	// Wait is how long a reaction is waited for; 2 s when 0.
	Wait time.Duration
	// MaxConns and MaxMessages cap the connections opened and the PUBLISH and SUBSCRIBE
	// packets sent, over the whole run; 40 and 400 when 0. A probe that would go over is
	// skipped, and says so.
	MaxConns, MaxMessages int
	// Search enables the searches for limits the broker does not announce.
	Search bool
	// MaxPayload bounds the payload search (1 MiB when 0); MaxSubscriptions the subscription
	// count search (100 when 0); MaxInFlight the unacknowledged messages search (50 when 0).
	MaxPayload, MaxSubscriptions, MaxInFlight int
	// MaxKeepAliveWait is the longest the keep-alive probe may stay silent waiting for the
	// broker to close (twice 1.5 times the keep alive, and Wait); a minute when 0.
	MaxKeepAliveWait time.Duration
	// Observer, when set, sees every connection of the probe (to inspect or record them).
	Observer stream.Observer
}

func (c *Config) defaults() {
	if c.Version == 0 {
		c.Version = decode.V5
	}
	if c.ClientID == "" {
		c.ClientID = "mqscope-probe"
	}
	if c.Topic == "" {
		c.Topic = "mqscope/probe/" + c.ClientID
	}
	if c.Wait <= 0 {
		c.Wait = 2 * time.Second
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 40
	}
	if c.MaxMessages <= 0 {
		c.MaxMessages = 400
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = 1 << 20
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 100
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 50
	}
	if c.MaxKeepAliveWait <= 0 {
		c.MaxKeepAliveWait = time.Minute
	}
}

// Enforced says how the broker reacted to a breach of a limit.
type Enforced string

// Reactions.
const (
	Yes       Enforced = "yes"   // as the standard says
	No        Enforced = "no"    // the breach was accepted
	Other     Enforced = "other" // refused, but not as the standard says (another reason code, no DISCONNECT)
	NotTested Enforced = ""      // nothing granted to break, or the probe could not (see Note)
	Found     Enforced = "found" // a search's result
)

// Row is one limit: what the broker granted, and how it reacted to its breach.
type Row struct {
	Limit   string `json:"limit"`
	Granted string `json:"granted"`
	// Default is set when the CONNACK did not carry the property: Granted is the standard's
	// default.
	Default  bool     `json:"default,omitempty"`
	Enforced Enforced `json:"enforced"`
	// Sent is the breach, Expected the reaction the standard calls for, Seen the broker's.
	Sent     string `json:"sent,omitempty"`
	Expected string `json:"expected,omitempty"`
	Seen     string `json:"seen,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Note     string `json:"note,omitempty"`
	// Profile is the value a compared profile states ("" when it states none) and
	// ProfileDiffers whether the broker differs from it.
	Profile        string `json:"profile,omitempty"`
	ProfileDiffers bool   `json:"profile_differs,omitempty"`
	// Value is the number behind Granted or a search's result, for profiles (-1: none).
	Value int `json:"-"`
	// Took is how long the row's breach or search took.
	Took time.Duration `json:"-"`
}

// Failed reports whether the row is a granted limit not enforced as the standard says.
func (r Row) Failed() bool { return r.Enforced == No || r.Enforced == Other }

// Report is the result of a probe.
type Report struct {
	Broker  string         `json:"broker"`
	Version decode.Version `json:"version"`
	// Connack is the first connection's CONNACK: what was granted, defaults filled in.
	Limits    inspect.Limits `json:"limits"`
	KeepAlive int            `json:"server_keep_alive,omitempty"` // 0: none granted
	Rows      []Row          `json:"rows"`
	Conns     int            `json:"connections"`
	Messages  int            `json:"messages"`
}

// ErrBudget is the category of probes skipped because the caps on connections or messages
// would be exceeded.
var ErrBudget = errors.New("over the probe's caps")

// prober runs one probe.
type prober struct {
	cfg       Config
	conns     int
	msgs      int
	connID    int
	limits    inspect.Limits
	keepAlive int // Server Keep Alive granted, 0 if none
	connack   *decode.Connack
}

// conn is one probe connection.
type conn struct {
	*mqttclient.Client
	ack *decode.Connack
	p   *prober
}

// open connects a fresh client with keep alive ka (0: 60 s) and extra CONNECT properties.
func (p *prober) open(ctx context.Context, ka uint16, props decode.Properties) (*conn, error) {
	if p.conns >= p.cfg.MaxConns {
		return nil, fmt.Errorf("%w: %d connections", ErrBudget, p.cfg.MaxConns)
	}
	p.conns++
	p.connID++
	var obs stream.ConnObserver
	if p.cfg.Observer != nil {
		obs = p.cfg.Observer.Open(&stream.Conn{ID: p.connID, Start: time.Now(), Transport: p.cfg.Endpoint.Transport,
			Broker: p.cfg.Endpoint.Transport, Upstream: p.cfg.Endpoint.String()})
	}
	c, err := mqttclient.Dial(ctx, p.cfg.Endpoint, p.cfg.Dial, obs)
	if err != nil {
		return nil, err
	}
	// The payload search has the broker deliver up to MaxPayload bytes back, in a PUBLISH with
	// its topic, properties and header around them.
	c.SetMaxFrame(max(mqttclient.DefaultMaxFrame, p.cfg.MaxPayload+1<<16))
	if ka == 0 {
		ka = 60
	}
	cp := &decode.Connect{ProtocolLevel: byte(p.cfg.Version), ClientID: p.cfg.ClientID + "-" + strconv.Itoa(p.connID),
		CleanStart: true, KeepAlive: ka, Properties: props,
		HasUsername: p.cfg.HasUsername, Username: p.cfg.Username, HasPassword: p.cfg.HasPassword, Password: p.cfg.Password}
	wctx, cancel := context.WithTimeout(ctx, p.cfg.Wait+p.cfg.Dial.Timeout)
	defer cancel()
	ack, err := c.Connect(wctx, cp)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connection %d: %w", p.connID, err)
	}
	if ack.ReasonCode >= 0x80 || (p.cfg.Version != decode.V5 && ack.ReasonCode != 0) {
		c.Close()
		return nil, fmt.Errorf("connection %d: the broker refused the connection: CONNACK %s", p.connID, codeName(ack.Version, decode.CONNACK, ack.ReasonCode))
	}
	return &conn{Client: c, ack: ack, p: p}, nil
}

// spend counts n messages against the cap, or says the probe cannot send them.
func (p *prober) spend(n int) error {
	if p.msgs+n > p.cfg.MaxMessages {
		return fmt.Errorf("%w: %d messages (%d sent, %d more needed)", ErrBudget, p.cfg.MaxMessages, p.msgs, n)
	}
	p.msgs += n
	return nil
}

func codeName(v decode.Version, t decode.Type, rc decode.ReasonCode) string {
	return fmt.Sprintf("0x%02X %s", byte(rc), decode.ReasonName(v, t, rc))
}

// Run probes the broker.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	p := &prober{cfg: cfg}
	first, err := p.open(ctx, 0, nil)
	if err != nil {
		return nil, err
	}
	p.connack = first.ack
	first.goodbye()
	p.limits, p.keepAlive = granted(first.ack)
	rep := &Report{Broker: cfg.Endpoint.String(), Version: cfg.Version, Limits: p.limits}
	for _, probe := range p.plan() {
		row := probe.row(p)
		if probe.run != nil && row.Enforced == NotTested && row.Note == "" {
			start := time.Now()
			err := probe.run(ctx, p, &row)
			row.Took = time.Since(start)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				row.Enforced = NotTested
				row.Note = err.Error()
			}
		}
		rep.Rows = append(rep.Rows, row)
	}
	// The keep alive granted when asked for the most is the keep-alive probe's.
	rep.KeepAlive = p.keepAlive
	rep.Conns, rep.Messages = p.conns, p.msgs
	return rep, nil
}

// granted returns the limits a CONNACK grants the client, defaults filled in, and its Server
// Keep Alive (0 when absent).
func granted(ack *decode.Connack) (inspect.Limits, int) {
	ka, _ := ack.Properties.Int(decode.PropServerKeepAlive)
	return inspect.ClientLimits(ack), int(ka)
}

// goodbye ends a connection politely: DISCONNECT 0x00 (when it is still open), then close.
func (c *conn) goodbye() {
	c.Send(&decode.Disconnect{})
	c.Close()
}

// reaction is what the broker did after a breach, within the wait.
type reaction struct {
	packets []decode.Packet // DISCONNECTs, refusals, and the packet that ended the reading (conn.until)
	closed  bool            // the connection ended (EOF, reset)
	err     error           // why reading ended, when not a timeout
	alive   bool            // the breach was accepted: acknowledged without refusal, or a PINGREQ after it answered
	// answer is the acknowledgement that ended the reading (stop), nil when none did.
	answer decode.Packet
}

// react reads what the broker sends after a breach, until it closes or Wait passes with the
// connection open; then a PINGREQ tells whether it still serves the connection. stop ends the
// reading early on a packet that settles the question (a SUBACK, a PUBACK).
func (c *conn) react(ctx context.Context, stop func(decode.Packet) bool) reaction {
	var r reaction
	wctx, cancel := context.WithTimeout(ctx, c.p.cfg.Wait)
	defer cancel()
	r.packets, r.err = c.until(wctx, func(q decode.Packet) bool {
		return q.Type() == decode.DISCONNECT || (stop != nil && stop(q))
	})
	if r.err == nil {
		last := r.packets[len(r.packets)-1]
		if last.Type() == decode.DISCONNECT {
			r.closed = true
		} else {
			r.answer, r.alive = last, true
		}
		return r
	}
	if !errors.Is(r.err, context.DeadlineExceeded) {
		r.closed = true
		return r
	}
	r.err = nil
	if err := c.Send(&decode.Pingreq{}); err != nil {
		r.closed, r.err = true, err
		return r
	}
	pctx, cancel2 := context.WithTimeout(ctx, c.p.cfg.Wait)
	defer cancel2()
	more, err := c.until(pctx, func(q decode.Packet) bool {
		return q.Type() == decode.PINGRESP || q.Type() == decode.DISCONNECT
	})
	r.packets = append(r.packets, more...)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		// Neither refused nor answered: judge says so.
	case err != nil:
		r.closed, r.err = true, err
	case more[len(more)-1].Type() == decode.DISCONNECT:
		r.closed = true
	default:
		r.alive = true
	}
	return r
}

// until reads until stop says so or the reading ends (Client.UntilKept), keeping what judging
// a reaction looks at: DISCONNECTs and refusals, and the packet that stopped the reading, last.
// Others (a broker that floods the connection with PUBLISHes meanwhile) are read and let go.
func (c *conn) until(ctx context.Context, stop func(decode.Packet) bool) ([]decode.Packet, error) {
	return c.UntilKept(ctx, stop, func(q decode.Packet) bool {
		_, _, refused := refusal(q)
		return refused || q.Type() == decode.DISCONNECT
	})
}

// disconnect returns the broker's DISCONNECT among the packets, or nil.
func (r reaction) disconnect() *decode.Disconnect {
	for _, q := range r.packets {
		if d, ok := q.(*decode.Disconnect); ok {
			return d
		}
	}
	return nil
}

// seen describes the reaction in a few words.
func (r reaction) seen(v decode.Version, wait time.Duration) string {
	if d := r.disconnect(); d != nil {
		return "DISCONNECT " + codeName(v, decode.DISCONNECT, d.ReasonCode)
	}
	for _, q := range r.packets {
		if rc, t, ok := refusal(q); ok {
			return t.String() + " " + codeName(v, t, rc)
		}
	}
	switch {
	case r.closed && errors.Is(r.err, mqttclient.ErrClosed):
		return "closed without DISCONNECT"
	case r.closed:
		return "connection failed: " + errText(r.err)
	case r.answer != nil:
		return "accepted: " + answerText(v, r.answer)
	case r.alive:
		return fmt.Sprintf("accepted (no reaction in %s, PINGREQ answered)", wait)
	}
	return "nothing"
}

// refusal returns the first failure reason code of an acknowledgement.
func refusal(q decode.Packet) (decode.ReasonCode, decode.Type, bool) {
	switch a := q.(type) {
	case *decode.Ack:
		if a.ReasonCode >= 0x80 {
			return a.ReasonCode, a.PacketType, true
		}
	case *decode.Suback:
		for _, rc := range a.ReasonCodes {
			if rc >= 0x80 {
				return rc, decode.SUBACK, true
			}
		}
	}
	return 0, 0, false
}

func errText(err error) string {
	var ne net.Error
	if errors.As(err, &ne) {
		return ne.Error()
	}
	if err == nil {
		return "unknown"
	}
	return err.Error()
}

// judge fills a row from the reaction to a breach: yes when the broker answered with one of
// the expected reason codes in a DISCONNECT (or, with ack, in the acknowledgement of the
// packet, where the standard allows either), other when it refused otherwise (another code, an
// acknowledgement where a DISCONNECT is due, a close without DISCONNECT), no when it accepted
// the breach.
func (p *prober) judge(row *Row, r reaction, ack bool, want ...decode.ReasonCode) {
	row.Seen = r.seen(p.cfg.Version, p.cfg.Wait)
	switch d := r.disconnect(); {
	case d != nil && contains(want, d.ReasonCode):
		row.Enforced = Yes
		return
	case d != nil:
		row.Enforced = Other
		return
	}
	for _, q := range r.packets {
		if rc, _, ok := refusal(q); ok {
			row.Enforced = Other
			if ack && contains(want, rc) {
				row.Enforced = Yes
			}
			return
		}
	}
	switch {
	case r.closed:
		row.Enforced = Other
	case r.alive:
		row.Enforced = No
	default:
		row.Enforced = NotTested
		row.Note = "no answer to PINGREQ within " + p.cfg.Wait.String()
	}
}

func contains(cs []decode.ReasonCode, c decode.ReasonCode) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// answerText is an acknowledgement in a few words: "SUBACK 0x00 Granted QoS 0".
func answerText(v decode.Version, q decode.Packet) string {
	switch a := q.(type) {
	case *decode.Ack:
		return a.PacketType.String() + " " + codeName(v, a.PacketType, a.ReasonCode)
	case *decode.Suback:
		s := "SUBACK"
		for _, rc := range a.ReasonCodes {
			s += " " + codeName(v, decode.SUBACK, rc)
		}
		return s
	}
	return q.Type().String()
}
