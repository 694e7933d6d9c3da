package decode

import (
	"errors"
	"fmt"
	"testing"
)

// wantProblem is one expected problem; a zero level means an error.
type wantProblem struct {
	off    int
	field  string
	rule   string
	reason ReasonCode
	cat    error
	level  Level
}

func malformedAt(off int, field, rule string) wantProblem {
	return wantProblem{off, field, rule, MalformedPacket, ErrMalformed, LevelError}
}

func protocolAt(off int, field string, reason ReasonCode, rule string) wantProblem {
	return wantProblem{off, field, rule, reason, ErrProtocol, LevelError}
}

func warningAt(off int, field string) wantProblem {
	return wantProblem{off, field, ruleControlChar, 0, ErrSuspicious, LevelWarning}
}

func (w wantProblem) matches(p *Problem) bool {
	return p.Offset == w.off && p.Field == w.field && p.Rule == w.rule && p.Reason == w.reason &&
		p.Level == w.level && errors.Is(p, w.cat) && p.Category == w.cat
}

func (w wantProblem) String() string {
	return fmt.Sprintf("%s/%s rule=%q reason=0x%02X cat=%v at %d", w.level, w.field, w.rule, byte(w.reason), w.cat, w.off)
}

type problemCase struct {
	name  string
	v     Version
	b     []byte
	want  []wantProblem
	check func(t *testing.T, p Packet) // what best-effort decoding must still have read
}

func frameIn(t Type, prop []byte) []byte { b, _ := inPacket(t, prop); return b }

