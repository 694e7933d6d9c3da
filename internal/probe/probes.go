package probe

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/mqscope/mqscope/decode"
)

// check is one row of the probe: the limit as granted (row), and the breach or search that
// tests it (run, nil for a row that only reports what was granted). plan is what a dry run
// lists.
type check struct {
	row  func(p *prober) Row
	run  func(ctx context.Context, p *prober, row *Row) error
	plan string
}

// plan returns the checks in the order they run.
func (p *prober) plan() []check {
	cs := []check{
		{row: rowPacketSize, run: breachPacketSize,
			plan: "PUBLISH QoS 0 of Maximum Packet Size + 1 bytes; expect DISCONNECT 0x95 (a few bytes more, one connection each, until refused, when accepted)"},
		{row: rowTopicAlias, run: breachTopicAlias,
			plan: "PUBLISH with Topic Alias = Topic Alias Maximum + 1; expect DISCONNECT 0x94"},
		{row: rowMaximumQoS, run: breachMaximumQoS,
			plan: "when Maximum QoS < 2: PUBLISH at Maximum QoS + 1; expect DISCONNECT 0x9B"},
		{row: rowRetain, run: breachRetain,
			plan: "when Retain Available is 0: retained PUBLISH; expect DISCONNECT 0x9A"},
		{row: rowReceiveMaximum, run: breachReceiveMaximum,
			plan: "when Receive Maximum + 1 fits --max-messages and QoS 2 is granted: Receive Maximum + 1 QoS 2 PUBLISHes without PUBREL; expect DISCONNECT 0x93"},
		{row: rowKeepAlive, run: breachKeepAlive,
			plan: "CONNECT with keep alive 3600, then silence for 1.5 times the keep alive in force (Server Keep Alive, else 2 s asked for); expect the broker to close"},
		{row: rowAvailable(LimitWildcard, func(p *prober) bool { return p.limits.WildcardSubscriptionAvailable }), run: breachSubscribe("/#", nil, decode.WildcardSubsNotSupported),
			plan: "when Wildcard Subscription Available is 0: SUBSCRIBE TOPIC/#; expect DISCONNECT or SUBACK 0xA2"},
		{row: rowAvailable(LimitShared, func(p *prober) bool { return p.limits.SharedSubscriptionAvailable }), run: breachSubscribe("", nil, decode.SharedSubsNotSupported),
			plan: "when Shared Subscription Available is 0: SUBSCRIBE $share/mqscope/TOPIC; expect DISCONNECT or SUBACK 0x9E"},
		{row: rowAvailable(LimitSubIDs, func(p *prober) bool { return p.limits.SubscriptionIdentifiersAvailable }),
			run:  breachSubscribe("", decode.Properties{decode.IntProp(decode.PropSubscriptionID, 1)}, decode.SubscriptionIDsUnsupported),
			plan: "when Subscription Identifiers Available is 0: SUBSCRIBE with Subscription Identifier 1; expect DISCONNECT or SUBACK 0xA1"},
	}
	if p.cfg.Version != decode.V5 {
		cs = cs[5:6] // 3.1.1: no limits in CONNACK; the keep alive still applies
	}
	if p.cfg.Search {
		cs = append(cs,
			check{row: rowSearch(LimitPayload), run: searchPayload,
				plan: "search (bisection, up to --max-payload and the Maximum Packet Size): QoS 0 PUBLISH to a topic the connection subscribes to; accepted when it comes back"},
			check{row: rowSearch(LimitSubscriptions), run: searchSubscriptions,
				plan: "search: SUBSCRIBE 10 filters at a time on one connection, up to --max-subscriptions; stop at the first refusal"},
			check{row: rowSearch(LimitInFlight), run: searchInFlight,
				plan: "search: subscribe at QoS 1, publish --max-inflight QoS 1 messages to it, never PUBACK; count the messages the broker sends"})
	}
	return cs
}

// Plan lists what Run would send, without connecting.
func Plan(cfg Config) []string {
	cfg.defaults()
	p := &prober{cfg: cfg}
	out := []string{fmt.Sprintf("connect to %s (MQTT %s), read the CONNACK, DISCONNECT", cfg.Endpoint, cfg.Version)}
	for _, c := range p.plan() {
		out = append(out, c.plan)
	}
	out = append(out, fmt.Sprintf("at most %d connections and %d PUBLISH and SUBSCRIBE packets; each reaction waited for %s; topics under %s",
		cfg.MaxConns, cfg.MaxMessages, cfg.Wait, cfg.Topic))
	return out
}

// sizeOrNone is a granted size, where 0 means no limit.
func sizeOrNone(l int) (string, int) {
	if l == 0 {
		return "no limit", 0
	}
	return strconv.Itoa(l), l
}

// present reports whether the CONNACK carried the property.
func (p *prober) present(id decode.PropID) bool { return p.connack.Properties.Has(id) }

