package inspect

import (
	"fmt"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// ackLimitWhy explains an acknowledgement's reason code that names a limit (Packet too large,
// QoS not supported, Retain not supported, Quota exceeded) when the PUBLISH it answers broke
// no limit the CONNACK announced for that code: either it broke another one the receiver
// answered this way (a QoS 2 over the Receive Maximum answered PUBREC 0x97 where the standard
// has DISCONNECT 0x93), or the receiver applied a limit it did not announce, which is all
// mqscope can tell, with the PUBLISH's numbers.
func (c *Conn) ackLimitWhy(p *PacketRecord, pub *decode.Publish, rc decode.ReasonCode) (string, bool) {
	for _, n := range p.Notes {
		if n.Reason == decode.ReceiveMaximumExceeded && (rc == decode.QuotaExceeded || rc == decode.ReceiveMaximumExceeded) {
			return fmt.Sprintf("%s; the receiver answered 0x%02X %s where the standard has DISCONNECT 0x93 Receive Maximum exceeded",
				n.whyText(), byte(rc), rc.Name(p.Type())), true
		}
	}
	var what string
	switch rc {
	case decode.PacketTooLarge:
		what = fmt.Sprintf("the PUBLISH was %d bytes, its payload %d", p.Size(), len(pub.Payload))
		if c.prof.MaxPayload > 0 && len(pub.Payload) > c.prof.MaxPayload {
			return fmt.Sprintf("payload of %d bytes, over this broker's %d-byte message limit (profile %s)", len(pub.Payload), c.prof.MaxPayload, c.prof.Name), true
		}
	case decode.QoSNotSupported:
		what = fmt.Sprintf("the PUBLISH was QoS %d", pub.QoS)
	case decode.RetainNotSupported:
		what = "the PUBLISH had RETAIN 1"
	default:
		return "", false
	}
	if !c.known(p.Dir) {
		return fmt.Sprintf("a limit of the receiver (no CONNACK seen to tell it; %s)", what), true
	}
	if p.Dir == stream.S2C {
		return fmt.Sprintf("the client applied a limit it did not announce in CONNECT (%s)", what), true
	}
	return fmt.Sprintf("the broker applied a limit it did not announce in CONNACK (%s)", what), true
}
