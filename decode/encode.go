package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ErrEncode is the category of errors from Encode: a value the wire format cannot carry.
var ErrEncode = errors.New("cannot encode")

// encoder accumulates a packet body.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) fail(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf("%w: "+format, append([]any{ErrEncode}, args...)...)
	}
}

func (e *encoder) u8(v byte)    { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }

func (e *encoder) vbi(v uint32, what string) {
	if v > MaxVarInt {
		e.fail("%s %d exceeds the variable byte integer maximum %d", what, v, MaxVarInt)
		return
	}
	e.b = AppendVarInt(e.b, v)
}

func (e *encoder) bytes(b []byte, what string) {
	if len(b) > 0xffff {
		e.fail("%s is %d bytes, more than 65535", what, len(b))
		return
	}
	e.u16(uint16(len(b)))
	e.b = append(e.b, b...)
}

func (e *encoder) str(s, what string) {
	if len(s) > 0xffff {
		e.fail("%s is %d bytes, more than 65535", what, len(s))
		return
	}
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}

// properties appends a property length and the properties.
func (e *encoder) properties(ps Properties) {
	var body encoder
	for _, p := range ps {
		body.b = AppendVarInt(body.b, uint32(p.ID))
		what := p.ID.Name()
		switch p.ID.Type() {
		case TypeByte:
			if p.Int > 0xff {
				body.fail("%s value %d does not fit a byte", what, p.Int)
			}
			body.u8(byte(p.Int))
		case TypeUint16:
			if p.Int > 0xffff {
				body.fail("%s value %d does not fit two bytes", what, p.Int)
			}
			body.u16(uint16(p.Int))
		case TypeUint32:
			body.u32(p.Int)
		case TypeVarInt:
			body.vbi(p.Int, what)
		case TypeString:
			body.str(p.Str, what)
		case TypeBinary:
			body.bytes(p.Bin, what)
		case TypeStringPair:
			body.str(p.Str, what+" name")
			body.str(p.Value, what+" value")
		default:
			body.fail("unknown property identifier 0x%02X", byte(p.ID))
		}
	}
	if body.err != nil && e.err == nil {
		e.err = body.err
	}
	e.vbi(uint32(len(body.b)), "property length")
	e.b = append(e.b, body.b...)
}

// Encode appends the wire form of p to dst. For packets built in code, Info().Version selects
// the protocol version (0 means MQTT 5); fixed-header flags are the standard's, except
// PUBLISH whose flags come from Dup, QoS and Retain. A decoded packet (Raw set) of another
// type keeps the flags it was received with, so that Encode(Decode(b)) reproduces b.
func Encode(dst []byte, p Packet) ([]byte, error) {
	v := p.Info().Version
	if !v.Valid() {
		v = V5
	}
	if v != V5 {
		if err := notIn311(p, v); err != nil {
			return dst, err
		}
	}
	var e encoder
	flags, _ := fixedFlags(p.Type())
	switch q := p.(type) {
	case *Connect:
		encodeConnect(&e, q)
	case *Connack:
		e.u8(q.AckFlags&^1 | b2u(q.SessionPresent))
		e.u8(byte(q.ReasonCode))
		if v == V5 {
			e.properties(q.Properties)
		}
	case *Publish:
		flags = b2u(q.Dup)<<3 | (q.QoS&3)<<1 | b2u(q.Retain)
		e.str(q.Topic, "topic")
		if q.QoS > 0 {
			e.u16(q.PacketID)
		}
		if v == V5 {
			e.properties(q.Properties)
		}
		e.b = append(e.b, q.Payload...)
	case *Ack:
		if q.PacketType < PUBACK || q.PacketType > PUBCOMP {
			return dst, fmt.Errorf("%w: Ack with packet type %s", ErrEncode, q.PacketType)
		}
		flags, _ = fixedFlags(q.PacketType)
		e.u16(q.PacketID)
		if v == V5 {
			e.reasonAndProperties(q.ReasonCode, q.Properties, q.HasReason, q.HasProperties)
		}
	case *Subscribe:
		e.u16(q.PacketID)
		if v == V5 {
			e.properties(q.Properties)
		}
		reserved := byte(0xc0) // bits the options carry as received, for faithful re-encoding
		if v != V5 {
			reserved = 0xfc
		}
		for _, s := range q.Subscriptions {
			e.str(s.Filter, "topic filter")
			e.u8(s.Options&reserved | s.QoS&3 | b2u(s.NoLocal)<<2 | b2u(s.RetainAsPublished)<<3 | (s.RetainHandling&3)<<4)
		}
	case *Suback:
		e.u16(q.PacketID)
		if v == V5 {
			e.properties(q.Properties)
		}
		for _, c := range q.ReasonCodes {
			e.u8(byte(c))
		}
	case *Unsubscribe:
		e.u16(q.PacketID)
		if v == V5 {
			e.properties(q.Properties)
		}
		for _, f := range q.Filters {
			e.str(f, "topic filter")
		}
	case *Unsuback:
		e.u16(q.PacketID)
		if v == V5 {
			e.properties(q.Properties)
			for _, c := range q.ReasonCodes {
				e.u8(byte(c))
			}
		}
	case *Pingreq, *Pingresp:
	case *Disconnect:
		if v == V5 {
			e.reasonAndProperties(q.ReasonCode, q.Properties, q.HasReason, q.HasProperties)
		}
	case *Auth:
		e.reasonAndProperties(q.ReasonCode, q.Properties, q.HasReason, q.HasProperties)
	case *Unknown:
		flags = q.Header.Flags
		e.b = append(e.b, q.Body...)
	default:
		return dst, fmt.Errorf("%w: unknown packet %T", ErrEncode, p)
	}
	if e.err != nil {
		return dst, fmt.Errorf("encoding %s: %w", p.Type(), e.err)
	}
	if h := p.Info().Header; p.Info().Raw != nil && h.Type == p.Type() && p.Type() != PUBLISH {
		flags = h.Flags // a decoded packet keeps the flags it came with, reserved bits included
	}
	if len(e.b) > MaxVarInt {
		return dst, fmt.Errorf("%w: %s body is %d bytes, above the maximum Remaining Length", ErrEncode, p.Type(), len(e.b))
	}
	dst = append(dst, byte(p.Type())<<4|flags&0x0f)
	dst = AppendVarInt(dst, uint32(len(e.b)))
	return append(dst, e.b...), nil
}

