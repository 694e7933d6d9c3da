package scenario

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/internal/mqttclient"
	"github.com/mqscope/mqscope/stream"
)

// client is the built-in scripted device. It sends what its steps say, exactly, built with
// decode.Encode: it does not shrink a packet to a granted Maximum Packet Size, drop an alias
// the server did not allow or hold back over Receive Maximum, so that it can break a rule on
// purpose (and, against a scenario that checks the device, shows what a careless device does).
// What it does on its own is what every device must: acknowledge what the server sends, ping
// every keep alive (and close when no PINGRESP comes), and, when a session is resumed, send
// its unacknowledged messages again with DUP 1 and their Packet Identifiers.
type client struct {
	addr   string
	logf   func(format string, args ...any) // the device's output
	expect func(ctx context.Context, e *Expect) Verdict

	frameLimit int // the largest frame it takes (run sets it)

	mu       sync.Mutex
	conn     *mqttclient.Client // nil when not connected
	in       *mqttclient.Inbox  // what conn's server sent; its reader answers what needs an answer
	pong     chan struct{}      // a PINGRESP came
	version  decode.Version
	ids      mqttclient.PacketIDs
	inflight map[uint16]*decode.Publish // sent, not yet acknowledged, in order of ids
	order    []uint16
	released map[uint16]bool // PUBREL sent, PUBCOMP not yet received
}

// errClosed: the connection closed before the step finished.
var errClosed = errors.New("the connection closed")

// run runs the steps; an error is the harness's (the device misbehaving is not an error).
func (c *client) run(ctx context.Context, steps []*Step) error {
	defer c.drop()
	// Its own messages may come back to it: twice the largest it sends, at least the default.
	c.frameLimit = mqttclient.DefaultMaxFrame
	for _, st := range steps {
		if st.Publish != nil {
			c.frameLimit = max(c.frameLimit, 2*st.Publish.Size)
		}
	}
	for i, st := range steps {
		if ctx.Err() != nil {
			return nil
		}
		err := c.step(ctx, st)
		switch {
		case errors.Is(err, errClosed):
			c.logf("step %d (%s): %v", i+1, st.action, err)
		case err != nil:
			return fmt.Errorf("step %d (%s, line %s): %w", i+1, st.action, st.pos, err)
		}
	}
	return nil
}

func (c *client) step(ctx context.Context, st *Step) error {
	switch {
	case st.Connect != nil:
		return c.connect(ctx, st.Connect)
	case st.Publish != nil:
		return c.publish(ctx, st.Publish)
	case st.Subscribe != nil:
		id := c.id()
		if err := c.send(&decode.Subscribe{Base: c.base(), PacketID: id, Subscriptions: []decode.Subscription{{Filter: st.Subscribe.Filter, QoS: st.Subscribe.QoS}}}); err != nil {
			return err
		}
		_, err := c.await(ctx, 10*time.Second, func(p decode.Packet) bool { s, ok := p.(*decode.Suback); return ok && s.PacketID == id })
		return err
	case st.Wait != nil:
		w := st.Wait
		if w.Time > 0 {
			t := time.NewTimer(w.Time)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			return nil
		}
		if w.Closed {
			return c.waitClosed(ctx, w.Within)
		}
		typ, _ := typeNamed(w.For)
		_, err := c.await(ctx, w.Within, func(p decode.Packet) bool { return p.Type() == typ })
		return err
	case st.Expect != nil:
		c.expect(ctx, st.Expect)
		return nil
	case st.Disconnect != nil:
		err := c.send(&decode.Disconnect{Base: c.base(), ReasonCode: st.Disconnect.Reason.V, HasReason: st.Disconnect.Reason.V != 0})
		c.drop()
		return err
	case st.Close:
		c.drop()
	}
	return nil
}

func (c *client) base() decode.Base {
	c.mu.Lock()
	defer c.mu.Unlock()
	return decode.Base{Version: c.version}
}

func (c *client) id() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids.Next(func(id uint16) bool {
		_, used := c.inflight[id]
		return used || c.released[id]
	})
}

