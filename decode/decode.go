package decode

import (
	"fmt"
	"strings"
)

// ParseHeader reads the fixed header at the start of b. It returns ok == false with a nil error
// when b ends inside the header, and an error when the header is malformed.
func ParseHeader(b []byte) (h FixedHeader, ok bool, err error) {
	if h, ok := shortHeader(b); ok {
		return h, true, nil
	}
	if len(b) == 0 {
		return h, false, nil
	}
	v, n, st := readVBI(b[1:])
	switch st {
	case vbiShort:
		return h, false, nil
	case vbiTooLong:
		return h, false, &Problem{Offset: 1, Field: "fixed_header.remaining_length", Reason: MalformedPacket,
			Category: ErrMalformed, Message: "Remaining Length is longer than 4 bytes"}
	}
	return FixedHeader{Type: Type(b[0] >> 4), Flags: b[0] & 0x0f, RemainingLength: int(v), HeaderLen: 1 + n}, true, nil
}

// shortHeader reads a fixed header of two or three bytes (a Remaining Length under 16,384,
// the most common) at the start of b; ok is false when b does not start with one, and
// ParseHeader tells the rest.
func shortHeader(b []byte) (h FixedHeader, ok bool) {
	switch {
	case len(b) >= 2 && b[1] < 0x80:
		return FixedHeader{Type: Type(b[0] >> 4), Flags: b[0] & 0x0f, RemainingLength: int(b[1]), HeaderLen: 2}, true
	case len(b) >= 3 && b[2] < 0x80:
		return FixedHeader{Type: Type(b[0] >> 4), Flags: b[0] & 0x0f, RemainingLength: int(b[1]&0x7f) | int(b[2])<<7, HeaderLen: 3}, true
	}
	return h, false
}

// PeekVersion returns the protocol level a CONNECT frame asks for.
func PeekVersion(frame []byte) (Version, bool) {
	h, ok, err := ParseHeader(frame)
	if !ok || err != nil || h.Type != CONNECT {
		return 0, false
	}
	b := frame[h.HeaderLen:]
	if len(b) < 2 {
		return 0, false
	}
	n := int(b[0])<<8 | int(b[1])
	if len(b) < 2+n+1 {
		return 0, false
	}
	return Version(b[2+n]), true
}

// Decode decodes one frame of protocol version v (the version of the CONNECT that opened the
// stream; a CONNECT itself is decoded by the level it carries). It always returns a packet with
// every field it could read; what is wrong is in Info().Problems. The packet aliases frame.
func Decode(frame []byte, v Version) Packet { return decode(frame, v, true, nil, nil) }

// Options say what DecodeWith spares or shares. The zero value is Decode.
type Options struct {
	// Lean leaves the fields unlocated: Info().Fields is nil, everything else is the same. It
	// is for consumers that never show where a field is (inspecting whole captures), and
	// spares them half the bytes allocated per packet.
	Lean bool
	// Topics, given for the frames of one stream in order, lets a PUBLISH whose topic name is
	// one of the last few seen share that string instead of allocating its own. Devices publish
	// to a handful of topics, so a capture's PUBLISH packets mostly cost no string.
	Topics *TopicCache
	// Reuse, with Lean, holds packets the caller is done with: a PUBLISH or an acknowledgement
	// (PUBACK, PUBREC, PUBREL, PUBCOMP) is decoded into one of them, not into an allocation of
	// its own.
	Reuse *Reuse
}

// DecodeWith is Decode as the options say.
func DecodeWith(frame []byte, v Version, o Options) Packet {
	return decode(frame, v, !o.Lean, o.Topics, o.Reuse)
}

// Reuse holds decoded packets for Options.Reuse to decode into again. The zero value is ready
// for use; it is not safe for concurrent use.
type Reuse struct {
	pubs []*Publish
	acks []*Ack
}

// Put gives p back to be decoded into again: a PUBLISH or an acknowledgement that nothing
// refers to any more (its bytes and strings, which it does not own, may live on).
func (u *Reuse) Put(p Packet) {
	switch q := p.(type) {
	case *Publish:
		u.pubs = append(u.pubs, q)
	case *Ack:
		u.acks = append(u.acks, q)
	}
}

// publish returns a PUBLISH given back, cleared, with the room its properties had; nil when
// there is none.
func (u *Reuse) publish() (*Publish, []Property) {
	if u == nil || len(u.pubs) == 0 {
		return nil, nil
	}
	n := len(u.pubs)
	p := u.pubs[n-1]
	u.pubs[n-1] = nil
	u.pubs = u.pubs[:n-1]
	props := p.Properties[:0]
	*p = Publish{}
	return p, props
}

