package inspect

import (
	"testing"

	"github.com/mqscope/mqscope/decode"
)

// TestEachFinding drives one crafted sequence per finding not covered elsewhere and checks
// that the last packet carries it.
func TestEachFinding(t *testing.T) {
	disc := func(rc decode.ReasonCode, ps ...decode.Property) *decode.Disconnect {
		return &decode.Disconnect{ReasonCode: rc, HasReason: true, HasProperties: len(ps) > 0, Properties: ps}
	}
	cases := []struct {
		name    string
		profile string
		run     func(s *session) *PacketRecord
		rule    string
		level   decode.Level
	}{
		{"PUBACK for QoS 2", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			s.c2s(publish("a", 2, 1, "x"))
			return s.s2c(ack(decode.PUBACK, 1, 0))
		}, RuleAckWrongType, decode.LevelError},
		{"PUBREC for QoS 1", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			s.c2s(publish("a", 1, 1, "x"))
			return s.s2c(ack(decode.PUBREC, 1, 0))
		}, RuleAckWrongType, decode.LevelError},
		{"PUBREL before PUBREC", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			s.c2s(publish("a", 2, 1, "x"))
			return s.c2s(ack(decode.PUBREL, 1, 0))
		}, RuleAckWrongType, decode.LevelError},
		{"DUP on first sending", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			return s.c2s(&decode.Publish{Topic: "a", QoS: 1, PacketID: 4, Dup: true})
		}, RuleDupUnknown, decode.LevelInfo},
		{"server reuses an id", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			s.s2c(publish("a", 1, 1, "x"))
			return s.s2c(publish("b", 1, 1, "y"))
		}, "MQTT-2.2.1-4", decode.LevelError},
		{"SUBSCRIBE id in use by a PUBLISH", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			s.c2s(publish("a", 1, 1, "x"))
			return s.c2s(&decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a"}}})
		}, "MQTT-2.2.1-3", decode.LevelError},
		{"SUBACK count", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			s.c2s(&decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a"}, {Filter: "b"}}})
			return s.s2c(&decode.Suback{PacketID: 1, ReasonCodes: []decode.ReasonCode{0}})
		}, RuleSubackCount, decode.LevelError},
		{"UNSUBACK count", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			s.c2s(&decode.Unsubscribe{PacketID: 1, Filters: []string{"a"}})
			return s.s2c(&decode.Unsuback{PacketID: 1, ReasonCodes: []decode.ReasonCode{0, 0}})
		}, RuleSubackCount, decode.LevelError},
		{"SUBACK grants more", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			s.c2s(&decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a", QoS: 0}}})
			return s.s2c(&decode.Suback{PacketID: 1, ReasonCodes: []decode.ReasonCode{decode.GrantedQoS2}})
		}, RuleSubackQoS, decode.LevelWarning},
		{"server DISCONNECT with session expiry", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			return s.s2c(disc(decode.ServerShuttingDown, ip(decode.PropSessionExpiry, 10)))
		}, "MQTT-3.14.2-2", decode.LevelError},
		{"client sends a server-only reason", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			return s.c2s(disc(decode.ServerShuttingDown))
		}, "MQTT-3.14.2-1", decode.LevelError},
		{"server sends a client-only reason", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			return s.s2c(disc(decode.DisconnectWithWill))
		}, "MQTT-3.14.2-1", decode.LevelError},
		{"server DISCONNECT before CONNACK", "", func(s *session) *PacketRecord {
			s.c2s(&decode.Connect{ClientID: "a"})
			return s.s2c(disc(decode.ServerBusy))
		}, "MQTT-3.14.0-1", decode.LevelError},
		{"server reference", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			return s.s2c(disc(decode.UseAnotherServer, decode.StrProp(decode.PropServerReference, "b.example:1883")))
		}, RuleServerReference, decode.LevelInfo},
		{"assigned id though the client sent one", "", func(s *session) *PacketRecord {
			s.c2s(&decode.Connect{ClientID: "a"})
			return s.s2c(&decode.Connack{Properties: props(decode.StrProp(decode.PropAssignedClientID, "b"))})
		}, RuleAssignedID, decode.LevelInfo},
		{"response information not asked for", "", func(s *session) *PacketRecord {
			s.c2s(&decode.Connect{ClientID: "a"})
			return s.s2c(&decode.Connack{Properties: props(decode.StrProp(decode.PropResponseInfo, "resp/"))})
		}, "MQTT-3.1.2-28", decode.LevelError},
		{"Will QoS above Maximum QoS accepted", "", func(s *session) *PacketRecord {
			s.c2s(&decode.Connect{ClientID: "a", Will: &decode.WillMessage{Topic: "w", QoS: 2}})
			return s.s2c(&decode.Connack{Properties: props(ip(decode.PropMaximumQoS, 1))})
		}, "MQTT-3.2.2-12", decode.LevelError},
		{"Will Retain without Retain Available accepted", "", func(s *session) *PacketRecord {
			s.c2s(&decode.Connect{ClientID: "a", Will: &decode.WillMessage{Topic: "w", Retain: true}})
			return s.s2c(&decode.Connack{Properties: props(ip(decode.PropRetainAvailable, 0))})
		}, "MQTT-3.2.2-13", decode.LevelError},
		{"reason string despite Request Problem Information 0", "", func(s *session) *PacketRecord {
			s.connect(props(ip(decode.PropRequestProblemInfo, 0)), nil)
			s.c2s(publish("a", 1, 1, "x"))
			return s.s2c(&decode.Ack{PacketType: decode.PUBACK, PacketID: 1, HasReason: true, HasProperties: true,
				Properties: props(decode.StrProp(decode.PropReasonString, "why"))})
		}, "MQTT-3.1.2-29", decode.LevelError},
		{"Subscription Identifier in a client PUBLISH", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			return s.c2s(publish("a", 0, 0, "x", ip(decode.PropSubscriptionID, 3)))
		}, "MQTT-3.3.4-6", decode.LevelError},
		{"server over the client's Receive Maximum", "", func(s *session) *PacketRecord {
			s.connect(props(ip(decode.PropReceiveMaximum, 1)), nil)
			s.s2c(publish("a", 1, 1, "x"))
			return s.s2c(publish("a", 1, 2, "x"))
		}, "MQTT-3.3.4-9", decode.LevelError},
		{"server alias above the client's maximum", "", func(s *session) *PacketRecord {
			s.connect(props(ip(decode.PropTopicAliasMaximum, 2)), nil)
			return s.s2c(publish("a", 0, 0, "x", ip(decode.PropTopicAlias, 3)))
		}, "MQTT-3.3.2-11", decode.LevelError},
		{"client alias without CONNACK maximum", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			return s.c2s(publish("a", 0, 0, "x", ip(decode.PropTopicAlias, 1)))
		}, "MQTT-3.2.2-18", decode.LevelError},
		{"AUTH without method", "", func(s *session) *PacketRecord {
			s.c2s(&decode.Connect{ClientID: "a", Properties: props(decode.StrProp(decode.PropAuthMethod, "X"))})
			return s.s2c(&decode.Auth{ReasonCode: decode.ContinueAuthentication, HasReason: true})
		}, RuleAuthNoMethod, decode.LevelError},
		{"client AUTH reason before CONNACK", "", func(s *session) *PacketRecord {
			m := decode.StrProp(decode.PropAuthMethod, "X")
			s.c2s(&decode.Connect{ClientID: "a", Properties: props(m)})
			return s.c2s(&decode.Auth{ReasonCode: decode.ReAuthenticate, HasReason: true, HasProperties: true, Properties: props(m)})
		}, "MQTT-4.12.0-3", decode.LevelError},
		{"re-authentication with another method", "", func(s *session) *PacketRecord {
			s.c2s(&decode.Connect{ClientID: "a", Properties: props(decode.StrProp(decode.PropAuthMethod, "X"))})
			s.s2c(&decode.Connack{Properties: props(decode.StrProp(decode.PropAuthMethod, "X"))})
			return s.c2s(&decode.Auth{ReasonCode: decode.ReAuthenticate, HasReason: true, HasProperties: true, Properties: props(decode.StrProp(decode.PropAuthMethod, "Y"))})
		}, "MQTT-4.12.1-1", decode.LevelError},
		{"PUBCOMP before PUBREL", "", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			s.c2s(publish("a", 2, 1, "x"))
			return s.s2c(ack(decode.PUBCOMP, 1, 0))
		}, RuleAckWrongType, decode.LevelError},
		{"profile: QoS", "qos1", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			return s.c2s(publish("a", 2, 1, "x"))
		}, RuleProfileQoS, decode.LevelWarning},
		{"profile: wildcard", "qos1", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			return s.c2s(&decode.Subscribe{PacketID: 1, Subscriptions: []decode.Subscription{{Filter: "a/#"}}})
		}, RuleProfileSubscribe, decode.LevelWarning},
		{"profile: packet size", "qos1", func(s *session) *PacketRecord {
			s.connect(nil, nil)
			return s.c2s(publish("a", 0, 0, "0123456789012345678901234567890123456789"))
		}, RuleProfilePacketSize, decode.LevelWarning},
		{"profile: Will QoS", "qos1", func(s *session) *PacketRecord {
			return s.c2s(&decode.Connect{ClientID: "a", Will: &decode.WillMessage{Topic: "w", QoS: 2}})
		}, RuleProfileQoS, decode.LevelWarning},
		{"profile: client alias above the broker's", "apsaramq", func(s *session) *PacketRecord {
			s.connect(nil, props(ip(decode.PropTopicAliasMaximum, 40)))
			return s.c2s(publish("a", 0, 0, "x", ip(decode.PropTopicAlias, 35)))
		}, RuleProfileTopicAlias, decode.LevelWarning},
	}
	qos1, err := ParseProfile([]byte("maximum_qos: 1\nwildcard_subscription_available: false\nmaximum_packet_size: 40\n"), "qos1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p *Profile
			switch c.profile {
			case "qos1":
				p = qos1
			case "apsaramq":
				p, _ = LoadProfile("apsaramq")
			}
			s := newSession(t, Options{Profile: p})
			r := c.run(s)
			if n := note(t, r, c.rule); n.Level != c.level {
				t.Errorf("level %s, want %s", n.Level, c.level)
			}
		})
	}
}

func TestUnacknowledgedAtClose(t *testing.T) {
	s := newSession(t, Options{})
	s.connect(nil, nil)
	s.c2s(publish("a", 1, 1, "x"))
	s.c2s(&decode.Disconnect{})
	cr := s.c.Close(s.now, closeEnd("client", ""))
	if len(cr.Notes) != 1 || cr.Notes[0].Rule != RuleUnacked {
		t.Errorf("close notes %+v", cr.Notes)
	}
}
