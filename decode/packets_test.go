package decode

import (
	"bytes"
	"testing"
)

// wellFormed is a frame the standard allows, with the packet it decodes to.
type wellFormed struct {
	name string
	v    Version
	b    []byte
	want Packet
}

func v5base() Base   { return Base{Version: V5} }
func v311base() Base { return Base{Version: V311} }

// wellFormedCases holds one or more frames of every packet type of every version.
var wellFormedCases = []wellFormed{
	// MQTT 5.0
	{"v5/CONNECT/full", V5, []byte{
		0x10, 0x34, // CONNECT, remaining length 52
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x05,       // protocol level 5
		0xEE,       // flags: user name, password, will retain, will QoS 1, will, clean start
		0x00, 0x3C, // keep alive 60
		0x0B,                         // property length 11
		0x11, 0x00, 0x00, 0x00, 0x78, // session expiry interval 120
		0x21, 0x00, 0x0A, // receive maximum 10
		0x22, 0x00, 0x05, // topic alias maximum 5
		0x00, 0x03, 'c', 'i', 'd', // client identifier
		0x05,                         // will property length 5
		0x18, 0x00, 0x00, 0x00, 0x0A, // will delay interval 10
		0x00, 0x03, 'w', '/', 't', // will topic
		0x00, 0x02, 'b', 'y', // will payload
		0x00, 0x04, 'u', 's', 'e', 'r', // user name
		0x00, 0x02, 'p', 'w', // password
	}, &Connect{Base: v5base(), ProtocolName: "MQTT", ProtocolLevel: 5, Flags: 0xEE, CleanStart: true, KeepAlive: 60,
		Properties:  Properties{IntProp(PropSessionExpiry, 120), IntProp(PropReceiveMaximum, 10), IntProp(PropTopicAliasMaximum, 5)},
		ClientID:    "cid",
		Will:        &WillMessage{QoS: 1, Retain: true, Properties: Properties{IntProp(PropWillDelay, 10)}, Topic: "w/t", Payload: []byte("by")},
		HasUsername: true, Username: "user", HasPassword: true, Password: []byte("pw")}},
	{"v5/CONNECT/minimal", V5, []byte{
		0x10, 0x0D, // CONNECT, remaining length 13
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x05,       // protocol level 5
		0x02,       // flags: clean start
		0x00, 0x00, // keep alive 0
		0x00,       // property length 0
		0x00, 0x00, // empty client identifier (allowed in MQTT 5)
	}, &Connect{Base: v5base(), ProtocolName: "MQTT", ProtocolLevel: 5, Flags: 0x02, CleanStart: true}},
	{"v5/CONNECT/password-without-username", V5, []byte{
		0x10, 0x11, // CONNECT, remaining length 17
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x05,       // protocol level 5
		0x40,       // flags: password only (allowed in MQTT 5)
		0x00, 0x0A, // keep alive 10
		0x00,            // property length 0
		0x00, 0x01, 'c', // client identifier
		0x00, 0x01, 0x00, // password: one zero byte (binary data may hold anything)
	}, &Connect{Base: v5base(), ProtocolName: "MQTT", ProtocolLevel: 5, Flags: 0x40, KeepAlive: 10, ClientID: "c",
		HasPassword: true, Password: []byte{0}}},
	{"v5/CONNACK/properties", V5, []byte{
		0x20, 0x25, // CONNACK, remaining length 37
		0x01,                         // acknowledge flags: session present
		0x00,                         // reason code: success
		0x22,                         // property length 34
		0x11, 0x00, 0x00, 0x00, 0x3C, // session expiry interval 60
		0x12, 0x00, 0x02, 'i', 'd', // assigned client identifier
		0x13, 0x00, 0x1E, // server keep alive 30
		0x21, 0x00, 0x14, // receive maximum 20
		0x22, 0x00, 0x0A, // topic alias maximum 10
		0x24, 0x01, // maximum QoS 1
		0x25, 0x00, // retain available 0
		0x27, 0x00, 0x01, 0x00, 0x00, // maximum packet size 65536
		0x28, 0x01, // wildcard subscription available 1
		0x29, 0x01, // subscription identifiers available 1
		0x2A, 0x00, // shared subscription available 0
	}, &Connack{Base: v5base(), SessionPresent: true, AckFlags: 1, Properties: Properties{
		IntProp(PropSessionExpiry, 60), StrProp(PropAssignedClientID, "id"), IntProp(PropServerKeepAlive, 30),
		IntProp(PropReceiveMaximum, 20), IntProp(PropTopicAliasMaximum, 10), IntProp(PropMaximumQoS, 1),
		IntProp(PropRetainAvailable, 0), IntProp(PropMaximumPacketSize, 65536), IntProp(PropWildcardSubAvailable, 1),
		IntProp(PropSubIDAvailable, 1), IntProp(PropSharedSubAvailable, 0)}}},
	{"v5/CONNACK/refused", V5, []byte{
		0x20, 0x03, // CONNACK, remaining length 3
		0x00, // acknowledge flags
		0x87, // reason code: not authorized
		0x00, // property length 0
	}, &Connack{Base: v5base(), ReasonCode: NotAuthorized}},
	{"v5/PUBLISH/qos0", V5, []byte{
		0x30, 0x07, // PUBLISH QoS 0, remaining length 7
		0x00, 0x01, 't', // topic
		0x00,          // property length 0
		'p', 'a', 'y', // payload
	}, &Publish{Base: v5base(), Topic: "t", Payload: []byte("pay")}},
	{"v5/PUBLISH/qos1-properties", V5, []byte{
		0x32, 0x32, // PUBLISH QoS 1, remaining length 50
		0x00, 0x03, 'a', '/', 'b', // topic
		0x00, 0x07, // packet identifier 7
		0x28,       // property length 40
		0x01, 0x01, // payload format indicator 1
		0x02, 0x00, 0x00, 0x0E, 0x10, // message expiry interval 3600
		0x03, 0x00, 0x04, 't', 'e', 'x', 't', // content type
		0x08, 0x00, 0x03, 'r', '/', '1', // response topic
		0x09, 0x00, 0x02, 0xCA, 0xFE, // correlation data
		0x0B, 0x05, // subscription identifier 5
		0x0B, 0x80, 0x01, // subscription identifier 128 (repeatable in PUBLISH)
		0x23, 0x00, 0x02, // topic alias 2
		0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
		'h', 'i', // payload
	}, &Publish{Base: v5base(), QoS: 1, Topic: "a/b", PacketID: 7, Properties: Properties{
		IntProp(PropPayloadFormat, 1), IntProp(PropMessageExpiry, 3600), StrProp(PropContentType, "text"),
		StrProp(PropResponseTopic, "r/1"), BinProp(PropCorrelationData, []byte{0xCA, 0xFE}),
		IntProp(PropSubscriptionID, 5), IntProp(PropSubscriptionID, 128), IntProp(PropTopicAlias, 2), UserProp("k", "v")},
		Payload: []byte("hi")}},
	{"v5/PUBLISH/qos2-dup-retain-alias-only", V5, []byte{
		0x3D, 0x09, // PUBLISH DUP, QoS 2, RETAIN, remaining length 9
		0x00, 0x00, // empty topic: the alias stands for it
		0x00, 0x09, // packet identifier 9
		0x03,             // property length 3
		0x23, 0x00, 0x02, // topic alias 2
		'x', // payload
	}, &Publish{Base: v5base(), Dup: true, QoS: 2, Retain: true, PacketID: 9,
		Properties: Properties{IntProp(PropTopicAlias, 2)}, Payload: []byte("x")}},
	{"v5/PUBACK/short", V5, []byte{
		0x40, 0x02, // PUBACK, remaining length 2
		0x00, 0x07, // packet identifier 7; reason code and properties left out
	}, &Ack{Base: v5base(), PacketType: PUBACK, PacketID: 7}},
	{"v5/PUBACK/reason", V5, []byte{
		0x40, 0x03, // PUBACK, remaining length 3
		0x00, 0x07, // packet identifier 7
		0x10, // reason code: no matching subscribers; property length left out
	}, &Ack{Base: v5base(), PacketType: PUBACK, PacketID: 7, ReasonCode: NoMatchingSubscribers, HasReason: true}},
	{"v5/PUBACK/reason-properties", V5, []byte{
		0x40, 0x0C, // PUBACK, remaining length 12
		0x00, 0x07, // packet identifier 7
		0x97,                                      // reason code: quota exceeded
		0x08,                                      // property length 8
		0x1F, 0x00, 0x05, 'q', 'u', 'o', 't', 'a', // reason string
	}, &Ack{Base: v5base(), PacketType: PUBACK, PacketID: 7, ReasonCode: QuotaExceeded, HasReason: true, HasProperties: true,
		Properties: Properties{StrProp(PropReasonString, "quota")}}},
	{"v5/PUBREC/empty-properties", V5, []byte{
		0x50, 0x04, // PUBREC, remaining length 4
		0x00, 0x07, // packet identifier 7
		0x00, // reason code: success
		0x00, // property length 0
	}, &Ack{Base: v5base(), PacketType: PUBREC, PacketID: 7, HasReason: true, HasProperties: true}},
	{"v5/PUBREL/reason", V5, []byte{
		0x62, 0x03, // PUBREL (flags 0010), remaining length 3
		0x00, 0x07, // packet identifier 7
		0x92, // reason code: packet identifier not found
	}, &Ack{Base: v5base(), PacketType: PUBREL, PacketID: 7, ReasonCode: PacketIDNotFound, HasReason: true}},
	{"v5/PUBCOMP/user-property", V5, []byte{
		0x70, 0x0B, // PUBCOMP, remaining length 11
		0x00, 0x07, // packet identifier 7
		0x00,                                   // reason code: success
		0x07,                                   // property length 7
		0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', // user property a=b
	}, &Ack{Base: v5base(), PacketType: PUBCOMP, PacketID: 7, HasReason: true, HasProperties: true,
		Properties: Properties{UserProp("a", "b")}}},
	{"v5/SUBSCRIBE", V5, []byte{
		0x82, 0x0F, // SUBSCRIBE (flags 0010), remaining length 15
		0x00, 0x0A, // packet identifier 10
		0x02,       // property length 2
		0x0B, 0x07, // subscription identifier 7
		0x00, 0x03, 'a', '/', '+', // topic filter
		0x01,            // options: QoS 1
		0x00, 0x01, '#', // topic filter
		0x2E, // options: retain handling 2, retain as published, no local, QoS 2
	}, &Subscribe{Base: v5base(), PacketID: 10, Properties: Properties{IntProp(PropSubscriptionID, 7)},
		Subscriptions: []Subscription{{Filter: "a/+", Options: 0x01, QoS: 1},
			{Filter: "#", Options: 0x2E, QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}}},
	{"v5/SUBACK", V5, []byte{
		0x90, 0x0B, // SUBACK, remaining length 11
		0x00, 0x0A, // packet identifier 10
		0x05,                       // property length 5
		0x1F, 0x00, 0x02, 'o', 'k', // reason string
		0x01, // granted QoS 1
		0x02, // granted QoS 2
		0x80, // unspecified error
	}, &Suback{Base: v5base(), PacketID: 10, Properties: Properties{StrProp(PropReasonString, "ok")},
		ReasonCodes: []ReasonCode{GrantedQoS1, GrantedQoS2, UnspecifiedError}}},
	{"v5/UNSUBSCRIBE", V5, []byte{
		0xA2, 0x08, // UNSUBSCRIBE (flags 0010), remaining length 8
		0x00, 0x0B, // packet identifier 11
		0x00,                      // property length 0
		0x00, 0x03, 'a', '/', 'b', // topic filter
	}, &Unsubscribe{Base: v5base(), PacketID: 11, Filters: []string{"a/b"}}},
	{"v5/UNSUBACK", V5, []byte{
		0xB0, 0x05, // UNSUBACK, remaining length 5
		0x00, 0x0B, // packet identifier 11
		0x00, // property length 0
		0x00, // success
		0x11, // no subscription existed
	}, &Unsuback{Base: v5base(), PacketID: 11, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted}}},
	{"v5/PINGREQ", V5, []byte{0xC0, 0x00}, &Pingreq{v5base()}},                   // PINGREQ, remaining length 0
	{"v5/PINGRESP", V5, []byte{0xD0, 0x00}, &Pingresp{v5base()}},                 // PINGRESP, remaining length 0
	{"v5/DISCONNECT/empty", V5, []byte{0xE0, 0x00}, &Disconnect{Base: v5base()}}, // DISCONNECT: normal, no properties
	{"v5/DISCONNECT/properties", V5, []byte{
		0xE0, 0x0E, // DISCONNECT, remaining length 14
		0x9C,                         // reason code: use another server
		0x0C,                         // property length 12
		0x11, 0x00, 0x00, 0x00, 0x00, // session expiry interval 0
		0x1C, 0x00, 0x04, 'h', 'o', 's', 't', // server reference
	}, &Disconnect{Base: v5base(), ReasonCode: UseAnotherServer, HasReason: true, HasProperties: true,
		Properties: Properties{IntProp(PropSessionExpiry, 0), StrProp(PropServerReference, "host")}}},
	{"v5/AUTH/empty", V5, []byte{0xF0, 0x00}, &Auth{Base: v5base()}}, // AUTH: success, no properties
	{"v5/AUTH/continue", V5, []byte{
		0xF0, 0x0F, // AUTH, remaining length 15
		0x18,                                      // reason code: continue authentication
		0x0D,                                      // property length 13
		0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // authentication method
		0x16, 0x00, 0x02, 0x01, 0x02, // authentication data
	}, &Auth{Base: v5base(), ReasonCode: ContinueAuthentication, HasReason: true, HasProperties: true,
		Properties: Properties{StrProp(PropAuthMethod, "SCRAM"), BinProp(PropAuthData, []byte{1, 2})}}},

	// MQTT 3.1.1
	{"v311/CONNECT/will-user-password", V311, []byte{
		0x10, 0x19, // CONNECT, remaining length 25
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4
		0xD6,       // flags: user name, password, will QoS 2, will, clean session
		0x00, 0x1E, // keep alive 30
		0x00, 0x02, 'c', '1', // client identifier
		0x00, 0x01, 'w', // will topic
		0x00, 0x00, // will message: empty
		0x00, 0x01, 'u', // user name
		0x00, 0x01, 'p', // password
	}, &Connect{Base: v311base(), ProtocolName: "MQTT", ProtocolLevel: 4, Flags: 0xD6, CleanStart: true, KeepAlive: 30,
		ClientID: "c1", Will: &WillMessage{QoS: 2, Topic: "w"},
		HasUsername: true, Username: "u", HasPassword: true, Password: []byte("p")}},
	{"v311/CONNACK", V311, []byte{
		0x20, 0x02, // CONNACK, remaining length 2
		0x01, // session present
		0x00, // return code: accepted
	}, &Connack{Base: v311base(), SessionPresent: true, AckFlags: 1}},
	{"v311/CONNACK/refused", V311, []byte{
		0x20, 0x02, // CONNACK, remaining length 2
		0x00, // flags
		0x05, // return code: not authorized
	}, &Connack{Base: v311base(), ReasonCode: 5}},
	{"v311/PUBLISH/qos1", V311, []byte{
		0x32, 0x0B, // PUBLISH QoS 1, remaining length 11
		0x00, 0x03, 'a', '/', 'b', // topic
		0x00, 0x01, // packet identifier 1
		'd', 'a', 't', 'a', // payload
	}, &Publish{Base: v311base(), QoS: 1, Topic: "a/b", PacketID: 1, Payload: []byte("data")}},
	{"v311/PUBLISH/qos0-retain-empty", V311, []byte{
		0x31, 0x03, // PUBLISH QoS 0 RETAIN, remaining length 3
		0x00, 0x01, 't', // topic; empty payload (clears the retained message)
	}, &Publish{Base: v311base(), Retain: true, Topic: "t"}},
	{"v311/PUBACK", V311, []byte{0x40, 0x02, 0x00, 0x01}, &Ack{Base: v311base(), PacketType: PUBACK, PacketID: 1}},   // PUBACK, packet identifier 1
	{"v311/PUBREC", V311, []byte{0x50, 0x02, 0x00, 0x01}, &Ack{Base: v311base(), PacketType: PUBREC, PacketID: 1}},   // PUBREC, packet identifier 1
	{"v311/PUBREL", V311, []byte{0x62, 0x02, 0x00, 0x01}, &Ack{Base: v311base(), PacketType: PUBREL, PacketID: 1}},   // PUBREL (flags 0010)
	{"v311/PUBCOMP", V311, []byte{0x70, 0x02, 0x00, 0x01}, &Ack{Base: v311base(), PacketType: PUBCOMP, PacketID: 1}}, // PUBCOMP
	{"v311/SUBSCRIBE", V311, []byte{
		0x82, 0x0C, // SUBSCRIBE (flags 0010), remaining length 12
		0x00, 0x02, // packet identifier 2
		0x00, 0x03, 'a', '/', '#', // topic filter
		0x01,            // requested QoS 1
		0x00, 0x01, '+', // topic filter
		0x02, // requested QoS 2
	}, &Subscribe{Base: v311base(), PacketID: 2, Subscriptions: []Subscription{
		{Filter: "a/#", Options: 1, QoS: 1}, {Filter: "+", Options: 2, QoS: 2}}}},
	{"v311/SUBACK", V311, []byte{
		0x90, 0x05, // SUBACK, remaining length 5
		0x00, 0x02, // packet identifier 2
		0x01, // success, maximum QoS 1
		0x02, // success, maximum QoS 2
		0x80, // failure
	}, &Suback{Base: v311base(), PacketID: 2, ReasonCodes: []ReasonCode{1, 2, 0x80}}},
	{"v311/UNSUBSCRIBE", V311, []byte{
		0xA2, 0x07, // UNSUBSCRIBE (flags 0010), remaining length 7
		0x00, 0x03, // packet identifier 3
		0x00, 0x03, 'a', '/', '#', // topic filter
	}, &Unsubscribe{Base: v311base(), PacketID: 3, Filters: []string{"a/#"}}},
	{"v311/UNSUBACK", V311, []byte{0xB0, 0x02, 0x00, 0x03}, &Unsuback{Base: v311base(), PacketID: 3}}, // UNSUBACK, packet identifier 3
	{"v311/PINGREQ", V311, []byte{0xC0, 0x00}, &Pingreq{v311base()}},
	{"v311/PINGRESP", V311, []byte{0xD0, 0x00}, &Pingresp{v311base()}},
	{"v311/DISCONNECT", V311, []byte{0xE0, 0x00}, &Disconnect{Base: v311base()}},

	// MQTT 3.1
	{"v31/CONNECT", V31, []byte{
		0x10, 0x12, // CONNECT, remaining length 18
		0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name of MQTT 3.1
		0x03,       // protocol level 3
		0x02,       // flags: clean session
		0x00, 0x3C, // keep alive 60
		0x00, 0x04, 'm', 'q', '3', '1', // client identifier
	}, &Connect{Base: Base{Version: V31}, ProtocolName: "MQIsdp", ProtocolLevel: 3, Flags: 0x02, CleanStart: true,
		KeepAlive: 60, ClientID: "mq31"}},
	{"v31/PUBLISH", V31, []byte{
		0x30, 0x05, // PUBLISH QoS 0, remaining length 5
		0x00, 0x01, 't', // topic
		'h', 'i', // payload
	}, &Publish{Base: Base{Version: V31}, Topic: "t", Payload: []byte("hi")}},
}

