package decode

import (
	"bytes"
	"errors"
	"testing"
)

// inPacket wraps one property's bytes in the smallest well-formed MQTT 5 packet of type t (Will
// for a Will Property) and returns the frame and the property's offset in it.
func inPacket(t Type, prop []byte) (frame []byte, off int) {
	n := byte(len(prop))
	switch t {
	case PUBLISH:
		frame = []byte{
			0x30, 4 + n, // PUBLISH QoS 0
			0x00, 0x01, 't', // topic
			n, // property length
		}
	case CONNACK:
		frame = []byte{
			0x20, 3 + n, // CONNACK
			0x00, // acknowledge flags
			0x00, // reason code
			n,    // property length
		}
	case AUTH:
		if prop[0] != byte(PropAuthMethod) {
			// Every AUTH that continues authentication names its method.
			frame = []byte{
				0xF0, 7 + n, // AUTH
				0x18,                       // reason code: continue authentication
				5 + n,                      // property length
				0x15, 0x00, 0x02, 'm', '1', // authentication method
			}
			break
		}
		frame = []byte{
			0xF0, 2 + n, // AUTH
			0x18, // reason code: continue authentication
			n,    // property length
		}
	case CONNECT:
		frame = []byte{
			0x10, 13 + n, // CONNECT
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
			0x05,       // protocol level
			0x02,       // flags: clean start
			0x00, 0x00, // keep alive
			n, // property length
		}
		off = len(frame)
		return append(append(frame, prop...),
			0x00, 0x00, // client identifier
		), off
	case Will:
		frame = []byte{
			0x10, 19 + n, // CONNECT
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
			0x05,       // protocol level
			0x06,       // flags: will, clean start
			0x00, 0x00, // keep alive
			0x00,       // property length 0
			0x00, 0x00, // client identifier
			n, // will property length
		}
		off = len(frame)
		return append(append(frame, prop...),
			0x00, 0x01, 'w', // will topic
			0x00, 0x00, // will payload
		), off
	default:
		panic("inPacket: " + t.String())
	}
	return append(frame, prop...), len(frame)
}

