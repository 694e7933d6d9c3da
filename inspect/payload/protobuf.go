package payload

import (
	"encoding/hex"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

const (
	// protoMaxDepth is how deep length-delimited fields are tried as nested messages.
	protoMaxDepth = 8
	// protoMaxSniffField is the largest field number a sniffed message may use: real schemas
	// use small numbers, random bytes mostly do not.
	protoMaxSniffField = 1<<16 - 1
)

// asProtobuf renders data as a protobuf message without a schema: field numbers, wire types
// and values. It accepts data only when every byte parses as a field, there is at least one
// field, and no field is a (deprecated) group; strict (sniffing) also caps field numbers.
// Length-delimited fields are shown as text when printable, else as a nested message when
// they parse as one (to protoMaxDepth), else as hex.
func (rr *renderer) asProtobuf(data []byte, strict bool) (view, bool) {
	p := protoWriter{full: rr.full(), preview: rr.lim.PreviewChars}
	if !p.full {
		p.max = 4*rr.lim.PreviewChars + 16
	}
	var w strings.Builder
	if !p.message(&w, data, 0, strict) {
		return view{}, false
	}
	return view{format: FormatProtobuf, text: strings.TrimSuffix(escapeText([]byte(w.String())), "\n")}, true
}

type protoWriter struct {
	full    bool
	max     int // stop writing once the output is this long; 0: no limit
	preview int // characters of a string or bytes value in a preview
}

// room reports whether more output is wanted; parsing goes on to the end regardless.
func (p *protoWriter) room(w *strings.Builder) bool { return p.max == 0 || w.Len() < p.max }

// message parses b as one message, writing its fields to w, and reports whether it parsed.
func (p *protoWriter) message(w *strings.Builder, b []byte, depth int, strict bool) bool {
	if len(b) == 0 {
		return false
	}
	for first := true; len(b) > 0; first = false {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || strict && num > protoMaxSniffField {
			return false
		}
		b = b[n:]
		var value []byte
		switch typ {
		case protowire.VarintType, protowire.Fixed32Type, protowire.Fixed64Type, protowire.BytesType:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false
			}
			value, b = b[:n], b[n:]
		default: // groups, and the reserved wire types 6 and 7
			return false
		}
		if !p.room(w) {
			continue
		}
		p.field(w, num, typ, value, depth, first)
	}
	return true
}

// field writes one field whose value bytes (as on the wire) already parsed.
func (p *protoWriter) field(w *strings.Builder, num protowire.Number, typ protowire.Type, value []byte, depth int, first bool) {
	indent := strings.Repeat("  ", depth)
	if p.full {
		w.WriteString(indent)
		w.WriteString(strconv.Itoa(int(num)))
		w.WriteString(" " + wireName(typ) + ": ")
	} else {
		if !first {
			w.WriteString(", ")
		}
		w.WriteString(strconv.Itoa(int(num)))
		w.WriteString(": ")
	}
	switch typ {
	case protowire.VarintType:
		v, _ := protowire.ConsumeVarint(value)
		w.WriteString(strconv.FormatUint(v, 10))
		if int64(v) < 0 && p.full {
			w.WriteString(" (int64 " + strconv.FormatInt(int64(v), 10) + ")")
		}
	case protowire.Fixed32Type:
		v, _ := protowire.ConsumeFixed32(value)
		w.WriteString("0x" + strconv.FormatUint(uint64(v), 16))
		if p.full {
			w.WriteString(" (uint " + strconv.FormatUint(uint64(v), 10) + ", float " +
				strconv.FormatFloat(float64(math.Float32frombits(v)), 'g', -1, 32) + ")")
		}
	case protowire.Fixed64Type:
		v, _ := protowire.ConsumeFixed64(value)
		w.WriteString("0x" + strconv.FormatUint(v, 16))
		if p.full {
			w.WriteString(" (uint " + strconv.FormatUint(v, 10) + ", double " +
				strconv.FormatFloat(math.Float64frombits(v), 'g', -1, 64) + ")")
		}
	case protowire.BytesType:
		v, _ := protowire.ConsumeBytes(value)
		p.bytesValue(w, v, depth, indent)
	}
	if p.full {
		w.WriteByte('\n')
	}
}

// bytesValue writes a length-delimited value: text, a nested message, or hex.
func (p *protoWriter) bytesValue(w *strings.Builder, v []byte, depth int, indent string) {
	if printable(v) {
		s := v
		if !p.full {
			s = runePrefix(v, p.preview)
		}
		w.WriteString(strconv.Quote(string(s)))
		if len(s) < len(v) {
			w.WriteString(ellipsis)
		}
		return
	}
	if depth+1 < protoMaxDepth {
		var sub strings.Builder
		if p.message(&sub, v, depth+1, true) {
			if p.full {
				w.WriteString("{\n" + sub.String() + indent + "}")
			} else {
				w.WriteString("{" + sub.String() + "}")
			}
			return
		}
	}
	s := v
	if !p.full && len(s) > p.preview/3 {
		s = s[:p.preview/3]
	}
	w.WriteString(hex.EncodeToString(s))
	if len(s) < len(v) {
		w.WriteString(ellipsis)
	}
	if p.full {
		w.WriteString(" (" + strconv.Itoa(len(v)) + " bytes)")
	}
}

// wireName is the protobuf documentation's name of a wire type.
func wireName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed64Type:
		return "i64"
	case protowire.BytesType:
		return "len"
	case protowire.Fixed32Type:
		return "i32"
	}
	return "wiretype" + strconv.Itoa(int(t))
}
