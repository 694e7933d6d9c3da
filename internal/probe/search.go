package probe

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/mqscope/mqscope/decode"
)

// subscribe sends one SUBSCRIBE of filters at qos and returns its SUBACK.
func (c *conn) subscribe(ctx context.Context, id uint16, qos byte, filters ...string) (*decode.Suback, error) {
	if err := c.p.spend(1); err != nil {
		return nil, err
	}
	sub := &decode.Subscribe{PacketID: id}
	for _, f := range filters {
		sub.Subscriptions = append(sub.Subscriptions, decode.Subscription{Filter: f, QoS: qos})
	}
	if err := c.Send(sub); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, c.p.cfg.Wait)
	defer cancel()
	ps, err := c.Until(wctx, func(q decode.Packet) bool { return q.Type() == decode.SUBACK || q.Type() == decode.DISCONNECT })
	if err != nil {
		return nil, fmt.Errorf("no SUBACK: %w", err)
	}
	switch q := ps[len(ps)-1].(type) {
	case *decode.Suback:
		return q, nil
	case *decode.Disconnect:
		return nil, fmt.Errorf("SUBSCRIBE answered with DISCONNECT %s", codeName(c.Version(), decode.DISCONNECT, q.ReasonCode))
	}
	return nil, errors.New("no SUBACK")
}

// payloadFits returns the largest payload of a QoS 0 PUBLISH to topic within size bytes (0
// when none fits).
func payloadFits(v decode.Version, topic string, size int) (int, error) {
	b, err := publishOfSize(v, topic, size, nil)
	if err != nil {
		return 0, err
	}
	// b is size bytes, or one payload byte more when size cannot be made.
	n := len(decode.Decode(b, v).(*decode.Publish).Payload)
	if len(b) > size {
		n--
	}
	return max(n, 0), nil
}

// payloadBound returns the largest payload the payload search tries, and what bounds it:
// MaxPayload, or the most the granted Maximum Packet Size holds. A packet of MaxPayload, its
// topic and its header has room for MaxPayload: only a Maximum Packet Size below that is
// fitted a payload to, so that the size the broker announces (up to 256 MB, or over) is never
// built.
func payloadBound(p *prober, topic string) (int, string, error) {
	hi := p.cfg.MaxPayload
	if m := p.limits.MaximumPacketSize; m > 0 && m <= hi+len(topic)+16 {
		fit, err := payloadFits(p.cfg.Version, topic, m)
		if err != nil {
			return 0, "", err
		}
		if fit < hi {
			return fit, fmt.Sprintf("the most a %d-byte packet holds", m), nil
		}
	}
	return hi, fmt.Sprintf("--max-payload %d", hi), nil
}