func TestDecodeWellFormed(t *testing.T) {
	for _, c := range wellFormedCases {
		t.Run(c.name, func(t *testing.T) {
			p := Decode(c.b, c.v)
			if len(p.Info().Problems) > 0 {
				t.Errorf("problems in a well-formed frame:%s", problemList(p.Info().Problems))
			}
			if d := samePacket(p, c.want); d != "" {
				t.Errorf("decoded packet differs:%s", d)
			}
			if !bytes.Equal(p.Info().Raw, c.b) {
				t.Errorf("Raw = % X, want the frame", p.Info().Raw)
			}
			if p.Info().Size() != len(c.b) {
				t.Errorf("Size = %d, want %d", p.Info().Size(), len(c.b))
			}
			h := p.Info().Header
			if h.Type != c.want.Type() || h.Flags != c.b[0]&0x0f || h.HeaderLen+h.RemainingLength != len(c.b) {
				t.Errorf("header %+v does not match the frame", h)
			}
			if v, ok := PeekVersion(c.b); c.want.Type() == CONNECT && (!ok || v != c.v) {
				t.Errorf("PeekVersion = %v, %v; want %v", v, ok, c.v)
			}
			checkLayout(t, p)
			// Every byte of a well-formed frame belongs to a field or a property identifier.
			covered := make([]bool, len(c.b))
			for _, f := range p.Info().Fields {
				for i := f.Offset; i < f.Offset+f.Len; i++ {
					covered[i] = true
				}
			}
			for _, ps := range allProps(p) {
				for _, pr := range ps {
					covered[pr.Offset] = true
				}
			}
			for i, ok := range covered {
				if !ok {
					t.Errorf("byte %d (0x%02X) belongs to no field", i, c.b[i])
				}
			}
		})
	}
}

