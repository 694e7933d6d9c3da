package ui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// SessionText is the session screen of connection id at time now (the clock on a live
// source, the newest record's time on a file): what was requested, granted and applies per
// direction, both alias tables with their hits, the in-flight windows against Receive
// Maximum, and the keep-alive countdown.
func (m *Model) SessionText(id int, now time.Time) string {
	c, ok := m.Conn(id)
	if !ok {
		return "no connection selected"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "connection %d  %s → %s  client id %q  MQTT %s  %s\n", c.ID, c.Client, c.Server, c.ClientID, c.Version, c.State())
	s := c.Session
	if s == nil {
		b.WriteString("\nno CONNACK seen: nothing negotiated yet\n")
		return b.String()
	}
	rq, g, e := s.Requested, s.Granted, s.Effective
	b.WriteString("\n                          requested    granted      client → server  server → client\n")
	row := func(name string, req, gr *uint32, c2s, s2c string) {
		fmt.Fprintf(&b, "  %-24s%-13s%-13s%-17s%s\n", name, optU(req), optU(gr), c2s, s2c)
	}
	row("receive maximum", rq.ReceiveMaximum, g.ReceiveMaximum, strconv.Itoa(e.C2S.ReceiveMaximum), strconv.Itoa(e.S2C.ReceiveMaximum))
	row("maximum packet size", rq.MaximumPacketSize, g.MaximumPacketSize, limitText(e.C2S.MaximumPacketSize), limitText(e.S2C.MaximumPacketSize))
	row("topic alias maximum", rq.TopicAliasMaximum, g.TopicAliasMaximum, strconv.Itoa(e.C2S.TopicAliasMaximum), strconv.Itoa(e.S2C.TopicAliasMaximum))
	row("maximum qos", nil, g.MaximumQoS, strconv.Itoa(e.C2S.MaximumQoS), "")
	row("retain available", nil, g.RetainAvailable, strconv.FormatBool(e.C2S.RetainAvailable), "")
	row("session expiry interval", rq.SessionExpiryInterval, g.SessionExpiryInterval, strconv.FormatUint(uint64(e.SessionExpiryInterval), 10)+" s", "")
	ka := uint32(rq.KeepAlive)
	row("keep alive", &ka, g.ServerKeepAlive, fmt.Sprintf("%d s (%s)", e.KeepAlive, e.KeepAliveFrom), "")

	b.WriteString("\n  in flight (QoS 1 and 2 unacknowledged) against the receiver's Receive Maximum\n")
	for _, d := range []stream.Dir{stream.C2S, stream.S2C} {
		fmt.Fprintf(&b, "    %-16s %d of %d\n", dirName(d), c.InFlight[d], e.Limit(d).ReceiveMaximum)
	}
	b.WriteString("\n  keep alive: ")
	switch {
	case e.KeepAlive == 0:
		b.WriteString("off\n")
	case c.Close != nil:
		b.WriteString("connection closed\n")
	default:
		// The server may close a client silent for one and a half keep-alive periods.
		deadline := c.LastSeen[stream.C2S].Add(time.Duration(e.KeepAlive) * 1500 * time.Millisecond)
		left := deadline.Sub(now).Round(100 * time.Millisecond)
		if left >= 0 {
			fmt.Fprintf(&b, "%s left before the server may close the connection (1.5 × %d s since the client's last packet)\n", left, e.KeepAlive)
		} else {
			fmt.Fprintf(&b, "overdue by %s: the client sent nothing for 1.5 × %d s\n", -left, e.KeepAlive)
		}
	}
	for _, d := range []stream.Dir{stream.C2S, stream.S2C} {
		t := c.Aliases[d]
		fmt.Fprintf(&b, "\n  topic aliases %s: %d of %d\n", dirName(d), len(t), e.Limit(d).TopicAliasMaximum)
		keys := make([]int, 0, len(t))
		for k := range t {
			keys = append(keys, int(k))
		}
		slices.Sort(keys)
		for _, k := range keys {
			a := t[uint16(k)]
			fmt.Fprintf(&b, "    %5d  %-40s set %d, used %d\n", k, strconv.Quote(a.Topic), a.Set, a.Hits)
		}
	}
	if len(c.Faults) > 0 {
		fmt.Fprintf(&b, "\n  faults applied by mqscope's proxy: %d\n", len(c.Faults))
		for _, f := range c.Faults {
			at := "dropped the frame"
			if f.Index > 0 {
				at = fmt.Sprintf("packet #%d", f.Index)
			}
			fmt.Fprintf(&b, "    %s %s %s: %s\n", f.Time.UTC().Format("15:04:05.000"), f.Rule, at, f.Did)
		}
	}
	if c.Close != nil {
		fmt.Fprintf(&b, "\n  %s\n", closeLine(c.Close))
	}
	return b.String()
}

func closeLine(r *inspect.CloseRecord) string {
	s := "closed by " + r.By()
	if why := r.Reason(); why != "" {
		s += ": " + why
	}
	return s
}

func optU(v *uint32) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatUint(uint64(*v), 10)
}

func limitText(n int) string {
	if n == 0 {
		return "no limit"
	}
	return strconv.Itoa(n)
}