// propertyCases has every property of MQTT 5.0, in a packet that allows it.
var propertyCases = []struct {
	in    Type
	b     []byte // identifier and value
	want  Property
	field string // the name of the value's field (the name's, for a User Property)
	vlen  int    // the length of that field
}{
	{PUBLISH, []byte{0x01, 0x01}, IntProp(PropPayloadFormat, 1), "payload_format_indicator", 1},                                       // payload format indicator: UTF-8
	{PUBLISH, []byte{0x02, 0x00, 0x01, 0x51, 0x80}, IntProp(PropMessageExpiry, 86400), "message_expiry_interval", 4},                  // message expiry interval 86400 s
	{PUBLISH, []byte{0x03, 0x00, 0x04, 'j', 's', 'o', 'n'}, StrProp(PropContentType, "json"), "content_type", 6},                      // content type
	{PUBLISH, []byte{0x08, 0x00, 0x03, 'r', '/', 'x'}, StrProp(PropResponseTopic, "r/x"), "response_topic", 5},                        // response topic
	{PUBLISH, []byte{0x09, 0x00, 0x03, 0x00, 0xFF, 0x10}, BinProp(PropCorrelationData, []byte{0, 0xFF, 0x10}), "correlation_data", 5}, // correlation data
	{PUBLISH, []byte{0x0B, 0xFF, 0x7F}, IntProp(PropSubscriptionID, 16383), "subscription_identifier", 2},                             // subscription identifier 16383 (two-byte VBI)
	{CONNECT, []byte{0x11, 0xFF, 0xFF, 0xFF, 0xFF}, IntProp(PropSessionExpiry, 0xFFFFFFFF), "session_expiry_interval", 4},             // session expiry interval: never
	{CONNACK, []byte{0x12, 0x00, 0x02, 'a', '1'}, StrProp(PropAssignedClientID, "a1"), "assigned_client_identifier", 4},               // assigned client identifier
	{CONNACK, []byte{0x13, 0x01, 0x2C}, IntProp(PropServerKeepAlive, 300), "server_keep_alive", 2},                                    // server keep alive 300
	{AUTH, []byte{0x15, 0x00, 0x03, 'K', 'R', 'B'}, StrProp(PropAuthMethod, "KRB"), "authentication_method", 5},                       // authentication method
	{AUTH, []byte{0x16, 0x00, 0x00}, BinProp(PropAuthData, []byte{}), "authentication_data", 2},                                       // authentication data: empty (after a method)
	{CONNECT, []byte{0x17, 0x00}, IntProp(PropRequestProblemInfo, 0), "request_problem_information", 1},                               // request problem information 0
	{Will, []byte{0x18, 0x00, 0x00, 0x00, 0x3C}, IntProp(PropWillDelay, 60), "will_delay_interval", 4},                                // will delay interval 60
	{CONNECT, []byte{0x19, 0x01}, IntProp(PropRequestResponseInfo, 1), "request_response_information", 1},                             // request response information 1
	{CONNACK, []byte{0x1A, 0x00, 0x02, 'r', '/'}, StrProp(PropResponseInfo, "r/"), "response_information", 4},                         // response information
	{CONNACK, []byte{0x1C, 0x00, 0x01, 'h'}, StrProp(PropServerReference, "h"), "server_reference", 3},                                // server reference
	{CONNACK, []byte{0x1F, 0x00, 0x03, 'w', 'h', 'y'}, StrProp(PropReasonString, "why"), "reason_string", 5},                          // reason string
	{CONNECT, []byte{0x21, 0xFF, 0xFF}, IntProp(PropReceiveMaximum, 65535), "receive_maximum", 2},                                     // receive maximum 65535
	{CONNECT, []byte{0x22, 0x00, 0x00}, IntProp(PropTopicAliasMaximum, 0), "topic_alias_maximum", 2},                                  // topic alias maximum 0
	{PUBLISH, []byte{0x23, 0xFF, 0xFF}, IntProp(PropTopicAlias, 65535), "topic_alias", 2},                                             // topic alias 65535
	{CONNACK, []byte{0x24, 0x00}, IntProp(PropMaximumQoS, 0), "maximum_qos", 1},                                                       // maximum QoS 0
	{CONNACK, []byte{0x25, 0x01}, IntProp(PropRetainAvailable, 1), "retain_available", 1},                                             // retain available 1
	{Will, []byte{0x26, 0x00, 0x01, 'n', 0x00, 0x02, 'v', 'v'}, UserProp("n", "vv"), "user_property.name", 3},                         // user property n=vv
	{CONNECT, []byte{0x27, 0x00, 0x00, 0x04, 0x00}, IntProp(PropMaximumPacketSize, 1024), "maximum_packet_size", 4},                   // maximum packet size 1024
	{CONNACK, []byte{0x28, 0x00}, IntProp(PropWildcardSubAvailable, 0), "wildcard_subscription_available", 1},                         // wildcard subscription available 0
	{CONNACK, []byte{0x29, 0x00}, IntProp(PropSubIDAvailable, 0), "subscription_identifier_available", 1},                             // subscription identifiers available 0
	{CONNACK, []byte{0x2A, 0x01}, IntProp(PropSharedSubAvailable, 1), "shared_subscription_available", 1},                             // shared subscription available 1
}