// searchPayload finds by bisection the largest QoS 0 payload the broker delivers back to a
// subscriber, up to MaxPayload and what the Maximum Packet Size leaves.
func searchPayload(ctx context.Context, p *prober, row *Row) error {
	topic := p.cfg.Topic + "/payload"
	hi, bound, err := payloadBound(p, topic)
	if err != nil {
		return err
	}
	var c *conn
	defer func() {
		if c != nil {
			c.goodbye()
		}
	}()
	tries := 0
	// try publishes n bytes and reports whether they came back; why is the reaction otherwise.
	try := func(n int) (ok bool, why string, err error) {
		tries++
		if c == nil {
			if c, err = p.open(ctx, 0, nil); err != nil {
				return false, "", err
			}
			if _, err = c.subscribe(ctx, 1, 0, topic); err != nil {
				return false, "", err
			}
		}
		if err := p.spend(1); err != nil {
			return false, "", err
		}
		// The PINGREQ behind the PUBLISH: its PINGRESP says the broker has handled the PUBLISH,
		// so the message is delivered by then, or soon after, or never.
		// A write the broker cut short by closing is read as its reaction, below.
		c.Send(&decode.Publish{Topic: topic, Payload: make([]byte, n)})
		c.Send(&decode.Pingreq{})
		delivered, pong := false, false
		wctx, cancel := context.WithTimeout(ctx, p.cfg.Wait)
		defer cancel()
		ps, err := c.Until(wctx, func(q decode.Packet) bool {
			switch q := q.(type) {
			case *decode.Publish:
				delivered = delivered || len(q.Payload) == n
			case *decode.Pingresp:
				pong = true
			case *decode.Disconnect:
				return true
			}
			return delivered
		})
		if delivered {
			if !pong { // its PINGRESP is still to come
				c.Until(wctx, func(q decode.Packet) bool { return q.Type() == decode.PINGRESP })
			}
			return true, "", nil
		}
		r := reaction{packets: ps, err: err, closed: err != nil && !errors.Is(err, context.DeadlineExceeded)}
		if err == nil || r.closed || !pong {
			c.Close()
			c = nil
			r.closed = r.closed || err == nil
		}
		switch {
		case r.closed:
			why = r.seen(p.cfg.Version, p.cfg.Wait)
		case pong:
			why = fmt.Sprintf("not delivered within %s", p.cfg.Wait)
		default:
			return false, "", fmt.Errorf("no PINGRESP within %s after a PUBLISH of %d bytes", p.cfg.Wait, n)
		}
		return false, why, nil
	}
	row.Sent = "QoS 0 PUBLISHes to a topic the connection subscribes to"
	ok, why, err := try(hi)
	if err != nil {
		return err
	}
	row.Enforced = Found
	if ok {
		row.Granted, row.Value = fmt.Sprintf("%d or more", hi), -1
		row.Note = "searched up to " + bound
		return nil
	}
	lo, refused := 0, why
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, why, err := try(mid)
		if errors.Is(err, ErrBudget) {
			row.Granted = fmt.Sprintf("%d to %d", lo, hi-1)
			row.Note = err.Error()
			return nil
		}
		if err != nil {
			return err
		}
		if ok {
			lo = mid
		} else {
			hi, refused = mid, why
		}
	}
	row.Granted, row.Value = strconv.Itoa(lo), lo
	row.Seen = fmt.Sprintf("%d bytes: %s", hi, refused)
	row.Note = fmt.Sprintf("%d tries", tries)
	return nil
}

// searchSubscriptions subscribes on one connection, 10 filters a SUBSCRIBE, until the broker
// refuses one or MaxSubscriptions are made.
func searchSubscriptions(ctx context.Context, p *prober, row *Row) error {
	c, err := p.open(ctx, 0, nil)
	if err != nil {
		return err
	}
	defer c.goodbye()
	row.Enforced, row.Sent = Found, "SUBSCRIBEs of up to 10 filters"
	n := 0
	for id := uint16(1); n < p.cfg.MaxSubscriptions; id++ {
		var fs []string
		for i := n; i < min(n+10, p.cfg.MaxSubscriptions); i++ {
			fs = append(fs, p.cfg.Topic+"/subs/"+strconv.Itoa(i))
		}
		for len(fs) > 1 && !p.fits(subscribeSize(c.Version(), fs)) {
			fs = fs[:len(fs)/2]
		}
		ack, err := c.subscribe(ctx, id, 0, fs...)
		if errors.Is(err, ErrBudget) {
			row.Granted, row.Value, row.Note = fmt.Sprintf("%d or more", n), -1, err.Error()
			return nil
		}
		if err != nil {
			row.Granted, row.Value, row.Seen = strconv.Itoa(n), n, err.Error()
			return nil
		}
		if len(ack.ReasonCodes) != len(fs) {
			row.Granted, row.Value = strconv.Itoa(n), n
			row.Seen = fmt.Sprintf("then SUBACK of %d reason codes for %d filters", len(ack.ReasonCodes), len(fs))
			return nil
		}
		for _, rc := range ack.ReasonCodes {
			if rc >= 0x80 {
				row.Granted, row.Value = strconv.Itoa(n), n
				row.Seen = "then SUBACK " + codeName(c.Version(), decode.SUBACK, rc)
				return nil
			}
			n++
		}
	}
	row.Granted, row.Value = fmt.Sprintf("%d or more", n), -1
	row.Note = fmt.Sprintf("searched up to --max-subscriptions %d", p.cfg.MaxSubscriptions)
	return nil
}

