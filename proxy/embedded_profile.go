package proxy

import (
	"fmt"
	"math"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mqscope/mqscope/inspect"
)

// profileHook makes the embedded broker play a broker profile: it grants the profile's limits
// in CONNACK and enforces them, as a production broker with those limits would. mochi has
// capabilities for some limits but announces few of them and answers a too-big packet by
// closing the connection without DISCONNECT, so the hook announces each limit itself and
// disconnects an MQTT 5 client that breaks one with the standard's reason code:
//
//	Maximum Packet Size   a packet over it: DISCONNECT 0x95 Packet too large [MQTT-3.2.2-15]
//	max_payload (body)    a PUBLISH body over it: DISCONNECT 0x95 (the profile's source need not
//	                      say which code its broker uses; 0x95 is the standard's nearest)
//	Maximum QoS           a PUBLISH above it: DISCONNECT 0x9B QoS not supported [MQTT-3.2.2-11]
//	Retain Available 0    a retained PUBLISH: DISCONNECT 0x9A Retain not supported [MQTT-3.2.2-14]
//	Topic Alias Maximum   an alias above it: DISCONNECT 0x94 (mochi's own check)
//	Receive Maximum       one more QoS 1/2 PUBLISH in flight: DISCONNECT 0x93 (mochi's own check)
//	Keep Alive            the client's clamped into the range, sent as Server Keep Alive; mochi
//	                      closes a client silent for 1.5 times it
//	Session Expiry        a non-zero interval clamped into the range, sent back in CONNACK
//
// An MQTT 3.1.1 client that breaks a limit is closed (that version has no server DISCONNECT).
type profileHook struct {
	mqtt.HookBase
	p *inspect.Profile

	mu        sync.Mutex
	requested map[*mqtt.Client]connectAsk // from OnConnect until its CONNACK is encoded
}

// connectAsk is what a client asked for in CONNECT, for its CONNACK.
type connectAsk struct {
	keepAlive, sessionExpiry uint32
	hadSessionExpiry         bool
	receiveMaximum           uint16
}

func (h *profileHook) ID() string { return "mqscope-profile" }

func (h *profileHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnPacketRead || b == mqtt.OnPacketEncode
}

