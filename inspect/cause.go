package inspect

import (
	"fmt"
	"time"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/stream"
)

// causeOf finds the packet from the other side that most likely made the sender of direction d
// close the connection with reason code rc.
func (c *Conn) causeOf(d stream.Dir, rc decode.ReasonCode, t time.Time) *CauseRef {
	from := d.Peer()
	var found *fact
	why := ""
	// A packet with a finding that calls for exactly this reason code.
	c.eachRecent(from, func(f *fact) bool {
		for _, n := range f.notes {
			if n.reason == rc && n.level == decode.LevelError {
				found, why = f, n.why
				return true
			}
		}
		return false
	})
	if found != nil {
		return found.ref(why)
	}
	// No finding: the most plausible packet for the reason code.
	pick := func(ok func(f *fact) bool) {
		c.eachRecent(from, func(f *fact) bool {
			if ok(f) {
				found = f
				return true
			}
			return false
		})
	}
	isPublish := func(f *fact) bool { return f.typ == decode.PUBLISH }
	switch rc {
	case decode.PacketTooLarge:
		// The largest recent packet: the receiver's limit was not announced, or counted differently.
		c.eachRecent(from, func(f *fact) bool {
			if found == nil || f.size > found.size {
				found = f
			}
			return false
		})
		if found != nil {
			lim := c.st.Effective.Limit(from).MaximumPacketSize
			switch {
			case !c.known(from) || lim == 0:
				why = fmt.Sprintf("the largest the %s sent recently; no Maximum Packet Size was announced", from.Sender().String())
			default:
				why = fmt.Sprintf("the largest the %s sent recently, within the %d-byte Maximum Packet Size %s", from.Sender().String(), lim, limitSource(from))
			}
			if found.typ == decode.PUBLISH && c.prof.MaxPayload > 0 && int(found.payload) > c.prof.MaxPayload && from == stream.C2S {
				why = fmt.Sprintf("payload of %d bytes, over this broker's %d-byte message limit (profile %s)", found.payload, c.prof.MaxPayload, c.prof.Name)
			}
		}
	case decode.KeepAliveTimeout:
		if from == stream.C2S && !c.lastC2S.IsZero() {
			pick(func(*fact) bool { return true })
			if found != nil {
				why = fmt.Sprintf("the client's last packet, %.1f s before, keep alive %d s", float64(t.UnixNano()-found.t)/1e9, c.keepAlive())
			}
		}
	case decode.RetainNotSupported:
		pick(func(f *fact) bool { return isPublish(f) && f.retain })
		why = "RETAIN 1"
	case decode.QoSNotSupported:
		pick(func(f *fact) bool { return isPublish(f) && f.qos > 0 })
		if found != nil {
			why = fmt.Sprintf("QoS %d", found.qos)
		}
	case decode.ReceiveMaximumExceeded:
		pick(func(f *fact) bool { return isPublish(f) && f.qos > 0 })
		why = fmt.Sprintf("the latest QoS > 0 PUBLISH; %d unacknowledged now", c.inflight[from])
	case decode.TopicAliasInvalid, decode.TopicNameInvalid:
		pick(func(f *fact) bool { return isPublish(f) && (f.alias != 0 || rc == decode.TopicNameInvalid) })
		if found != nil {
			if a := found.alias; a != 0 {
				why = fmt.Sprintf("topic %q with Topic Alias %d", found.topic, a)
				if c.prof.TopicAliasMaximum > 0 && int(a) > c.prof.TopicAliasMaximum {
					why += fmt.Sprintf(", above this broker's %d aliases (profile %s)", c.prof.TopicAliasMaximum, c.prof.Name)
				}
			} else {
				why = fmt.Sprintf("topic %q", found.topic)
			}
		}
	case decode.TopicFilterInvalid, decode.WildcardSubsNotSupported, decode.SharedSubsNotSupported, decode.SubscriptionIDsUnsupported:
		pick(func(f *fact) bool { return f.typ == decode.SUBSCRIBE || f.typ == decode.UNSUBSCRIBE })
	case decode.PayloadFormatInvalid, decode.NotAuthorized, decode.QuotaExceeded, decode.MessageRateTooHigh:
		pick(isPublish)
		if found != nil {
			why = fmt.Sprintf("topic %q", found.topic)
		}
	case decode.MalformedPacket, decode.ProtocolError, decode.UnspecifiedError, decode.ImplementationError:
		// The newest packet with an error the decoder or the connection found: receivers do not
		// agree on which code a given fault gets (mosquitto answers Topic Alias 0 with 0x81).
		pick(func(f *fact) bool {
			for _, n := range f.notes {
				if n.level == decode.LevelError {
					why = n.why
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
		pick(func(*fact) bool { return true })
		if found == nil {
			return nil
		}
		why = fmt.Sprintf("the %s's last packet before it", from.Sender().String())
	}
	return found.ref(why)
}
