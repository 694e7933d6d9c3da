package inspect

import (
	"sort"
	"strings"

	"github.com/mqscope/mqscope/decode"
)

// mqscope's own rule IDs, for findings the standard states without a numbered conformance
// statement, or that are advice rather than conformance. Every ID is listed in mqscopeRules
// with what it means; IDs of the form MQTT-x.y.z-n are the standard's (decode.LookupRule).
const (
	// Decoder problems without a numbered statement, by category.
	RuleMalformed  = "MQSCOPE-MALFORMED"
	RuleProtocol   = "MQSCOPE-PROTOCOL"
	RuleSuspicious = "MQSCOPE-SUSPICIOUS"
	RuleTooLarge   = "MQSCOPE-FRAME-TOO-LARGE"
	RulePayloadUTF = "MQSCOPE-PAYLOAD-UTF8"
	RuleSubIDZero  = "MQSCOPE-SUBID-ZERO"

	RulePayloadContent = "MQSCOPE-PAYLOAD-CONTENT"

	RuleCaptureGap      = "MQSCOPE-CAPTURE-GAP"
	RuleMidStream       = "MQSCOPE-MID-STREAM"
	RuleIdle            = "MQSCOPE-IDLE"
	RuleFaultsBypassed  = "MQSCOPE-FAULTS-BYPASSED"
	RuleVersion         = "MQSCOPE-VERSION"
	RuleConnackRefused  = "MQSCOPE-CONNACK-REFUSED"
	RuleDisconnectError = "MQSCOPE-DISCONNECT-ERROR"
	RuleAckError        = "MQSCOPE-ACK-ERROR"
	RuleSubackError     = "MQSCOPE-SUBACK-ERROR"
	RuleSubackCount     = "MQSCOPE-SUBACK-COUNT"
	RuleSubackQoS       = "MQSCOPE-SUBACK-QOS"
	RuleAfterDisconnect = "MQSCOPE-AFTER-DISCONNECT"
	RuleSessionExpiry0  = "MQSCOPE-SESSION-EXPIRY-DISCONNECT"
	RuleServerKeepAlive = "MQSCOPE-SERVER-KEEP-ALIVE"
	RuleSessionGranted  = "MQSCOPE-SESSION-EXPIRY-GRANTED"
	RuleServerReference = "MQSCOPE-SERVER-REFERENCE"
	RuleAssignedID      = "MQSCOPE-ASSIGNED-CLIENT-ID"
	RuleTakenOver       = "MQSCOPE-SESSION-TAKEN-OVER"
	RuleTakeover        = "MQSCOPE-SESSION-TAKEOVER"
	RuleAliasUnknown    = "MQSCOPE-ALIAS-UNKNOWN"
	RuleAliasRemap      = "MQSCOPE-ALIAS-REMAP"
	RuleAckUnknown      = "MQSCOPE-ACK-UNKNOWN"
	RuleAckWrongType    = "MQSCOPE-ACK-WRONG-TYPE"
	RulePubrelUnknown   = "MQSCOPE-PUBREL-UNKNOWN"
	RuleDupUnknown      = "MQSCOPE-DUP-UNKNOWN"
	RuleRetransmit      = "MQSCOPE-RETRANSMISSION"
	RuleWildcardUnavail = "MQSCOPE-WILDCARD-UNAVAILABLE"
	RuleSubIDUnavail    = "MQSCOPE-SUBID-UNAVAILABLE"
	RuleSharedUnavail   = "MQSCOPE-SHARED-UNAVAILABLE"
	RuleAuthNoMethod    = "MQSCOPE-AUTH-NO-METHOD"
	RuleAuthExchange    = "MQSCOPE-AUTH-EXCHANGE"
	RuleCloseNoDisc     = "MQSCOPE-CLOSE-WITHOUT-DISCONNECT"
	RuleUnacked         = "MQSCOPE-UNACKNOWLEDGED-AT-CLOSE"
	RuleUnfinished      = "MQSCOPE-UNFINISHED-PACKET"

	RuleProfileKeepAlive  = "MQSCOPE-PROFILE-KEEP-ALIVE"
	RuleProfileSession    = "MQSCOPE-PROFILE-SESSION-EXPIRY"
	RuleProfileTopicAlias = "MQSCOPE-PROFILE-TOPIC-ALIAS"
	RuleProfileReceiveMax = "MQSCOPE-PROFILE-RECEIVE-MAXIMUM"
	RuleProfilePayload    = "MQSCOPE-PROFILE-PAYLOAD"
	RuleProfilePacketSize = "MQSCOPE-PROFILE-PACKET-SIZE"
	RuleProfileQoS        = "MQSCOPE-PROFILE-QOS"
	RuleProfileRetain     = "MQSCOPE-PROFILE-RETAIN"
	RuleProfileSubscribe  = "MQSCOPE-PROFILE-SUBSCRIBE"
	RuleProfileMismatch   = "MQSCOPE-PROFILE-MISMATCH"
)

