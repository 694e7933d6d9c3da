package decode

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var (
	ruleIDPattern      = regexp.MustCompile(`^MQTT-\d+(\.\d+)*-\d+$`)
	ruleSectionPattern = regexp.MustCompile(`^\d+(\.\d+)*$`)
)

// ruleKey splits "MQTT-3.3.2-8" into its numbered section ("3.3.2") and its counter (8).
func ruleKey(t *testing.T, id string) (section []int, counter int) {
	t.Helper()
	rest := strings.TrimPrefix(id, "MQTT-")
	dash := strings.LastIndexByte(rest, '-')
	if dash < 0 {
		t.Fatalf("%s: no counter", id)
	}
	for _, p := range strings.Split(rest[:dash], ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		section = append(section, n)
	}
	counter, err := strconv.Atoi(rest[dash+1:])
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	return section, counter
}

// ruleIDSection is the section an ID names, without trailing ".0" parts: "MQTT-4.7.0-1" -> "4.7".
func ruleIDSection(id string) string {
	s := strings.TrimPrefix(id, "MQTT-")
	s = s[:strings.LastIndexByte(s, '-')]
	for strings.HasSuffix(s, ".0") {
		s = strings.TrimSuffix(s, ".0")
	}
	return s
}

func TestRulesAreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		if !ruleIDPattern.MatchString(r.ID) {
			t.Errorf("%q: malformed ID", r.ID)
			continue
		}
		if seen[r.ID] {
			t.Errorf("%s: listed twice", r.ID)
		}
		seen[r.ID] = true
		if !ruleSectionPattern.MatchString(r.Section) {
			t.Errorf("%s: malformed section %q", r.ID, r.Section)
		}
		if want := ruleIDSection(r.ID); r.Section != want && !strings.HasPrefix(r.Section, want+".") {
			t.Errorf("%s: section %q is not within %s", r.ID, r.Section, want)
		}
		text := strings.TrimSpace(r.Text)
		switch {
		case text == "":
			t.Errorf("%s: empty text", r.ID)
		case text != r.Text || strings.Contains(r.Text, "\n"):
			t.Errorf("%s: text is not a single trimmed line: %q", r.ID, r.Text)
		case !strings.HasSuffix(text, "."):
			t.Errorf("%s: text is not a sentence ending in a full stop: %q", r.ID, r.Text)
		case len(text) > 240:
			t.Errorf("%s: text is %d bytes, too long for one line", r.ID, len(text))
		}
	}
}

func TestRulesAreInSectionOrder(t *testing.T) {
	all := Rules()
	for i := 1; i < len(all); i++ {
		ps, pc := ruleKey(t, all[i-1].ID)
		s, c := ruleKey(t, all[i].ID)
		if cmp := slices.Compare(ps, s); cmp > 0 || cmp == 0 && pc >= c {
			t.Errorf("%s comes after %s", all[i].ID, all[i-1].ID)
		}
	}
}

// Within a section the standard numbers its statements 1, 2, 3, ... A gap usually means a typo
// in an ID. The one gap in MQTT 5.0 is 2.2.1, whose first statement was dropped from 3.1.1.
func TestRuleCountersHaveNoGaps(t *testing.T) {
	firstCounter := map[string]int{"2.2.1": 2}
	next := map[string]int{}
	for _, r := range Rules() {
		s := strings.TrimPrefix(r.ID, "MQTT-")
		s = s[:strings.LastIndexByte(s, '-')]
		_, c := ruleKey(t, r.ID)
		want, ok := next[s]
		if !ok {
			want = 1
			if f, ok := firstCounter[s]; ok {
				want = f
			}
		}
		if c != want {
			t.Errorf("%s: expected counter %d in section %s", r.ID, want, s)
		}
		next[s] = c + 1
	}
}

