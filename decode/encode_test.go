package decode

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// builtPackets are packets built in code, as a client library or a fault injector would.
// Fields that only record received bytes (Connect.Flags, Connack.AckFlags, Subscription.Options)
// are filled in by adoptReceived before comparing.
func builtPackets() []Packet {
	big := strings.Repeat("x", 300) // a Remaining Length of two bytes
	return []Packet{
		&Connect{Base: v5base(), ProtocolName: "MQTT", ProtocolLevel: 5, CleanStart: true, KeepAlive: 65535,
			Properties: Properties{IntProp(PropSessionExpiry, 0xFFFFFFFF), IntProp(PropRequestProblemInfo, 0),
				IntProp(PropRequestResponseInfo, 1), IntProp(PropMaximumPacketSize, 1<<20), StrProp(PropAuthMethod, "PLAIN"),
				BinProp(PropAuthData, []byte("secret")), UserProp("a", "1"), UserProp("a", "2")},
			ClientID: "client-é", Will: &WillMessage{QoS: 2, Properties: Properties{IntProp(PropPayloadFormat, 1),
				IntProp(PropMessageExpiry, 10), StrProp(PropContentType, "text/plain"), StrProp(PropResponseTopic, "resp"),
				BinProp(PropCorrelationData, []byte{1}), UserProp("w", "")}, Topic: "will/" + big, Payload: []byte(big)},
			HasUsername: true, Username: "", HasPassword: true, Password: nil},
		&Connect{Base: Base{Version: V31}, ProtocolName: "MQIsdp", ProtocolLevel: 3, ClientID: "c", HasUsername: true, Username: "u"},
		&Connack{Base: v5base(), ReasonCode: BadAuthenticationMethod, Properties: Properties{StrProp(PropReasonString, "no"),
			StrProp(PropResponseInfo, "ri"), StrProp(PropServerReference, "other:1883"), StrProp(PropAuthMethod, "m"), BinProp(PropAuthData, nil)}},
		&Publish{Base: v5base(), QoS: 2, PacketID: 65535, Topic: "a/b/c", Payload: bytes.Repeat([]byte{0}, 20000)},
		&Publish{Base: v5base(), Topic: "t", Properties: Properties{IntProp(PropSubscriptionID, MaxVarInt),
			IntProp(PropSubscriptionID, 1), IntProp(PropTopicAlias, 1)}},
		&Publish{Base: v311base(), QoS: 1, Dup: true, Retain: true, PacketID: 1, Topic: big},
		&Ack{Base: v5base(), PacketType: PUBREC, PacketID: 3, ReasonCode: PacketIDInUse, HasReason: true},
		&Ack{Base: v5base(), PacketType: PUBREL, PacketID: 3, HasReason: true, HasProperties: true,
			Properties: Properties{StrProp(PropReasonString, "r")}},
		&Ack{Base: Base{Version: V31}, PacketType: PUBCOMP, PacketID: 9},
		&Subscribe{Base: v5base(), PacketID: 1, Properties: Properties{UserProp("k", "v")},
			Subscriptions: []Subscription{{Filter: "$share/g/a/#", QoS: 1, RetainHandling: 1}, {Filter: "+/+", RetainAsPublished: true}}},
		&Suback{Base: v5base(), PacketID: 1, ReasonCodes: []ReasonCode{0, SharedSubsNotSupported, WildcardSubsNotSupported}},
		&Unsubscribe{Base: v5base(), PacketID: 2, Properties: Properties{UserProp("", "")}, Filters: []string{"a", "b/#", "$share/g/c"}},
		&Unsuback{Base: v5base(), PacketID: 2, Properties: Properties{StrProp(PropReasonString, "x")},
			ReasonCodes: []ReasonCode{NotAuthorized, TopicFilterInvalid, PacketIDInUse}},
		&Disconnect{Base: v5base(), ReasonCode: DisconnectWithWill, HasReason: true},
		&Disconnect{Base: v5base(), HasReason: true, HasProperties: true, Properties: Properties{UserProp("bye", "now")}},
		&Auth{Base: v5base(), ReasonCode: ReAuthenticate, HasReason: true, HasProperties: true,
			Properties: Properties{StrProp(PropAuthMethod, "m"), StrProp(PropReasonString, "again")}},
		&Pingreq{Base{Version: V31}},
		&Pingresp{v5base()},
	}
}

// adoptReceived copies into want the fields that only record received bytes.
func adoptReceived(want, got Packet) {
	switch w := want.(type) {
	case *Connect:
		w.Flags = got.(*Connect).Flags
	case *Connack:
		w.AckFlags = got.(*Connack).AckFlags
	case *Subscribe:
		for i := range w.Subscriptions {
			if i < len(got.(*Subscribe).Subscriptions) {
				w.Subscriptions[i].Options = got.(*Subscribe).Subscriptions[i].Options
			}
		}
	}
}

func TestRoundTripBuilt(t *testing.T) {
	for _, p := range builtPackets() {
		t.Run(p.Info().Version.String()+"/"+p.Type().String(), func(t *testing.T) {
			b, err := Encode(nil, p)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			q := Decode(b, p.Info().Version)
			if ps := q.Info().Problems; len(ps) > 0 {
				t.Errorf("problems:%s", problemList(ps))
			}
			adoptReceived(p, q)
			if d := samePacket(q, p); d != "" {
				t.Errorf("Decode(Encode(p)) differs:%s", d)
			}
			if b2, _ := Encode(nil, q); !bytes.Equal(b, b2) {
				t.Errorf("Encode(Decode(Encode(p))) differs")
			}
			checkLayout(t, q)
		})
	}
}