// mqscopeRules explains every mqscope rule ID.
var mqscopeRules = map[string]string{
	RuleMalformed:      "The decoder could not read the packet as the standard lays it out (Malformed Packet, 0x81), and the standard numbers no statement for this case.",
	RuleProtocol:       "The packet breaks a rule the standard states without a number (Protocol Error, 0x82): a repeated property, a property in the wrong packet, a forbidden value.",
	RuleSuspicious:     "Legal but likely a mistake, e.g. control characters in a string.",
	RuleTooLarge:       "A frame larger than mqscope's framing limit (--max-frame); its bytes were skipped.",
	RulePayloadUTF:     "Payload Format Indicator 1 with a payload that is not well-formed UTF-8 (§3.3.2.3.2, §3.1.3.2.3); a receiver may answer 0x99.",
	RulePayloadContent: "Found while rendering the payload: a Content Type the payload does not match, a damaged compressed stream, a payload too large to decode. Shown only when payloads are shown (--payload preview or full).",
	RuleSubIDZero:      "Subscription Identifier 0 (§3.3.2.3.8, §3.8.2.1.2): a Protocol Error.",

	RuleCaptureGap:      "Bytes of the stream were lost by the capture; framing resumed at the next plausible packet, and state (aliases, in-flight messages) may be incomplete.",
	RuleIdle:            "The connection carried nothing for a long capture time (read --idle): mqscope kept its negotiated state and let go of its buffers and older packets, so later cause links do not reach packets before it.",
	RuleFaultsBypassed:  "The proxy's fault rules stopped applying to a direction: its bytes could not be cut into frames (an unreadable fixed header, a frame over the proxy's limit), so from there on they pass unchanged. On the direction's next packet, or on the close.",
	RuleMidStream:       "The capture began after the connection opened: negotiation is unknown, limits are not checked.",
	RuleVersion:         "No CONNECT was seen, and this packet told the protocol version: it is malformed as the other version (a CONNACK of 2 bytes is 3.1.1, a PUBACK with a reason code is 5).",
	RuleConnackRefused:  "The server refused the connection; the cause is the CONNECT.",
	RuleDisconnectError: "A DISCONNECT with an error reason code, linked to the packet that most likely caused it.",
	RuleAckError:        "A PUBACK, PUBREC, PUBREL or PUBCOMP with an error reason code, linked to the packet it answers.",
	RuleSubackError:     "A SUBACK or UNSUBACK refused a filter; linked to the SUBSCRIBE or UNSUBSCRIBE.",
	RuleSubackCount:     "A SUBACK or UNSUBACK whose number of reason codes differs from the number of filters it answers (§3.9.3, §3.11.3).",
	RuleSubackQoS:       "A SUBACK granted a higher QoS than the SUBSCRIBE asked for.",
	RuleAfterDisconnect: "A packet sent after the sender's own DISCONNECT: the sender must close the connection after DISCONNECT (§3.14.4).",
	RuleSessionExpiry0:  "DISCONNECT sets a non-zero Session Expiry Interval though CONNECT had 0 (or none): a Protocol Error (§3.14.2.2.2).",
	RuleServerKeepAlive: "The server's CONNACK replaced the client's Keep Alive with a Server Keep Alive, which the client must use (MQTT-3.2.2-21).",
	RuleSessionGranted:  "The server's CONNACK set a Session Expiry Interval other than the one the client asked for.",
	RuleServerReference: "The server named another server to use (Server Reference, §4.11).",
	RuleAssignedID:      "The server assigned a Client Identifier though the client sent one.",
	RuleTakenOver:       "The server closed this connection because another connection to it used the same Client Identifier: its DISCONNECT 0x8E says so, or (MQTT 3.1.1) it closed this one within 5 s of that CONNECT, with no DISCONNECT from the client.",
	RuleTakeover:        "A CONNECT uses a Client Identifier that another open connection to the same server uses: the server must close the other one (session takeover, §3.1.4); on the CONNACK, Session Present says this connection resumes that session.",
	RuleAliasUnknown:    "A PUBLISH with an empty topic uses a Topic Alias that was never mapped on this connection: a Protocol Error (§3.3.4; mappings start empty, MQTT-3.3.2-7).",
	RuleAliasRemap:      "A Topic Alias was mapped again to a different topic.",
	RuleAckUnknown:      "An acknowledgement (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK) for a Packet Identifier that is not in flight. Information only when the request may exist unseen: the capture began mid-connection or lost bytes from its sender, or the session was resumed.",
	RuleAckWrongType:    "An acknowledgement of the wrong kind for the QoS of the PUBLISH (PUBACK for QoS 2, PUBREC for QoS 1), or out of order in the QoS 2 exchange.",
	RulePubrelUnknown:   "A PUBREL for a Packet Identifier with no PUBREC: the receiver answers PUBCOMP 0x92 (Packet Identifier not found).",
	RuleDupUnknown:      "A PUBLISH with DUP 1 whose Packet Identifier was never sent on this connection (normal after a reconnect with a resumed session).",
	RuleRetransmit:      "A retransmission (DUP 1) of a PUBLISH still in flight.",
	RuleWildcardUnavail: "A wildcard subscription though the server said Wildcard Subscription Available 0 (0xA2).",
	RuleSubIDUnavail:    "A Subscription Identifier though the server said Subscription Identifiers Available 0 (0xA1).",
	RuleSharedUnavail:   "A shared subscription though the server said Shared Subscription Available 0 (0x9E).",
	RuleAuthExchange:    "Enhanced authentication (§4.12) completed: the method, how many AUTH packets it took and how long.",
	RuleAuthNoMethod:    "An AUTH packet without an Authentication Method (§3.15.2.2.2): a Protocol Error.",
	RuleCloseNoDisc:     "The connection closed without a DISCONNECT: the Will message, if any, is published; linked to the last packet before the close. Not raised when the capture ended with the connection open.",
	RuleUnacked:         "QoS 1 or 2 messages were still unacknowledged when the connection closed (they are resent on a resumed session).",
	RuleUnfinished:      "The connection (or the capture) ended inside a packet: its first bytes arrived, the rest never did. A warning when the connection closed, information when the capture ended.",

	RuleProfileKeepAlive:  "The broker profile says this broker changes the requested Keep Alive.",
	RuleProfileSession:    "The broker profile says this broker changes the requested Session Expiry Interval.",
	RuleProfileTopicAlias: "The broker profile says this broker limits Topic Aliases below what the device asks for or uses.",
	RuleProfileReceiveMax: "The broker profile says this broker accepts fewer QoS 1/2 messages in flight than the device has unacknowledged.",
	RuleProfilePayload:    "The broker profile says this broker refuses a message body this large.",
	RuleProfilePacketSize: "The broker profile says this broker refuses a packet this large.",
	RuleProfileQoS:        "The broker profile says this broker does not support this QoS.",
	RuleProfileRetain:     "The broker profile says this broker does not support retained messages.",
	RuleProfileSubscribe:  "The broker profile says this broker does not support this kind of subscription (wildcard, shared, Subscription Identifier).",
	RuleProfileMismatch:   "The CONNACK differs from what the broker profile predicted: the profile may be out of date.",
}

