package decode

import "fmt"

// PropID is an MQTT 5 property identifier.
type PropID byte

// The properties of MQTT 5.0 (section 2.2.2.2).
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUserProperty         PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A
)

// PropType is the wire type of a property's value.
type PropType uint8

// Property value types (section 1.5).
const (
	TypeByte PropType = iota + 1
	TypeUint16
	TypeUint32
	TypeVarInt
	TypeString
	TypeBinary
	TypeStringPair
)

// Will is the pseudo packet type of the Will Properties inside CONNECT: they have their own set
// of allowed properties.
const Will Type = 16

type propInfo struct {
	name    string // the standard's name
	key     string // snake_case, used in JSON output
	typ     PropType
	packets []Type
	many    bool   // may appear more than once
	bool01  bool   // value must be 0 or 1
	noZero  bool   // a zero value is a protocol error
	zeroRul string // the rule a zero value breaks, where the standard numbers one
}

var msgProps = []Type{PUBLISH, Will}

// props describes each property, indexed by identifier (a zero propInfo for an unknown one).
var props = [256]propInfo{
	PropPayloadFormat:        {"Payload Format Indicator", "payload_format_indicator", TypeByte, msgProps, false, true, false, ""},
	PropMessageExpiry:        {"Message Expiry Interval", "message_expiry_interval", TypeUint32, msgProps, false, false, false, ""},
	PropContentType:          {"Content Type", "content_type", TypeString, msgProps, false, false, false, ""},
	PropResponseTopic:        {"Response Topic", "response_topic", TypeString, msgProps, false, false, false, ""},
	PropCorrelationData:      {"Correlation Data", "correlation_data", TypeBinary, msgProps, false, false, false, ""},
	PropSubscriptionID:       {"Subscription Identifier", "subscription_identifier", TypeVarInt, []Type{PUBLISH, SUBSCRIBE}, true, false, true, ""},
	PropSessionExpiry:        {"Session Expiry Interval", "session_expiry_interval", TypeUint32, []Type{CONNECT, CONNACK, DISCONNECT}, false, false, false, ""},
	PropAssignedClientID:     {"Assigned Client Identifier", "assigned_client_identifier", TypeString, []Type{CONNACK}, false, false, false, ""},
	PropServerKeepAlive:      {"Server Keep Alive", "server_keep_alive", TypeUint16, []Type{CONNACK}, false, false, false, ""},
	PropAuthMethod:           {"Authentication Method", "authentication_method", TypeString, []Type{CONNECT, CONNACK, AUTH}, false, false, false, ""},
	PropAuthData:             {"Authentication Data", "authentication_data", TypeBinary, []Type{CONNECT, CONNACK, AUTH}, false, false, false, ""},
	PropRequestProblemInfo:   {"Request Problem Information", "request_problem_information", TypeByte, []Type{CONNECT}, false, true, false, ""},
	PropWillDelay:            {"Will Delay Interval", "will_delay_interval", TypeUint32, []Type{Will}, false, false, false, ""},
	PropRequestResponseInfo:  {"Request Response Information", "request_response_information", TypeByte, []Type{CONNECT}, false, true, false, ""},
	PropResponseInfo:         {"Response Information", "response_information", TypeString, []Type{CONNACK}, false, false, false, ""},
	PropServerReference:      {"Server Reference", "server_reference", TypeString, []Type{CONNACK, DISCONNECT}, false, false, false, ""},
	PropReasonString:         {"Reason String", "reason_string", TypeString, []Type{CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH}, false, false, false, ""},
	PropReceiveMaximum:       {"Receive Maximum", "receive_maximum", TypeUint16, []Type{CONNECT, CONNACK}, false, false, true, ""},
	PropTopicAliasMaximum:    {"Topic Alias Maximum", "topic_alias_maximum", TypeUint16, []Type{CONNECT, CONNACK}, false, false, false, ""},
	PropTopicAlias:           {"Topic Alias", "topic_alias", TypeUint16, []Type{PUBLISH}, false, false, true, "MQTT-3.3.2-8"},
	PropMaximumQoS:           {"Maximum QoS", "maximum_qos", TypeByte, []Type{CONNACK}, false, true, false, ""},
	PropRetainAvailable:      {"Retain Available", "retain_available", TypeByte, []Type{CONNACK}, false, true, false, ""},
	PropUserProperty:         {"User Property", "user_property", TypeStringPair, []Type{CONNECT, CONNACK, PUBLISH, Will, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH}, true, false, false, ""},
	PropMaximumPacketSize:    {"Maximum Packet Size", "maximum_packet_size", TypeUint32, []Type{CONNECT, CONNACK}, false, false, true, ""},
	PropWildcardSubAvailable: {"Wildcard Subscription Available", "wildcard_subscription_available", TypeByte, []Type{CONNACK}, false, true, false, ""},
	PropSubIDAvailable:       {"Subscription Identifier Available", "subscription_identifier_available", TypeByte, []Type{CONNACK}, false, true, false, ""},
	PropSharedSubAvailable:   {"Shared Subscription Available", "shared_subscription_available", TypeByte, []Type{CONNACK}, false, true, false, ""},
}

