package decode

// Packet is one decoded MQTT control packet. The concrete types are *Connect, *Connack,
// *Publish, *Ack (PUBACK, PUBREC, PUBREL, PUBCOMP), *Subscribe, *Suback, *Unsubscribe,
// *Unsuback, *Pingreq, *Pingresp, *Disconnect, *Auth, and *Unknown for a reserved type.
type Packet interface {
	// Type returns the control packet type.
	Type() Type
	// Info returns the bytes, layout and problems common to every packet.
	Info() *Base
}

// Base is what every decoded packet has. A packet built in code has a zero Base apart from
// Version; Encode fills nothing in.
type Base struct {
	Version Version
	Header  FixedHeader
	// Raw is the packet's exact bytes, fixed header included. It aliases the decoder's input.
	Raw []byte
	// Fields locates each field in Raw, in wire order.
	Fields []Field
	// Problems holds everything wrong with the packet, not only the first problem.
	Problems Problems
}

// Info returns b itself.
func (b *Base) Info() *Base { return b }

// Size is the packet's size on the wire, fixed header included.
func (b *Base) Size() int { return len(b.Raw) }

// FixedHeader is the first two to five bytes of every packet.
type FixedHeader struct {
	Type            Type
	Flags           byte // the low nibble of the first byte, as received
	RemainingLength int
	HeaderLen       int // bytes of the fixed header: 1 + the Remaining Length's bytes
}

// Field locates one field of a packet: Raw[Offset:Offset+Len].
type Field struct {
	Name   string
	Offset int
	Len    int
}

// ConnectPart names a part of a CONNECT, in wire order (Connect.Unread).
type ConnectPart uint8

// The parts of a CONNECT, in wire order.
const (
	PartProtocol   ConnectPart = iota + 1 // protocol name and level
	PartFlags                             // Connect Flags
	PartKeepAlive                         // Keep Alive
	PartProperties                        // properties (MQTT 5)
	PartClientID                          // Client Identifier
	PartWill                              // Will properties, topic and payload
	PartUsername                          // User Name
	PartPassword                          // Password
)

// Connect is a CONNECT packet. Version is the one it asks for (its protocol level).
type Connect struct {
	Base
	// Unread is the first part decoding did not read whole, because the packet ended (or was
	// malformed) before it; 0 when every part was read. The fields of that part and after it
	// hold zero values that are not the sender's: see Read.
	Unread        ConnectPart
	ProtocolName  string
	ProtocolLevel byte
	Flags         byte // the Connect Flags byte as received
	CleanStart    bool // Clean Session in 3.1.1
	KeepAlive     uint16
	Properties    Properties
	ClientID      string
	Will          *WillMessage // nil when the Will Flag is 0
	HasUsername   bool
	Username      string
	HasPassword   bool
	Password      []byte
}

// WillMessage is the Will of a CONNECT.
type WillMessage struct {
	QoS        byte
	Retain     bool
	Properties Properties // MQTT 5 Will Properties
	Topic      string
	Payload    []byte
}

// Connack is a CONNACK packet. In 3.1.1, ReasonCode holds the return code.
type Connack struct {
	Base
	SessionPresent bool
	AckFlags       byte
	ReasonCode     ReasonCode
	Properties     Properties
}

// Publish is a PUBLISH packet.
type Publish struct {
	Base
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      string // as sent: empty when an MQTT 5 sender uses a Topic Alias alone
	PacketID   uint16 // 0 at QoS 0
	Properties Properties
	Payload    []byte
}

// Ack is a PUBACK, PUBREC, PUBREL or PUBCOMP packet.
type Ack struct {
	Base
	PacketType Type
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
	// HasReason and HasProperties say whether the MQTT 5 reason code and the property length
	// were on the wire (they may be left out when the reason is 0x00 and there are no
	// properties). Encode writes them when set, or when they are needed.
	HasReason     bool
	HasProperties bool
}