func rowPacketSize(p *prober) Row {
	r := Row{Limit: LimitPacketSize, Rule: "MQTT-3.2.2-15", Default: !p.present(decode.PropMaximumPacketSize)}
	r.Granted, r.Value = sizeOrNone(p.limits.MaximumPacketSize)
	switch m := p.limits.MaximumPacketSize; {
	case m == 0:
		r.Note = "nothing granted to break (see the payload search)"
	case m > p.cfg.MaxPayload+1<<16:
		// Breaking it means sending m+1 bytes (up to five times), more than the user let the
		// probe send in one packet.
		r.Note = fmt.Sprintf("not tried: a packet of %d bytes is over --max-payload (%d)", m+1, p.cfg.MaxPayload)
	}
	return r
}

// publishOfSize returns a QoS 0 PUBLISH to topic of n bytes on the wire, or of the next
// size the encoding allows (a Remaining Length of 127 makes 129 bytes, of 128 makes 131).
func publishOfSize(v decode.Version, topic string, n int, props decode.Properties) ([]byte, error) {
	p := &decode.Publish{Base: decode.Base{Version: v}, Topic: topic, Properties: props}
	empty, err := decode.Encode(nil, p)
	if err != nil {
		return nil, err
	}
	for pl := max(n-len(empty), 0); ; pl-- {
		p.Payload = make([]byte, pl)
		b, err := decode.Encode(nil, p)
		if err != nil {
			return nil, err
		}
		if len(b) <= n || pl == 0 {
			if len(b) < n { // n cannot be made: one more payload byte
				p.Payload = make([]byte, pl+1)
				return decode.Encode(nil, p)
			}
			return b, nil
		}
	}
}

func breachPacketSize(ctx context.Context, p *prober, row *Row) error {
	max := p.limits.MaximumPacketSize
	// One connection per size, from max+1 up, until the broker refuses: a broker that counts
	// without the Remaining Length's bytes refuses a few bytes later.
	for size := max + 1; size <= max+5; size++ {
		b, err := publishOfSize(p.cfg.Version, p.cfg.Topic+"/size", size, nil)
		if err != nil {
			return err
		}
		if len(b) != size {
			continue
		}
		c, err := p.open(ctx, 0, nil)
		if err != nil {
			return err
		}
		if err := p.spend(1); err != nil {
			c.Close()
			return err
		}
		c.Write(b)
		r := c.react(ctx, nil)
		c.goodbye()
		if size == max+1 {
			row.Sent = fmt.Sprintf("PUBLISH of %d bytes", size)
			row.Expected = "DISCONNECT 0x95"
			p.judge(row, r, false, decode.PacketTooLarge)
			if row.Enforced != No {
				return nil
			}
			continue
		}
		if !r.alive {
			var what Row
			p.judge(&what, r, false, decode.PacketTooLarge)
			row.Note = fmt.Sprintf("accepted %d to %d bytes; refused %d bytes (%s)", max+1, size-1, size, what.Seen)
			return nil
		}
	}
	row.Note = fmt.Sprintf("accepted packets of %d to %d bytes", max+1, max+5)
	return nil
}

func rowTopicAlias(p *prober) Row {
	r := Row{Limit: LimitTopicAlias, Rule: "MQTT-3.2.2-17", Default: !p.present(decode.PropTopicAliasMaximum)}
	r.Granted, r.Value = strconv.Itoa(p.limits.TopicAliasMaximum), p.limits.TopicAliasMaximum
	if p.limits.TopicAliasMaximum == 0 {
		r.Rule = "MQTT-3.2.2-18"
	}
	if p.limits.TopicAliasMaximum >= 65535 {
		r.Note = "every alias is allowed"
	}
	return r
}

func breachTopicAlias(ctx context.Context, p *prober, row *Row) error {
	alias := p.limits.TopicAliasMaximum + 1
	pub := &decode.Publish{Topic: p.cfg.Topic + "/alias", Payload: []byte("alias"),
		Properties: decode.Properties{decode.IntProp(decode.PropTopicAlias, uint32(alias))}}
	row.Sent = fmt.Sprintf("PUBLISH with Topic Alias %d", alias)
	row.Expected = "DISCONNECT 0x94"
	return p.breach(ctx, row, pub, nil, false, decode.TopicAliasInvalid)
}

// breach sends one packet on a fresh connection and judges the reaction.
func (p *prober) breach(ctx context.Context, row *Row, q decode.Packet, stop func(decode.Packet) bool, ack bool, want ...decode.ReasonCode) error {
	c, err := p.open(ctx, 0, nil)
	if err != nil {
		return err
	}
	defer c.goodbye()
	if err := p.spend(1); err != nil {
		return err
	}
	c.Send(q) // a write the broker cut short by closing is read as its reaction
	p.judge(row, c.react(ctx, stop), ack, want...)
	return nil
}

