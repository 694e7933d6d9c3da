package proxy

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mqscope/mqscope/decode"
)

// FieldEdit is an edit of a held frame's fields; nil fields are kept. The frame is decoded,
// changed and encoded again (decode.Encode), so every length is right.
type FieldEdit struct {
	Topic      *string `json:"topic,omitempty"`       // PUBLISH
	Payload    *string `json:"payload,omitempty"`     // PUBLISH, as text
	PayloadHex *string `json:"payload_hex,omitempty"` // PUBLISH, as hex
	QoS        *int    `json:"qos,omitempty"`         // PUBLISH
	Retain     *bool   `json:"retain,omitempty"`      // PUBLISH
	Dup        *bool   `json:"dup,omitempty"`         // PUBLISH
	PacketID   *int    `json:"packet_id,omitempty"`   // PUBLISH, acknowledgements, SUBSCRIBE...
	ReasonCode *int    `json:"reason_code,omitempty"` // CONNACK, PUBACK..PUBCOMP, DISCONNECT, AUTH
	// Properties sets properties by their JSON-lines name (topic_alias, content_type,
	// user_property...): a number, a string (binary properties take the string's bytes), for
	// user_property a list of [name, value] pairs that replaces them all; null removes.
	Properties map[string]json.RawMessage `json:"properties,omitempty"`
}

// empty reports whether e changes nothing.
func (e FieldEdit) empty() bool {
	return e.Topic == nil && e.Payload == nil && e.PayloadHex == nil && e.QoS == nil && e.Retain == nil &&
		e.Dup == nil && e.PacketID == nil && e.ReasonCode == nil && len(e.Properties) == 0
}

// Apply returns frame (of protocol version v) with the edit made.
func (e FieldEdit) Apply(frame []byte, v decode.Version) ([]byte, error) {
	p := decode.DecodeWith(frame, v, decode.Options{Lean: true})
	for _, pr := range p.Info().Problems {
		if errors.Is(pr, decode.ErrMalformed) {
			return nil, fmt.Errorf("%w: the %s is malformed (%v): edit it as bytes", ErrEdit, p.Type(), pr)
		}
	}
	bad := func(field string) error {
		return fmt.Errorf("%w: a %s has no %s", ErrEdit, p.Type(), field)
	}
	byte8 := func(field string, n int) (byte, error) {
		if n < 0 || n > 0xFF {
			return 0, fmt.Errorf("%w: %s %d: want 0 to 255", ErrEdit, field, n)
		}
		return byte(n), nil
	}
	if e.Topic != nil || e.Payload != nil || e.PayloadHex != nil || e.QoS != nil || e.Retain != nil || e.Dup != nil {
		q, ok := p.(*decode.Publish)
		if !ok {
			return nil, bad("topic, payload, QoS, retain or DUP")
		}
		if e.Topic != nil {
			q.Topic = *e.Topic
		}
		if e.Payload != nil && e.PayloadHex != nil {
			return nil, fmt.Errorf("%w: payload and payload_hex: give one", ErrEdit)
		}
		if e.Payload != nil {
			q.Payload = []byte(*e.Payload)
		}
		if e.PayloadHex != nil {
			b, err := hex.DecodeString(strings.Join(strings.Fields(*e.PayloadHex), ""))
			if err != nil {
				return nil, fmt.Errorf("%w: payload_hex: %w", ErrEdit, err)
			}
			q.Payload = b
		}
		if e.QoS != nil {
			if *e.QoS < 0 || *e.QoS > 3 {
				return nil, fmt.Errorf("%w: qos %d: want 0 to 3 (3 is malformed, on purpose)", ErrEdit, *e.QoS)
			}
			q.QoS = byte(*e.QoS)
		}
		if e.Retain != nil {
			q.Retain = *e.Retain
		}
		if e.Dup != nil {
			q.Dup = *e.Dup
		}
	}
	if e.PacketID != nil {
		if *e.PacketID < 0 || *e.PacketID > 0xFFFF {
			return nil, fmt.Errorf("%w: packet_id %d: want 0 to 65535", ErrEdit, *e.PacketID)
		}
		if q, ok := p.(*decode.Publish); ok && q.QoS == 0 {
			// Encoding would leave it out: the edit would be lost without a word.
			return nil, fmt.Errorf("%w: a QoS 0 PUBLISH has no packet identifier (set qos too)", ErrEdit)
		}
		if !decode.SetPacketID(p, uint16(*e.PacketID)) {
			return nil, bad("packet identifier")
		}
	}
	if e.ReasonCode != nil {
		rc, err := byte8("reason_code", *e.ReasonCode)
		if err != nil {
			return nil, err
		}
		if !setReasonCode(p, decode.ReasonCode(rc)) {
			return nil, bad("reason code")
		}
	}
	if len(e.Properties) > 0 {
		if v != decode.V5 {
			return nil, fmt.Errorf("%w: MQTT %s packets have no properties", ErrEdit, v)
		}
		ps, ok := propertiesOf(p)
		if !ok {
			return nil, bad("properties")
		}
		if err := editProperties(ps, e.Properties); err != nil {
			return nil, err
		}
	}
	b, err := decode.Encode(nil, p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEdit, err)
	}
	return b, nil
}