// ack returns an acknowledgement given back, cleared; nil when there is none.
func (u *Reuse) ack() *Ack {
	if u == nil || len(u.acks) == 0 {
		return nil
	}
	n := len(u.acks)
	a := u.acks[n-1]
	u.acks[n-1] = nil
	u.acks = u.acks[:n-1]
	*a = Ack{}
	return a
}

// TopicCache holds the last few well-formed topic names of one stream (Options.Topics). The
// zero value is ready for use; it is not safe for concurrent use.
type TopicCache struct {
	names [4]string
	next  uint8
}

// lookup returns the cached name equal to b.
func (t *TopicCache) lookup(b []byte) (string, bool) {
	for _, s := range t.names {
		if s == string(b) && s != "" { // compares without converting b
			return s, true
		}
	}
	return "", false
}

func (t *TopicCache) add(s string) {
	t.names[t.next%uint8(len(t.names))] = s
	t.next++
}

func decode(frame []byte, v Version, locate bool, topics *TopicCache, reuse *Reuse) Packet {
	if !v.Valid() {
		v = V5
	}
	base := Base{Version: v}
	h, ok, err := ParseHeader(frame)
	if err != nil || !ok {
		u := &Unknown{Base: base}
		u.Raw = frame
		if err != nil {
			u.Problems = append(u.Problems, err.(*Problem))
		} else {
			u.Problems = append(u.Problems, &Problem{Offset: len(frame), Field: "fixed_header", Reason: MalformedPacket,
				Category: ErrMalformed, Message: "frame ends inside the fixed header"})
		}
		return u
	}
	base.Header = h
	r := reader{b: frame, off: h.HeaderLen, end: len(frame), locate: locate, topics: topics}
	total := h.HeaderLen + h.RemainingLength
	var extra int
	switch {
	case len(frame) < total:
		// Decode what is there; the first read past the end reports the truncation.
	case len(frame) > total:
		extra = len(frame) - total
		frame = frame[:total]
		r.b, r.end = frame, total
	}
	base.Raw = frame
	// A PUBLISH is decoded into pub, with room for props.
	var pub *Publish
	var props []Property
	if h.Type == PUBLISH && !locate {
		pub, props = reuse.publish()
	}
	switch {
	case pub != nil:
	case h.Type == PUBLISH && locate:
		lb := new(locatedPublishBlock)
		pub, props, base.Fields = &lb.p, lb.props[:0], lb.fields[:0]
	case h.Type == PUBLISH && v == V5 && !publishHasProperties(frame, h):
		pub = new(Publish) // half the bytes to allocate and clear
	case h.Type == PUBLISH && v == V5:
		blk := new(publishBlock)
		pub, props = &blk.p, blk.props[:0]
	case h.Type == PUBLISH:
		pub = new(Publish) // no properties before MQTT 5
	case !locate:
	case h.Type == CONNECT:
		base.Fields = make([]Field, 0, 24)
	default:
		base.Fields = make([]Field, 0, 8)
	}
	if locate {
		base.Fields = append(base.Fields, Field{"fixed_header.type_flags", 0, 1}, Field{"fixed_header.remaining_length", 1, h.HeaderLen - 1})
	}
	if h.HeaderLen > 2 && frame[h.HeaderLen-1] == 0 {
		// Reported here because ParseHeader only frames; base is copied into the packet below.
		base.Problems = append(base.Problems, &Problem{Offset: 1, Field: "fixed_header.remaining_length", Rule: "MQTT-1.5.5-1",
			Reason: MalformedPacket, Level: LevelError, Category: ErrMalformed,
			Message: fmt.Sprintf("Remaining Length %d uses %d bytes, more than the minimum", h.RemainingLength, h.HeaderLen-1)})
	}

	var p Packet
	switch h.Type {
	case CONNECT:
		p = decodeConnect(&r, base)
	case CONNACK:
		p = decodeConnack(&r, base)
	case PUBLISH:
		p = decodePublish(&r, base, pub, props)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		var a *Ack
		if !locate {
			a = reuse.ack()
		}
		if a == nil {
			a = new(Ack)
		}
		p = decodeAck(&r, base, a)
	case SUBSCRIBE:
		p = decodeSubscribe(&r, base)
	case SUBACK:
		p = decodeSuback(&r, base)
	case UNSUBSCRIBE:
		p = decodeUnsubscribe(&r, base)
	case UNSUBACK:
		p = decodeUnsuback(&r, base)
	case PINGREQ:
		q := &Pingreq{Base: base}
		r.base = &q.Base
		p = q
	case PINGRESP:
		q := &Pingresp{Base: base}
		r.base = &q.Base
		p = q
	case DISCONNECT:
		p = decodeDisconnect(&r, base)
	case AUTH:
		if v == V5 {
			p = decodeAuth(&r, base)
			break
		}
		fallthrough
	default:
		q := &Unknown{Base: base, Body: frame[min(h.HeaderLen, len(frame)):]}
		r.base = &q.Base
		r.malformed(0, "fixed_header.type_flags", "", fmt.Sprintf("packet type %d is reserved in MQTT %s", h.Type, base.Version))
		r.off = r.end
		p = q
	}
	if _, unknown := p.(*Unknown); !unknown {
		checkFlags(&r, h)
	}
	if len(frame) < total && !r.short {
		r.malformed(len(frame), "fixed_header.remaining_length", "",
			fmt.Sprintf("frame ends after %d bytes; its Remaining Length of %d needs %d", len(frame), h.RemainingLength, total))
	}
	if !r.broken && r.off < r.end {
		r.malformed(r.off, "fixed_header.remaining_length", "", fmt.Sprintf("%d bytes left over after the last field of %s", r.end-r.off, h.Type))
	}
	if extra > 0 {
		r.malformed(total, "fixed_header.remaining_length", "", fmt.Sprintf("frame has %d bytes beyond its Remaining Length of %d", extra, h.RemainingLength))
	}
	return p
}