func TestRulesCoverTheStandard(t *testing.T) {
	// 251 numbered statements in chapters 1-4 and 6 of MQTT 5.0 (chapter 5 has none).
	if got := len(Rules()); got != 251 {
		t.Errorf("%d rules, want 251", got)
	}
	perSection := map[string]int{}
	for _, r := range Rules() {
		perSection[ruleIDSection(r.ID)]++
	}
	for section, want := range map[string]int{
		"1.5.4": 3, "1.5.5": 1, "1.5.7": 1, "2.1.3": 1, "2.2.1": 5, "2.2.2": 1,
		"3.1": 2, "3.1.2": 30, "3.1.3": 12, "3.1.4": 6, "3.2": 2, "3.2.2": 22,
		"3.3.1": 13, "3.3.2": 20, "3.3.4": 10, "3.8.3": 5, "3.8.4": 8, "3.10.4": 6,
		"3.14.2": 4, "3.14.4": 3, "4.3.3": 13, "4.7": 1, "4.7.1": 2, "4.7.3": 4,
		"4.8.2": 6, "4.9": 3, "4.12": 7, "4.12.1": 2, "4.13.1": 1, "4.13.2": 1, "6": 4,
	} {
		if got := perSection[section]; got != want {
			t.Errorf("section %s: %d rules, want %d", section, got, want)
		}
	}
}

func TestLookupRule(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		wantID  string
		section string
	}{
		{"VBI minimal", "MQTT-1.5.5-1", "MQTT-1.5.5-1", "1.5.5"},
		{"null character", "MQTT-1.5.4-2", "MQTT-1.5.4-2", "1.5.4"},
		{"reserved flags", "MQTT-2.1.3-1", "MQTT-2.1.3-1", "2.1.3"},
		{"second CONNECT", "MQTT-3.1.0-2", "MQTT-3.1.0-2", "3.1"},
		{"QoS 3", "MQTT-3.3.1-4", "MQTT-3.3.1-4", "3.3.1.2"},
		{"topic alias 0 in brackets", "[MQTT-3.3.2-8]", "MQTT-3.3.2-8", "3.3.2.3.4"},
		{"lower case", "mqtt-3.8.3-4", "MQTT-3.8.3-4", "3.8.3.1"},
		{"surrounding space", " MQTT-4.9.0-2 ", "MQTT-4.9.0-2", "4.9"},
		{"two-part section", "MQTT-4.2-1", "MQTT-4.2-1", "4.2"},
		{"x.y.0 numbering", "MQTT-4.7.0-1", "MQTT-4.7.0-1", "4.7.1"},
		{"websocket", "MQTT-6.0.0-4", "MQTT-6.0.0-4", "6"},
		{"last of chapter 4", "MQTT-4.13.2-1", "MQTT-4.13.2-1", "4.13.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := LookupRule(tt.id)
			if !ok {
				t.Fatalf("LookupRule(%q) found nothing", tt.id)
			}
			if r.ID != tt.wantID || r.Section != tt.section || r.Text == "" {
				t.Errorf("LookupRule(%q) = %+v, want ID %s in section %s", tt.id, r, tt.wantID, tt.section)
			}
		})
	}
}

func TestLookupRuleUnknown(t *testing.T) {
	for _, id := range []string{
		"",
		"MQTT-",
		"MQTT-3.3.2-99",
		"MQTT-2.2.1-1", // dropped in 5.0
		"MQTT-1.5.3-1", // MQTT 3.1.1 numbering (ill-formed UTF-8), not a 5.0 ID
		"MQTT-2.2.2-2", // MQTT 3.1.1 numbering (invalid fixed-header flags)
		"3.3.2-8",
		"MQTT-3.3.2-8x",
	} {
		if r, ok := LookupRule(id); ok {
			t.Errorf("LookupRule(%q) = %+v, want nothing", id, r)
		}
	}
}

func TestRulesReturnsACopy(t *testing.T) {
	a := Rules()
	a[0].Text = "changed"
	if b := Rules(); b[0].Text == "changed" {
		t.Error("Rules shares its slice with the caller")
	}
	if r, _ := LookupRule(a[0].ID); r.Text == "changed" {
		t.Error("LookupRule sees a caller's change")
	}
}