func rowMaximumQoS(p *prober) Row {
	r := Row{Limit: LimitMaximumQoS, Rule: "MQTT-3.2.2-11", Default: !p.present(decode.PropMaximumQoS)}
	r.Granted, r.Value = strconv.Itoa(p.limits.MaximumQoS), p.limits.MaximumQoS
	if p.limits.MaximumQoS >= 2 {
		r.Note = "every QoS is allowed"
	}
	return r
}

func breachMaximumQoS(ctx context.Context, p *prober, row *Row) error {
	qos := byte(p.limits.MaximumQoS + 1)
	pub := &decode.Publish{Topic: p.cfg.Topic + "/qos", QoS: qos, PacketID: 1, Payload: []byte("qos")}
	row.Sent = fmt.Sprintf("PUBLISH at QoS %d", qos)
	row.Expected = "DISCONNECT 0x9B"
	return p.breach(ctx, row, pub, isAck, false, decode.QoSNotSupported)
}

// isAck stops reading at the acknowledgement of a PUBLISH or SUBSCRIBE.
func isAck(q decode.Packet) bool {
	switch q.Type() {
	case decode.PUBACK, decode.PUBREC, decode.SUBACK:
		return true
	}
	return false
}

func rowRetain(p *prober) Row {
	r := Row{Limit: LimitRetain, Rule: "MQTT-3.2.2-14", Default: !p.present(decode.PropRetainAvailable)}
	r.Granted, r.Value = yesNo(p.limits.RetainAvailable)
	if p.limits.RetainAvailable {
		r.Note = "retained messages are allowed"
	}
	return r
}

func yesNo(b bool) (string, int) {
	if b {
		return "1", 1
	}
	return "0", 0
}

func breachRetain(ctx context.Context, p *prober, row *Row) error {
	pub := &decode.Publish{Topic: p.cfg.Topic + "/retain", Retain: true, Payload: []byte("retain")}
	row.Sent = "retained PUBLISH (QoS 0)"
	row.Expected = "DISCONNECT 0x9A"
	return p.breach(ctx, row, pub, nil, false, decode.RetainNotSupported)
}

func rowReceiveMaximum(p *prober) Row {
	r := Row{Limit: LimitReceiveMax, Rule: "MQTT-3.3.4-7", Default: !p.present(decode.PropReceiveMaximum)}
	r.Granted, r.Value = strconv.Itoa(p.limits.ReceiveMaximum), p.limits.ReceiveMaximum
	switch {
	case p.limits.MaximumQoS < 2:
		r.Note = fmt.Sprintf("not breakable: QoS 1 messages are acknowledged as they come, and QoS 2 is not granted (Maximum QoS %d)", p.limits.MaximumQoS)
	case p.limits.ReceiveMaximum+1 > p.cfg.MaxMessages-p.msgs:
		r.Note = fmt.Sprintf("a breach needs %d messages: over --max-messages %d", p.limits.ReceiveMaximum+1, p.cfg.MaxMessages)
	}
	return r
}

func breachReceiveMaximum(ctx context.Context, p *prober, row *Row) error {
	n := p.limits.ReceiveMaximum + 1
	c, err := p.open(ctx, 0, nil)
	if err != nil {
		return err
	}
	defer c.goodbye()
	if err := p.spend(n); err != nil {
		return err
	}
	// All in one write, no PUBREL: each stays unacknowledged (its PUBCOMP cannot come).
	var b []byte
	for id := 1; id <= n; id++ {
		b, err = decode.Encode(b, &decode.Publish{Base: decode.Base{Version: p.cfg.Version}, Topic: p.cfg.Topic + "/inflight", QoS: 2, PacketID: uint16(id), Payload: []byte("rm")})
		if err != nil {
			return err
		}
	}
	c.Write(b) // a write the broker cut short by closing is read as its reaction
	row.Sent = fmt.Sprintf("%d QoS 2 PUBLISHes, no PUBREL", n)
	row.Expected = "DISCONNECT 0x93"
	p.judge(row, c.react(ctx, nil), false, decode.ReceiveMaximumExceeded)
	return nil
}

func rowKeepAlive(p *prober) Row {
	return Row{Limit: LimitKeepAlive, Rule: "MQTT-3.1.2-22", Granted: "(probed)", Value: -1}
}

