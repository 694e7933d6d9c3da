package inspect

import (
	"fmt"
	"time"

	"github.com/mqscope/mqscope/decode"
)

// causeOf finds the packet from the other side that most likely made the sender of direction d
// close the connection with reason code rc.
func (c *Conn) causeOf(d Dir, rc decode.ReasonCode, t time.Time) *CauseRef {
	from := d.Peer()
	var found *PacketRecord
	why := ""
	// A packet with a finding that calls for exactly this reason code.
	c.eachRecent(from, func(p *PacketRecord) bool {
		for i := range p.Notes {
			if p.Notes[i].Reason == rc && p.Notes[i].Level == decode.LevelError {
				found, why = p, p.Notes[i].whyText()
				return true
			}
		}
		return false
	})
	if found != nil {
		return &CauseRef{Index: found.Index, Type: found.Type(), Summary: summarize(found, why)}
	}
	// No finding: the most plausible packet for the reason code.
	pick := func(f func(p *PacketRecord) bool) {
		c.eachRecent(from, func(p *PacketRecord) bool {
			if f(p) {
				found = p
				return true
			}
			return false
		})
	}
	isPublish := func(p *PacketRecord) bool { return p.Type() == decode.PUBLISH }
	switch rc {
	case decode.PacketTooLarge:
		// The largest recent packet: the receiver's limit was not announced, or counted differently.
		c.eachRecent(from, func(p *PacketRecord) bool {
			if found == nil || p.Size() > found.Size() {
				found = p
			}
			return false
		})
		if found != nil {
			lim := c.st.Effective.Limit(from).MaximumPacketSize
			switch {
			case !c.known(from) || lim == 0:
				why = fmt.Sprintf("the largest the %s sent recently; no Maximum Packet Size was announced", from.sender())
			default:
				why = fmt.Sprintf("the largest the %s sent recently, within the %d-byte Maximum Packet Size %s", from.sender(), lim, limitSource(from))
			}
			if p, ok := found.Packet.(*decode.Publish); ok && c.prof.MaxPayload > 0 && len(p.Payload) > c.prof.MaxPayload && from == C2S {
				why = fmt.Sprintf("payload of %d bytes, over this broker's %d-byte message limit (profile %s)", len(p.Payload), c.prof.MaxPayload, c.prof.Name)
			}
		}
	case decode.KeepAliveTimeout:
		if from == C2S && !c.lastC2S.IsZero() {
			pick(func(*PacketRecord) bool { return true })
			if found != nil {
				why = fmt.Sprintf("the client's last packet, %.1f s before, keep alive %d s", t.Sub(found.Time).Seconds(), c.keepAlive())
			}
		}
	case decode.RetainNotSupported:
		pick(func(p *PacketRecord) bool { q, ok := p.Packet.(*decode.Publish); return ok && q.Retain })
		why = "RETAIN 1"
	case decode.QoSNotSupported:
		pick(func(p *PacketRecord) bool { q, ok := p.Packet.(*decode.Publish); return ok && q.QoS > 0 })
		if found != nil {
			why = fmt.Sprintf("QoS %d", found.Packet.(*decode.Publish).QoS)
		}
	case decode.ReceiveMaximumExceeded:
		pick(func(p *PacketRecord) bool { q, ok := p.Packet.(*decode.Publish); return ok && q.QoS > 0 })
		why = fmt.Sprintf("the latest QoS > 0 PUBLISH; %d unacknowledged now", c.inflight[from])
	case decode.TopicAliasInvalid, decode.TopicNameInvalid:
		pick(func(p *PacketRecord) bool {
			q, ok := p.Packet.(*decode.Publish)
			if !ok {
				return false
			}
			_, alias := q.Properties.TopicAlias()
			return alias || rc == decode.TopicNameInvalid
		})
		if found != nil {
			q := found.Packet.(*decode.Publish)
			if a, ok := q.Properties.TopicAlias(); ok {
				why = fmt.Sprintf("topic %q with Topic Alias %d", q.Topic, a)
				if c.prof.TopicAliasMaximum > 0 && int(a) > c.prof.TopicAliasMaximum {
					why += fmt.Sprintf(", above this broker's %d aliases (profile %s)", c.prof.TopicAliasMaximum, c.prof.Name)
				}
			} else {
				why = fmt.Sprintf("topic %q", q.Topic)
			}
		}
	case decode.TopicFilterInvalid, decode.WildcardSubsNotSupported, decode.SharedSubsNotSupported, decode.SubscriptionIDsUnsupported:
		pick(func(p *PacketRecord) bool { return p.Type() == decode.SUBSCRIBE || p.Type() == decode.UNSUBSCRIBE })
	case decode.PayloadFormatInvalid, decode.NotAuthorized, decode.QuotaExceeded, decode.MessageRateTooHigh:
		pick(isPublish)
		if found != nil {
			why = fmt.Sprintf("topic %q", found.Topic)
		}
	case decode.MalformedPacket, decode.ProtocolError, decode.UnspecifiedError, decode.ImplementationError:
		// The newest packet with an error the decoder or the connection found: receivers do not
		// agree on which code a given fault gets (mosquitto answers Topic Alias 0 with 0x81).
		pick(func(p *PacketRecord) bool {
			for _, n := range p.Notes {
				if n.Level == decode.LevelError && n.Reason.IsError() {
					why = n.whyText()
					return true
				}
			}
			return false
		})
	case decode.SessionTakenOver, decode.ServerShuttingDown, decode.AdministrativeAction, decode.ServerBusy,
		decode.UseAnotherServer, decode.ServerMoved, decode.MaximumConnectTime, decode.ConnectionRateExceeded:
		return nil // not caused by a packet of this connection
	}
	if found == nil {
		// Fall back on the other side's last packet.
		pick(func(*PacketRecord) bool { return true })
		if found == nil {
			return nil
		}
		why = fmt.Sprintf("the %s's last packet before it", from.sender())
	}
	return &CauseRef{Index: found.Index, Type: found.Type(), Summary: summarize(found, why)}
}