// problemCases has one case per check of the decoder.
var problemCases = []problemCase{
	// Fixed header and frame length.
	{"header/empty", V5, []byte{}, []wantProblem{malformedAt(0, "fixed_header", "")}, nil},
	{"header/ends-in-remaining-length", V5, []byte{
		0x30, 0x80, // PUBLISH, Remaining Length continues but the bytes end
	}, []wantProblem{malformedAt(2, "fixed_header", "")}, nil},
	{"header/remaining-length-5-bytes", V5, []byte{
		0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, // PUBLISH, a five-byte Remaining Length
	}, []wantProblem{malformedAt(1, "fixed_header.remaining_length", "")}, nil},
	{"header/remaining-length-non-minimal", V5, []byte{
		0xC0, 0x80, 0x00, // PINGREQ, Remaining Length 0 in two bytes
	}, []wantProblem{malformedAt(1, "fixed_header.remaining_length", "MQTT-1.5.5-1")}, func(t *testing.T, p Packet) {
		if p.Type() != PINGREQ || p.Info().Header.HeaderLen != 3 {
			t.Errorf("decoded %T %+v", p, p.Info().Header)
		}
	}},
	{"header/reserved-type", V5, []byte{
		0x00, 0x00, // type 0
	}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "")}, func(t *testing.T, p Packet) {
		if _, ok := p.(*Unknown); !ok || p.Type() != Reserved {
			t.Errorf("decoded %T", p)
		}
	}},
	{"header/AUTH-in-3.1.1", V311, []byte{
		0xF0, 0x01, // AUTH, which 3.1.1 does not have
		0x18, // body
	}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "")}, func(t *testing.T, p Packet) {
		if u, ok := p.(*Unknown); !ok || p.Type() != AUTH || string(u.Body) != "\x18" {
			t.Errorf("decoded %T %+v", p, p)
		}
	}},
	{"header/reserved-type-truncated", V5, []byte{
		0x00, 0x03, // type 0, remaining length 3
		0x01, // one byte of the body
	}, []wantProblem{malformedAt(0, "fixed_header.type_flags", ""), malformedAt(3, "fixed_header.remaining_length", "")}, nil},
	{"header/reserved-type-extra-bytes", V5, []byte{
		0x00, 0x01, // type 0, remaining length 1
		0x01, // the body
		0xC0, // a byte of the next frame
	}, []wantProblem{malformedAt(0, "fixed_header.type_flags", ""), malformedAt(3, "fixed_header.remaining_length", "")}, func(t *testing.T, p Packet) {
		if u := p.(*Unknown); string(u.Body) != "\x01" {
			t.Errorf("body % X", u.Body)
		}
	}},
	{"frame/truncated-between-fields", V5, []byte{
		0xC0, 0x02, // PINGREQ announcing 2 bytes that are missing
	}, []wantProblem{malformedAt(2, "fixed_header.remaining_length", "")}, nil},
	{"frame/truncated-in-field", V5, []byte{
		0x40, 0x02, // PUBACK, remaining length 2
		0x00, // half a packet identifier
	}, []wantProblem{malformedAt(2, "packet_id", "")}, nil},
	{"frame/left-over-bytes", V5, []byte{
		0xC0, 0x01, // PINGREQ with a body
		0x00,
	}, []wantProblem{malformedAt(2, "fixed_header.remaining_length", "")}, nil},
	{"frame/bytes-beyond-remaining-length", V5, []byte{
		0xC0, 0x00, // PINGREQ
		0xFF, // a byte of the next frame
	}, []wantProblem{malformedAt(2, "fixed_header.remaining_length", "")}, func(t *testing.T, p Packet) {
		if len(p.Info().Raw) != 2 {
			t.Errorf("Raw = % X", p.Info().Raw)
		}
	}},

	// Reserved flag bits.
	{"flags/PUBREL", V311, []byte{0x60, 0x02, 0x00, 0x01}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "MQTT-3.6.1-1")}, nil}, // PUBREL with flags 0000
	{"flags/SUBSCRIBE", V311, []byte{
		0x80, 0x06, // SUBSCRIBE with flags 0000
		0x00, 0x01, // packet identifier
		0x00, 0x01, 'a', // topic filter
		0x00, // requested QoS
	}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "MQTT-3.8.1-1")}, func(t *testing.T, p Packet) {
		if s := p.(*Subscribe); len(s.Subscriptions) != 1 || s.Subscriptions[0].Filter != "a" || s.PacketID != 1 {
			t.Errorf("decoded %+v", s)
		}
	}},
	{"flags/UNSUBSCRIBE", V311, []byte{
		0xA0, 0x05, // UNSUBSCRIBE with flags 0000
		0x00, 0x01, // packet identifier
		0x00, 0x01, 'a', // topic filter
	}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "MQTT-3.10.1-1")}, nil},
	{"flags/PUBREL-3.1-DUP", V31, []byte{0x6A, 0x02, 0x00, 0x01}, nil, nil}, // PUBREL DUP QoS 1: a 3.1 retransmission
	{"flags/SUBSCRIBE-3.1-QoS-0", V31, []byte{
		0x80, 0x06, // SUBSCRIBE with flags 0000
		0x00, 0x01, // packet identifier
		0x00, 0x01, 'a', // topic filter
		0x00, // requested QoS
	}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "")}, nil},
	{"flags/PINGREQ", V5, []byte{0xC1, 0x00}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "MQTT-2.1.3-1")}, nil},            // PINGREQ with flags 0001
	{"flags/PUBACK", V5, []byte{0x42, 0x02, 0x00, 0x01}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "MQTT-2.1.3-1")}, nil}, // PUBACK with flags 0010
	{"flags/DISCONNECT", V5, []byte{0xE8, 0x00}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "MQTT-3.14.1-1")}, nil},        // DISCONNECT with flags 1000
	{"flags/AUTH", V5, []byte{0xF1, 0x00}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "MQTT-3.15.1-1")}, nil},              // AUTH with flags 0001

	// Properties.
	{"properties/length-beyond-frame", V5, []byte{
		0x30, 0x04, // PUBLISH, remaining length 4
		0x00, 0x01, 't', // topic
		0x05, // property length 5, but the frame ends
	}, []wantProblem{malformedAt(5, "properties.length", "")}, nil},
	{"properties/length-truncated", V5, []byte{
		0x30, 0x04, // PUBLISH, remaining length 4
		0x00, 0x01, 't', // topic
		0x80, // property length continues, but the frame ends
	}, []wantProblem{malformedAt(5, "properties.length", "")}, nil},
	{"properties/identifier-non-minimal", V5, []byte{
		0x30, 0x06, // PUBLISH, remaining length 6
		0x00, 0x01, 't', // topic
		0x02,       // property length 2
		0x81, 0x00, // identifier 1 in two bytes
	}, []wantProblem{malformedAt(6, "properties", "")}, nil},
	{"properties/unknown-identifier", V5, []byte{
		0x30, 0x07, // PUBLISH, remaining length 7
		0x00, 0x01, 't', // topic
		0x02,       // property length 2
		0x05, 0x00, // identifier 0x05 does not exist
		'p', // payload
	}, []wantProblem{malformedAt(6, "properties", "")}, func(t *testing.T, p Packet) {
		if q := p.(*Publish); string(q.Payload) != "p" || q.Topic != "t" {
			t.Errorf("payload %q topic %q: the block's end is known, the rest must be read", q.Payload, q.Topic)
		}
	}},
	{"properties/not-allowed", V5, []byte{
		0x30, 0x0A, // PUBLISH, remaining length 10
		0x00, 0x01, 't', // topic
		0x05,                         // property length 5
		0x11, 0x00, 0x00, 0x00, 0x01, // session expiry interval: not a PUBLISH property
		'p', // payload
	}, []wantProblem{malformedAt(6, "properties.session_expiry_interval", "")}, func(t *testing.T, p Packet) {
		if q := p.(*Publish); len(q.Properties) != 1 || q.Properties[0].Int != 1 || string(q.Payload) != "p" {
			t.Errorf("decoded %+v", q)
		}
	}},
	{"properties/not-allowed-in-will", V5, frameIn(Will, []byte{
		0x23, 0x00, 0x01, // topic alias: a PUBLISH property, not a Will one
	}), []wantProblem{malformedAt(16, "will.properties.topic_alias", "")}, nil},
	{"properties/duplicate", V5, frameIn(PUBLISH, []byte{
		0x03, 0x00, 0x01, 'a', // content type a
		0x03, 0x00, 0x01, 'b', // content type b: only one is allowed
	}), []wantProblem{protocolAt(10, "properties.content_type", ProtocolError, "")}, func(t *testing.T, p Packet) {
		if ps := PropertiesOf(p); len(ps) != 2 || ps[1].Str != "b" {
			t.Errorf("properties %+v: duplicates must be kept", ps)
		}
	}},
	{"properties/subscription-identifier-twice-in-SUBSCRIBE", V5, []byte{
		0x82, 0x0B, // SUBSCRIBE, remaining length 11
		0x00, 0x01, // packet identifier
		0x04,       // property length 4
		0x0B, 0x01, // subscription identifier 1
		0x0B, 0x02, // subscription identifier 2: repeatable in PUBLISH only
		0x00, 0x01, 'a', // topic filter
		0x00, // options
	}, []wantProblem{protocolAt(7, "properties.subscription_identifier", ProtocolError, "")}, nil},
	{"properties/not-0-or-1", V5, frameIn(PUBLISH, []byte{
		0x01, 0x02, // payload format indicator 2
	}), []wantProblem{protocolAt(6, "properties.payload_format_indicator", ProtocolError, "")}, nil},
	{"properties/topic-alias-0", V5, frameIn(PUBLISH, []byte{
		0x23, 0x00, 0x00, // topic alias 0
	}), []wantProblem{protocolAt(6, "properties.topic_alias", TopicAliasInvalid, "MQTT-3.3.2-8")}, nil},
	{"properties/receive-maximum-0", V5, frameIn(CONNECT, []byte{
		0x21, 0x00, 0x00, // receive maximum 0
	}), []wantProblem{protocolAt(13, "properties.receive_maximum", ProtocolError, "")}, nil},
	{"properties/response-topic-wildcard", V5, frameIn(PUBLISH, []byte{
		0x08, 0x00, 0x01, '#', // response topic "#"
	}), []wantProblem{protocolAt(6, "properties.response_topic", ProtocolError, "MQTT-3.3.2-14")}, nil},
	{"properties/value-truncated-in-block", V5, []byte{
		0x30, 0x07, // PUBLISH, remaining length 7
		0x00, 0x01, 't', // topic
		0x02,       // property length 2
		0x23, 0x00, // topic alias, one byte short
		'p', // payload
	}, []wantProblem{malformedAt(7, "properties.topic_alias", "")}, func(t *testing.T, p Packet) {
		if q := p.(*Publish); string(q.Payload) != "p" {
			t.Errorf("payload %q", q.Payload)
		}
	}},
	{"properties/varint-truncated", V5, []byte{
		0x30, 0x06, // PUBLISH, remaining length 6
		0x00, 0x01, 't', // topic
		0x02,       // property length 2
		0x0B, 0x80, // subscription identifier, continues past the frame
	}, []wantProblem{malformedAt(7, "properties.subscription_identifier", "")}, nil},
	{"properties/user-property-null", V5, frameIn(PUBLISH, []byte{
		0x26, 0x00, 0x01, 0x00, 0x00, 0x00, // user property: name U+0000, empty value
	}), []wantProblem{malformedAt(9, "properties.user_property.name", "MQTT-1.5.4-2")}, nil},

	// CONNECT.
	{"CONNECT/unsupported-level", V5, []byte{
		0x10, 0x0D, // CONNECT, remaining length 13
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x06,       // protocol level 6
		0x02,       // flags: clean start
		0x00, 0x00, // keep alive
		0x00,       // property length (read as MQTT 5)
		0x00, 0x00, // client identifier
	}, []wantProblem{{8, "protocol_level", "MQTT-3.1.2-2", UnsupportedProtocol, ErrUnsupportedVersion, LevelError}}, nil},
	{"CONNECT/protocol-name", V5, []byte{
		0x10, 0x0D, // CONNECT, remaining length 13
		0x00, 0x04, 'M', 'Q', 'T', 'X', // protocol name MQTX
		0x05,       // protocol level 5
		0x02,       // flags
		0x00, 0x00, // keep alive
		0x00,       // property length
		0x00, 0x00, // client identifier
	}, []wantProblem{protocolAt(2, "protocol_name", UnsupportedProtocol, "MQTT-3.1.2-1")}, nil},
	{"CONNECT/level-3-named-MQTT", V31, []byte{
		0x10, 0x0C, // CONNECT, remaining length 12
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name MQTT; 3.1 says MQIsdp
		0x03,       // protocol level 3
		0x02,       // flags
		0x00, 0x00, // keep alive
		0x00, 0x00, // client identifier
	}, []wantProblem{protocolAt(2, "protocol_name", UnsupportedProtocol, "MQTT-3.1.2-1")}, nil},
	{"CONNECT/reserved-flag", V311, []byte{
		0x10, 0x0C, // CONNECT, remaining length 12
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4
		0x03,       // flags: clean session and the reserved bit
		0x00, 0x00, // keep alive
		0x00, 0x00, // client identifier
	}, []wantProblem{malformedAt(9, "connect_flags", "MQTT-3.1.2-3")}, nil},
	{"CONNECT/will-qos-without-will", V311, []byte{
		0x10, 0x0C, // CONNECT, remaining length 12
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4
		0x0A,       // flags: will QoS 1, clean session, no will flag
		0x00, 0x00, // keep alive
		0x00, 0x00, // client identifier
	}, []wantProblem{malformedAt(9, "connect_flags", "MQTT-3.1.2-11")}, nil},
	{"CONNECT/will-retain-without-will", V311, []byte{
		0x10, 0x0C, // CONNECT, remaining length 12
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4
		0x22,       // flags: will retain, clean session, no will flag
		0x00, 0x00, // keep alive
		0x00, 0x00, // client identifier
	}, []wantProblem{malformedAt(9, "connect_flags", "MQTT-3.1.2-13")}, nil},
	{"CONNECT/will-qos-3", V311, []byte{
		0x10, 0x11, // CONNECT, remaining length 17
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4
		0x1E,       // flags: will QoS 3, will, clean session
		0x00, 0x00, // keep alive
		0x00, 0x00, // client identifier
		0x00, 0x01, 'w', // will topic
		0x00, 0x00, // will message
	}, []wantProblem{malformedAt(9, "connect_flags", "MQTT-3.1.2-12")}, func(t *testing.T, p Packet) {
		if w := p.(*Connect).Will; w == nil || w.QoS != 3 || w.Topic != "w" {
			t.Errorf("will %+v", w)
		}
	}},
	{"CONNECT/password-without-username-3.1.1", V311, []byte{
		0x10, 0x0F, // CONNECT, remaining length 15
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4
		0x42,       // flags: password, clean session
		0x00, 0x00, // keep alive
		0x00, 0x00, // client identifier
		0x00, 0x01, 'p', // password
	}, []wantProblem{malformedAt(9, "connect_flags", "")}, func(t *testing.T, p Packet) {
		if c := p.(*Connect); string(c.Password) != "p" {
			t.Errorf("password %q", c.Password)
		}
	}},
	{"CONNECT/empty-client-id-without-clean-session", V311, []byte{
		0x10, 0x0C, // CONNECT, remaining length 12
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4
		0x00,       // flags: clean session 0
		0x00, 0x00, // keep alive
		0x00, 0x00, // empty client identifier
	}, []wantProblem{protocolAt(12, "client_id", ClientIDNotValid, "")}, nil},
	{"CONNECT/will-topic-empty", V311, []byte{
		0x10, 0x11, // CONNECT, remaining length 17
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4
		0x06,       // flags: will, clean session
		0x00, 0x00, // keep alive
		0x00, 0x01, 'c', // client identifier
		0x00, 0x00, // will topic: empty
		0x00, 0x00, // will message
	}, []wantProblem{protocolAt(15, "will.topic", TopicNameInvalid, "MQTT-4.7.3-1")}, nil},
	{"CONNECT/will-topic-wildcard", V311, []byte{
		0x10, 0x12, // CONNECT, remaining length 18
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4
		0x06,       // flags: will, clean session
		0x00, 0x00, // keep alive
		0x00, 0x01, 'c', // client identifier
		0x00, 0x01, '+', // will topic
		0x00, 0x00, // will message
	}, []wantProblem{protocolAt(15, "will.topic", TopicNameInvalid, "MQTT-3.3.2-2")}, nil},
	{"CONNECT/will-payload-not-utf8", V5, []byte{
		0x10, 0x16, // CONNECT, remaining length 22
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x05,       // protocol level 5
		0x06,       // flags: will, clean start
		0x00, 0x00, // keep alive
		0x00,       // property length 0
		0x00, 0x00, // client identifier
		0x02,       // will property length 2
		0x01, 0x01, // payload format indicator: UTF-8
		0x00, 0x01, 'w', // will topic
		0x00, 0x01, 0xFF, // will payload: not UTF-8
	}, []wantProblem{{23, "will.payload", "", PayloadFormatInvalid, ErrProtocol, LevelError}}, nil},

	// CONNACK.
	{"CONNACK/reserved-flags", V311, []byte{
		0x20, 0x02, // CONNACK
		0x02, // acknowledge flags: a reserved bit
		0x00, // accepted
	}, []wantProblem{malformedAt(2, "connack_flags", "MQTT-3.2.2-1")}, nil},
	{"CONNACK/reason-not-allowed", V5, []byte{
		0x20, 0x03, // CONNACK
		0x00, // flags
		0x10, // no matching subscribers: not a CONNACK code
		0x00, // property length
	}, []wantProblem{malformedAt(3, "reason_code", "MQTT-3.2.2-8")}, nil},
	{"CONNACK/no-property-length", V5, []byte{
		0x20, 0x02, // CONNACK as 3.1.1 would send it
		0x00, // flags
		0x00, // success
	}, []wantProblem{malformedAt(4, "properties.length", "MQTT-2.2.2-1")}, nil},
	{"CONNACK/reserved-return-code", V311, []byte{
		0x20, 0x02, // CONNACK
		0x00, // flags
		0x06, // return code 6 is reserved
	}, []wantProblem{malformedAt(3, "reason_code", "")}, nil},
	{"CONNACK/session-present-refused-v5", V5, []byte{
		0x20, 0x03, // CONNACK
		0x01, // session present
		0x80, // unspecified error
		0x00, // property length
	}, []wantProblem{protocolAt(2, "connack_flags", ProtocolError, "MQTT-3.2.2-6")}, nil},
	{"CONNACK/session-present-refused-v311", V311, []byte{
		0x20, 0x02, // CONNACK
		0x01, // session present
		0x01, // refused: protocol version
	}, []wantProblem{protocolAt(2, "connack_flags", ProtocolError, "")}, nil},

	// PUBLISH.
	{"PUBLISH/qos-3", V311, []byte{
		0x36, 0x05, // PUBLISH QoS 3
		0x00, 0x01, 't', // topic
		0x00, 0x01, // packet identifier
	}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "MQTT-3.3.1-4")}, func(t *testing.T, p Packet) {
		if q := p.(*Publish); q.QoS != 3 || q.PacketID != 1 {
			t.Errorf("decoded %+v", q)
		}
	}},
	{"PUBLISH/dup-at-qos-0", V311, []byte{
		0x38, 0x03, // PUBLISH DUP at QoS 0
		0x00, 0x01, 't', // topic
	}, []wantProblem{malformedAt(0, "fixed_header.type_flags", "MQTT-3.3.1-2")}, nil},
	{"PUBLISH/packet-id-0", V311, []byte{
		0x32, 0x05, // PUBLISH QoS 1
		0x00, 0x01, 't', // topic
		0x00, 0x00, // packet identifier 0
	}, []wantProblem{protocolAt(5, "packet_id", ProtocolError, "MQTT-2.2.1-3")}, nil},
	{"PUBLISH/topic-empty-v311", V311, []byte{
		0x30, 0x02, // PUBLISH
		0x00, 0x00, // empty topic
	}, []wantProblem{protocolAt(2, "topic", TopicNameInvalid, "MQTT-4.7.3-1")}, nil},
	{"PUBLISH/topic-empty-without-alias-v5", V5, []byte{
		0x30, 0x03, // PUBLISH
		0x00, 0x00, // empty topic
		0x00, // property length 0: no topic alias either
	}, []wantProblem{protocolAt(2, "topic", TopicNameInvalid, "MQTT-4.7.3-1")}, nil},
	{"PUBLISH/topic-wildcard", V311, []byte{
		0x30, 0x05, // PUBLISH
		0x00, 0x03, 'a', '/', '#', // topic with a wildcard
	}, []wantProblem{protocolAt(2, "topic", TopicNameInvalid, "MQTT-3.3.2-2")}, nil},
	{"PUBLISH/topic-length-beyond-frame", V311, []byte{
		0x30, 0x03, // PUBLISH
		0x00, 0x05, 't', // topic length 5, one byte present
	}, []wantProblem{malformedAt(2, "topic", "")}, nil},
	{"PUBLISH/payload-not-utf8", V5, []byte{
		0x30, 0x08, // PUBLISH
		0x00, 0x01, 't', // topic
		0x02,       // property length 2
		0x01, 0x01, // payload format indicator: UTF-8
		'o', 0xC0, // payload: 0xC0 is never valid UTF-8
	}, []wantProblem{{9, "payload", "", PayloadFormatInvalid, ErrProtocol, LevelError}}, nil},
	{"PUBLISH/everything-wrong", V5, []byte{
		0x3E, 0x0D, // PUBLISH DUP QoS 3
		0x00, 0x01, '+', // topic with a wildcard
		0x00, 0x00, // packet identifier 0
		0x05,             // property length 5
		0x23, 0x00, 0x00, // topic alias 0
		0x01, 0x01, // payload format indicator: UTF-8
		0x00, 0xFF, // payload: U+0000 and a bad byte
	}, []wantProblem{
		malformedAt(0, "fixed_header.type_flags", "MQTT-3.3.1-4"),
		protocolAt(5, "packet_id", ProtocolError, "MQTT-2.2.1-3"),
		protocolAt(8, "properties.topic_alias", TopicAliasInvalid, "MQTT-3.3.2-8"),
		protocolAt(2, "topic", TopicNameInvalid, "MQTT-3.3.2-2"),
		{13, "payload", "", PayloadFormatInvalid, ErrProtocol, LevelError},
	}, func(t *testing.T, p Packet) {
		q := p.(*Publish)
		if !q.Dup || q.QoS != 3 || q.Topic != "+" || len(q.Properties) != 2 || string(q.Payload) != "\x00\xFF" {
			t.Errorf("decoded %+v", q)
		}
	}},

	// PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT, AUTH.
	{"PUBACK/reason-not-allowed", V5, []byte{
		0x40, 0x03, // PUBACK
		0x00, 0x01, // packet identifier
		0x92, // packet identifier not found: PUBREL and PUBCOMP only
	}, []wantProblem{malformedAt(4, "reason_code", "")}, nil},
	{"PUBCOMP/unknown-reason", V5, []byte{
		0x70, 0x03, // PUBCOMP
		0x00, 0x01, // packet identifier
		0x03, // no such reason code
	}, []wantProblem{malformedAt(4, "reason_code", "")}, nil},
	{"PUBACK/packet-id-0", V311, []byte{
		0x40, 0x02, // PUBACK
		0x00, 0x00, // packet identifier 0
	}, []wantProblem{protocolAt(2, "packet_id", ProtocolError, "")}, nil},
	{"DISCONNECT/reason-not-allowed", V5, []byte{
		0xE0, 0x01, // DISCONNECT
		0x10, // no matching subscribers
	}, []wantProblem{malformedAt(2, "reason_code", "")}, nil},
	{"CONNECT/authentication-data-without-method", V5, frameIn(CONNECT, []byte{
		0x16, 0x00, 0x01, 0x07, // authentication data, no authentication method
	}), []wantProblem{protocolAt(13, "properties.authentication_data", ProtocolError, "")}, nil},
	{"AUTH/continue-without-method", V5, []byte{
		0xF0, 0x02, // AUTH
		0x18, // continue authentication
		0x00, // property length 0: no authentication method
	}, []wantProblem{protocolAt(4, "properties", ProtocolError, "")}, nil},
	{"AUTH/re-authenticate-without-method", V5, []byte{
		0xF0, 0x01, // AUTH
		0x19, // re-authenticate, properties left out
	}, []wantProblem{protocolAt(3, "properties", ProtocolError, "MQTT-4.12.1-1")}, nil},
	{"AUTH/reason-not-allowed", V5, []byte{
		0xF0, 0x01, // AUTH
		0x80, // unspecified error
	}, []wantProblem{malformedAt(2, "reason_code", "")}, nil},

	// SUBSCRIBE.
	{"SUBSCRIBE/packet-id-0", V311, []byte{
		0x82, 0x06, // SUBSCRIBE
		0x00, 0x00, // packet identifier 0
		0x00, 0x01, 'a', // topic filter
		0x00, // requested QoS
	}, []wantProblem{protocolAt(2, "packet_id", ProtocolError, "MQTT-2.2.1-3")}, nil},
	{"SUBSCRIBE/reserved-option-bits", V5, []byte{
		0x82, 0x07, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00,            // property length
		0x00, 0x01, 'a', // topic filter
		0xC0, // options: reserved bits 7 and 6
	}, []wantProblem{malformedAt(8, "subscription.options", "MQTT-3.8.3-5")}, nil},
	{"SUBSCRIBE/retain-handling-3", V5, []byte{
		0x82, 0x07, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00,            // property length
		0x00, 0x01, 'a', // topic filter
		0x30, // options: retain handling 3
	}, []wantProblem{protocolAt(8, "subscription.options", ProtocolError, "")}, nil},
	{"SUBSCRIBE/qos-3-v5", V5, []byte{
		0x82, 0x07, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00,            // property length
		0x00, 0x01, 'a', // topic filter
		0x03, // options: QoS 3
	}, []wantProblem{protocolAt(8, "subscription.options", ProtocolError, "")}, nil},
	{"SUBSCRIBE/qos-3-v311", V311, []byte{
		0x82, 0x06, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00, 0x01, 'a', // topic filter
		0x03, // requested QoS 3
	}, []wantProblem{malformedAt(7, "subscription.options", "")}, nil},
	{"SUBSCRIBE/reserved-bits-v311", V311, []byte{
		0x82, 0x06, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00, 0x01, 'a', // topic filter
		0x04, // requested QoS byte with bit 2 set (No Local only exists in MQTT 5)
	}, []wantProblem{malformedAt(7, "subscription.options", "")}, nil},
	{"SUBSCRIBE/no-filter-v5", V5, []byte{
		0x82, 0x03, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00, // property length
	}, []wantProblem{protocolAt(5, "subscription.filter", ProtocolError, "MQTT-3.8.3-2")}, nil},
	{"SUBSCRIBE/no-filter-v311", V311, []byte{
		0x82, 0x02, // SUBSCRIBE
		0x00, 0x01, // packet identifier
	}, []wantProblem{protocolAt(4, "subscription.filter", ProtocolError, "MQTT-3.8.3-2")}, nil},
	{"SUBSCRIBE/empty-filter", V311, []byte{
		0x82, 0x05, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00, 0x00, // empty topic filter
		0x00, // requested QoS
	}, []wantProblem{protocolAt(4, "subscription.filter", TopicFilterInvalid, "MQTT-4.7.3-1")}, nil},
	{"SUBSCRIBE/hash-not-last", V311, []byte{
		0x82, 0x0A, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00, 0x05, 'a', '/', '#', '/', 'b', // topic filter a/#/b
		0x00, // requested QoS
	}, []wantProblem{protocolAt(4, "subscription.filter", TopicFilterInvalid, "MQTT-4.7.1-1")}, nil},
	{"SUBSCRIBE/plus-not-whole-level", V311, []byte{
		0x82, 0x07, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00, 0x02, 'a', '+', // topic filter a+
		0x00, // requested QoS
	}, []wantProblem{protocolAt(4, "subscription.filter", TopicFilterInvalid, "MQTT-4.7.1-2")}, nil},
	{"SUBSCRIBE/share-without-filter", V5, []byte{
		0x82, 0x0E, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00,                                               // property length
		0x00, 0x08, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', // topic filter $share/g
		0x00, // options
	}, []wantProblem{protocolAt(5, "subscription.filter", TopicFilterInvalid, "MQTT-4.8.2-1")}, nil},
	{"SUBSCRIBE/share-name-wildcard", V5, []byte{
		0x82, 0x10, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00,                                                         // property length
		0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/', '+', '/', 'a', // topic filter $share/+/a
		0x00, // options
	}, []wantProblem{protocolAt(5, "subscription.filter", TopicFilterInvalid, "MQTT-4.8.2-2")}, nil},
	{"SUBSCRIBE/share-is-ordinary-in-3.1.1", V311, []byte{
		0x82, 0x0F, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/', '+', '/', 'a', // $share/+/a: a plain, valid filter in 3.1.1
		0x00, // requested QoS
	}, nil, nil},
	{"SUBSCRIBE/no-local-on-share", V5, []byte{
		0x82, 0x10, // SUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00,                                                         // property length
		0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a', // topic filter $share/g/a
		0x04, // options: no local
	}, []wantProblem{protocolAt(5, "subscription.filter", ProtocolError, "MQTT-3.8.3-4")}, nil},

	// SUBACK, UNSUBSCRIBE, UNSUBACK.
	{"SUBACK/reason-not-allowed-v5", V5, []byte{
		0x90, 0x04, // SUBACK
		0x00, 0x01, // packet identifier
		0x00, // property length
		0x10, // no matching subscribers
	}, []wantProblem{malformedAt(5, "reason_code", "")}, nil},
	{"SUBACK/reserved-return-code-v311", V311, []byte{
		0x90, 0x03, // SUBACK
		0x00, 0x01, // packet identifier
		0x03, // return code 3 is reserved
	}, []wantProblem{malformedAt(4, "reason_code", "")}, nil},
	{"SUBACK/no-reason-codes", V5, []byte{
		0x90, 0x03, // SUBACK
		0x00, 0x01, // packet identifier
		0x00, // property length
	}, []wantProblem{protocolAt(5, "reason_code", ProtocolError, "")}, nil},
	{"UNSUBSCRIBE/packet-id-0", V311, []byte{
		0xA2, 0x05, // UNSUBSCRIBE
		0x00, 0x00, // packet identifier 0
		0x00, 0x01, 'a', // topic filter
	}, []wantProblem{protocolAt(2, "packet_id", ProtocolError, "MQTT-2.2.1-3")}, nil},
	{"UNSUBSCRIBE/no-filter", V311, []byte{
		0xA2, 0x02, // UNSUBSCRIBE
		0x00, 0x01, // packet identifier
	}, []wantProblem{protocolAt(4, "filter", ProtocolError, "MQTT-3.10.3-2")}, nil},
	{"UNSUBSCRIBE/bad-filter", V311, []byte{
		0xA2, 0x06, // UNSUBSCRIBE
		0x00, 0x01, // packet identifier
		0x00, 0x02, 'a', '#', // topic filter a#
	}, []wantProblem{protocolAt(4, "filter", TopicFilterInvalid, "MQTT-4.7.1-1")}, nil},
	{"UNSUBACK/reason-not-allowed", V5, []byte{
		0xB0, 0x04, // UNSUBACK
		0x00, 0x01, // packet identifier
		0x00, // property length
		0x10, // no matching subscribers
	}, []wantProblem{malformedAt(5, "reason_code", "")}, nil},
	{"UNSUBACK/no-reason-codes", V5, []byte{
		0xB0, 0x03, // UNSUBACK
		0x00, 0x01, // packet identifier
		0x00, // property length
	}, []wantProblem{protocolAt(5, "reason_code", ProtocolError, "")}, nil},

	// UTF-8 strings (section 1.5.4).
	{"utf8/null", V311, []byte{
		0x30, 0x04, // PUBLISH
		0x00, 0x02, 'a', 0x00, // topic "a\x00"
	}, []wantProblem{malformedAt(5, "topic", "MQTT-1.5.4-2")}, nil},
	{"utf8/ill-formed", V311, []byte{
		0x30, 0x04, // PUBLISH
		0x00, 0x02, 'a', 0xFF, // topic with byte 0xFF
	}, []wantProblem{malformedAt(5, "topic", "MQTT-1.5.4-1")}, nil},
	{"utf8/overlong", V311, []byte{
		0x30, 0x04, // PUBLISH
		0x00, 0x02, 0xC1, 0x81, // topic: 'A' in two bytes
	}, []wantProblem{malformedAt(4, "topic", "MQTT-1.5.4-1")}, nil},
	{"utf8/surrogate", V311, []byte{
		0x30, 0x06, // PUBLISH
		0x00, 0x04, 'a', 0xED, 0xA0, 0x80, // topic: 'a' and U+D800
	}, []wantProblem{malformedAt(5, "topic", "MQTT-1.5.4-1")}, nil},
	{"utf8/control-character", V311, []byte{
		0x30, 0x04, // PUBLISH
		0x00, 0x02, 'a', 0x07, // topic: 'a' and BEL
	}, []wantProblem{warningAt(5, "topic")}, nil},
	{"utf8/c1-control-character", V311, []byte{
		0x30, 0x05, // PUBLISH
		0x00, 0x03, 'a', 0xC2, 0x85, // topic: 'a' and U+0085
	}, []wantProblem{warningAt(5, "topic")}, nil},
	{"utf8/non-character", V311, []byte{
		0x30, 0x05, // PUBLISH
		0x00, 0x03, 0xEF, 0xBF, 0xBF, // topic: U+FFFF
	}, []wantProblem{warningAt(4, "topic")}, nil},
	{"utf8/error-and-warning", V311, []byte{
		0x30, 0x05, // PUBLISH
		0x00, 0x03, 0x01, 'a', 0x00, // topic: U+0001, 'a', U+0000
	}, []wantProblem{warningAt(4, "topic"), malformedAt(6, "topic", "MQTT-1.5.4-2")}, nil},
}