// capabilities sets mochi's own capabilities from the profile: those it enforces the standard's
// way. Maximum Packet Size is not among them (see profileHook).
func profileCapabilities(c *mqtt.Capabilities, p *inspect.Profile) {
	if p.TopicAliasMaximum > 0 {
		c.TopicAliasMaximum = uint16(p.TopicAliasMaximum)
	}
	if p.ReceiveMaximum > 0 {
		c.ReceiveMaximum = uint16(p.ReceiveMaximum)
	}
	if p.MaximumQoS != nil {
		c.MaximumQos = byte(*p.MaximumQoS)
	}
	if p.RetainAvailable != nil {
		c.RetainAvailable = byte(boolInt(*p.RetainAvailable))
	}
	if p.WildcardSubscriptionAvailable != nil {
		c.WildcardSubAvailable = byte(boolInt(*p.WildcardSubscriptionAvailable))
	}
	if p.SubscriptionIdentifiersAvailable != nil {
		c.SubIDAvailable = byte(boolInt(*p.SubscriptionIdentifiersAvailable))
	}
	if p.SharedSubscriptionAvailable != nil {
		c.SharedSubAvailable = byte(boolInt(*p.SharedSubscriptionAvailable))
	}
	if p.SessionExpiry.Max > 0 {
		c.MaximumSessionExpiryInterval = uint32(p.SessionExpiry.Max)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// OnConnect clamps the keep alive and session expiry and remembers what was asked.
func (h *profileHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	ask := connectAsk{keepAlive: uint32(pk.Connect.Keepalive), sessionExpiry: pk.Properties.SessionExpiryInterval,
		hadSessionExpiry: pk.Properties.SessionExpiryIntervalFlag, receiveMaximum: pk.Properties.ReceiveMaximum}
	if r := h.p.KeepAlive; r.Min > 0 || r.Max > 0 {
		if ka := r.Clamp(int(pk.Connect.Keepalive)); ka != int(pk.Connect.Keepalive) {
			cl.State.Keepalive = uint16(ka)
			cl.State.ServerKeepalive = true
		}
	}
	if r := h.p.SessionExpiry; (r.Min > 0 || r.Max > 0) && ask.sessionExpiry != 0 && ask.sessionExpiry != math.MaxUint32 {
		cl.Properties.Props.SessionExpiryInterval = uint32(r.Clamp(int(ask.sessionExpiry)))
		cl.Properties.Props.SessionExpiryIntervalFlag = true
	}
	if h.p.ReceiveMaximumMirrorsClient {
		rm := ask.receiveMaximum
		if rm == 0 {
			rm = math.MaxUint16
		}
		cl.State.Inflight.ResetReceiveQuota(int32(rm))
	}
	h.mu.Lock()
	h.requested[cl] = ask
	h.mu.Unlock()
	return nil
}

// OnPacketEncode adds the profile's limits to the CONNACK of an MQTT 5 client.
func (h *profileHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Connack {
		return pk
	}
	h.mu.Lock()
	ask, ok := h.requested[cl]
	delete(h.requested, cl)
	h.mu.Unlock()
	if !ok || pk.ReasonCode >= packets.ErrUnspecifiedError.Code || cl.Properties.ProtocolVersion < 5 {
		return pk
	}
	p, props := h.p, &pk.Properties
	if p.MaximumPacketSize > 0 {
		props.MaximumPacketSize = uint32(p.MaximumPacketSize)
	}
	if p.TopicAliasMaximum > 0 {
		props.TopicAliasMaximum = uint16(p.TopicAliasMaximum)
	}
	if p.ReceiveMaximumMirrorsClient {
		props.ReceiveMaximum = ask.receiveMaximum
		if props.ReceiveMaximum == 0 {
			props.ReceiveMaximum = math.MaxUint16
		}
	}
	avail := func(v *bool, val *byte, flag *bool) {
		if v != nil && !*v {
			*val, *flag = 0, true // absent means available [MQTT-3.2.2.3.5]
		}
	}
	avail(p.RetainAvailable, &props.RetainAvailable, &props.RetainAvailableFlag)
	avail(p.WildcardSubscriptionAvailable, &props.WildcardSubAvailable, &props.WildcardSubAvailableFlag)
	avail(p.SubscriptionIdentifiersAvailable, &props.SubIDAvailable, &props.SubIDAvailableFlag)
	avail(p.SharedSubscriptionAvailable, &props.SharedSubAvailable, &props.SharedSubAvailableFlag)
	if ask.hadSessionExpiry && cl.Properties.Props.SessionExpiryInterval != ask.sessionExpiry {
		props.SessionExpiryInterval = cl.Properties.Props.SessionExpiryInterval
		props.SessionExpiryIntervalFlag = true
	}
	return pk
}

// OnPacketRead enforces the limits mochi does not enforce the standard's way.
func (h *profileHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	p := h.p
	if p.MaximumPacketSize > 0 {
		if size := packetSize(pk.FixedHeader.Remaining); size > p.MaximumPacketSize {
			return pk, h.refuse(cl, packets.ErrPacketTooLarge, fmt.Sprintf("packet of %d bytes over the Maximum Packet Size of %d", size, p.MaximumPacketSize))
		}
	}
	if pk.FixedHeader.Type != packets.Publish {
		return pk, nil
	}
	switch {
	case p.MaxPayload > 0 && len(pk.Payload) > p.MaxPayload:
		return pk, h.refuse(cl, packets.ErrPacketTooLarge, fmt.Sprintf("body of %d bytes over the limit of %d", len(pk.Payload), p.MaxPayload))
	case p.MaximumQoS != nil && int(pk.FixedHeader.Qos) > *p.MaximumQoS:
		return pk, h.refuse(cl, packets.ErrQosNotSupported, fmt.Sprintf("QoS %d over the Maximum QoS of %d", pk.FixedHeader.Qos, *p.MaximumQoS))
	case p.RetainAvailable != nil && !*p.RetainAvailable && pk.FixedHeader.Retain:
		return pk, h.refuse(cl, packets.ErrRetainNotSupported, "retained PUBLISH when Retain Available is 0")
	}
	return pk, nil
}

// refuse disconnects cl with code (MQTT 5) or closes it, and returns the error that ends its
// read loop.
func (h *profileHook) refuse(cl *mqtt.Client, code packets.Code, why string) error {
	if cl.Properties.ProtocolVersion == 5 {
		out := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ReasonCode: code.Code,
			Properties: packets.Properties{ReasonString: fmt.Sprintf("%s (profile %s)", why, h.p.Name)}}
		_ = cl.WritePacket(out) // the connection closes next whether or not this gets out
	}
	cl.Stop(code)
	return code
}

// packetSize is the size of a whole packet with remaining length n.
func packetSize(n int) int {
	vbi := 1
	for m := n; m >= 128; m >>= 7 {
		vbi++
	}
	return 1 + vbi + n
}