// info returns what is known of the property, and whether it is a property of MQTT 5.0.
func (id PropID) info() (*propInfo, bool) {
	p := &props[id]
	return p, p.name != ""
}

// Name returns the standard's name of the property, e.g. "Topic Alias Maximum".
func (id PropID) Name() string {
	if p, ok := id.info(); ok {
		return p.name
	}
	return fmt.Sprintf("Unknown property 0x%02X", byte(id))
}

// Key returns the property's snake_case name, e.g. "topic_alias_maximum".
func (id PropID) Key() string {
	if p, ok := id.info(); ok {
		return p.key
	}
	return fmt.Sprintf("property_0x%02x", byte(id))
}

func (id PropID) String() string { return id.Name() }

// Type returns the wire type of the property's value, 0 for an unknown identifier.
func (id PropID) Type() PropType { return props[id].typ }

// Known reports whether id is a property of MQTT 5.0.
func (id PropID) Known() bool { _, ok := id.info(); return ok }

// AllowedIn reports whether the property may appear in packet type t (Will for Will Properties).
func (id PropID) AllowedIn(t Type) bool {
	for _, p := range props[id].packets {
		if p == t {
			return true
		}
	}
	return false
}

// Repeatable reports whether the property may appear more than once in one packet.
// The Subscription Identifier may repeat in PUBLISH only.
func (id PropID) Repeatable(t Type) bool {
	if id == PropSubscriptionID {
		return t == PUBLISH
	}
	return props[id].many
}

// PropIDs returns every property identifier of MQTT 5.0 in ascending order.
func PropIDs() []PropID {
	var out []PropID
	for i := range len(props) {
		if PropID(i).Known() {
			out = append(out, PropID(i))
		}
	}
	return out
}

// Property is one property as it stands on the wire.
type Property struct {
	ID    PropID
	Int   uint32 // Byte, Two Byte, Four Byte and Variable Byte Integer values
	Str   string // UTF-8 string values, and the name of a User Property
	Value string // the value of a User Property
	Bin   []byte // Binary Data values
	// Offset and Len locate the property (identifier included) in the frame; 0 when built.
	Offset, Len int
}

// Equal compares the values of two properties, ignoring their position. Empty and nil Binary
// Data are equal: the wire cannot tell them apart.
func (p Property) Equal(q Property) bool {
	return p.ID == q.ID && p.Int == q.Int && p.Str == q.Str && p.Value == q.Value &&
		string(p.Bin) == string(q.Bin)
}

// Properties are a packet's properties in wire order, duplicates preserved.
type Properties []Property

// Get returns the first property with the given identifier.
func (ps Properties) Get(id PropID) (Property, bool) {
	for _, p := range ps {
		if p.ID == id {
			return p, true
		}
	}
	return Property{}, false
}

// Int returns the integer value of the first property id.
func (ps Properties) Int(id PropID) (uint32, bool) {
	p, ok := ps.Get(id)
	return p.Int, ok
}

// String returns the string value of the first property id.
func (ps Properties) String(id PropID) (string, bool) {
	p, ok := ps.Get(id)
	return p.Str, ok
}

// Binary returns the binary value of the first property id.
func (ps Properties) Binary(id PropID) ([]byte, bool) {
	p, ok := ps.Get(id)
	return p.Bin, ok
}

// Has reports whether property id is present.
func (ps Properties) Has(id PropID) bool { _, ok := ps.Get(id); return ok }

// StringPair is a User Property's name and value.
type StringPair struct{ Name, Value string }

// UserProperties returns the User Properties in wire order.
func (ps Properties) UserProperties() []StringPair {
	var out []StringPair
	for _, p := range ps {
		if p.ID == PropUserProperty {
			out = append(out, StringPair{p.Str, p.Value})
		}
	}
	return out
}

// SubscriptionIDs returns every Subscription Identifier in wire order.
func (ps Properties) SubscriptionIDs() []uint32 {
	var out []uint32
	for _, p := range ps {
		if p.ID == PropSubscriptionID {
			out = append(out, p.Int)
		}
	}
	return out
}

// TopicAlias returns the Topic Alias property.
func (ps Properties) TopicAlias() (uint16, bool) {
	v, ok := ps.Int(PropTopicAlias)
	return uint16(v), ok
}

// Equal compares two property lists by value and order.
func (ps Properties) Equal(qs Properties) bool {
	if len(ps) != len(qs) {
		return false
	}
	for i := range ps {
		if !ps[i].Equal(qs[i]) {
			return false
		}
	}
	return true
}

// Int property constructors, for building packets.

// IntProp returns a numeric property.
func IntProp(id PropID, v uint32) Property { return Property{ID: id, Int: v} }

// StrProp returns a UTF-8 string property.
func StrProp(id PropID, s string) Property { return Property{ID: id, Str: s} }

// BinProp returns a binary property.
func BinProp(id PropID, b []byte) Property { return Property{ID: id, Bin: b} }

// UserProp returns a User Property.
func UserProp(name, value string) Property {
	return Property{ID: PropUserProperty, Str: name, Value: value}
}
