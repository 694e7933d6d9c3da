package decode

import "fmt"

// Version is an MQTT protocol level as sent in CONNECT.
type Version byte

// The protocol levels mqscope speaks.
const (
	V31  Version = 3 // MQTT 3.1 (protocol name "MQIsdp")
	V311 Version = 4 // MQTT 3.1.1
	V5   Version = 5 // MQTT 5.0
)

func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return fmt.Sprintf("level %d", byte(v))
}

// Valid reports whether v is a protocol level mqscope decodes.
func (v Version) Valid() bool { return v == V31 || v == V311 || v == V5 }

// Type is an MQTT control packet type, the high nibble of the first byte.
type Type byte

// The control packet types of MQTT 5.0 (AUTH is MQTT 5 only; 0 is reserved in every version).
const (
	Reserved Type = iota
	CONNECT
	CONNACK
	PUBLISH
	PUBACK
	PUBREC
	PUBREL
	PUBCOMP
	SUBSCRIBE
	SUBACK
	UNSUBSCRIBE
	UNSUBACK
	PINGREQ
	PINGRESP
	DISCONNECT
	AUTH
)

var typeNames = [16]string{
	"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
}

// String returns the standard's name of the packet type, e.g. "PUBLISH".
func (t Type) String() string {
	if t < 16 {
		return typeNames[t]
	}
	return fmt.Sprintf("TYPE(%d)", byte(t))
}

// ParseType returns the packet type named s (the standard's upper-case name).
func ParseType(s string) (Type, bool) {
	for i, n := range typeNames {
		if n == s && i != 0 {
			return Type(i), true
		}
	}
	return 0, false
}

// fixedFlags returns the flag bits the standard fixes for t, and whether t has fixed flags.
// PUBLISH is the only type whose flags carry information.
func fixedFlags(t Type) (byte, bool) {
	switch t {
	case PUBLISH:
		return 0, false
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		return 0x02, true
	}
	return 0, true
}

// ExistsIn reports whether packet type t exists in protocol version v.
func (t Type) ExistsIn(v Version) bool {
	if t == Reserved || t > AUTH {
		return false
	}
	return t != AUTH || v == V5
}