// TestRoundTripWellFormed: Encode(Decode(b)) == b, Encode(want) == b, and Decode(Encode(want))
// equals want, for every well-formed frame.
func TestRoundTripWellFormed(t *testing.T) {
	for _, c := range wellFormedCases {
		t.Run(c.name, func(t *testing.T) {
			p := Decode(c.b, c.v)
			got, err := Encode(nil, p)
			if err != nil {
				t.Fatalf("Encode(Decode(b)): %v", err)
			}
			if !bytes.Equal(got, c.b) {
				t.Errorf("Encode(Decode(b)) =\n% X\nwant\n% X", got, c.b)
			}
			built, err := Encode([]byte{0xAA}, c.want)
			if err != nil {
				t.Fatalf("Encode(want): %v", err)
			}
			if built[0] != 0xAA || !bytes.Equal(built[1:], c.b) {
				t.Errorf("Encode(want) appended\n% X\nwant\n% X", built[1:], c.b)
			}
			back := Decode(built[1:], c.v)
			if d := samePacket(back, c.want); d != "" {
				t.Errorf("Decode(Encode(want)) differs:%s", d)
			}
		})
	}
}

func TestPeekVersion(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		v    Version
		ok   bool
	}{
		{"not CONNECT", []byte{0x30, 0x00}, 0, false},
		{"empty", nil, 0, false},
		{"name cut", []byte{0x10, 0x05, 0x00, 0x04, 'M', 'Q'}, 0, false},
		{"level cut", []byte{0x10, 0x06, 0x00, 0x04, 'M', 'Q', 'T', 'T'}, 0, false},
		{"level 5", []byte{0x10, 0x07, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05}, V5, true},
		{"level 7 is returned as is", []byte{0x10, 0x07, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x07}, 7, true},
	} {
		v, ok := PeekVersion(c.b)
		if v != c.v || ok != c.ok {
			t.Errorf("%s: PeekVersion = %v, %v; want %v, %v", c.name, v, ok, c.v, c.ok)
		}
	}
}
