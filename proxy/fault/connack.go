package fault

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("connack", "KEY=VALUE...", "rewrite the CONNACK the client gets: reason, session_present, and\n"+
		"any property by name (max_packet_size, receive_maximum,\n"+
		"topic_alias_maximum, maximum_qos, retain_available,\n"+
		"wildcard_subscription_available, subscription_identifier_available,\n"+
		"shared_subscription_available, server_keep_alive,\n"+
		"session_expiry_interval; text: assigned_client_identifier,\n"+
		"server_reference, reason_string,\n"+
		"response_information, authentication_method); KEY=absent removes one,\n"+
		"0 removes max_packet_size, receive_maximum, topic_alias_maximum",
		func(r *Rule, params map[string]token) (Fault, error) {
			if err := r.onlyTypes(decode.CONNACK); err != nil {
				return nil, err
			}
			if r.Dirs == C2S {
				return nil, errors.New("connack goes server to client: dir=c2s does not apply")
			}
			r.Dirs = S2C
			c := &Connack{}
			for _, k := range connackKeys {
				t, ok := params[k.key]
				if !ok {
					continue
				}
				s := connackSet{key: k.key, prop: k.prop}
				switch {
				case k.prop != 0 && t.val == "absent":
					s.absent = true
				case k.prop.Type() == decode.TypeString:
					s.str = t.val
				}
				if s.absent || k.prop.Type() == decode.TypeString {
					delete(params, k.key)
				} else if e, err := takeExpr(params, k.key, ""); err != nil {
					return nil, err
				} else {
					s.val = e
				}
				c.Set = append(c.Set, s)
			}
			if len(c.Set) == 0 && len(params) == 0 { // (a key left in params is said not to apply)
				return nil, fmt.Errorf("connack needs a value to rewrite: %s", connackKeyNames())
			}
			return c, nil
		})
}

// Connack rewrites what a CONNACK grants: its reason code, Session Present, and any of its
// properties (set, or removed when absent). The CONNACK is re-encoded with the lengths its new
// contents take; a combination the standard forbids (Session Present in a refusal, Maximum QoS
// 2) is sent as asked, and the fault says it is malformed.
type Connack struct{ Set []connackSet }

type connackSet struct {
	key    string
	prop   decode.PropID // 0 for reason and session_present
	val    *Expr         // a number
	str    string        // a string property's value
	absent bool          // remove the property
}

// connackKeys are the keys of connack: the reason code, Session Present, then every property a
// CONNACK may carry but the User Properties and the Authentication Data, by their snake_case
// name (Maximum Packet Size by the name the expressions know it by).
var connackKeys = func() []struct {
	key  string
	prop decode.PropID
} {
	keys := []struct {
		key  string
		prop decode.PropID
	}{{"reason", 0}, {"session_present", 0}}
	for _, id := range decode.PropIDs() {
		if !id.AllowedIn(decode.CONNACK) || id == decode.PropUserProperty || id.Type() == decode.TypeBinary {
			continue
		}
		key := id.Key()
		if id == decode.PropMaximumPacketSize {
			key = "max_packet_size"
		}
		keys = append(keys, struct {
			key  string
			prop decode.PropID
		}{key, id})
	}
	return keys
}()

func connackKeyNames() string {
	names := make([]string, len(connackKeys))
	for i, k := range connackKeys {
		names[i] = k.key
	}
	return strings.Join(names, ", ")
}

// zeroRemoves are the properties connack removes when set to 0 (where 0 is no value of theirs,
// or means the same as the property's absence).
var zeroRemoves = []decode.PropID{decode.PropMaximumPacketSize, decode.PropReceiveMaximum, decode.PropTopicAliasMaximum}

// propMax is the largest value a numeric property of type t holds.
func propMax(t decode.PropType) int {
	switch t {
	case decode.TypeByte:
		return 0xFF
	case decode.TypeUint16:
		return 0xFFFF
	case decode.TypeVarInt:
		return decode.MaxVarInt
	}
	return 0xFFFFFFFF
}

func (c *Connack) Apply(f *proxy.Frame, v *Values) (Result, error) {
	p, ok := f.Packet().(*decode.Connack)
	if !ok || malformed(p) {
		return Result{Skip: true}, nil
	}
	q := *p
	q.Properties = append(decode.Properties(nil), p.Properties...)
	var did, used, ignored []string
	for _, s := range c.Set {
		var n int
		if s.val != nil {
			var u string
			var err error
			if n, u, err = s.val.eval(v); err != nil {
				return Result{}, err
			}
			if u != "" {
				used = append(used, u)
			}
		}
		switch {
		case s.key == "reason":
			if n < 0 || n > 0xFF {
				return Result{}, fmt.Errorf("connack: reason %d is not a byte", n)
			}
			did = append(did, fmt.Sprintf("reason 0x%02X → 0x%02X", byte(q.ReasonCode), n))
			q.ReasonCode = decode.ReasonCode(n)
		case s.key == "session_present":
			if n != 0 && n != 1 {
				return Result{}, fmt.Errorf("connack: session_present %d is not 0 or 1", n)
			}
			did = append(did, fmt.Sprintf("Session Present %d → %d", b2i(q.SessionPresent), n))
			q.SessionPresent = n == 1
		case q.Version != decode.V5:
			ignored = append(ignored, s.key)
		default:
			d, err := setProp(&q.Properties, s, n)
			if err != nil {
				return Result{}, err
			}
			did = append(did, d)
		}
	}
	if len(did) == 0 {
		return Result{Skip: true}, nil // an MQTT 3.1.1 CONNACK, and only properties to set
	}
	sentence := "CONNACK rewritten: " + strings.Join(did, ", ")
	if len(ignored) > 0 {
		sentence += fmt.Sprintf(" (an MQTT %s CONNACK has no properties: %s left alone)", q.Version, strings.Join(ignored, ", "))
	}
	return rewritten(&q, sentence, strings.Join(used, "; "))
}

// setProp sets (or removes) s's property in ps to n or s.str, in place when it is there, and
// says what changed.
func setProp(ps *decode.Properties, s connackSet, n int) (string, error) {
	typ := s.prop.Type()
	before := "absent"
	at := -1
	for i, pr := range *ps {
		if pr.ID == s.prop {
			at = i
			if typ == decode.TypeString {
				before = fmt.Sprintf("%q", pr.Str)
			} else {
				before = fmt.Sprint(pr.Int)
			}
			break
		}
	}
	remove := s.absent || (typ != decode.TypeString && n == 0 && slices.Contains(zeroRemoves, s.prop))
	if remove {
		if at >= 0 {
			*ps = append((*ps)[:at], (*ps)[at+1:]...)
		}
		return fmt.Sprintf("%s %s → absent", s.prop.Name(), before), nil
	}
	var pr decode.Property
	after := ""
	if typ == decode.TypeString {
		pr, after = decode.StrProp(s.prop, s.str), fmt.Sprintf("%q", s.str)
	} else {
		if n < 0 || n > propMax(typ) {
			return "", fmt.Errorf("connack: %s %d does not fit the property (0 to %d)", s.key, n, propMax(typ))
		}
		pr, after = decode.IntProp(s.prop, uint32(n)), fmt.Sprint(n)
	}
	if at >= 0 {
		(*ps)[at] = pr
	} else {
		*ps = append(*ps, pr)
	}
	return fmt.Sprintf("%s %s → %s", s.prop.Name(), before, after), nil
}