func setReasonCode(p decode.Packet, rc decode.ReasonCode) bool {
	switch q := p.(type) {
	case *decode.Connack:
		q.ReasonCode = rc
	case *decode.Ack:
		q.ReasonCode, q.HasReason = rc, true
	case *decode.Disconnect:
		q.ReasonCode, q.HasReason = rc, true
	case *decode.Auth:
		q.ReasonCode, q.HasReason = rc, true
	default:
		return false
	}
	return true
}

// propertiesOf returns a pointer to p's properties.
func propertiesOf(p decode.Packet) (*decode.Properties, bool) {
	switch q := p.(type) {
	case *decode.Connect:
		return &q.Properties, true
	case *decode.Connack:
		return &q.Properties, true
	case *decode.Publish:
		return &q.Properties, true
	case *decode.Ack:
		q.HasReason, q.HasProperties = true, true
		return &q.Properties, true
	case *decode.Subscribe:
		return &q.Properties, true
	case *decode.Suback:
		return &q.Properties, true
	case *decode.Unsubscribe:
		return &q.Properties, true
	case *decode.Unsuback:
		return &q.Properties, true
	case *decode.Disconnect:
		q.HasReason, q.HasProperties = true, true
		return &q.Properties, true
	case *decode.Auth:
		q.HasReason, q.HasProperties = true, true
		return &q.Properties, true
	}
	return nil, false
}

// propByKey finds a property by its JSON-lines name.
func propByKey(key string) (decode.PropID, bool) {
	for id := decode.PropID(1); id < 0x80; id++ {
		if id.Known() && id.Key() == key {
			return id, true
		}
	}
	return 0, false
}

// editProperties sets, replaces or removes the properties named in edits, in a stable order.
func editProperties(ps *decode.Properties, edits map[string]json.RawMessage) error {
	keys := make([]string, 0, len(edits))
	for k := range edits {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		id, ok := propByKey(k)
		if !ok {
			return fmt.Errorf("%w: properties: no property is called %q", ErrEdit, k)
		}
		kept := (*ps)[:0:0]
		for _, pr := range *ps {
			if pr.ID != id {
				kept = append(kept, pr)
			}
		}
		raw := edits[k]
		if string(raw) == "null" {
			*ps = kept
			continue
		}
		add, err := propValues(id, raw)
		if err != nil {
			return fmt.Errorf("%w: properties.%s: %w", ErrEdit, k, err)
		}
		*ps = append(kept, add...)
	}
	return nil
}

// propValues reads a property's new value(s) from JSON.
func propValues(id decode.PropID, raw json.RawMessage) ([]decode.Property, error) {
	switch id.Type() {
	case decode.TypeString:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errors.New("want a string")
		}
		return []decode.Property{decode.StrProp(id, s)}, nil
	case decode.TypeBinary:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errors.New("want a string")
		}
		return []decode.Property{decode.BinProp(id, []byte(s))}, nil
	case decode.TypeStringPair:
		var pairs [][2]string
		if err := json.Unmarshal(raw, &pairs); err != nil {
			return nil, errors.New(`want a list of [name, value] pairs, e.g. [["unit","C"]]`)
		}
		out := make([]decode.Property, len(pairs))
		for i, kv := range pairs {
			out[i] = decode.UserProp(kv[0], kv[1])
		}
		return out, nil
	}
	var n uint32
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, errors.New("want a number from 0 to 4294967295")
	}
	return []decode.Property{decode.IntProp(id, n)}, nil
}
