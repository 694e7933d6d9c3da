package fault

import (
	"fmt"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("pubrel_unknown", "[id=EXPR]", "after a frame (not CONNECT/CONNACK), send a PUBREL for a Packet\nIdentifier the sender never used (or id=); once per connection\nunless count= says",
		func(r *Rule, params map[string]token) (Fault, error) {
			if r.Sel.Count == 0 {
				r.Sel.Count = 1
			}
			pu := &PubrelUnknown{}
			if _, ok := params["id"]; ok {
				var err error
				if pu.ID, err = takeExpr(params, "id", ""); err != nil {
					return nil, err
				}
			}
			return pu, nil
		})
}

// PubrelUnknown sends, after the selected frame, a PUBREL for ID, or for the highest Packet
// Identifier the direction's sender has not used on the connection.
type PubrelUnknown struct{ ID *Expr }

func (pu *PubrelUnknown) Apply(f *proxy.Frame, v *Values) (Result, error) {
	return pu.apply(f, v, nil)
}

func (pu *PubrelUnknown) open(*dirEnv) Fault { return &pubrelUnknownIn{PubrelUnknown: pu} }

// pubrelUnknownIn is a PubrelUnknown in one direction of a connection: it keeps the Packet
// Identifiers the sender used.
type pubrelUnknownIn struct {
	*PubrelUnknown
	used [1 << 16 / 64]uint64
}

func (pu *pubrelUnknownIn) Apply(f *proxy.Frame, v *Values) (Result, error) {
	return pu.apply(f, v, &pu.used)
}

// followed notes the Packet Identifier of a frame that went on. It sees every frame of its
// direction: a frame not sent, and a QoS 0 PUBLISH (QoS in its fixed header's flags), carry
// none the sender used, and are not decoded for it.
func (pu *pubrelUnknownIn) followed(f *proxy.Frame, sent int, _ func([]byte) error) error {
	if sent == 0 {
		return nil
	}
	switch f.Type {
	case decode.PUBLISH:
		if len(f.Bytes) == 0 || f.Bytes[0]>>1&3 == 0 {
			return nil
		}
	case decode.PUBREL, decode.SUBSCRIBE, decode.UNSUBSCRIBE:
	default:
		return nil
	}
	if id, ok := decode.PacketID(f.Packet()); ok {
		pu.used[id/64] |= 1 << (id % 64)
	}
	return nil
}

func (pu *PubrelUnknown) apply(f *proxy.Frame, v *Values, used *[1 << 16 / 64]uint64) (Result, error) {
	if f.Type == decode.CONNECT || f.Type == decode.CONNACK {
		return Result{Skip: true}, nil
	}
	var id int
	var why string
	if pu.ID != nil {
		var err error
		if id, why, err = pu.ID.eval(v); err != nil {
			return Result{}, err
		}
		if id < 1 || id > 0xFFFF {
			return Result{}, fmt.Errorf("pubrel_unknown: id %d is not from 1 to 65535", id)
		}
	} else {
		own, _ := decode.PacketID(f.Packet()) // the selected frame's, not yet sent
		for id = 0xFFFF; id > 0; id-- {
			if uint16(id) != own && (used == nil || used[id/64]&(1<<(id%64)) == 0) && !f.State.IDInUse(f.Dir, uint16(id)) {
				break
			}
		}
		if id == 0 {
			return Result{Skip: true}, nil
		}
	}
	ver := f.State.Version()
	if ver == 0 {
		ver = f.Packet().Info().Version
	}
	rel, err := encode(&decode.Ack{Base: decode.Base{Version: ver}, PacketType: decode.PUBREL, PacketID: uint16(id)})
	if err != nil {
		return Result{}, err
	}
	return Result{Out: [][]byte{f.Bytes, rel[0]}, Did: fmt.Sprintf("PUBREL id %d sent after %s, for no PUBLISH", id, describe(f)), Used: why}, nil
}
