package decode

import "fmt"

// ReasonCode is an MQTT 5 reason code, or an MQTT 3.1.1 CONNACK return code or SUBACK code.
type ReasonCode byte

// Reason codes of MQTT 5.0 (section 2.4). 0x00 has a different name per packet type.
const (
	Success                    ReasonCode = 0x00
	GrantedQoS1                ReasonCode = 0x01
	GrantedQoS2                ReasonCode = 0x02
	DisconnectWithWill         ReasonCode = 0x04
	NoMatchingSubscribers      ReasonCode = 0x10
	NoSubscriptionExisted      ReasonCode = 0x11
	ContinueAuthentication     ReasonCode = 0x18
	ReAuthenticate             ReasonCode = 0x19
	UnspecifiedError           ReasonCode = 0x80
	MalformedPacket            ReasonCode = 0x81
	ProtocolError              ReasonCode = 0x82
	ImplementationError        ReasonCode = 0x83
	UnsupportedProtocol        ReasonCode = 0x84
	ClientIDNotValid           ReasonCode = 0x85
	BadUserNameOrPassword      ReasonCode = 0x86
	NotAuthorized              ReasonCode = 0x87
	ServerUnavailable          ReasonCode = 0x88
	ServerBusy                 ReasonCode = 0x89
	Banned                     ReasonCode = 0x8A
	ServerShuttingDown         ReasonCode = 0x8B
	BadAuthenticationMethod    ReasonCode = 0x8C
	KeepAliveTimeout           ReasonCode = 0x8D
	SessionTakenOver           ReasonCode = 0x8E
	TopicFilterInvalid         ReasonCode = 0x8F
	TopicNameInvalid           ReasonCode = 0x90
	PacketIDInUse              ReasonCode = 0x91
	PacketIDNotFound           ReasonCode = 0x92
	ReceiveMaximumExceeded     ReasonCode = 0x93
	TopicAliasInvalid          ReasonCode = 0x94
	PacketTooLarge             ReasonCode = 0x95
	MessageRateTooHigh         ReasonCode = 0x96
	QuotaExceeded              ReasonCode = 0x97
	AdministrativeAction       ReasonCode = 0x98
	PayloadFormatInvalid       ReasonCode = 0x99
	RetainNotSupported         ReasonCode = 0x9A
	QoSNotSupported            ReasonCode = 0x9B
	UseAnotherServer           ReasonCode = 0x9C
	ServerMoved                ReasonCode = 0x9D
	SharedSubsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded     ReasonCode = 0x9F
	MaximumConnectTime         ReasonCode = 0xA0
	SubscriptionIDsUnsupported ReasonCode = 0xA1
	WildcardSubsNotSupported   ReasonCode = 0xA2
)

// Sender says which side may send a reason code in a DISCONNECT.
type Sender uint8

// Who may send a DISCONNECT reason code.
const (
	ByEither Sender = iota
	ByClient
	ByServer
)

type reasonInfo struct {
	name       string
	packets    []Type
	disconnect Sender // who may send it in DISCONNECT, when DISCONNECT is in packets
}

var (
	ackTypes     = []Type{PUBACK, PUBREC}
	errorPackets = []Type{CONNACK, PUBACK, PUBREC, SUBACK, UNSUBACK, DISCONNECT}
)

// reasons is the standard's table of reason codes (MQTT 5.0 section 2.4), with the packets each
// may appear in.
var reasons = map[ReasonCode]reasonInfo{
	0x00: {"Success", []Type{CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH}, ByEither},
	0x01: {"Granted QoS 1", []Type{SUBACK}, ByEither},
	0x02: {"Granted QoS 2", []Type{SUBACK}, ByEither},
	0x04: {"Disconnect with Will Message", []Type{DISCONNECT}, ByClient},
	0x10: {"No matching subscribers", ackTypes, ByEither},
	0x11: {"No subscription existed", []Type{UNSUBACK}, ByEither},
	0x18: {"Continue authentication", []Type{AUTH}, ByEither},
	0x19: {"Re-authenticate", []Type{AUTH}, ByEither},
	0x80: {"Unspecified error", errorPackets, ByEither},
	0x81: {"Malformed Packet", []Type{CONNACK, DISCONNECT}, ByEither},
	0x82: {"Protocol Error", []Type{CONNACK, DISCONNECT}, ByEither},
	0x83: {"Implementation specific error", errorPackets, ByEither},
	0x84: {"Unsupported Protocol Version", []Type{CONNACK}, ByEither},
	0x85: {"Client Identifier not valid", []Type{CONNACK}, ByEither},
	0x86: {"Bad User Name or Password", []Type{CONNACK}, ByEither},
	0x87: {"Not authorized", errorPackets, ByServer},
	0x88: {"Server unavailable", []Type{CONNACK}, ByEither},
	0x89: {"Server busy", []Type{CONNACK, DISCONNECT}, ByServer},
	0x8A: {"Banned", []Type{CONNACK}, ByEither},
	0x8B: {"Server shutting down", []Type{DISCONNECT}, ByServer},
	0x8C: {"Bad authentication method", []Type{CONNACK, DISCONNECT}, ByServer},
	0x8D: {"Keep Alive timeout", []Type{DISCONNECT}, ByServer},
	0x8E: {"Session taken over", []Type{DISCONNECT}, ByServer},
	0x8F: {"Topic Filter invalid", []Type{SUBACK, UNSUBACK, DISCONNECT}, ByServer},
	0x90: {"Topic Name invalid", []Type{CONNACK, PUBACK, PUBREC, DISCONNECT}, ByEither},
	0x91: {"Packet Identifier in use", []Type{PUBACK, PUBREC, SUBACK, UNSUBACK}, ByEither},
	0x92: {"Packet Identifier not found", []Type{PUBREL, PUBCOMP}, ByEither},
	0x93: {"Receive Maximum exceeded", []Type{DISCONNECT}, ByEither},
	0x94: {"Topic Alias invalid", []Type{DISCONNECT}, ByEither},
	0x95: {"Packet too large", []Type{CONNACK, DISCONNECT}, ByEither},
	0x96: {"Message rate too high", []Type{DISCONNECT}, ByEither},
	0x97: {"Quota exceeded", []Type{CONNACK, PUBACK, PUBREC, SUBACK, DISCONNECT}, ByEither},
	0x98: {"Administrative action", []Type{DISCONNECT}, ByEither},
	0x99: {"Payload format invalid", []Type{CONNACK, PUBACK, PUBREC, DISCONNECT}, ByEither},
	0x9A: {"Retain not supported", []Type{CONNACK, DISCONNECT}, ByServer},
	0x9B: {"QoS not supported", []Type{CONNACK, DISCONNECT}, ByServer},
	0x9C: {"Use another server", []Type{CONNACK, DISCONNECT}, ByServer},
	0x9D: {"Server moved", []Type{CONNACK, DISCONNECT}, ByServer},
	0x9E: {"Shared Subscriptions not supported", []Type{SUBACK, DISCONNECT}, ByServer},
	0x9F: {"Connection rate exceeded", []Type{CONNACK, DISCONNECT}, ByServer},
	0xA0: {"Maximum connect time", []Type{DISCONNECT}, ByServer},
	0xA1: {"Subscription Identifiers not supported", []Type{SUBACK, DISCONNECT}, ByServer},
	0xA2: {"Wildcard Subscriptions not supported", []Type{SUBACK, DISCONNECT}, ByServer},
}

