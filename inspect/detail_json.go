package inspect

import (
	"encoding/json"
	"io"

	"github.com/mqscope/mqscope/decode"
)

// WriteDetailJSON writes one packet as a JSON line: the packet fields of the JSON-lines
// interface, plus the packet's index and offset in its input and the located fields.
func WriteDetailJSON(w io.Writer, index int, offset int64, p decode.Packet, showSecrets bool) error {
	m := PacketFields(p, showSecrets)
	m["kind"] = "packet"
	m["index"] = index
	m["offset"] = offset
	b := p.Info()
	notes := make([]map[string]any, 0, len(b.Problems))
	for _, pr := range b.Problems {
		n := map[string]any{"level": pr.Level.String(), "text": pr.Message, "offset": offset + int64(pr.Offset), "field": pr.Field}
		if pr.Rule != "" {
			n["rule"] = pr.Rule
		}
		if pr.Reason != 0 {
			n["reason_code"] = int(pr.Reason)
		}
		notes = append(notes, n)
	}
	if len(notes) > 0 {
		m["notes"] = notes
	}
	fields := make([]map[string]any, 0, len(b.Fields))
	for _, f := range b.Fields {
		fields = append(fields, map[string]any{"name": f.Name, "offset": offset + int64(f.Offset), "len": f.Len})
	}
	m["fields"] = fields
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(line, '\n'))
	return err
}

// PacketFields returns the packet-level keys of the JSON-lines interface for p: type, version,
// size and, where the packet has them, packet_id, qos, retain, dup, topic (as sent),
// topic_alias, payload_size, reason_code and reason (or reason_codes), subscriptions and
// properties.
func PacketFields(p decode.Packet, showSecrets bool) map[string]any {
	b := p.Info()
	m := map[string]any{
		"type":    p.Type().String(),
		"version": int(b.Version),
		"size":    len(b.Raw),
	}
	reason := func(t decode.Type, c decode.ReasonCode) {
		m["reason_code"] = int(c)
		m["reason"] = decode.ReasonName(b.Version, t, c)
	}
	codes := func(t decode.Type, cs []decode.ReasonCode) {
		out := make([]map[string]any, len(cs))
		for i, c := range cs {
			out[i] = map[string]any{"code": int(c), "reason": decode.ReasonName(b.Version, t, c)}
		}
		m["reason_codes"] = out
	}
	if id, ok := decode.PacketID(p); ok {
		m["packet_id"] = id
	}
	switch q := p.(type) {
	case *decode.Connect:
		m["protocol_name"] = q.ProtocolName
		m["protocol_level"] = q.ProtocolLevel
		m["clean_start"] = q.CleanStart
		m["keep_alive"] = q.KeepAlive
		m["client_id"] = q.ClientID
		if q.HasUsername {
			m["username"] = q.Username
		}
		if q.HasPassword {
			if showSecrets {
				m["password"] = string(q.Password)
			} else {
				m["password"] = Redacted
			}
		}
		if w := q.Will; w != nil {
			will := map[string]any{"topic": w.Topic, "qos": w.QoS, "retain": w.Retain, "payload_size": len(w.Payload)}
			if len(w.Properties) > 0 {
				will["properties"] = PropertiesJSON(w.Properties)
			}
			m["will"] = will
		}
	case *decode.Connack:
		m["session_present"] = q.SessionPresent
		reason(decode.CONNACK, q.ReasonCode)
	case *decode.Publish:
		m["qos"] = q.QoS
		m["retain"] = q.Retain
		m["dup"] = q.Dup
		m["topic"] = q.Topic
		if a, ok := q.Properties.TopicAlias(); ok {
			m["topic_alias"] = a
		}
		m["payload_size"] = len(q.Payload)
	case *decode.Ack:
		if b.Version == decode.V5 {
			reason(q.PacketType, q.ReasonCode)
		}
	case *decode.Subscribe:
		subs := make([]map[string]any, len(q.Subscriptions))
		for i, s := range q.Subscriptions {
			subs[i] = map[string]any{"filter": s.Filter, "qos": s.QoS, "no_local": s.NoLocal,
				"retain_as_published": s.RetainAsPublished, "retain_handling": s.RetainHandling}
		}
		m["subscriptions"] = subs
	case *decode.Suback:
		codes(decode.SUBACK, q.ReasonCodes)
	case *decode.Unsubscribe:
		m["filters"] = q.Filters
	case *decode.Unsuback:
		if b.Version == decode.V5 {
			codes(decode.UNSUBACK, q.ReasonCodes)
		}
	case *decode.Disconnect:
		if b.Version == decode.V5 {
			reason(decode.DISCONNECT, q.ReasonCode)
		}
	case *decode.Auth:
		reason(decode.AUTH, q.ReasonCode)
	}
	if ps := decode.PropertiesOf(p); len(ps) > 0 {
		m["properties"] = PropertiesJSON(ps)
	}
	return m
}

// PropertiesJSON keys properties by the standard's names in snake_case. User Properties become
// a list of [name, value] pairs and Subscription Identifiers a list; binary values are shown as
// text when printable, else hex; a property repeated against the rules keeps its first value.
func PropertiesJSON(ps decode.Properties) map[string]any {
	m := make(map[string]any, len(ps))
	for _, p := range ps {
		key := p.ID.Key()
		switch {
		case p.ID == decode.PropUserProperty:
			pairs, _ := m[key].([][2]string)
			m[key] = append(pairs, [2]string{p.Str, p.Value})
		case p.ID == decode.PropSubscriptionID:
			ids, _ := m[key].([]uint32)
			m[key] = append(ids, p.Int)
		default:
			if _, dup := m[key]; dup {
				continue
			}
			switch p.ID.Type() {
			case decode.TypeString:
				m[key] = p.Str
			case decode.TypeBinary:
				m[key] = BytesText(p.Bin, 1<<16)
			default:
				m[key] = p.Int
			}
		}
	}
	return m
}
