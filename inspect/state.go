package inspect

import (
	"maps"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// Requested is what the client asked for in CONNECT. Pointer fields are nil when the property
// was absent.
type Requested struct {
	ProtocolName               string    `json:"protocol_name"`
	ProtocolLevel              int       `json:"protocol_level"`
	ClientID                   string    `json:"client_id"`
	CleanStart                 bool      `json:"clean_start"`
	KeepAlive                  int       `json:"keep_alive"`
	Username                   *string   `json:"username,omitempty"`
	Password                   bool      `json:"password"`
	Will                       *WillInfo `json:"will,omitempty"`
	SessionExpiryInterval      *uint32   `json:"session_expiry_interval,omitempty"`
	ReceiveMaximum             *uint32   `json:"receive_maximum,omitempty"`
	MaximumPacketSize          *uint32   `json:"maximum_packet_size,omitempty"`
	TopicAliasMaximum          *uint32   `json:"topic_alias_maximum,omitempty"`
	RequestResponseInformation *uint32   `json:"request_response_information,omitempty"`
	RequestProblemInformation  *uint32   `json:"request_problem_information,omitempty"`
	AuthenticationMethod       *string   `json:"authentication_method,omitempty"`
}

// WillInfo summarises the Will of a CONNECT.
type WillInfo struct {
	Topic       string `json:"topic"`
	QoS         int    `json:"qos"`
	Retain      bool   `json:"retain"`
	PayloadSize int    `json:"payload_size"`
}

// Granted is what the server answered in CONNACK. Pointer fields are nil when the property
// was absent.
type Granted struct {
	ReasonCode                       decode.ReasonCode `json:"reason_code"`
	Reason                           string            `json:"reason"`
	SessionPresent                   bool              `json:"session_present"`
	SessionExpiryInterval            *uint32           `json:"session_expiry_interval,omitempty"`
	ReceiveMaximum                   *uint32           `json:"receive_maximum,omitempty"`
	MaximumQoS                       *uint32           `json:"maximum_qos,omitempty"`
	RetainAvailable                  *uint32           `json:"retain_available,omitempty"`
	MaximumPacketSize                *uint32           `json:"maximum_packet_size,omitempty"`
	AssignedClientIdentifier         *string           `json:"assigned_client_identifier,omitempty"`
	TopicAliasMaximum                *uint32           `json:"topic_alias_maximum,omitempty"`
	ReasonString                     *string           `json:"reason_string,omitempty"`
	WildcardSubscriptionAvailable    *uint32           `json:"wildcard_subscription_available,omitempty"`
	SubscriptionIdentifiersAvailable *uint32           `json:"subscription_identifiers_available,omitempty"`
	SharedSubscriptionAvailable      *uint32           `json:"shared_subscription_available,omitempty"`
	ServerKeepAlive                  *uint32           `json:"server_keep_alive,omitempty"`
	ResponseInformation              *string           `json:"response_information,omitempty"`
	ServerReference                  *string           `json:"server_reference,omitempty"`
	AuthenticationMethod             *string           `json:"authentication_method,omitempty"`
}

// Limits are what the sender of one direction must obey. For client to server they come from
// CONNACK; for server to client from CONNECT. Absent properties take the standard's defaults.
type Limits struct {
	// ReceiveMaximum is how many QoS 1 and 2 PUBLISH packets the sender may have unacknowledged.
	ReceiveMaximum int `json:"receive_maximum"`
	// MaximumPacketSize is the largest packet, fixed header included, the sender may send; 0
	// means no limit but the protocol's.
	MaximumPacketSize int `json:"maximum_packet_size"`
	// TopicAliasMaximum is the highest Topic Alias the sender may use; 0 means none.
	TopicAliasMaximum int `json:"topic_alias_maximum"`
	// The rest only restrict the client (they are the server's capabilities); for server to
	// client they keep their defaults.
	MaximumQoS                       int  `json:"maximum_qos"`
	RetainAvailable                  bool `json:"retain_available"`
	WildcardSubscriptionAvailable    bool `json:"wildcard_subscription_available"`
	SubscriptionIdentifiersAvailable bool `json:"subscription_identifiers_available"`
	SharedSubscriptionAvailable      bool `json:"shared_subscription_available"`
}

// DefaultLimits are the standard's values when every property is absent.
var DefaultLimits = Limits{
	ReceiveMaximum:                   65535,
	MaximumQoS:                       2,
	RetainAvailable:                  true,
	WildcardSubscriptionAvailable:    true,
	SubscriptionIdentifiersAvailable: true,
	SharedSubscriptionAvailable:      true,
}

// Effective is what applies on the connection once CONNACK is seen.
type Effective struct {
	// KeepAlive in seconds: the Server Keep Alive when the server sent one, else the client's.
	KeepAlive int `json:"keep_alive"`
	// KeepAliveFrom is "client" or "server".
	KeepAliveFrom string `json:"keep_alive_from"`
	// SessionExpiryInterval in seconds: CONNACK's when present, else CONNECT's, else 0; updated
	// by the client's DISCONNECT. In MQTT 3.1 and 3.1.1, which have no such property, Clean
	// Session 0 is 0xFFFFFFFF: the session outlives the connection with no expiry (3.1.1
	// §3.1.2.4; mosquitto maps it the same way); Clean Session 1 is 0.
	SessionExpiryInterval uint32 `json:"session_expiry_interval"`
	// ClientID is the client identifier in use: the Assigned Client Identifier when there is one.
	ClientID             string `json:"client_id"`
	AuthenticationMethod string `json:"authentication_method,omitempty"`
	ResponseInformation  string `json:"response_information,omitempty"`
	ServerReference      string `json:"server_reference,omitempty"`
	C2S                  Limits `json:"c2s"`
	S2C                  Limits `json:"s2c"`
}

// Limit returns the limits of direction d.
func (e *Effective) Limit(d stream.Dir) *Limits {
	if d == stream.S2C {
		return &e.S2C
	}
	return &e.C2S
}

// ConnState is a copy of a connection's state for the proxy's API and the UI.
type ConnState struct {
	ID       int            `json:"conn"`
	Client   string         `json:"client"`
	Server   string         `json:"server"`
	ClientID string         `json:"client_id"`
	Version  decode.Version `json:"version"`
	// VersionFrom says how Version was decided: "connect", "option", "packets", or "" (not
	// decided; see the VersionFrom constants).
	VersionFrom string `json:"version_from"`
	// Phase is "connecting" (no CONNACK yet), "connected", "refused" (CONNACK with an error),
	// "disconnecting" (a DISCONNECT was seen) or "closed".
	Phase      string `json:"phase"`
	MidStream  bool   `json:"mid_stream"`
	Negotiated bool   `json:"negotiated"` // CONNACK seen
	Profile    string `json:"profile"`

	Requested Requested `json:"requested"`
	Granted   Granted   `json:"granted"`
	Effective Effective `json:"effective"`

	// Aliases are the Topic Alias tables by direction of the sender: alias -> topic.
	AliasesC2S map[uint16]string `json:"aliases_c2s"`
	AliasesS2C map[uint16]string `json:"aliases_s2c"`
	// InFlightC2S and InFlightS2C count the QoS 1 and 2 PUBLISH packets not yet acknowledged.
	InFlightC2S int `json:"in_flight_c2s"`
	InFlightS2C int `json:"in_flight_s2c"`

	Started  time.Time `json:"started"`
	LastSeen time.Time `json:"last_seen"`
	// Packets counts packets by type name; PacketsC2S and PacketsS2C by direction.
	Packets    map[string]int `json:"packets"`
	PacketsC2S int            `json:"packets_c2s"`
	PacketsS2C int            `json:"packets_s2c"`
	BytesC2S   int64          `json:"bytes_c2s"`
	BytesS2C   int64          `json:"bytes_s2c"`
	// Findings counts notes by rule ID; Levels counts them by level name.
	Findings map[string]int `json:"findings"`
	Levels   map[string]int `json:"levels"`
	// Reasons counts reason codes seen, keyed "PUBACK 0x87 Not authorized".
	Reasons map[string]int `json:"reasons"`
}

func (s *ConnState) clone() ConnState {
	c := *s
	c.AliasesC2S = maps.Clone(s.AliasesC2S)
	c.AliasesS2C = maps.Clone(s.AliasesS2C)
	c.Packets = maps.Clone(s.Packets)
	c.Findings = maps.Clone(s.Findings)
	c.Levels = maps.Clone(s.Levels)
	c.Reasons = maps.Clone(s.Reasons)
	return c
}

func ptr[T any](v T) *T { return &v }

func intProp(ps decode.Properties, id decode.PropID) *uint32 {
	if v, ok := ps.Int(id); ok {
		return &v
	}
	return nil
}

func strProp(ps decode.Properties, id decode.PropID) *string {
	if v, ok := ps.String(id); ok {
		return &v
	}
	return nil
}

func requestedOf(c *decode.Connect) Requested {
	r := Requested{
		ProtocolName:  c.ProtocolName,
		ProtocolLevel: int(c.ProtocolLevel),
		ClientID:      c.ClientID,
		CleanStart:    c.CleanStart,
		KeepAlive:     int(c.KeepAlive),
		Password:      c.HasPassword,
	}
	if c.HasUsername {
		r.Username = ptr(c.Username)
	}
	if c.Will != nil {
		r.Will = &WillInfo{Topic: c.Will.Topic, QoS: int(c.Will.QoS), Retain: c.Will.Retain, PayloadSize: len(c.Will.Payload)}
	}
	ps := c.Properties
	r.SessionExpiryInterval = intProp(ps, decode.PropSessionExpiry)
	r.ReceiveMaximum = intProp(ps, decode.PropReceiveMaximum)
	r.MaximumPacketSize = intProp(ps, decode.PropMaximumPacketSize)
	r.TopicAliasMaximum = intProp(ps, decode.PropTopicAliasMaximum)
	r.RequestResponseInformation = intProp(ps, decode.PropRequestResponseInfo)
	r.RequestProblemInformation = intProp(ps, decode.PropRequestProblemInfo)
	r.AuthenticationMethod = strProp(ps, decode.PropAuthMethod)
	return r
}

func grantedOf(a *decode.Connack) Granted {
	g := Granted{
		ReasonCode:     a.ReasonCode,
		Reason:         decode.ReasonName(a.Version, decode.CONNACK, a.ReasonCode),
		SessionPresent: a.SessionPresent,
	}
	ps := a.Properties
	g.SessionExpiryInterval = intProp(ps, decode.PropSessionExpiry)
	g.ReceiveMaximum = intProp(ps, decode.PropReceiveMaximum)
	g.MaximumQoS = intProp(ps, decode.PropMaximumQoS)
	g.RetainAvailable = intProp(ps, decode.PropRetainAvailable)
	g.MaximumPacketSize = intProp(ps, decode.PropMaximumPacketSize)
	g.AssignedClientIdentifier = strProp(ps, decode.PropAssignedClientID)
	g.TopicAliasMaximum = intProp(ps, decode.PropTopicAliasMaximum)
	g.ReasonString = strProp(ps, decode.PropReasonString)
	g.WildcardSubscriptionAvailable = intProp(ps, decode.PropWildcardSubAvailable)
	g.SubscriptionIdentifiersAvailable = intProp(ps, decode.PropSubIDAvailable)
	g.SharedSubscriptionAvailable = intProp(ps, decode.PropSharedSubAvailable)
	g.ServerKeepAlive = intProp(ps, decode.PropServerKeepAlive)
	g.ResponseInformation = strProp(ps, decode.PropResponseInfo)
	g.ServerReference = strProp(ps, decode.PropServerReference)
	g.AuthenticationMethod = strProp(ps, decode.PropAuthMethod)
	return g
}

// effectiveOf computes the effective values from CONNECT's request and CONNACK's answer.
func effectiveOf(r Requested, g Granted, v decode.Version) Effective {
	e := Effective{KeepAlive: r.KeepAlive, KeepAliveFrom: "client", ClientID: r.ClientID, C2S: DefaultLimits, S2C: DefaultLimits}
	if v != decode.V5 {
		// ProtocolLevel 0: no CONNECT seen, so Clean Session is unknown.
		if r.ProtocolLevel != 0 && !r.CleanStart {
			e.SessionExpiryInterval = 0xFFFFFFFF
		}
		return e
	}
	if g.ServerKeepAlive != nil {
		e.KeepAlive, e.KeepAliveFrom = int(*g.ServerKeepAlive), "server"
	}
	if r.SessionExpiryInterval != nil {
		e.SessionExpiryInterval = *r.SessionExpiryInterval
	}
	if g.SessionExpiryInterval != nil {
		e.SessionExpiryInterval = *g.SessionExpiryInterval
	}
	if g.AssignedClientIdentifier != nil {
		e.ClientID = *g.AssignedClientIdentifier
	}
	if r.AuthenticationMethod != nil {
		e.AuthenticationMethod = *r.AuthenticationMethod
	}
	if g.ResponseInformation != nil {
		e.ResponseInformation = *g.ResponseInformation
	}
	if g.ServerReference != nil {
		e.ServerReference = *g.ServerReference
	}
	// What the client must obey comes from CONNACK.
	c := &e.C2S
	setInt(&c.ReceiveMaximum, g.ReceiveMaximum)
	setInt(&c.MaximumPacketSize, g.MaximumPacketSize)
	setInt(&c.TopicAliasMaximum, g.TopicAliasMaximum)
	setInt(&c.MaximumQoS, g.MaximumQoS)
	setBool(&c.RetainAvailable, g.RetainAvailable)
	setBool(&c.WildcardSubscriptionAvailable, g.WildcardSubscriptionAvailable)
	setBool(&c.SubscriptionIdentifiersAvailable, g.SubscriptionIdentifiersAvailable)
	setBool(&c.SharedSubscriptionAvailable, g.SharedSubscriptionAvailable)
	// What the server must obey comes from CONNECT.
	s := &e.S2C
	setInt(&s.ReceiveMaximum, r.ReceiveMaximum)
	setInt(&s.MaximumPacketSize, r.MaximumPacketSize)
	setInt(&s.TopicAliasMaximum, r.TopicAliasMaximum)
	return e
}

// ClientLimits returns the limits an MQTT 5 CONNACK sets on the client: its properties, the
// standard's defaults where they are absent.
func ClientLimits(a *decode.Connack) Limits {
	return effectiveOf(Requested{}, grantedOf(a), decode.V5).C2S
}

func setInt(dst *int, v *uint32) {
	if v != nil {
		*dst = int(*v)
	}
}

func setBool(dst *bool, v *uint32) {
	if v != nil {
		*dst = *v != 0
	}
}

// elapsed is a.Sub(b) for the timestamps of a capture, without Sub's overflow check (an Add
// and an Equal, a few percent of reading a capture when done per packet): the check is done
// once on the seconds, and Sub handles anything beyond ±272 years, and times with a monotonic
// clock reading (the proxy's), which Sub compares by that reading.
func elapsed(a, b time.Time) time.Duration {
	const maxSec = 1 << 33 // ~272 years, well inside a Duration
	s := a.Unix() - b.Unix()
	if s > maxSec || s < -maxSec || a != a.Round(0) {
		return a.Sub(b)
	}
	return time.Duration(s)*time.Second + time.Duration(a.Nanosecond()-b.Nanosecond())
}
