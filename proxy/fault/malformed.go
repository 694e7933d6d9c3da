package fault

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/mqscope/mqscope/decode"
	"github.com/mqscope/mqscope/proxy"
)

func init() {
	register("malformed", "kind=KIND [by=N]", "break the frame's format: kind=vbi5 (its Remaining Length in 5 bytes),\nlength (a Remaining Length N off the bytes, by=±N, default +1), utf8 (a 0xFF\nbyte in a PUBLISH topic), dup_property (a property that may appear once, twice),\nunknown_property (property identifier 0x7F), flags (a reserved flag bit set,\nnot PUBLISH), truncate (the first half of the frame, then the connection closed)",
		func(r *Rule, params map[string]token) (Fault, error) {
			m := &Malformed{}
			var err error
			if m.Kind, err = takeWord(params, "kind", "", "vbi5", "length", "utf8", "dup_property", "unknown_property", "flags", "truncate"); err != nil {
				return nil, err
			}
			switch m.Kind {
			case "":
				return nil, errors.New("kind= is required: vbi5, length, utf8, dup_property, unknown_property, flags or truncate")
			case "length":
				if m.By, err = takeInt(params, "by", 1, -decode.MaxVarInt, decode.MaxVarInt); err != nil {
					return nil, err
				}
				if m.By == 0 {
					return nil, errors.New("by=0 leaves the Remaining Length right")
				}
			case "utf8":
				err = r.onlyTypes(decode.PUBLISH)
			case "flags":
				if typeIn(decode.PUBLISH, r.Sel.Types) {
					err = errors.New("malformed kind=flags: a PUBLISH's flags are DUP, QoS and RETAIN, none reserved (qos to=3 makes a malformed QoS)")
				}
			}
			return m, err
		})
}

// Malformed breaks the format of the frames it selects, as Kind says; each such frame is
// reported malformed on purpose.
type Malformed struct {
	Kind string
	By   int // kind=length: what is added to the Remaining Length
}

// unknownProp is a property identifier MQTT 5 does not define.
const unknownProp = 0x7F

func (m *Malformed) Apply(f *proxy.Frame, _ *Values) (Result, error) {
	b := f.Bytes
	h, ok, err := decode.ParseHeader(b)
	if !ok || err != nil || h.HeaderLen+h.RemainingLength != len(b) {
		return Result{Skip: true}, nil // malformed already
	}
	body := b[h.HeaderLen:]
	var out []byte
	var did string
	res := Result{Malformed: true}
	switch m.Kind {
	case "vbi5":
		rl := uint32(h.RemainingLength)
		out = append([]byte{b[0], byte(rl) | 0x80, byte(rl>>7) | 0x80, byte(rl>>14) | 0x80, byte(rl>>21) | 0x80, 0}, body...)
		did = fmt.Sprintf("Remaining Length %d written in 5 bytes", rl)
	case "length":
		rl := h.RemainingLength + m.By
		if rl < 0 || rl > decode.MaxVarInt {
			return Result{Skip: true}, nil
		}
		out = append(decode.AppendVarInt([]byte{b[0]}, uint32(rl)), body...)
		did = fmt.Sprintf("Remaining Length %d given for %d bytes", rl, len(body))
	case "utf8":
		p, ok := f.Packet().(*decode.Publish)
		if !ok || malformed(p) || p.Topic == "" {
			return Result{Skip: true}, nil
		}
		// The topic follows the fixed header and its two-byte length.
		at := h.HeaderLen + 2
		out = bytes.Clone(b)
		out[at] = 0xFF
		did = fmt.Sprintf("PUBLISH topic %q given byte 0xFF at offset %d", p.Topic, at)
	case "dup_property", "unknown_property":
		return m.property(f)
	case "flags":
		if f.Type == decode.PUBLISH {
			return Result{Skip: true}, nil
		}
		out = bytes.Clone(b)
		out[0] ^= 0x01
		did = fmt.Sprintf("%s fixed-header flags 0x%X → 0x%X", describe(f), b[0]&0x0F, out[0]&0x0F)
	case "truncate":
		keep := max(len(b)/2, 1)
		res.Out, res.Close = [][]byte{b[:keep]}, true
		res.Did = fmt.Sprintf("%s cut to %d of its %d bytes, then the connection closed", describe(f), keep, len(b))
		return res, nil
	}
	res.Out, res.Did = [][]byte{out}, did
	return res, nil
}

// property adds a property to an MQTT 5 packet whose properties are on the wire: a second
// copy of one that may appear once (the packet's own, or one added twice), or one with an
// identifier MQTT 5 does not define. The bytes are spliced in: nothing else changes but the
// property length and the Remaining Length.
func (m *Malformed) property(f *proxy.Frame) (Result, error) {
	v := f.State.Version()
	if v == 0 {
		v = f.Packet().Info().Version
	}
	if v != decode.V5 {
		return Result{Skip: true}, nil
	}
	p := decode.DecodeWith(f.Bytes, v, decode.Options{})
	if malformed(p) {
		return Result{Skip: true}, nil
	}
	var plen decode.Field
	for _, fl := range p.Info().Fields {
		if fl.Name == "properties.length" {
			plen = fl // the packet's own; a CONNECT's Will properties come after
			break
		}
	}
	if plen.Len == 0 {
		return Result{Skip: true}, nil // none on the wire (an ack with reason 0x00 only)
	}
	var add []byte
	var did string
	if m.Kind == "unknown_property" {
		add = []byte{unknownProp, 0}
		did = fmt.Sprintf("%s given property identifier 0x%02X, which MQTT 5 does not define", describe(f), unknownProp)
	} else {
		for _, pr := range decode.PropertiesOf(p) {
			if !pr.ID.Repeatable(f.Type) && pr.Len > 0 {
				add, did = f.Bytes[pr.Offset:pr.Offset+pr.Len], pr.ID.Name()
				break
			}
		}
		if add == nil {
			for _, id := range []decode.PropID{decode.PropReasonString, decode.PropMessageExpiry, decode.PropSessionExpiry,
				decode.PropSubscriptionID, decode.PropAuthMethod} {
				if id.AllowedIn(f.Type) {
					one := propBytes(id)
					add, did = append(one, one...), id.Name()
					break
				}
			}
		}
		if add == nil {
			return Result{Skip: true}, nil
		}
		did = fmt.Sprintf("%s given %s twice", describe(f), did)
	}
	n, _, _ := decode.ReadVarInt(f.Bytes[plen.Offset : plen.Offset+plen.Len])
	h := p.Info().Header
	props := decode.AppendVarInt(nil, n+uint32(len(add)))
	rest := f.Bytes[plen.Offset+plen.Len:]
	rl := plen.Offset - h.HeaderLen + len(props) + len(add) + len(rest)
	out := decode.AppendVarInt([]byte{f.Bytes[0]}, uint32(rl))
	out = append(out, f.Bytes[h.HeaderLen:plen.Offset]...)
	out = append(append(append(out, props...), add...), rest...)
	return Result{Out: [][]byte{out}, Did: did, Malformed: true}, nil
}

// propBytes is the wire form of a property with a value it may have.
func propBytes(id decode.PropID) []byte {
	b := []byte{byte(id)}
	switch id.Type() {
	case decode.TypeString, decode.TypeBinary:
		return append(b, 0, 7, 'm', 'q', 's', 'c', 'o', 'p', 'e')
	case decode.TypeUint32:
		return append(b, 0, 0, 0, 1)
	}
	return append(b, 1) // a byte or a Variable Byte Integer
}