func (c *client) connect(ctx context.Context, cs *ConnectStep) error {
	c.drop()
	conn, err := mqttclient.Dial(ctx, stream.Endpoint{Transport: stream.TCP, Addr: c.addr}, mqttclient.DialOptions{}, nil)
	if err != nil {
		return fmt.Errorf("connecting to the proxy: %w", err)
	}
	// The device does not hold the server to the Maximum Packet Size it asks for (it is the
	// careless device); it takes what its own messages may come back as.
	conn.SetMaxFrame(c.frameLimit)
	c.mu.Lock()
	c.conn, c.in, c.version = conn, nil, decode.Version(cs.Version)
	c.pong = make(chan struct{}, 1)
	pong := c.pong
	if c.inflight == nil {
		c.inflight, c.released = map[uint16]*decode.Publish{}, map[uint16]bool{}
	}
	c.mu.Unlock()
	clean := cs.CleanStart == nil || *cs.CleanStart
	q := &decode.Connect{Base: decode.Base{Version: decode.Version(cs.Version)}, ProtocolName: "MQTT", ProtocolLevel: byte(cs.Version), CleanStart: clean, KeepAlive: cs.KeepAlive, ClientID: cs.ClientID}
	if c.version == decode.V5 {
		for _, name := range connectPropNames {
			if v, ok := cs.Properties[name]; ok {
				q.Properties = append(q.Properties, decode.IntProp(connectProps[name], v))
			}
		}
	}
	if cs.Username != "" {
		q.HasUsername, q.Username = true, cs.Username
	}
	if cs.Password != "" {
		q.HasPassword, q.Password = true, []byte(cs.Password)
	}
	conn.SetVersion(c.version)
	in := conn.Receive(64, func(p decode.Packet) { c.answer(conn, p) }, func(err error) {
		// Nothing after bytes that cannot be framed is readable.
		var tl *mqttclient.FrameTooLargeError
		var pr *decode.Problem
		switch {
		case errors.As(err, &tl):
			c.logf("reading from the proxy: %v", tl)
		case errors.As(err, &pr):
			c.logf("reading from the proxy: %v", pr)
		default:
			return
		}
		conn.Close()
	})
	c.mu.Lock()
	c.in = in
	c.mu.Unlock()
	if err := c.sendOn(conn, q); err != nil {
		return err
	}
	if cs.NoWait {
		return nil
	}
	p, err := c.await(ctx, 10*time.Second, func(p decode.Packet) bool { return p.Type() == decode.CONNACK })
	if err != nil {
		return err
	}
	ack := p.(*decode.Connack)
	if ack.ReasonCode.IsError() || (c.version != decode.V5 && ack.ReasonCode != 0) {
		c.logf("CONNACK refused the connection: %s", ack.ReasonCode)
		c.drop()
		return nil
	}
	keepAlive := int(cs.KeepAlive)
	if v, ok := ack.Properties.Int(decode.PropServerKeepAlive); ok {
		keepAlive = int(v)
	}
	if keepAlive > 0 && (cs.Ping == nil || *cs.Ping) {
		go c.ping(conn, in.Done(), pong, time.Duration(keepAlive)*time.Second)
	}
	// A resumed session gets its unacknowledged messages again; a new one forgets them.
	c.mu.Lock()
	var resend []decode.Packet
	if ack.SessionPresent {
		for _, id := range c.order {
			if p, ok := c.inflight[id]; ok {
				r := *p
				r.Dup = true
				resend = append(resend, &r)
			} else if c.released[id] {
				resend = append(resend, &decode.Ack{Base: decode.Base{Version: c.version}, PacketType: decode.PUBREL, PacketID: id})
			}
		}
	} else {
		c.inflight, c.order, c.released = map[uint16]*decode.Publish{}, nil, map[uint16]bool{}
	}
	c.mu.Unlock()
	for _, p := range resend {
		if err := c.send(p); err != nil {
			return err
		}
	}
	return nil
}

// answer acknowledges what the server sends on conn and forgets what the server acknowledged.
func (c *client) answer(conn *mqttclient.Client, p decode.Packet) {
	if a := mqttclient.Ack(p); a != nil {
		c.sendOn(conn, a)
	}
	switch q := p.(type) {
	case *decode.Pingresp:
		c.mu.Lock()
		pong := c.pong
		c.mu.Unlock()
		select {
		case pong <- struct{}{}:
		default:
		}
	case *decode.Ack:
		switch q.PacketType {
		case decode.PUBREC:
			c.mu.Lock()
			c.released[q.PacketID] = true
			c.mu.Unlock()
			c.acked(q.PacketID)
			c.sendOn(conn, &decode.Ack{PacketType: decode.PUBREL, PacketID: q.PacketID})
		case decode.PUBACK:
			c.acked(q.PacketID)
		case decode.PUBCOMP:
			c.mu.Lock()
			delete(c.released, q.PacketID)
			c.mu.Unlock()
		}
	}
}

func (c *client) acked(id uint16) {
	c.mu.Lock()
	delete(c.inflight, id)
	c.mu.Unlock()
}

