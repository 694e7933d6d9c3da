package payload

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/mqscope/mqscope/internal/jsonstr"
)

// CBOR decoding limits. MaxDecode already bounds the input; these bound nesting (and so the
// stack) and what a declared count can make the decoder allocate.
const (
	cborMaxNested   = 16
	cborMaxElements = 1 << 17
)

type cborModes struct {
	diag cbor.DiagMode
	dec  cbor.DecMode
}

var getCBORModes = sync.OnceValues(func() (cborModes, error) {
	diag, err := cbor.DiagOptions{
		MaxNestedLevels:  cborMaxNested,
		MaxArrayElements: cborMaxElements,
		MaxMapPairs:      cborMaxElements,
	}.DiagMode()
	if err != nil {
		return cborModes{}, err
	}
	dec, err := cbor.DecOptions{
		MaxNestedLevels:      cborMaxNested,
		MaxArrayElements:     cborMaxElements,
		MaxMapPairs:          cborMaxElements,
		MapKeyByteString:     cbor.MapKeyByteStringAllowed,
		UnrecognizedTagToAny: cbor.UnrecognizedTagContentToAny,
		TimeTagToAny:         cbor.TimeTagToRFC3339Nano,
	}.DecMode()
	if err != nil {
		return cborModes{}, err
	}
	return cborModes{diag: diag, dec: dec}, nil
})

// cborDiag is data in CBOR diagnostic notation (RFC 8949 section 8), the "JSON-like text",
// on one line or, when pretty, indented one item a line. data must be one whole CBOR item.
func cborDiag(data []byte, pretty bool) (string, error) {
	modes, err := getCBORModes()
	if err != nil {
		return "", err
	}
	s, err := modes.diag.Diagnose(data)
	if err != nil {
		return "", err
	}
	if pretty {
		s = prettyEDN(s)
	}
	return s, nil
}

// asCBOR renders data as CBOR. strict (sniffing) accepts only a map, an array or a tag of at
// least two bytes: nearly any single byte is a valid CBOR number.
func (rr *renderer) asCBOR(data []byte, strict bool) (view, bool) {
	if len(data) == 0 {
		return view{}, false
	}
	if strict {
		if major := data[0] >> 5; len(data) < 2 || major < 4 || major > 6 {
			return view{}, false
		}
	}
	text, err := cborDiag(data, rr.full())
	if err != nil {
		return view{}, false
	}
	v := view{format: FormatCBOR, text: escapeText([]byte(text))}
	modes, _ := getCBORModes()
	var decoded any
	if modes.dec.Unmarshal(data, &decoded) == nil {
		if j, err := jsonstr.Marshal(cborToJSON(decoded)); err == nil {
			v.json = j
		}
	}
	return v, true
}

// cborToJSON converts a decoded CBOR value to one encoding/json can write, as RFC 8949
// section 6.1 suggests: byte strings become base64url without padding, tags are dropped for
// their content, NaN, infinities, undefined and other simple values become null, and map keys
// that are not text become text.
func cborToJSON(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[cborKey(k)] = cborToJSON(val)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cborToJSON(e)
		}
		return out
	case []byte:
		return base64.RawURLEncoding.EncodeToString(x)
	case cbor.ByteString:
		return base64.RawURLEncoding.EncodeToString([]byte(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil
		}
		return x
	case cbor.Tag:
		return cborToJSON(x.Content)
	case cbor.SimpleValue:
		return nil
	case big.Int:
		return json.Number(x.String())
	case *big.Int:
		if x == nil {
			return nil
		}
		return json.Number(x.String())
	case nil, bool, string, uint64, int64, int, uint:
		return x
	}
	return fmt.Sprint(v)
}

// cborKey is the JSON object key for a CBOR map key.
func cborKey(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case cbor.ByteString:
		return base64.RawURLEncoding.EncodeToString([]byte(x))
	case uint64:
		return strconv.FormatUint(x, 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "null"
	}
	return fmt.Sprint(k)
}

// prettyEDN indents one-line diagnostic notation: one array element or map entry a line.
// Tag and indefinite-string parentheses stay on their line.
func prettyEDN(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	var stack []byte // open '[', '{' and '('
	var quote byte   // '"' or '\'' inside a string
	newline := func() {
		b.WriteByte('\n')
		for _, c := range stack {
			if c != '(' {
				b.WriteString("  ")
			}
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if quote != 0 {
			b.WriteByte(c)
			if c == '\\' && i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			} else if c == quote {
				quote = 0
			}
			continue
		}
		switch c {
		case '"', '\'':
			quote = c
			b.WriteByte(c)
		case '[', '{':
			b.WriteByte(c)
			if strings.HasPrefix(s[i+1:], "_ ") {
				b.WriteByte('_')
				i += 2
			}
			if i+1 < len(s) && (s[i+1] == ']' || s[i+1] == '}') {
				i++
				b.WriteByte(s[i])
				continue
			}
			stack = append(stack, c)
			newline()
		case ']', '}':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			newline()
			b.WriteByte(c)
		case '(':
			stack = append(stack, c)
			b.WriteByte(c)
		case ')':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			b.WriteByte(c)
		case ',':
			b.WriteByte(',')
			if i+1 < len(s) && s[i+1] == ' ' {
				i++
			}
			if len(stack) > 0 && stack[len(stack)-1] != '(' {
				newline()
			} else {
				b.WriteByte(' ')
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
