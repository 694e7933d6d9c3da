package probe

import (
	"strconv"

	"github.com/mqscope/mqscope/inspect"
)

// Row names, as in the report.
const (
	LimitPacketSize    = "Maximum Packet Size"
	LimitTopicAlias    = "Topic Alias Maximum"
	LimitMaximumQoS    = "Maximum QoS"
	LimitRetain        = "Retain Available"
	LimitReceiveMax    = "Receive Maximum"
	LimitKeepAlive     = "Server Keep Alive"
	LimitWildcard      = "Wildcard Subscription Available"
	LimitShared        = "Shared Subscription Available"
	LimitSubIDs        = "Subscription Identifiers Available"
	LimitPayload       = "Largest payload accepted"
	LimitSubscriptions = "Subscriptions per connection"
	LimitInFlight      = "Unacknowledged messages sent"
)

// askedKeepAlive is the keep alive the keep-alive probe asks for: the broker's answer is its
// limit.
const askedKeepAlive = 3600

// profileValue returns what a profile states for a row's limit, as the row's Value would be
// (booleans 0 or 1), and whether it states anything.
func profileValue(prof *inspect.Profile, limit string) (int, bool) {
	pos := func(v int) (int, bool) { return v, v > 0 }
	flag := func(b *bool) (int, bool) {
		if b == nil {
			return 0, false
		}
		_, v := yesNo(*b)
		return v, true
	}
	switch limit {
	case LimitPacketSize:
		return pos(prof.MaximumPacketSize)
	case LimitTopicAlias:
		return pos(prof.TopicAliasMaximum)
	case LimitReceiveMax:
		if prof.ReceiveMaximumMirrorsClient {
			return 65535, true // the probe's CONNECT has no Receive Maximum
		}
		return pos(prof.ReceiveMaximum)
	case LimitMaximumQoS:
		if prof.MaximumQoS == nil {
			return 0, false
		}
		return *prof.MaximumQoS, true
	case LimitRetain:
		return flag(prof.RetainAvailable)
	case LimitWildcard:
		return flag(prof.WildcardSubscriptionAvailable)
	case LimitShared:
		return flag(prof.SharedSubscriptionAvailable)
	case LimitSubIDs:
		return flag(prof.SubscriptionIdentifiersAvailable)
	case LimitKeepAlive:
		if prof.KeepAlive.Max > 0 && prof.KeepAlive.Max < askedKeepAlive {
			return prof.KeepAlive.Max, true
		}
	case LimitPayload:
		return pos(prof.MaxPayload)
	}
	return 0, false
}

// Compare notes on each row what the profile states and whether the broker differs. A search
// that stopped at its cap (Value -1) differs only from a profile stating less than the cap.
// It returns the number of rows that differ.
func Compare(rep *Report, prof *inspect.Profile) int {
	n := 0
	for i := range rep.Rows {
		r := &rep.Rows[i]
		want, ok := profileValue(prof, r.Limit)
		if !ok {
			continue
		}
		r.Profile = strconv.Itoa(want)
		switch {
		case r.Value >= 0:
			r.ProfileDiffers = r.Value != want
		case r.Limit == LimitPayload && r.Enforced == Found:
			if c, err := strconv.Atoi(firstWord(r.Granted)); err == nil {
				r.ProfileDiffers = want < c
			}
		}
		if r.ProfileDiffers {
			n++
		}
	}
	return n
}

func firstWord(s string) string {
	for i, c := range s {
		if c == ' ' {
			return s[:i]
		}
	}
	return s
}

// Profile returns a broker profile stating what the probe found: the CONNACK's values, the
// Server Keep Alive given for a long keep alive, the largest payload found.
func Profile(rep *Report, name string) *inspect.Profile {
	p := &inspect.Profile{Name: name, Description: "what mqscope probe found on " + rep.Broker, Source: "mqscope probe " + rep.Broker}
	for _, r := range rep.Rows {
		v := r.Value
		b := v == 1
		switch r.Limit {
		case LimitPacketSize:
			p.MaximumPacketSize = max(v, 0)
		case LimitTopicAlias:
			p.TopicAliasMaximum = max(v, 0)
		case LimitReceiveMax:
			p.ReceiveMaximum = v
		case LimitMaximumQoS:
			p.MaximumQoS = &v
		case LimitRetain:
			p.RetainAvailable = &b
		case LimitWildcard:
			p.WildcardSubscriptionAvailable = &b
		case LimitShared:
			p.SharedSubscriptionAvailable = &b
		case LimitSubIDs:
			p.SubscriptionIdentifiersAvailable = &b
		case LimitKeepAlive:
			if v > 0 && v < askedKeepAlive {
				p.KeepAlive.Max = v
			}
		case LimitPayload:
			if v > 0 {
				p.MaxPayload = v
			}
		}
	}
	return p
}