func TestProperties(t *testing.T) {
	seen := map[PropID]bool{}
	for _, c := range propertyCases {
		id := c.want.ID
		seen[id] = true
		t.Run(id.Key(), func(t *testing.T) {
			if !id.Known() || !id.AllowedIn(c.in) || c.field != props[id].key && c.field != props[id].key+".name" {
				t.Fatalf("table entry inconsistent with the property table")
			}
			frame, off := inPacket(c.in, c.b)
			p := Decode(frame, V5)
			if ps := p.Info().Problems; len(ps) > 0 {
				t.Fatalf("problems:%s", problemList(ps))
			}
			ps := PropertiesOf(p)
			prefix := "properties."
			if c.in == Will {
				ps, prefix = p.(*Connect).Will.Properties, "will.properties."
			}
			if len(ps) != 1 && !(len(ps) == 2 && ps[0].ID == PropAuthMethod) {
				t.Fatalf("got %d properties, want 1: %+v", len(ps), ps)
			}
			got := ps[len(ps)-1]
			if !got.Equal(c.want) {
				t.Errorf("property = %+v, want %+v", got, c.want)
			}
			if got.Offset != off || got.Len != len(c.b) {
				t.Errorf("Offset/Len = %d/%d, want %d/%d", got.Offset, got.Len, off, len(c.b))
			}
			if !bytes.Equal(p.Info().Raw[got.Offset:got.Offset+got.Len], c.b) {
				t.Errorf("Raw at the property = % X", p.Info().Raw[got.Offset:got.Offset+got.Len])
			}
			f, ok := field(p, prefix+c.field)
			if !ok || f.Offset != off+1 || f.Len != c.vlen {
				t.Errorf("field %s = %+v (found %v), want offset %d len %d", prefix+c.field, f, ok, off+1, c.vlen)
			}
			// The typed getters.
			switch id.Type() {
			case TypeByte, TypeUint16, TypeUint32, TypeVarInt:
				if v, ok := ps.Int(id); !ok || v != c.want.Int {
					t.Errorf("Int = %d, %v", v, ok)
				}
			case TypeString:
				if v, ok := ps.String(id); !ok || v != c.want.Str {
					t.Errorf("String = %q, %v", v, ok)
				}
			case TypeBinary:
				if v, ok := ps.Binary(id); !ok || !bytes.Equal(v, c.want.Bin) {
					t.Errorf("Binary = % X, %v", v, ok)
				}
			case TypeStringPair:
				if u := ps.UserProperties(); len(u) != 1 || u[0] != (StringPair{c.want.Str, c.want.Value}) {
					t.Errorf("UserProperties = %+v", u)
				}
				if v, ok := field(p, prefix+"user_property.value"); !ok || v.Offset != f.Offset+f.Len || v.Offset+v.Len != off+len(c.b) {
					t.Errorf("value field = %+v, %v", v, ok)
				}
			default:
				t.Errorf("unknown type %d", id.Type())
			}
			if id == PropSubscriptionID {
				if ids := ps.SubscriptionIDs(); len(ids) != 1 || ids[0] != c.want.Int {
					t.Errorf("SubscriptionIDs = %v", ids)
				}
			}
			if id == PropTopicAlias {
				if a, ok := ps.TopicAlias(); !ok || uint32(a) != c.want.Int {
					t.Errorf("TopicAlias = %d, %v", a, ok)
				}
			}
			if b, err := Encode(nil, p); err != nil || !bytes.Equal(b, frame) {
				t.Errorf("Encode = % X, %v; want % X", b, err, frame)
			}
		})
	}
	if len(PropIDs()) != 27 {
		t.Errorf("PropIDs has %d properties, the standard 27", len(PropIDs()))
	}
	for _, id := range PropIDs() {
		if !seen[id] {
			t.Errorf("no test case for %s", id.Name())
		}
	}
}