// ping sends PINGREQ every keep alive and closes the connection when a PINGRESP does not come
// back before the next one is due.
func (c *client) ping(conn *mqttclient.Client, done <-chan struct{}, pongs <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	outstanding := false
	for {
		select {
		case <-done:
			return
		case <-pongs:
			outstanding = false
		case <-t.C:
			if outstanding {
				c.logf("no PINGRESP within the keep alive (%s): closing", every)
				conn.Close()
				return
			}
			outstanding = true
			if c.sendOn(conn, &decode.Pingreq{}) != nil {
				return
			}
		}
	}
}

func (c *client) publish(ctx context.Context, ps *PublishStep) error {
	n := max(ps.Count, 1)
	for range n {
		p := &decode.Publish{Base: c.base(), Topic: ps.Topic, QoS: ps.QoS, Retain: ps.Retain, Dup: ps.Dup, Payload: []byte(ps.Payload)}
		if ps.AliasOnly {
			p.Topic = ""
		}
		if ps.Alias > 0 {
			p.Properties = decode.Properties{decode.IntProp(decode.PropTopicAlias, uint32(ps.Alias))}
		}
		if p.QoS > 0 {
			p.PacketID = ps.PacketID
			if p.PacketID == 0 {
				p.PacketID = c.id()
			}
		}
		if ps.Size > 0 {
			if err := fill(p, ps.Size); err != nil {
				return err
			}
		}
		if p.QoS > 0 {
			c.mu.Lock()
			if _, ok := c.inflight[p.PacketID]; !ok {
				c.order = append(c.order, p.PacketID)
			}
			c.inflight[p.PacketID] = p
			c.mu.Unlock()
		}
		if err := c.send(p); err != nil {
			return err
		}
		if p.QoS == 0 || ps.NoWait {
			continue
		}
		want := decode.PUBACK
		if p.QoS == 2 {
			want = decode.PUBCOMP
		}
		id := p.PacketID
		if _, err := c.await(ctx, 10*time.Second, func(q decode.Packet) bool {
			a, ok := q.(*decode.Ack)
			return ok && a.PacketType == want && a.PacketID == id
		}); err != nil {
			return err
		}
	}
	return nil
}

// fill grows p's payload so that the packet is size bytes.
func fill(p *decode.Publish, size int) error {
	for range 4 { // the Remaining Length may take a byte more as the payload grows
		b, err := decode.Encode(nil, p)
		if err != nil {
			return err
		}
		d := size - len(b)
		if d == 0 {
			return nil
		}
		if len(p.Payload)+d < 0 {
			return fmt.Errorf("publish: size %d is smaller than the packet without payload (%d bytes)", size, len(b)-len(p.Payload))
		}
		grown := make([]byte, len(p.Payload)+d)
		copy(grown, p.Payload)
		for i := len(p.Payload); i < len(grown); i++ {
			grown[i] = 'x'
		}
		p.Payload = grown
	}
	return fmt.Errorf("publish: no payload makes a packet of exactly %d bytes", size)
}

func (c *client) send(p decode.Packet) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return errClosed
	}
	return c.sendOn(conn, p)
}

// sendOn sends p on conn: a packet that cannot be encoded is the scenario's error, one that
// cannot be written means the connection closed.
func (c *client) sendOn(conn *mqttclient.Client, p decode.Packet) error {
	if p.Info().Version == 0 {
		p.Info().Version = conn.Version()
	}
	b, err := decode.Encode(nil, p)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", p.Type(), err)
	}
	if err := conn.Write(b); err != nil {
		return fmt.Errorf("%w (sending %s: %v)", errClosed, p.Type(), err)
	}
	return nil
}

// await waits for a packet from the server that ok accepts.
func (c *client) await(ctx context.Context, within time.Duration, ok func(decode.Packet) bool) (decode.Packet, error) {
	c.mu.Lock()
	in := c.in
	c.mu.Unlock()
	if in == nil {
		return nil, errClosed
	}
	p, err := in.Await(ctx, within, ok)
	switch {
	case errors.Is(err, mqttclient.ErrNothing):
		return nil, fmt.Errorf("%w: nothing expected came within %s", errClosed, within)
	case err != nil:
		return nil, errClosed
	}
	return p, nil
}

func (c *client) waitClosed(ctx context.Context, within time.Duration) error {
	c.mu.Lock()
	in := c.in
	c.mu.Unlock()
	if in == nil {
		return nil
	}
	done := in.Done()
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case <-done:
		c.drop()
	case <-t.C:
		c.logf("the connection stayed open for %s", within)
	case <-ctx.Done():
	}
	return nil
}

// drop closes the connection and waits for its reader.
func (c *client) drop() {
	c.mu.Lock()
	conn, in := c.conn, c.in
	c.conn = nil
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
		if in != nil {
			<-in.Done()
		}
	}
}