// TestEncodeDefaults: a packet built with only the essentials gets the standard's defaults.
func TestEncodeDefaults(t *testing.T) {
	for _, c := range []struct {
		p    Packet
		want []byte
	}{
		{&Connect{Base: Base{Version: V311}, CleanStart: true, ClientID: "c"}, []byte{
			0x10, 0x0D, // CONNECT
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name from the version
			0x04,       // protocol level from the version
			0x02,       // clean session
			0x00, 0x00, // keep alive
			0x00, 0x01, 'c', // client identifier
		}},
		{&Connect{Base: Base{Version: V31}}, []byte{
			0x10, 0x0E, // CONNECT
			0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name of 3.1
			0x03,       // protocol level
			0x00,       // flags
			0x00, 0x00, // keep alive
			0x00, 0x00, // client identifier
		}},
		{&Connect{}, []byte{
			0x10, 0x0D, // CONNECT; version 0 means MQTT 5
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
			0x05,       // protocol level
			0x00,       // flags
			0x00, 0x00, // keep alive
			0x00,       // property length
			0x00, 0x00, // client identifier
		}},
		{&Ack{Base: v5base(), PacketType: PUBACK, PacketID: 1, ReasonCode: NoMatchingSubscribers}, []byte{
			0x40, 0x03, // PUBACK
			0x00, 0x01, // packet identifier
			0x10, // a non-zero reason code is written even without HasReason
		}},
		{&Ack{Base: v5base(), PacketType: PUBREL, PacketID: 1, Properties: Properties{UserProp("a", "b")}}, []byte{
			0x62, 0x0B, // PUBREL with its fixed flags
			0x00, 0x01, // packet identifier
			0x00,                                   // reason code, needed before properties
			0x07,                                   // property length
			0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b', // user property
		}},
		{&Unknown{Base: Base{Header: FixedHeader{Type: Reserved, Flags: 0x5}}, Body: []byte{1, 2}}, []byte{
			0x05, 0x02, // type 0, flags 0101, as given
			0x01, 0x02, // body
		}},
	} {
		got, err := Encode(nil, c.p)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("Encode(%T) = % X, %v; want % X", c.p, got, err, c.want)
		}
	}
}

type notAPacket struct{ Base }

func (notAPacket) Type() Type { return PINGREQ }

func TestEncodeErrors(t *testing.T) {
	long := strings.Repeat("x", 65536)
	for _, c := range []struct {
		name string
		p    Packet
	}{
		{"ack of type CONNECT", &Ack{PacketType: CONNECT}},
		{"topic too long", &Publish{Topic: long}},
		{"client identifier too long", &Connect{ClientID: long}},
		{"password too long", &Connect{HasPassword: true, Password: []byte(long)}},
		{"will payload too long", &Connect{Will: &WillMessage{Topic: "t", Payload: []byte(long)}}},
		{"filter too long", &Unsubscribe{PacketID: 1, Filters: []string{long}}},
		{"unknown property", &Publish{Topic: "t", Properties: Properties{{ID: 0x05}}}},
		{"byte property too big", &Publish{Topic: "t", Properties: Properties{IntProp(PropPayloadFormat, 256)}}},
		{"two-byte property too big", &Publish{Topic: "t", Properties: Properties{IntProp(PropTopicAlias, 65536)}}},
		{"string property too long", &Publish{Topic: "t", Properties: Properties{StrProp(PropContentType, long)}}},
		{"binary property too long", &Publish{Topic: "t", Properties: Properties{BinProp(PropCorrelationData, []byte(long))}}},
		{"user property value too long", &Publish{Topic: "t", Properties: Properties{UserProp("a", long)}}},
		{"not a packet type of this package", &notAPacket{}},
		{"3.1.1 DISCONNECT with a reason code", &Disconnect{Base: v311base(), ReasonCode: ServerBusy}},
		{"3.1.1 PUBACK with a reason code", &Ack{Base: v311base(), PacketType: PUBACK, PacketID: 1, HasReason: true}},
		{"3.1.1 UNSUBACK with reason codes", &Unsuback{Base: v311base(), PacketID: 5, ReasonCodes: []ReasonCode{0x80}}},
		{"3.1.1 PUBLISH with properties", &Publish{Base: v311base(), Topic: "t", Properties: Properties{IntProp(PropTopicAlias, 1)}}},
		{"3.1 CONNECT with Will Properties", &Connect{Base: Base{Version: V31}, Will: &WillMessage{Topic: "t",
			Properties: Properties{IntProp(PropWillDelay, 1)}}}},
		{"3.1.1 AUTH", &Auth{Base: v311base()}},
	} {
		dst := []byte{0xAA}
		got, err := Encode(dst, c.p)
		if !errors.Is(err, ErrEncode) {
			t.Errorf("%s: err = %v", c.name, err)
		}
		if !bytes.Equal(got, dst) {
			t.Errorf("%s: dst changed to % X", c.name, got)
		}
	}
}

// TestEncodeKeepsReceivedFlags: a decoded packet re-encodes with the flags it came with, even
// reserved ones; the same packet built in code gets the standard's.
func TestEncodeKeepsReceivedFlags(t *testing.T) {
	for _, b := range [][]byte{
		{0x60, 0x02, 0x00, 0x01}, // PUBREL with flags 0000
		{0x6A, 0x02, 0x00, 0x01}, // PUBREL DUP, QoS 1 (MQTT 3.1)
		{0xC3, 0x00},             // PINGREQ with flags 0011
	} {
		p := Decode(b, V31)
		got, err := Encode(nil, p)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("Encode(Decode(% X)) = % X, %v", b, got, err)
		}
		p.Info().Raw = nil // as if built in code
		got, _ = Encode(nil, p)
		if want, _ := fixedFlags(p.Type()); got[0]&0x0f != want {
			t.Errorf("built %s: flags 0x%X", p.Type(), got[0]&0x0f)
		}
	}
}