// TestPropertyTable checks the table of which property is allowed where against the standard's
// section 2.2.2.2, written out independently here.
func TestPropertyTable(t *testing.T) {
	allowed := map[PropID][]Type{
		0x01: {PUBLISH, Will}, 0x02: {PUBLISH, Will}, 0x03: {PUBLISH, Will}, 0x08: {PUBLISH, Will},
		0x09: {PUBLISH, Will}, 0x0B: {PUBLISH, SUBSCRIBE}, 0x11: {CONNECT, CONNACK, DISCONNECT},
		0x12: {CONNACK}, 0x13: {CONNACK}, 0x15: {CONNECT, CONNACK, AUTH}, 0x16: {CONNECT, CONNACK, AUTH},
		0x17: {CONNECT}, 0x18: {Will}, 0x19: {CONNECT}, 0x1A: {CONNACK}, 0x1C: {CONNACK, DISCONNECT},
		0x1F: {CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH},
		0x21: {CONNECT, CONNACK}, 0x22: {CONNECT, CONNACK}, 0x23: {PUBLISH}, 0x24: {CONNACK}, 0x25: {CONNACK},
		0x26: {CONNECT, CONNACK, PUBLISH, Will, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH},
		0x27: {CONNECT, CONNACK}, 0x28: {CONNACK}, 0x29: {CONNACK}, 0x2A: {CONNACK},
	}
	types := map[PropID]PropType{
		0x01: TypeByte, 0x02: TypeUint32, 0x03: TypeString, 0x08: TypeString, 0x09: TypeBinary, 0x0B: TypeVarInt,
		0x11: TypeUint32, 0x12: TypeString, 0x13: TypeUint16, 0x15: TypeString, 0x16: TypeBinary, 0x17: TypeByte,
		0x18: TypeUint32, 0x19: TypeByte, 0x1A: TypeString, 0x1C: TypeString, 0x1F: TypeString, 0x21: TypeUint16,
		0x22: TypeUint16, 0x23: TypeUint16, 0x24: TypeByte, 0x25: TypeByte, 0x26: TypeStringPair, 0x27: TypeUint32,
		0x28: TypeByte, 0x29: TypeByte, 0x2A: TypeByte,
	}
	for i := 0; i < 256; i++ {
		id := PropID(i)
		want, known := allowed[id]
		if id.Known() != known {
			t.Errorf("0x%02X: Known = %v", i, id.Known())
		}
		if id.Type() != types[id] {
			t.Errorf("%s: Type = %d, want %d", id.Name(), id.Type(), types[id])
		}
		for typ := Reserved; typ <= Will; typ++ {
			w := false
			for _, a := range want {
				w = w || a == typ
			}
			if id.AllowedIn(typ) != w {
				t.Errorf("%s in %s: AllowedIn = %v, want %v", id.Name(), typ, id.AllowedIn(typ), w)
			}
		}
		if id.Repeatable(PUBLISH) != (id == PropUserProperty || id == PropSubscriptionID) ||
			id.Repeatable(SUBSCRIBE) != (id == PropUserProperty) {
			t.Errorf("%s: Repeatable wrong", id.Name())
		}
	}
	if PropID(0x05).Name() != "Unknown property 0x05" || PropID(0x05).Key() != "property_0x05" {
		t.Errorf("unknown property names: %q %q", PropID(5).Name(), PropID(5).Key())
	}
	if PropTopicAliasMaximum.String() != "Topic Alias Maximum" {
		t.Errorf("String = %q", PropTopicAliasMaximum.String())
	}
}

func TestPropertiesKeepOrderAndDuplicates(t *testing.T) {
	frame := []byte{
		0x30, 0x10, // PUBLISH QoS 0, remaining length 16
		0x00, 0x01, 't', // topic
		0x0C,             // property length 12
		0x23, 0x00, 0x01, // topic alias 1
		0x26, 0x00, 0x01, 'a', 0x00, 0x00, // user property a=""
		0x23, 0x00, 0x02, // topic alias 2: a duplicate, kept and reported
	}
	p := Decode(frame, V5).(*Publish)
	ps := p.Properties
	if len(ps) != 3 || ps[0].ID != PropTopicAlias || ps[1].ID != PropUserProperty || ps[2].ID != PropTopicAlias ||
		ps[0].Int != 1 || ps[2].Int != 2 || ps[0].Offset != 6 || ps[1].Offset != 9 || ps[2].Offset != 15 {
		t.Fatalf("properties = %+v", ps)
	}
	if a, _ := ps.TopicAlias(); a != 1 {
		t.Errorf("TopicAlias returns %d, want the first (1)", a)
	}
	if len(p.Problems) != 1 || p.Problems[0].Offset != 15 || !errors.Is(p.Problems[0], ErrProtocol) {
		t.Errorf("problems:%s", problemList(p.Problems))
	}
	if b, _ := Encode(nil, p); !bytes.Equal(b, frame) {
		t.Errorf("Encode = % X", b)
	}
	if _, ok := ps.Get(PropContentType); ok {
		t.Errorf("Get found an absent property")
	}
	if ps.Equal(ps[:2]) || !ps.Equal(canonProps(ps)) {
		t.Errorf("Properties.Equal wrong")
	}
}