// breachKeepAlive asks for a keep alive of an hour: the Server Keep Alive the broker answers
// with is its limit. Then it stays silent for 1.5 times the keep alive in force (the broker's,
// else 2 s asked for on another connection) and a wait: the broker must close.
func breachKeepAlive(ctx context.Context, p *prober, row *Row) error {
	c, err := p.open(ctx, askedKeepAlive, nil)
	if err != nil {
		return err
	}
	ka, ok := c.ack.Properties.Int(decode.PropServerKeepAlive)
	if ok {
		p.keepAlive = int(ka)
		row.Granted, row.Value = fmt.Sprintf("%d (asked for %d)", ka, askedKeepAlive), int(ka)
	} else {
		c.goodbye()
		row.Granted = fmt.Sprintf("none (%d accepted)", askedKeepAlive)
		if c, err = p.open(ctx, 2, nil); err != nil {
			return err
		}
		ka = 2
		row.Note = "no Server Keep Alive: probed with keep alive 2 s"
	}
	defer c.goodbye()
	if ka == 0 {
		row.Note = "Server Keep Alive 0: the broker does not time connections out"
		return nil
	}
	// The standard's deadline, a second's grace for timers, and as long again to tell a late
	// close from none.
	deadline := time.Duration(ka) * 1500 * time.Millisecond
	window := 2*deadline + p.cfg.Wait
	if window > p.cfg.MaxKeepAliveWait {
		row.Note = fmt.Sprintf("not waited for: the probe would wait %s, more than --max-keepalive-wait %s", window, p.cfg.MaxKeepAliveWait)
		return nil
	}
	row.Sent = fmt.Sprintf("silence after CONNECT (keep alive in force: %d s)", ka)
	row.Expected = fmt.Sprintf("close within %s", deadline)
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	ps, err := c.Until(wctx, func(q decode.Packet) bool { return q.Type() == decode.DISCONNECT })
	took := time.Since(start)
	shown := took.Round(100 * time.Millisecond)
	var d *decode.Disconnect
	if len(ps) > 0 {
		d, _ = ps[len(ps)-1].(*decode.Disconnect)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case d == nil && err != nil && wctx.Err() != nil:
		row.Enforced, row.Seen = No, fmt.Sprintf("still open after %s", shown)
		return nil
	case d != nil:
		row.Seen = fmt.Sprintf("DISCONNECT %s after %s", codeName(p.cfg.Version, decode.DISCONNECT, d.ReasonCode), shown)
	default:
		row.Seen = fmt.Sprintf("closed without DISCONNECT after %s", shown)
	}
	// Closing is what the standard asks; a DISCONNECT 0x8D (Keep Alive timeout) is allowed.
	// A close after the deadline, within the window, is enforcement by a coarse timer (mosquitto
	// 2.0 closes 1 to 3 s late): yes, with a note.
	const grace = time.Second
	switch {
	case d != nil && d.ReasonCode != decode.KeepAliveTimeout:
		row.Enforced = Other
	case took < time.Duration(ka)*time.Second:
		row.Enforced, row.Note = Other, fmt.Sprintf("closed before the keep alive (%d s) ran out", ka)
	default:
		row.Enforced = Yes
		if took > deadline+grace {
			row.Note = fmt.Sprintf("closed %s after 1.5 times the keep alive", (took - deadline).Round(100*time.Millisecond))
		}
	}
	return nil
}

func rowAvailable(name string, get func(p *prober) bool) func(p *prober) Row {
	ids := map[string]decode.PropID{
		LimitWildcard: decode.PropWildcardSubAvailable,
		LimitShared:   decode.PropSharedSubAvailable,
		LimitSubIDs:   decode.PropSubIDAvailable,
	}
	return func(p *prober) Row {
		r := Row{Limit: name, Rule: "§3.2.2.3", Default: !p.present(ids[name])}
		r.Granted, r.Value = yesNo(get(p))
		if get(p) {
			r.Note = "available"
		}
		return r
	}
}

// breachSubscribe subscribes to what the broker said it does not support: a wildcard filter
// (suffix), a shared subscription (no suffix, no properties), a Subscription Identifier.
func breachSubscribe(suffix string, props decode.Properties, want decode.ReasonCode) func(ctx context.Context, p *prober, row *Row) error {
	return func(ctx context.Context, p *prober, row *Row) error {
		filter := p.cfg.Topic + "/sub" + suffix
		if suffix == "" && props == nil {
			filter = "$share/mqscope/" + p.cfg.Topic + "/sub"
		}
		sub := &decode.Subscribe{PacketID: 1, Properties: props, Subscriptions: []decode.Subscription{{Filter: filter}}}
		row.Sent = "SUBSCRIBE " + filter
		if props != nil {
			row.Sent += " with Subscription Identifier 1"
		}
		// A Protocol Error answered with DISCONNECT (§3.2.2.3.11-13); the SUBACK codes of §3.9.3
		// say the same of one subscription.
		row.Expected = fmt.Sprintf("DISCONNECT or SUBACK 0x%02X", byte(want))
		return p.breach(ctx, row, sub, isAck, true, want)
	}
}

func rowSearch(name string) func(p *prober) Row {
	return func(p *prober) Row { return Row{Limit: name, Granted: "not announced", Value: -1} }
}