func TestDecodeProblems(t *testing.T) {
	for _, c := range problemCases {
		t.Run(c.name, func(t *testing.T) {
			p := Decode(c.b, c.v)
			got := p.Info().Problems
			used := make([]bool, len(got))
		want:
			for _, w := range c.want {
				for i, g := range got {
					if !used[i] && w.matches(g) {
						used[i] = true
						continue want
					}
				}
				t.Errorf("missing %v", w)
			}
			for i, g := range got {
				if !used[i] {
					t.Errorf("unexpected problem:%s", problemList(Problems{g}))
				}
			}
			if t.Failed() {
				t.Logf("all problems:%s", problemList(got))
			}
			for _, g := range got {
				if g.Message == "" || g.Error() == "" {
					t.Errorf("problem without a message: %+v", g)
				}
				if g.Rule != "" && !got.Has(g.Rule) {
					t.Errorf("Has(%q) = false", g.Rule)
				}
			}
			if (got.Err() != nil) != (len(errorProblems(p)) > 0) {
				t.Errorf("Err() = %v with %d error-level problems", got.Err(), len(errorProblems(p)))
			}
			checkLayout(t, p)
			if c.check != nil {
				c.check(t, p)
			}
			if _, err := Encode(nil, p); err != nil {
				t.Errorf("Encode of a decoded packet: %v", err)
			}
		})
	}
}

func TestProblemError(t *testing.T) {
	p := &Problem{Offset: 4, Field: "topic", Rule: "MQTT-1.5.4-2", Category: ErrMalformed, Message: "null"}
	if got := p.Error(); got != "offset 4 (topic): null [MQTT-1.5.4-2]" {
		t.Errorf("Error() = %q", got)
	}
	if !errors.Is(p, ErrMalformed) || errors.Is(p, ErrProtocol) {
		t.Errorf("errors.Is does not follow the category")
	}
	ps := Problems{p, {Level: LevelWarning, Category: ErrSuspicious, Message: "w"}}
	if err := ps.Err(); !errors.Is(err, ErrMalformed) || errors.Is(err, ErrSuspicious) {
		t.Errorf("Err() = %v", err)
	}
	if (Problems{{Level: LevelWarning, Category: ErrSuspicious}}).Err() != nil {
		t.Errorf("Err() of warnings only is not nil")
	}
	if LevelError.String() != "error" || LevelWarning.String() != "warning" || LevelInfo.String() != "info" {
		t.Errorf("level names")
	}
}