// checkFlags checks the fixed header's flag bits for types whose flags are fixed.
func checkFlags(r *reader, h FixedHeader) {
	want, fixed := fixedFlags(h.Type)
	if !fixed || h.Flags == want {
		return
	}
	rule := ""
	switch {
	case r.base.Version == V31:
		// MQTT 3.1 sends PUBREL, SUBSCRIBE and UNSUBSCRIBE at QoS 1 and sets DUP when it
		// retransmits them; it numbers no statements, so no rule applies.
		if (h.Type == PUBREL || h.Type == SUBSCRIBE || h.Type == UNSUBSCRIBE) && h.Flags&^0x08 == want {
			return
		}
	case h.Type == PUBREL:
		rule = "MQTT-3.6.1-1"
	case h.Type == SUBSCRIBE:
		rule = "MQTT-3.8.1-1"
	case h.Type == UNSUBSCRIBE:
		rule = "MQTT-3.10.1-1"
	case h.Type == DISCONNECT:
		rule = "MQTT-3.14.1-1"
	case h.Type == AUTH:
		rule = "MQTT-3.15.1-1"
	default:
		rule = "MQTT-2.1.3-1"
	}
	r.malformed(0, "fixed_header.type_flags", rule, fmt.Sprintf("%s flags are 0x%X, the standard requires 0x%X", h.Type, h.Flags, want))
}

// Field names of properties, computed once so decoding does not build strings.
var propFields, willPropFields = func() (m, w [256]string) {
	for _, id := range PropIDs() {
		m[id] = "properties." + props[id].key
		w[id] = "will.properties." + props[id].key
	}
	return m, w
}()

// pairFields names the two halves of a string pair property, by the property's field name.
var pairFields = func() map[string][2]string {
	out := map[string][2]string{}
	for _, m := range [][256]string{propFields, willPropFields} {
		for id, f := range m {
			if f != "" && PropID(id).Type() == TypeStringPair {
				out[f] = [2]string{f + ".name", f + ".value"}
			}
		}
	}
	return out
}()

// properties reads a property block for packet type t (Will for Will Properties).
func (r *reader) properties(t Type) Properties {
	propsField, lenField, fields := "properties", "properties.length", &propFields
	if t == Will {
		propsField, lenField, fields = "will.properties", "will.properties.length", &willPropFields
	}
	start := r.off
	n, ok := r.vbi(lenField)
	if !ok {
		return nil
	}
	end := r.off + int(n)
	if end > r.end {
		r.malformed(start, lenField, "", fmt.Sprintf("property length %d but only %d bytes left", n, r.end-r.off))
		r.overrun(r.end)
		r.broken, r.off = true, r.end
		return nil
	}
	if n == 0 {
		return nil
	}
	outerEnd := r.end
	r.end = end
	var ps Properties
	if count := countProps(r.b[r.off:end]); cap(r.propBuf) >= count {
		ps, r.propBuf = r.propBuf[:0], nil
	} else {
		ps = make(Properties, 0, count)
	}
	for r.off < r.end && !r.broken {
		off := r.off
		idv, _, st := readVBI(r.b[r.off:r.end])
		if st != vbiOK {
			r.malformed(off, propsField, "", "property identifier is not a valid variable byte integer")
			r.broken = true
			break
		}
		id := PropID(idv)
		info, known := id.info()
		if !known || idv > 0xff {
			r.malformed(off, propsField, "", fmt.Sprintf("unknown property identifier 0x%02X; the rest of the properties cannot be read", idv))
			r.broken = true
			break
		}
		r.off++
		field := fields[id]
		prop := Property{ID: id, Offset: off}
		ok := false
		switch info.typ {
		case TypeByte:
			var v byte
			v, ok = r.u8(field)
			prop.Int = uint32(v)
		case TypeUint16:
			var v uint16
			v, ok = r.u16(field)
			prop.Int = uint32(v)
		case TypeUint32:
			prop.Int, ok = r.u32(field)
		case TypeVarInt:
			prop.Int, ok = r.vbi(field)
		case TypeString:
			prop.Str, ok = r.str(field)
		case TypeBinary:
			prop.Bin, ok = r.bin(field)
		case TypeStringPair:
			names := pairFields[field]
			prop.Str, ok = r.str(names[0])
			if ok {
				prop.Value, ok = r.str(names[1])
			}
		}
		if !ok {
			break
		}
		prop.Len = r.off - off
		r.checkProperty(prop, info, t, ps, field)
		ps = append(ps, prop)
	}
	r.end = outerEnd
	r.off = end
	if r.broken && end <= r.end {
		// A broken property block still has a known end: later fields can be read.
		r.broken = false
	}
	return ps
}

