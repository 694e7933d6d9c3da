package decode

import "testing"

func TestReasonOf(t *testing.T) {
	v5, v311 := Base{Version: V5}, Base{Version: V311}
	for _, tc := range []struct {
		p    Packet
		rc   ReasonCode
		has  bool
		name string
	}{
		{&Connack{Base: v5, ReasonCode: 0x87}, 0x87, true, "CONNACK"},
		{&Connack{Base: v311, ReasonCode: 5}, 5, true, "CONNACK 3.1.1"},
		{&Ack{Base: v5, PacketType: PUBACK, ReasonCode: 0x10}, 0x10, true, "PUBACK"},
		{&Ack{Base: v5, PacketType: PUBACK}, 0, true, "PUBACK short form"},
		{&Ack{Base: v311, PacketType: PUBACK}, 0, false, "PUBACK 3.1.1"},
		{&Suback{Base: v5, ReasonCodes: []ReasonCode{0x87, 0x01}}, 0x87, true, "SUBACK"},
		{&Suback{Base: v5}, 0, false, "SUBACK without codes"},
		{&Unsuback{Base: v5, ReasonCodes: []ReasonCode{0x11}}, 0x11, true, "UNSUBACK"},
		{&Unsuback{Base: v311}, 0, false, "UNSUBACK 3.1.1"},
		{&Disconnect{Base: v5, ReasonCode: 0x8E}, 0x8E, true, "DISCONNECT"},
		{&Disconnect{Base: v311}, 0, false, "DISCONNECT 3.1.1"},
		{&Auth{Base: v5, ReasonCode: 0x18}, 0x18, true, "AUTH"},
		{&Publish{Base: v5}, 0, false, "PUBLISH"},
	} {
		if rc, has := ReasonOf(tc.p); rc != tc.rc || has != tc.has {
			t.Errorf("%s: %#x, %v; want %#x, %v", tc.name, rc, has, tc.rc, tc.has)
		}
	}
}