// RuleText explains a rule ID: the standard's statement for MQTT-… IDs, mqscope's own
// explanation for MQSCOPE-… IDs. ok is false for an unknown ID.
func RuleText(id string) (text string, ok bool) {
	if strings.HasPrefix(id, "MQSCOPE-") {
		text, ok = mqscopeRules[id]
		return text, ok
	}
	r, ok := decode.LookupRule(id)
	if !ok {
		return "", false
	}
	return r.Text, true
}

// MQScopeRules returns every mqscope rule ID, sorted.
func MQScopeRules() []string {
	ids := make([]string, 0, len(mqscopeRules))
	for id := range mqscopeRules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// problemRule picks the rule ID of a decoder problem: its own when it has one, else an mqscope
// ID by what kind of problem it is.
func problemRule(p *decode.Problem) string {
	if p.Rule != "" {
		return p.Rule
	}
	switch {
	case p.Reason == decode.PayloadFormatInvalid:
		return RulePayloadUTF
	case strings.HasSuffix(p.Field, "subscription_identifier") && strings.Contains(p.Message, "is 0"):
		return RuleSubIDZero
	case p.Category == decode.ErrMalformed:
		return RuleMalformed
	case p.Category == decode.ErrTooLarge:
		return RuleTooLarge
	case p.Category == decode.ErrSuspicious:
		return RuleSuspicious
	}
	return RuleProtocol
}