// countProps returns how many properties the block b holds, for sizing the result; a block it
// cannot walk counts one more than it could walk (the decoder stops there too).
func countProps(b []byte) int {
	n := 0
	for i := 0; i < len(b); n++ {
		info, ok := PropID(b[i]).info()
		if !ok {
			return n + 1
		}
		i++
		switch info.typ {
		case TypeByte:
			i++
		case TypeUint16:
			i += 2
		case TypeUint32:
			i += 4
		case TypeVarInt:
			for j := 0; j < 4 && i < len(b) && b[i]&0x80 != 0; j++ {
				i++
			}
			i++
		case TypeString, TypeBinary, TypeStringPair:
			for k := 0; k < 1+b2i(info.typ == TypeStringPair); k++ {
				if i+2 > len(b) {
					return n + 1
				}
				i += 2 + (int(b[i])<<8 | int(b[i+1]))
			}
		}
	}
	return n
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkProperty applies the standard's rules for one property in packet type t.
func (r *reader) checkProperty(p Property, info *propInfo, t Type, seen Properties, field string) {
	where := "Will Properties"
	if t != Will {
		where = typeNames[t]
	}
	if !p.ID.AllowedIn(t) {
		// An identifier not valid for the packet makes it malformed (section 2.2.2.2).
		r.malformed(p.Offset, field, "", fmt.Sprintf("%s is not allowed in %s", info.name, where))
	}
	if !p.ID.Repeatable(t) && seen.Has(p.ID) {
		r.protocol(p.Offset, field, ProtocolError, "", fmt.Sprintf("%s appears more than once in %s", info.name, where))
	}
	if info.bool01 && p.Int > 1 {
		r.protocol(p.Offset, field, ProtocolError, "", fmt.Sprintf("%s is %d; only 0 or 1 is allowed", info.name, p.Int))
	}
	if info.noZero && p.Int == 0 {
		reason := ProtocolError
		if p.ID == PropTopicAlias {
			reason = TopicAliasInvalid
		}
		r.protocol(p.Offset, field, reason, info.zeroRul, fmt.Sprintf("%s is 0, which the standard forbids", info.name))
	}
	if p.ID == PropResponseTopic && strings.ContainsAny(p.Str, "+#") {
		rule := "MQTT-3.3.2-14"
		if t == Will {
			rule = ""
		}
		r.protocol(p.Offset, field, ProtocolError, rule, "Response Topic contains a wildcard character")
	}
}

func decodeConnect(r *reader, base Base) Packet {
	p := &Connect{Base: base}
	r.base = &p.Base
	// cut notes the first part the reader did not reach whole, once it broke.
	cut := func(part ConnectPart) bool {
		if r.broken && p.Unread == 0 {
			p.Unread = part
		}
		return r.broken
	}
	nameOff := r.off
	p.ProtocolName, _ = r.str("protocol_name")
	levelOff := r.off
	p.ProtocolLevel, _ = r.u8("protocol_level")
	if cut(PartProtocol) {
		return p
	}
	v := Version(p.ProtocolLevel)
	if !v.Valid() {
		r.problem(levelOff, "protocol_level", LevelError, ErrUnsupportedVersion, UnsupportedProtocol, "MQTT-3.1.2-2",
			fmt.Sprintf("protocol level %d is not 3, 4 or 5; decoding the rest as MQTT 5", p.ProtocolLevel))
		v = V5
	}
	p.Version = v
	wantName := "MQTT"
	if v == V31 {
		wantName = "MQIsdp"
	}
	if p.ProtocolName != wantName {
		r.protocol(nameOff, "protocol_name", UnsupportedProtocol, "MQTT-3.1.2-1",
			fmt.Sprintf("protocol name %q; protocol level %d needs %q", p.ProtocolName, p.ProtocolLevel, wantName))
	}
	flagsOff := r.off
	flags, ok := r.u8("connect_flags")
	if !ok {
		cut(PartFlags)
		return p
	}
	p.Flags = flags
	if flags&0x01 != 0 {
		r.malformed(flagsOff, "connect_flags", "MQTT-3.1.2-3", "the reserved bit 0 of the Connect Flags is 1")
	}
	p.CleanStart = flags&0x02 != 0
	willFlag := flags&0x04 != 0
	willQoS := (flags >> 3) & 0x03
	willRetain := flags&0x20 != 0
	p.HasPassword = flags&0x40 != 0
	p.HasUsername = flags&0x80 != 0
	if !willFlag {
		if willQoS != 0 {
			r.malformed(flagsOff, "connect_flags", "MQTT-3.1.2-11", fmt.Sprintf("Will QoS is %d but the Will Flag is 0", willQoS))
		}
		if willRetain {
			r.malformed(flagsOff, "connect_flags", "MQTT-3.1.2-13", "Will Retain is 1 but the Will Flag is 0")
		}
	} else if willQoS == 3 {
		r.malformed(flagsOff, "connect_flags", "MQTT-3.1.2-12", "Will QoS is 3")
	}
	if v != V5 && p.HasPassword && !p.HasUsername {
		r.malformed(flagsOff, "connect_flags", "", "Password Flag is 1 but User Name Flag is 0 (not allowed before MQTT 5)")
	}
	p.KeepAlive, _ = r.u16("keep_alive")
	cut(PartKeepAlive)
	if v == V5 {
		p.Properties = r.properties(CONNECT)
		checkAuthProps(r, p.Properties, "properties.authentication_data")
		cut(PartProperties)
	}
	idOff := r.off
	p.ClientID, ok = r.str("client_id")
	if !ok {
		cut(PartClientID)
		return p
	}
	if p.ClientID == "" && v != V5 && !p.CleanStart {
		r.protocol(idOff, "client_id", ClientIDNotValid, "", "empty Client Identifier with Clean Session 0")
	}
	if willFlag {
		w := &WillMessage{QoS: willQoS, Retain: willRetain}
		p.Will = w
		if v == V5 {
			w.Properties = r.properties(Will)
		}
		topicOff := r.off
		w.Topic, _ = r.str("will.topic")
		checkTopicName(r, topicOff, "will.topic", w.Topic, false)
		w.Payload, _ = r.bin("will.payload")
		checkPayloadFormat(r, w.Properties, w.Payload, r.off-len(w.Payload), "will.payload")
		cut(PartWill)
	}
	if p.HasUsername {
		p.Username, _ = r.str("username")
		cut(PartUsername)
	}
	if p.HasPassword {
		p.Password, _ = r.bin("password")
		cut(PartPassword)
	}
	return p
}

// checkTopicName applies the rules for a Topic Name at off; aliased says a Topic Alias is present.
func checkTopicName(r *reader, off int, field, topic string, aliased bool) {
	if topic == "" {
		if !aliased && !r.broken {
			r.protocol(off, field, TopicNameInvalid, "MQTT-4.7.3-1", "Topic Name is empty")
		}
		return
	}
	if strings.IndexByte(topic, '+') >= 0 || strings.IndexByte(topic, '#') >= 0 { // faster than ContainsAny
		r.protocol(off, field, TopicNameInvalid, "MQTT-3.3.2-2", fmt.Sprintf("Topic Name %q contains a wildcard character", topic))
	}
}

// checkPayloadFormat reports a payload that is not UTF-8 though its Payload Format Indicator is 1.
func checkPayloadFormat(r *reader, ps Properties, payload []byte, off int, field string) {
	if v, ok := ps.Int(PropPayloadFormat); !ok || v != 1 {
		return
	}
	if e, _ := checkUTF8(payload); e != nil {
		r.problem(off+e.at, field, LevelError, ErrProtocol, PayloadFormatInvalid, "",
			"Payload Format Indicator is 1 (UTF-8) but the payload "+strings.TrimPrefix(e.msg, "string "))
	}
}

func decodeConnack(r *reader, base Base) Packet {
	p := &Connack{Base: base}
	r.base = &p.Base
	off := r.off
	flags, ok := r.u8("connack_flags")
	if !ok {
		return p
	}
	p.AckFlags = flags
	p.SessionPresent = flags&0x01 != 0
	if flags&0xfe != 0 {
		r.malformed(off, "connack_flags", "MQTT-3.2.2-1", fmt.Sprintf("reserved bits of the Connect Acknowledge Flags are 0x%02X, must be 0", flags&0xfe))
	}
	rcOff := r.off
	rc, ok := r.u8("reason_code")
	if !ok {
		return p
	}
	p.ReasonCode = ReasonCode(rc)
	if p.Version == V5 {
		if !p.ReasonCode.AllowedIn(CONNACK) {
			r.malformed(rcOff, "reason_code", "MQTT-3.2.2-8", fmt.Sprintf("reason code 0x%02X is not allowed in CONNACK", rc))
		}
		if r.remaining() > 0 {
			p.Properties = r.properties(CONNACK)
			checkAuthProps(r, p.Properties, "properties.authentication_data")
		} else {
			r.malformed(r.off, "properties.length", "MQTT-2.2.2-1", "CONNACK has no property length")
		}
	} else if rc > 5 {
		r.malformed(rcOff, "reason_code", "", fmt.Sprintf("CONNACK return code %d is reserved", rc))
	}
	if rc != 0 && p.SessionPresent {
		rule := "MQTT-3.2.2-6"
		if p.Version != V5 {
			rule = "" // MQTT 3.1.1 numbers its statements differently
		}
		r.protocol(off, "connack_flags", ProtocolError, rule, "Session Present is 1 in a CONNACK that refuses the connection")
	}
	return p
}

// publishHasProperties tells whether an MQTT 5 PUBLISH frame may have properties: false only
// when its Property Length is there and 0 (else decodePublish reports what is wrong).
func publishHasProperties(frame []byte, h FixedHeader) bool {
	off := h.HeaderLen
	if off+2 > len(frame) {
		return true
	}
	off += 2 + (int(frame[off])<<8 | int(frame[off+1]))
	if (h.Flags>>1)&3 != 0 {
		off += 2 // Packet Identifier
	}
	return off >= len(frame) || frame[off] != 0
}

// publishBlock is a decoded MQTT 5 PUBLISH with room for the properties of a typical one, and
// locatedPublishBlock one with room for its fields too, so that decoding it takes one
// allocation besides the topic string.
type publishBlock struct {
	p     Publish
	props [2]Property
}

type locatedPublishBlock struct {
	publishBlock
	fields [10]Field
}

func decodePublish(r *reader, base Base, p *Publish, props []Property) Packet {
	p.Base = base
	r.propBuf = props
	r.base = &p.Base
	f := base.Header.Flags
	p.Dup, p.QoS, p.Retain = f&0x08 != 0, (f>>1)&0x03, f&0x01 != 0
	if p.QoS == 3 {
		r.malformed(0, "fixed_header.type_flags", "MQTT-3.3.1-4", "PUBLISH QoS is 3")
	}
	if p.Dup && p.QoS == 0 {
		r.malformed(0, "fixed_header.type_flags", "MQTT-3.3.1-2", "PUBLISH has DUP 1 at QoS 0")
	}
	topicOff := r.off
	p.Topic, _ = r.topic()
	if p.QoS > 0 {
		p.PacketID = r.packetID("PUBLISH at QoS > 0", "MQTT-2.2.1-3")
	}
	aliased := false
	if p.Version == V5 {
		p.Properties = r.properties(PUBLISH)
		aliased = p.Properties.Has(PropTopicAlias)
	}
	checkTopicName(r, topicOff, "topic", p.Topic, aliased)
	if !r.broken {
		p.Payload = r.b[r.off:r.end:r.end]
		if len(p.Payload) > 0 {
			r.mark("payload", r.off, len(p.Payload))
		}
		checkPayloadFormat(r, p.Properties, p.Payload, r.off, "payload")
		r.off = r.end
	}
	return p
}

// reasonAndProperties reads the optional MQTT 5 reason code and properties that end
// PUBACK..PUBCOMP, DISCONNECT and AUTH.
func reasonAndProperties(r *reader, t Type) (rc ReasonCode, ps Properties, hasRC, hasProps bool) {
	if r.remaining() <= 0 || r.broken {
		return 0, nil, false, false
	}
	off := r.off
	c, _ := r.u8("reason_code")
	rc, hasRC = ReasonCode(c), true
	if !rc.AllowedIn(t) {
		r.malformed(off, "reason_code", "", fmt.Sprintf("reason code 0x%02X (%s) is not allowed in %s", c, rc.Name(t), t))
	}
	if r.remaining() > 0 {
		ps, hasProps = r.properties(t), true
	}
	return rc, ps, hasRC, hasProps
}

// decodeAck decodes into p, a zero Ack.
func decodeAck(r *reader, base Base, p *Ack) Packet {
	p.Base, p.PacketType = base, base.Header.Type
	r.base = &p.Base
	// No numbered statement: MQTT-2.2.1-3 is about the sender of PUBLISH and SUBSCRIBE.
	p.PacketID = r.packetID(p.PacketType.String(), "")
	if p.Version == V5 {
		p.ReasonCode, p.Properties, p.HasReason, p.HasProperties = reasonAndProperties(r, p.PacketType)
	}
	return p
}

func decodeSubscribe(r *reader, base Base) Packet {
	p := &Subscribe{Base: base}
	r.base = &p.Base
	p.PacketID = r.packetID("SUBSCRIBE", "MQTT-2.2.1-3")
	if p.Version == V5 {
		p.Properties = r.properties(SUBSCRIBE)
	}
	for !r.broken && r.remaining() > 0 {
		fOff := r.off
		filter, ok := r.str("subscription.filter")
		if !ok {
			break
		}
		oOff := r.off
		opts, ok := r.u8("subscription.options")
		if !ok {
			break
		}
		s := Subscription{Filter: filter, Options: opts, QoS: opts & 0x03}
		if p.Version == V5 {
			s.NoLocal, s.RetainAsPublished, s.RetainHandling = opts&0x04 != 0, opts&0x08 != 0, (opts>>4)&0x03
			if opts&0xc0 != 0 {
				r.malformed(oOff, "subscription.options", "MQTT-3.8.3-5", fmt.Sprintf("reserved bits of Subscription Options are set (0x%02X)", opts))
			}
			if s.RetainHandling == 3 {
				r.protocol(oOff, "subscription.options", ProtocolError, "", "Retain Handling is 3")
			}
		} else if opts&0xfc != 0 {
			r.malformed(oOff, "subscription.options", "", fmt.Sprintf("reserved bits of the Requested QoS byte are set (0x%02X)", opts))
		}
		if s.QoS == 3 {
			if p.Version == V5 {
				// MQTT 5 section 3.8.3.1: a Maximum QoS of 3 is a Protocol Error.
				r.protocol(oOff, "subscription.options", ProtocolError, "", "requested QoS is 3")
			} else {
				r.malformed(oOff, "subscription.options", "", "requested QoS is 3")
			}
		}
		checkTopicFilter(r, fOff, "subscription.filter", filter, s.NoLocal)
		p.Subscriptions = append(p.Subscriptions, s)
	}
	if len(p.Subscriptions) == 0 && !r.broken {
		r.protocol(r.off, "subscription.filter", ProtocolError, "MQTT-3.8.3-2", "SUBSCRIBE has no topic filter")
	}
	return p
}

// checkTopicFilter applies the syntax rules of Topic Filters and shared subscriptions.
func checkTopicFilter(r *reader, off int, field, filter string, noLocal bool) {
	if filter == "" {
		r.protocol(off, field, TopicFilterInvalid, "MQTT-4.7.3-1", "Topic Filter is empty")
		return
	}
	// Shared subscriptions are MQTT 5's: in 3.1.1 "$share/..." is an ordinary filter.
	if msg, rule := filterProblem(filter, r.base.Version == V5); msg != "" {
		r.protocol(off, field, TopicFilterInvalid, rule, msg)
	}
	if noLocal && strings.HasPrefix(filter, "$share/") {
		r.protocol(off, field, ProtocolError, "MQTT-3.8.3-4", "No Local is 1 on a shared subscription")
	}
}

// FilterProblem checks a Topic Filter's syntax and returns what is wrong with it and the rule,
// or "" when it is well-formed.
func FilterProblem(filter string) (msg, rule string) { return filterProblem(filter, true) }

// filterProblem is FilterProblem; shared says whether "$share/" starts a shared subscription.
func filterProblem(filter string, shared bool) (msg, rule string) {
	f := filter
	if rest, ok := strings.CutPrefix(f, "$share/"); ok && shared {
		name, sub, found := strings.Cut(rest, "/")
		if !found || name == "" || sub == "" {
			return fmt.Sprintf("shared subscription %q needs $share/{ShareName}/{filter}", filter), "MQTT-4.8.2-1"
		}
		if strings.ContainsAny(name, "+#") {
			return fmt.Sprintf("share name %q contains a wildcard", name), "MQTT-4.8.2-2"
		}
		f = sub
	}
	for {
		l, rest, more := strings.Cut(f, "/")
		if strings.Contains(l, "#") && (l != "#" || more) {
			return fmt.Sprintf("Topic Filter %q: '#' must be alone in the last level", filter), "MQTT-4.7.1-1"
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Sprintf("Topic Filter %q: '+' must fill a whole level", filter), "MQTT-4.7.1-2"
		}
		if !more {
			return "", ""
		}
		f = rest
	}
}

func decodeSuback(r *reader, base Base) Packet {
	p := &Suback{Base: base}
	r.base = &p.Base
	p.PacketID, _ = r.u16("packet_id")
	if p.Version == V5 {
		p.Properties = r.properties(SUBACK)
	}
	p.ReasonCodes = r.reasonCodes(SUBACK, p.Version)
	return p
}

func decodeUnsubscribe(r *reader, base Base) Packet {
	p := &Unsubscribe{Base: base}
	r.base = &p.Base
	p.PacketID = r.packetID("UNSUBSCRIBE", "MQTT-2.2.1-3")
	if p.Version == V5 {
		p.Properties = r.properties(UNSUBSCRIBE)
	}
	for !r.broken && r.remaining() > 0 {
		fOff := r.off
		f, ok := r.str("filter")
		if !ok {
			break
		}
		checkTopicFilter(r, fOff, "filter", f, false)
		p.Filters = append(p.Filters, f)
	}
	if len(p.Filters) == 0 && !r.broken {
		r.protocol(r.off, "filter", ProtocolError, "MQTT-3.10.3-2", "UNSUBSCRIBE has no topic filter")
	}
	return p
}

func decodeUnsuback(r *reader, base Base) Packet {
	p := &Unsuback{Base: base}
	r.base = &p.Base
	p.PacketID, _ = r.u16("packet_id")
	if p.Version != V5 {
		return p
	}
	p.Properties = r.properties(UNSUBACK)
	p.ReasonCodes = r.reasonCodes(UNSUBACK, p.Version)
	return p
}

func decodeDisconnect(r *reader, base Base) Packet {
	p := &Disconnect{Base: base}
	r.base = &p.Base
	if p.Version == V5 {
		p.ReasonCode, p.Properties, p.HasReason, p.HasProperties = reasonAndProperties(r, DISCONNECT)
	}
	return p
}

func decodeAuth(r *reader, base Base) Packet {
	p := &Auth{Base: base}
	r.base = &p.Base
	p.ReasonCode, p.Properties, p.HasReason, p.HasProperties = reasonAndProperties(r, AUTH)
	checkAuthProps(r, p.Properties, "properties.authentication_data")
	if !r.broken && !p.Properties.Has(PropAuthMethod) && (p.ReasonCode == ContinueAuthentication || p.ReasonCode == ReAuthenticate) {
		// Section 3.15.2.2.2: omitting the Authentication Method is a Protocol Error. An AUTH
		// with Remaining Length 0 (Success, section 3.15.2.1) is left alone.
		rule := ""
		if p.ReasonCode == ReAuthenticate {
			rule = "MQTT-4.12.1-1"
		}
		r.protocol(r.off, "properties", ProtocolError, rule, fmt.Sprintf("AUTH with reason code 0x%02X has no Authentication Method", byte(p.ReasonCode)))
	}
	return p
}

// checkAuthProps reports Authentication Data without an Authentication Method, a Protocol Error
// (sections 3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3).
func checkAuthProps(r *reader, ps Properties, field string) {
	if d, ok := ps.Get(PropAuthData); ok && !ps.Has(PropAuthMethod) {
		r.protocol(d.Offset, field, ProtocolError, "", "Authentication Data without an Authentication Method")
	}
}

// packetID reads a Packet Identifier and reports 0, which no packet may carry; subject names
// the packet in the message.
func (r *reader) packetID(subject, rule string) uint16 {
	off := r.off
	id, ok := r.u16("packet_id")
	if ok && id == 0 {
		r.protocol(off, "packet_id", ProtocolError, rule, subject+" has Packet Identifier 0")
	}
	return id
}

// reasonCodes reads the list of reason codes that ends a SUBACK or UNSUBACK, checking each
// against the packet type (MQTT 5) or the return codes of MQTT 3.1.1's SUBACK.
func (r *reader) reasonCodes(t Type, v Version) []ReasonCode {
	var codes []ReasonCode
	for !r.broken && r.remaining() > 0 {
		off := r.off
		c, _ := r.u8("reason_code")
		rc := ReasonCode(c)
		codes = append(codes, rc)
		if v == V5 && !rc.AllowedIn(t) {
			r.malformed(off, "reason_code", "", fmt.Sprintf("reason code 0x%02X (%s) is not allowed in %s", c, rc.Name(t), t))
		} else if v != V5 && c > 2 && c != 0x80 {
			r.malformed(off, "reason_code", "", fmt.Sprintf("%s return code 0x%02X is reserved", t, c))
		}
	}
	if len(codes) == 0 && !r.broken {
		r.protocol(r.off, "reason_code", ProtocolError, "", t.String()+" has no reason codes")
	}
	return codes
}
