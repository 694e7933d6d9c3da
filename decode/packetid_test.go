package decode

import "testing"

// SetPacketID sets what PacketID reads, on every packet with an identifier, and nothing else.
func TestSetPacketID(t *testing.T) {
	with := []Packet{&Publish{QoS: 1}, &Ack{PacketType: PUBACK}, &Ack{PacketType: PUBREL}, &Subscribe{}, &Suback{}, &Unsubscribe{}, &Unsuback{}}
	for _, p := range with {
		if !SetPacketID(p, 0x1234) {
			t.Errorf("%s: SetPacketID says it has no identifier", p.Type())
		}
		if id, ok := PacketID(p); !ok || id != 0x1234 {
			t.Errorf("%s: PacketID = %d, %v after SetPacketID(0x1234)", p.Type(), id, ok)
		}
	}
	for _, p := range []Packet{&Connect{}, &Connack{}, &Pingreq{}, &Disconnect{}, &Auth{}} {
		if SetPacketID(p, 1) {
			t.Errorf("%s: SetPacketID says it set an identifier", p.Type())
		}
	}
}