// notIn311 reports what MQTT 3.1 and 3.1.1 (version v) cannot carry: properties, reason codes
// outside CONNACK and SUBACK, and AUTH. Leaving them out silently would encode another packet.
func notIn311(p Packet, v Version) error {
	what := ""
	switch q := p.(type) {
	case *Connect:
		if q.Will != nil && len(q.Will.Properties) > 0 {
			what = "Will Properties"
		}
	case *Ack:
		if q.HasReason || q.HasProperties || q.ReasonCode != 0 {
			what = "a reason code"
		}
	case *Disconnect:
		if q.HasReason || q.HasProperties || q.ReasonCode != 0 {
			what = "a reason code"
		}
	case *Unsuback:
		if len(q.ReasonCodes) > 0 {
			what = "reason codes"
		}
	case *Auth:
		what = "a packet type AUTH"
	}
	if len(PropertiesOf(p)) > 0 {
		what = "properties"
	}
	if what == "" {
		return nil
	}
	return fmt.Errorf("%w: MQTT %s has no %s in %s", ErrEncode, v, strings.TrimPrefix(what, "a packet type "), p.Type())
}

// reasonAndProperties writes the optional trailing reason code and properties, leaving them
// out when the reason is 0x00, there are no properties and the caller did not ask for them.
func (e *encoder) reasonAndProperties(rc ReasonCode, ps Properties, hasRC, hasProps bool) {
	hasProps = hasProps || len(ps) > 0
	if hasRC || hasProps || rc != 0 {
		e.u8(byte(rc))
	}
	if hasProps {
		e.properties(ps)
	}
}

func encodeConnect(e *encoder, p *Connect) {
	v := p.Version
	if !v.Valid() {
		v = V5
	}
	name, level := p.ProtocolName, p.ProtocolLevel
	if name == "" {
		name = "MQTT"
		if v == V31 {
			name = "MQIsdp"
		}
	}
	if level == 0 {
		level = byte(v)
	}
	e.str(name, "protocol name")
	e.u8(level)
	flags := p.Flags&0x01 | b2u(p.CleanStart)<<1 | b2u(p.HasPassword)<<6 | b2u(p.HasUsername)<<7
	if p.Will != nil {
		flags |= 0x04 | (p.Will.QoS&3)<<3 | b2u(p.Will.Retain)<<5
	} else {
		flags |= p.Flags & 0x38 // keep Will QoS/Retain bits as received, for faithful re-encoding
	}
	e.u8(flags)
	e.u16(p.KeepAlive)
	if v == V5 {
		e.properties(p.Properties)
	}
	e.str(p.ClientID, "client identifier")
	if w := p.Will; w != nil {
		if v == V5 {
			e.properties(w.Properties)
		}
		e.str(w.Topic, "will topic")
		e.bytes(w.Payload, "will payload")
	}
	if p.HasUsername {
		e.str(p.Username, "user name")
	}
	if p.HasPassword {
		e.bytes(p.Password, "password")
	}
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}
