package decode

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// canon returns a copy of p reduced to what the wire carries: Base keeps only Version, properties
// lose their Offset and Len, and empty slices become nil (the wire cannot tell them apart).
func canon(p Packet) any {
	base := func(b Base) Base { return Base{Version: b.Version} }
	bin := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	switch q := p.(type) {
	case *Connect:
		c := *q
		c.Base = base(q.Base)
		c.Properties = canonProps(q.Properties)
		c.Password = bin(q.Password)
		if q.Will != nil {
			w := *q.Will
			w.Properties = canonProps(w.Properties)
			w.Payload = bin(w.Payload)
			c.Will = &w
		}
		return c
	case *Connack:
		c := *q
		c.Base = base(q.Base)
		c.Properties = canonProps(q.Properties)
		return c
	case *Publish:
		c := *q
		c.Base = base(q.Base)
		c.Properties = canonProps(q.Properties)
		c.Payload = bin(q.Payload)
		return c
	case *Ack:
		c := *q
		c.Base = base(q.Base)
		c.Properties = canonProps(q.Properties)
		return c
	case *Subscribe:
		c := *q
		c.Base = base(q.Base)
		c.Properties = canonProps(q.Properties)
		if len(c.Subscriptions) == 0 {
			c.Subscriptions = nil
		}
		return c
	case *Suback:
		c := *q
		c.Base = base(q.Base)
		c.Properties = canonProps(q.Properties)
		if len(c.ReasonCodes) == 0 {
			c.ReasonCodes = nil
		}
		return c
	case *Unsubscribe:
		c := *q
		c.Base = base(q.Base)
		c.Properties = canonProps(q.Properties)
		if len(c.Filters) == 0 {
			c.Filters = nil
		}
		return c
	case *Unsuback:
		c := *q
		c.Base = base(q.Base)
		c.Properties = canonProps(q.Properties)
		if len(c.ReasonCodes) == 0 {
			c.ReasonCodes = nil
		}
		return c
	case *Pingreq:
		return Pingreq{base(q.Base)}
	case *Pingresp:
		return Pingresp{base(q.Base)}
	case *Disconnect:
		c := *q
		c.Base = base(q.Base)
		c.Properties = canonProps(q.Properties)
		return c
	case *Auth:
		c := *q
		c.Base = base(q.Base)
		c.Properties = canonProps(q.Properties)
		return c
	case *Unknown:
		return struct {
			V     Version
			T     Type
			Flags byte
			Body  []byte
		}{q.Version, q.Header.Type, q.Header.Flags, bin(q.Body)}
	}
	panic(fmt.Sprintf("canon: unexpected %T", p))
}

func canonProps(ps Properties) Properties {
	if len(ps) == 0 {
		return nil
	}
	out := make(Properties, len(ps))
	for i, p := range ps {
		p.Offset, p.Len = 0, 0
		if len(p.Bin) == 0 {
			p.Bin = nil
		}
		out[i] = p
	}
	return out
}

// samePacket reports how got differs from want, ignoring Raw, Fields, problems and positions;
// "" when they are equal.
func samePacket(got, want Packet) string {
	if got.Type() != want.Type() {
		return fmt.Sprintf("type %s, want %s", got.Type(), want.Type())
	}
	g, w := canon(got), canon(want)
	if reflect.DeepEqual(g, w) {
		return ""
	}
	return fmt.Sprintf("\n got %s\nwant %s", dump(g), dump(w))
}

func dump(v any) string {
	s := fmt.Sprintf("%+v", v)
	if c, ok := v.(Connect); ok && c.Will != nil {
		s += fmt.Sprintf(" will=%+v", *c.Will)
	}
	return s
}

// errorProblems returns p's error-level problems.
func errorProblems(p Packet) Problems {
	var out Problems
	for _, pr := range p.Info().Problems {
		if pr.Level == LevelError {
			out = append(out, pr)
		}
	}
	return out
}

// problemList formats problems one per line for failure messages.
func problemList(ps Problems) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n\t%s/%s rule=%q reason=0x%02X cat=%v: %s", p.Level, p.Field, p.Rule, byte(p.Reason), p.Category, p.Error())
	}
	return b.String()
}

// checkLayout checks the invariants of a decoded packet's Fields and property positions: every
// field lies inside Raw, fields come in wire order without overlapping, and every property's
// Offset/Len lies inside Raw and starts with its identifier.
func checkLayout(t testing.TB, p Packet) {
	t.Helper()
	b := p.Info()
	prev := 0
	for i, f := range b.Fields {
		if f.Offset < 0 || f.Len < 0 || f.Offset+f.Len > len(b.Raw) {
			t.Errorf("field %d %q [%d,+%d) outside Raw of %d bytes", i, f.Name, f.Offset, f.Len, len(b.Raw))
		}
		if f.Offset < prev {
			t.Errorf("field %d %q at %d overlaps or precedes the previous field ending at %d", i, f.Name, f.Offset, prev)
		}
		prev = f.Offset + f.Len
	}
	for _, ps := range allProps(p) {
		for _, pr := range ps {
			if pr.Offset <= 0 || pr.Len < 2 || pr.Offset+pr.Len > len(b.Raw) {
				t.Errorf("property %s at [%d,+%d) outside Raw of %d bytes", pr.ID.Name(), pr.Offset, pr.Len, len(b.Raw))
				continue
			}
			if b.Raw[pr.Offset] != byte(pr.ID) {
				t.Errorf("property %s at %d: byte there is 0x%02X, not its identifier", pr.ID.Name(), pr.Offset, b.Raw[pr.Offset])
			}
		}
	}
	for _, pr := range b.Problems {
		if pr.Offset < 0 || pr.Offset > len(b.Raw) {
			t.Errorf("problem offset %d outside frame of %d bytes: %v", pr.Offset, len(b.Raw), pr)
		}
		if pr.Category == nil || !errors.Is(pr, pr.Category) {
			t.Errorf("problem without a category: %v", pr)
		}
	}
}

// allProps returns every property block of p, Will Properties included.
func allProps(p Packet) []Properties {
	out := []Properties{PropertiesOf(p)}
	if c, ok := p.(*Connect); ok && c.Will != nil {
		out = append(out, c.Will.Properties)
	}
	return out
}

// field returns the first field named name.
func field(p Packet, name string) (Field, bool) {
	for _, f := range p.Info().Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}
