package scenario

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/stream"
)

// capabilities are what requires: broker: may name, and how a CONNACK's properties say them
// (absent: the standard's default).
var capabilities = map[string]func(ps decode.Properties) bool{
	"retain":                   availability(decode.PropRetainAvailable),
	"wildcard_subscriptions":   availability(decode.PropWildcardSubAvailable),
	"subscription_identifiers": availability(decode.PropSubIDAvailable),
	"shared_subscriptions":     availability(decode.PropSharedSubAvailable),
	"qos1":                     func(ps decode.Properties) bool { v, ok := ps.Int(decode.PropMaximumQoS); return !ok || v >= 1 },
	"qos2":                     func(ps decode.Properties) bool { v, ok := ps.Int(decode.PropMaximumQoS); return !ok || v >= 2 },
}

func availability(id decode.PropID) func(decode.Properties) bool {
	return func(ps decode.Properties) bool { v, ok := ps.Int(id); return !ok || v == 1 }
}

// grantedProps are the CONNACK properties requires: granted: may name.
var grantedProps = map[string]decode.PropID{
	"maximum_packet_size":     decode.PropMaximumPacketSize,
	"topic_alias_maximum":     decode.PropTopicAliasMaximum,
	"receive_maximum":         decode.PropReceiveMaximum,
	"server_keep_alive":       decode.PropServerKeepAlive,
	"session_expiry_interval": decode.PropSessionExpiry,
	"maximum_qos":             decode.PropMaximumQoS,
	"retain_available":        decode.PropRetainAvailable,
}

// staticRequirements checks what is known before the run: the commands, the built-in client's
// version, and the embedded broker's capabilities (from its profile). It says what is unmet.
func (r *run) staticRequirements() string {
	req := r.sc.Requires
	for _, c := range req.Commands {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Sprintf("requires command %s, not found on PATH", c)
		}
	}
	if d := r.device(); d.Client != nil && req.MQTT != 0 {
		if v := d.Client.Steps[0].Connect.Version; v != req.MQTT {
			return fmt.Sprintf("requires MQTT %s; the client speaks %s", versionName(req.MQTT), versionName(v))
		}
	}
	if len(req.Broker) > 0 && r.sc.Upstream == "embedded" {
		ps := profileConnack(r.sc.prof)
		for _, c := range req.Broker {
			if !capabilities[c](ps) {
				return fmt.Sprintf("requires broker capability %s; profile %s does not have it", c, r.sc.prof.Name)
			}
		}
	}
	return ""
}

// profileConnack is the CONNACK properties a profile's capabilities stand for.
func profileConnack(p *inspect.Profile) decode.Properties {
	var ps decode.Properties
	if p == nil {
		return ps
	}
	if p.MaximumQoS != nil {
		ps = append(ps, decode.IntProp(decode.PropMaximumQoS, uint32(*p.MaximumQoS)))
	}
	for _, a := range []struct {
		id decode.PropID
		v  *bool
	}{{decode.PropRetainAvailable, p.RetainAvailable}, {decode.PropWildcardSubAvailable, p.WildcardSubscriptionAvailable},
		{decode.PropSubIDAvailable, p.SubscriptionIdentifiersAvailable}, {decode.PropSharedSubAvailable, p.SharedSubscriptionAvailable}} {
		if a.v != nil && !*a.v {
			ps = append(ps, decode.IntProp(a.id, 0))
		}
	}
	return ps
}

func versionName(v int) string {
	if v == 4 {
		return "3.1.1"
	}
	return fmt.Sprint(v)
}

// timelineRequirements checks the requirements the timeline decides: the device's version at
// its first CONNECT, what it was granted and (with a broker at an address) the broker's
// capabilities at its first CONNACK.
func (r *run) timelineRequirements(ev *event) string {
	req := r.sc.Requires
	rec, ok := ev.rec.(*inspect.PacketRecord)
	if !ok {
		return ""
	}
	switch p := rec.Packet.(type) {
	case *decode.Connect:
		if req.MQTT != 0 && rec.Dir == stream.C2S && int(p.ProtocolLevel) != req.MQTT {
			return fmt.Sprintf("requires MQTT %s; the device connected with %s", versionName(req.MQTT), versionName(int(p.ProtocolLevel)))
		}
	case *decode.Connack:
		if rec.Dir != stream.S2C || p.ReasonCode.IsError() {
			return ""
		}
		for _, g := range req.Granted {
			if v, ok := p.Properties.Int(grantedProps[g]); !ok || v == 0 {
				return fmt.Sprintf("requires granted %s; the CONNACK has none", g)
			}
		}
		if r.sc.Upstream != "embedded" {
			var missing []string
			for _, c := range req.Broker {
				if !capabilities[c](p.Properties) {
					missing = append(missing, c)
				}
			}
			if len(missing) > 0 {
				return "requires broker capability " + strings.Join(missing, ", ") + "; its CONNACK says it has not"
			}
		}
	}
	return ""
}
