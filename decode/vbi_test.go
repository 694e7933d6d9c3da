package decode

import (
	"bytes"
	"errors"
	"testing"
)

// vbiCases are the Variable Byte Integer edges of section 1.5.5.
var vbiCases = []struct {
	name string
	b    []byte
	v    uint32
	st   vbiStatus
}{
	{"0", []byte{0x00}, 0, vbiOK},
	{"127", []byte{0x7F}, 127, vbiOK},
	{"128", []byte{0x80, 0x01}, 128, vbiOK},
	{"16383", []byte{0xFF, 0x7F}, 16383, vbiOK},
	{"16384", []byte{0x80, 0x80, 0x01}, 16384, vbiOK},
	{"2097151", []byte{0xFF, 0xFF, 0x7F}, 2097151, vbiOK},
	{"2097152", []byte{0x80, 0x80, 0x80, 0x01}, 2097152, vbiOK},
	{"268435455", []byte{0xFF, 0xFF, 0xFF, 0x7F}, 268435455, vbiOK},
	{"five bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x01}, 0, vbiTooLong},
	{"five bytes, all 0xFF", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, 0, vbiTooLong},
	{"truncated after one byte", []byte{0xFF}, 0, vbiShort}, // paho reads 127 here
	{"truncated after three bytes", []byte{0xFF, 0xFF, 0xFF}, 0, vbiShort},
	{"empty", nil, 0, vbiShort},
	{"non-minimal 0", []byte{0x80, 0x00}, 0, vbiNotShort},
	{"non-minimal 127", []byte{0xFF, 0x80, 0x00}, 127, vbiNotShort},
	{"non-minimal 128", []byte{0x80, 0x81, 0x80, 0x00}, 128, vbiNotShort},
}

func TestVarInt(t *testing.T) {
	for _, c := range vbiCases {
		t.Run(c.name, func(t *testing.T) {
			v, n, st := readVBI(append(c.b, 0x55)) // a following byte must not matter
			if c.st == vbiShort {
				v, n, st = readVBI(c.b)
			}
			wantN := len(c.b)
			if c.st == vbiShort || c.st == vbiTooLong {
				wantN = 0
			}
			if v != c.v || n != wantN || st != c.st {
				t.Fatalf("readVBI = %d, %d, %d; want %d, %d, %d", v, n, st, c.v, wantN, c.st)
			}

			rv, rn, err := ReadVarInt(c.b)
			switch c.st {
			case vbiOK, vbiNotShort:
				if err != nil || rv != c.v || rn != len(c.b) {
					t.Errorf("ReadVarInt = %d, %d, %v", rv, rn, err)
				}
			case vbiShort:
				if err != nil || rn != 0 || rv != 0 {
					t.Errorf("ReadVarInt = %d, %d, %v; want need-more", rv, rn, err)
				}
			case vbiTooLong:
				if !errors.Is(err, ErrMalformed) || rn != 0 {
					t.Errorf("ReadVarInt = %d, %d, %v; want malformed", rv, rn, err)
				}
			}

			if c.st == vbiOK {
				if got := AppendVarInt([]byte{0xAA}, c.v); !bytes.Equal(got[1:], c.b) || got[0] != 0xAA {
					t.Errorf("AppendVarInt = % X", got)
				}
				if VarIntLen(c.v) != len(c.b) {
					t.Errorf("VarIntLen = %d", VarIntLen(c.v))
				}
			}

			// As a Remaining Length: the fixed header alone.
			hdr := append([]byte{0xC0}, c.b...)
			h, ok, err := ParseHeader(hdr)
			switch c.st {
			case vbiOK, vbiNotShort:
				if !ok || err != nil || h.RemainingLength != int(c.v) || h.HeaderLen != len(hdr) || h.Type != PINGREQ {
					t.Errorf("ParseHeader = %+v, %v, %v", h, ok, err)
				}
				if n, err := SplitFrame(hdr, 0); n != 0 && c.v > 0 || err != nil {
					t.Errorf("SplitFrame(header only) = %d, %v", n, err)
				}
			case vbiShort:
				if ok || err != nil {
					t.Errorf("ParseHeader = %+v, %v, %v; want need-more", h, ok, err)
				}
				if n, err := SplitFrame(hdr, 0); n != 0 || err != nil {
					t.Errorf("SplitFrame = %d, %v; want need-more", n, err)
				}
			case vbiTooLong:
				var p *Problem
				if ok || !errors.As(err, &p) || p.Offset != 1 || !errors.Is(err, ErrMalformed) || p.Reason != MalformedPacket {
					t.Errorf("ParseHeader = %+v, %v, %v; want malformed at 1", h, ok, err)
				}
				if _, err := SplitFrame(hdr, 0); !errors.Is(err, ErrMalformed) {
					t.Errorf("SplitFrame err = %v", err)
				}
			}

			// As a Subscription Identifier in a PUBLISH.
			if c.st == vbiShort {
				return
			}
			ln := byte(len(c.b))
			frame := append([]byte{
				0x30, 5 + ln, // PUBLISH QoS 0
				0x00, 0x01, 't', // topic
				1 + ln, // property length
				0x0B,   // subscription identifier
			}, c.b...)
			p := Decode(frame, V5).(*Publish)
			switch c.st {
			case vbiOK:
				if len(p.Problems) != 0 && c.v != 0 {
					t.Errorf("problems:%s", problemList(p.Problems))
				}
				if ids := p.Properties.SubscriptionIDs(); len(ids) != 1 || ids[0] != c.v || p.Properties[0].Len != 1+len(c.b) {
					t.Errorf("subscription identifiers %v, properties %+v", ids, p.Properties)
				}
			case vbiNotShort:
				if !p.Problems.Has("MQTT-1.5.5-1") || p.Problems[0].Offset != 7 || p.Problems[0].Field != "properties.subscription_identifier" {
					t.Errorf("problems:%s", problemList(p.Problems))
				}
			case vbiTooLong:
				if len(p.Problems) != 1 || p.Problems[0].Offset != 7 || !errors.Is(p.Problems[0], ErrMalformed) {
					t.Errorf("problems:%s", problemList(p.Problems))
				}
			}
		})
	}
}

func TestEncodeVarIntLimits(t *testing.T) {
	p := &Publish{Base: v5base(), Topic: "t", Properties: Properties{IntProp(PropSubscriptionID, MaxVarInt+1)}}
	if _, err := Encode(nil, p); !errors.Is(err, ErrEncode) {
		t.Errorf("subscription identifier above the maximum: err = %v", err)
	}
	p.Properties[0].Int = MaxVarInt
	b, err := Encode(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	if q := Decode(b, V5); len(q.Info().Problems) != 0 || q.(*Publish).Properties[0].Int != MaxVarInt {
		t.Errorf("decoded %+v", q)
	}
}