// Subscription is one topic filter of a SUBSCRIBE with its options.
type Subscription struct {
	Filter            string
	Options           byte // the Subscription Options byte as received
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

// Subscribe is a SUBSCRIBE packet.
type Subscribe struct {
	Base
	PacketID      uint16
	Properties    Properties
	Subscriptions []Subscription
}

// Suback is a SUBACK packet; in 3.1.1 ReasonCodes hold the return codes.
type Suback struct {
	Base
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Unsubscribe is an UNSUBSCRIBE packet.
type Unsubscribe struct {
	Base
	PacketID   uint16
	Properties Properties
	Filters    []string
}

// Unsuback is an UNSUBACK packet; it has reason codes in MQTT 5 only.
type Unsuback struct {
	Base
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Pingreq is a PINGREQ packet.
type Pingreq struct{ Base }

// Pingresp is a PINGRESP packet.
type Pingresp struct{ Base }

// Disconnect is a DISCONNECT packet.
type Disconnect struct {
	Base
	ReasonCode    ReasonCode
	Properties    Properties
	HasReason     bool // see Ack
	HasProperties bool
}

// Auth is an MQTT 5 AUTH packet.
type Auth struct {
	Base
	ReasonCode    ReasonCode
	Properties    Properties
	HasReason     bool
	HasProperties bool
}

// Unknown is a packet of the reserved type 0, or AUTH in a version without it.
type Unknown struct {
	Base
	Body []byte
}

// Type methods.

func (*Connect) Type() Type     { return CONNECT }
func (*Connack) Type() Type     { return CONNACK }
func (*Publish) Type() Type     { return PUBLISH }
func (a *Ack) Type() Type       { return a.PacketType }
func (*Subscribe) Type() Type   { return SUBSCRIBE }
func (*Suback) Type() Type      { return SUBACK }
func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }
func (*Unsuback) Type() Type    { return UNSUBACK }
func (*Pingreq) Type() Type     { return PINGREQ }
func (*Pingresp) Type() Type    { return PINGRESP }
func (*Disconnect) Type() Type  { return DISCONNECT }
func (*Auth) Type() Type        { return AUTH }
func (u *Unknown) Type() Type   { return u.Header.Type }

// PacketID returns the packet identifier of p and whether p carries one.
func PacketID(p Packet) (uint16, bool) {
	switch q := p.(type) {
	case *Publish:
		return q.PacketID, q.QoS > 0
	case *Ack:
		return q.PacketID, true
	case *Subscribe:
		return q.PacketID, true
	case *Suback:
		return q.PacketID, true
	case *Unsubscribe:
		return q.PacketID, true
	case *Unsuback:
		return q.PacketID, true
	}
	return 0, false
}

// SetPacketID sets the packet identifier field of p (of a PUBLISH whatever its QoS) and
// reports whether p has one.
func SetPacketID(p Packet, id uint16) bool {
	switch q := p.(type) {
	case *Publish:
		q.PacketID = id
	case *Ack:
		q.PacketID = id
	case *Subscribe:
		q.PacketID = id
	case *Suback:
		q.PacketID = id
	case *Unsubscribe:
		q.PacketID = id
	case *Unsuback:
		q.PacketID = id
	default:
		return false
	}
	return true
}

// PropertiesOf returns p's properties (nil for packets without any).
func PropertiesOf(p Packet) Properties {
	switch q := p.(type) {
	case *Connect:
		return q.Properties
	case *Connack:
		return q.Properties
	case *Publish:
		return q.Properties
	case *Ack:
		return q.Properties
	case *Subscribe:
		return q.Properties
	case *Suback:
		return q.Properties
	case *Unsubscribe:
		return q.Properties
	case *Unsuback:
		return q.Properties
	case *Disconnect:
		return q.Properties
	case *Auth:
		return q.Properties
	}
	return nil
}

// Read reports whether part was decoded: the packet did not end before it.
func (p *Connect) Read(part ConnectPart) bool { return p.Unread == 0 || part < p.Unread }
