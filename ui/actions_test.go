package ui

import (
	"errors"
	"strings"
	"testing"
)

// TestNoActionsRefuse: every action of a file or of --readonly is refused with ErrNotLive
// and the reason, and nothing is offered or held.
func TestNoActionsRefuse(t *testing.T) {
	a := Actions(NoActions{Reason: WhyReadOnly})
	if a.Live() || a.Why() != WhyReadOnly || a.Faults() != nil || a.Held() != nil {
		t.Fatalf("NoActions offers something: live %v why %q", a.Live(), a.Why())
	}
	for name, err := range map[string]error{
		"fault":       a.Fault(1, "drop"),
		"disconnect":  a.Disconnect(1, 0x8E, ""),
		"reset":       a.Reset(1),
		"intercept":   a.Intercept(`type == "PUBLISH"`),
		"forward":     a.Forward(1),
		"forward all": a.ForwardAll(),
		"drop":        a.Drop(1),
		"edit":        a.Edit(1, []byte{0xC0, 0}),
	} {
		if !errors.Is(err, ErrNotLive) || !strings.Contains(err.Error(), WhyReadOnly) {
			t.Errorf("%s: %v, want ErrNotLive saying %q", name, err, WhyReadOnly)
		}
	}
}