// ReasonCodes returns every reason code of MQTT 5.0, in ascending order.
func ReasonCodes() []ReasonCode {
	out := make([]ReasonCode, 0, len(reasons))
	for c := 0; c < 256; c++ {
		if _, ok := reasons[ReasonCode(c)]; ok {
			out = append(out, ReasonCode(c))
		}
	}
	return out
}

// Known reports whether c is a reason code of MQTT 5.0.
func (c ReasonCode) Known() bool { _, ok := reasons[c]; return ok }

// IsError reports whether c signals failure (0x80 and above).
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// Name returns the standard's name of c as it appears in packet type t, e.g. "Normal
// disconnection" for 0x00 in DISCONNECT. t may be Reserved for the generic name.
func (c ReasonCode) Name(t Type) string {
	if c == 0 {
		switch t {
		case DISCONNECT:
			return "Normal disconnection"
		case SUBACK:
			return "Granted QoS 0"
		}
	}
	if r, ok := reasons[c]; ok {
		return r.name
	}
	return fmt.Sprintf("Unknown reason code 0x%02X", byte(c))
}

// String returns the code in hex with its generic name.
func (c ReasonCode) String() string { return fmt.Sprintf("0x%02X %s", byte(c), c.Name(Reserved)) }

// AllowedIn reports whether the standard allows reason code c in packet type t.
func (c ReasonCode) AllowedIn(t Type) bool {
	r, ok := reasons[c]
	if !ok {
		return false
	}
	for _, p := range r.packets {
		if p == t {
			return true
		}
	}
	return false
}

// Packets returns the packet types reason code c may appear in.
func (c ReasonCode) Packets() []Type { return reasons[c].packets }

// DisconnectSender says which side may send c in a DISCONNECT.
func (c ReasonCode) DisconnectSender() Sender { return reasons[c].disconnect }

// ConnackReturn311 names an MQTT 3.1/3.1.1 CONNACK return code.
func ConnackReturn311(c byte) string {
	switch c {
	case 0:
		return "Connection Accepted"
	case 1:
		return "Connection Refused, unacceptable protocol version"
	case 2:
		return "Connection Refused, identifier rejected"
	case 3:
		return "Connection Refused, Server unavailable"
	case 4:
		return "Connection Refused, bad user name or password"
	case 5:
		return "Connection Refused, not authorized"
	}
	return fmt.Sprintf("Reserved return code %d", c)
}

// ReasonName names reason code c in packet type t of version v, covering MQTT 3.1.1's CONNACK
// return codes and SUBACK codes.
func ReasonName(v Version, t Type, c ReasonCode) string {
	if v != V5 {
		switch t {
		case CONNACK:
			return ConnackReturn311(byte(c))
		case SUBACK:
			if c <= 2 {
				return fmt.Sprintf("Success - Maximum QoS %d", c)
			}
			if c == 0x80 {
				return "Failure"
			}
			return fmt.Sprintf("Reserved return code 0x%02X", byte(c))
		}
	}
	return c.Name(t)
}

// ReasonOf returns the reason code of a packet that has one: a CONNACK's (its return code in
// MQTT 3.1.1), an acknowledgement's and a DISCONNECT's in MQTT 5 (0x00 for their short forms),
// an AUTH's, and the first of a SUBACK's or an MQTT 5 UNSUBACK's.
func ReasonOf(p Packet) (ReasonCode, bool) {
	switch q := p.(type) {
	case *Connack:
		return q.ReasonCode, true
	case *Ack:
		return q.ReasonCode, q.Version == V5
	case *Suback:
		if len(q.ReasonCodes) > 0 {
			return q.ReasonCodes[0], true
		}
	case *Unsuback:
		if len(q.ReasonCodes) > 0 {
			return q.ReasonCodes[0], true
		}
	case *Disconnect:
		return q.ReasonCode, q.Version == V5
	case *Auth:
		return q.ReasonCode, true
	}
	return 0, false
}