// searchInFlight subscribes at QoS 1, publishes MaxInFlight QoS 1 messages to itself and never
// acknowledges what the broker sends: the broker's own cap on unacknowledged messages.
func searchInFlight(ctx context.Context, p *prober, row *Row) error {
	if p.limits.MaximumQoS < 1 {
		row.Note = "QoS 1 is not granted"
		return nil
	}
	k := p.cfg.MaxInFlight
	c, err := p.open(ctx, 0, nil)
	if err != nil {
		return err
	}
	defer c.goodbye()
	topic := p.cfg.Topic + "/unacked"
	if _, err := c.subscribe(ctx, 1, 1, topic); err != nil {
		return err
	}
	if err := p.spend(k); err != nil {
		return err
	}
	var b []byte
	for id := 1; id <= k; id++ {
		if b, err = decode.Encode(b, &decode.Publish{Base: decode.Base{Version: c.Version()}, Topic: topic, QoS: 1, PacketID: uint16(id), Payload: []byte(strconv.Itoa(id))}); err != nil {
			return err
		}
	}
	if err := c.Write(b); err != nil {
		return err
	}
	row.Sent = fmt.Sprintf("%d QoS 1 PUBLISHes to a topic the connection subscribes to at QoS 1, no PUBACK", k)
	// Until a wait passes with nothing new, or all came: each message once (a message sent
	// again counts once: its payload says which it is) and each PUBACK. A broker that sends
	// more than twice that is flooding: it would hold the probe, each packet within the wait.
	delivered, again, acks := map[string]bool{}, 0, 0
	for read := 0; len(delivered) < k || acks < k; read++ {
		if read == 4*k {
			return fmt.Errorf("the broker kept sending: %d packets read, %d of the %d messages and %d PUBACKs among them",
				read, len(delivered), k, acks)
		}
		wctx, cancel := context.WithTimeout(ctx, p.cfg.Wait)
		q, err := c.Next(wctx)
		cancel()
		if err != nil {
			break
		}
		switch q := q.(type) {
		case *decode.Publish:
			if q.QoS == 1 {
				if delivered[string(q.Payload)] {
					again++
				}
				delivered[string(q.Payload)] = true
			}
		case *decode.Ack:
			acks++
		}
	}
	got := len(delivered)
	row.Enforced = Found
	row.Seen = fmt.Sprintf("%d of %d messages sent to the subscriber, %d PUBACKs", got, k, acks)
	if again > 0 {
		row.Seen += fmt.Sprintf(", %d sent again", again)
	}
	if got < k {
		row.Granted, row.Value = strconv.Itoa(got), got
		return nil
	}
	row.Granted, row.Value = fmt.Sprintf("%d or more", k), -1
	row.Note = fmt.Sprintf("searched up to --max-inflight %d", k)
	return nil
}

// subscribeSize is the size of a SUBSCRIBE of filters.
func subscribeSize(v decode.Version, filters []string) int {
	n := 2 + 1 + 1 // packet identifier, MQTT 5 property length, a fixed header byte
	for _, f := range filters {
		n += 2 + len(f) + 1
	}
	return n + decode.VarIntLen(uint32(n))
}

// fits reports whether a packet of n bytes is within the granted Maximum Packet Size.
func (p *prober) fits(n int) bool {
	return p.limits.MaximumPacketSize == 0 || n <= p.limits.MaximumPacketSize
}
