package fault

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

func TestParseFile(t *testing.T) {
	rules, err := ParseFile([]byte(`# faults for the oversize test
faults:
  - oversize dir=c2s size=max_packet_size+1 name=big
  - action: drop
    type: [PUBACK, PUBREC]
    dir: s2c
    count: 1
  - {action: disconnect, dir: s2c, reason: 0x89, reason_string: "busy, try later", after: PUBLISH}
  - {action: oversize, topic: "a/#", size: max_packet_size + 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, text, dirs string }{
		{"big", "oversize dir=c2s size=max_packet_size+1 name=big", "c2s"},
		{"#2 drop", "drop type=PUBACK,PUBREC dir=s2c count=1", "s2c"},
		{"#3 disconnect", `disconnect dir=s2c reason=0x89 reason_string="busy, try later" after=PUBLISH`, "s2c"},
		{"#4 oversize", `oversize topic=a/# size="max_packet_size + 1"`, "both"},
	}
	if len(rules) != len(want) {
		t.Fatalf("%d rules, want %d", len(rules), len(want))
	}
	for i, w := range want {
		r := rules[i]
		if r.Name != w.name || r.Text != w.text || r.Dirs.String() != w.dirs {
			t.Errorf("rule %d: %q %q %s, want %q %q %s", i+1, r.Name, r.Text, r.Dirs, w.name, w.text, w.dirs)
		}
		// The text is the grammar: it parses to the same rule.
		again, err := Parse(r.Text, i+1)
		if err != nil || again.Name != r.Name || again.Dirs != r.Dirs || len(again.Sel.Types) != len(r.Sel.Types) {
			t.Errorf("rule %d: %q parses to %+v, %v", i+1, r.Text, again, err)
		}
	}
	if d := rules[2].Fault.(*Disconnect); d.Reason.String() != "0x89" || d.ReasonString != "busy, try later" || !rules[2].After {
		t.Errorf("disconnect %+v after=%v", d, rules[2].After)
	}
	if rules[1].Sel.Count != 1 || len(rules[1].Sel.Types) != 2 {
		t.Errorf("drop selector %+v", rules[1].Sel)
	}
}

// Each bad file is an error saying what is wrong and where (line:column).
func TestParseFileErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown top key", "faults: []\nfautls: []\n", `2:1: unknown key fautls (the top level has faults only)`},
		{"top not a mapping", "- drop\n", "1:1: want faults: [rules...] at the top, not a list"},
		{"no faults key", "# nothing\n", "1:1: want one YAML document"},
		{"faults not a list", "faults: drop\n", "1:9: faults: want a list of rules, not a string"},
		{"unknown rule key", "faults:\n  - action: oversize\n    sizee: 300\n", `3:5: sizee does not apply to oversize (oversize takes size, in, body; every rule takes name, dir,`},
		{"key for another action", "faults:\n  - {action: drop, size: 3}\n", "2:20: size does not apply to drop (drop takes no keys of its own"},
		{"no action", "faults:\n  - dir: c2s\n    type: PUBACK\n", "2:5: no action: add action: NAME (alias, "},
		{"unknown action", "faults:\n  - action: explode\n", `2:5: unknown action "explode"`},
		{"bad value", "faults:\n  - action: drop\n    dir: up\n", `3:5: dir: "up" is not c2s, s2c or both`},
		{"bad expression", "faults:\n  - {action: oversize, size: max_packet_sise+1}\n", `2:24: size: expression "max_packet_sise+1"`},
		{"missing parameter", "faults:\n  - action: oversize\n    dir: c2s\n", "2:5: size= is required"},
		{"key twice", "faults:\n  - action: drop\n    dir: c2s\n    dir: s2c\n", `4:5: mapping key "dir" already defined at [3:5]`},
		{"no value", "faults:\n  - action: drop\n    dir:\n", "3:5: dir has no value"},
		{"mapping value", "faults:\n  - action: drop\n    dir: {a: b}\n", "3:10: dir: want a value (a number, a string or a list), not a mapping"},
		{"empty item", "faults:\n  -\n  - drop\n", "2:4: a fault rule is a string"},
		{"bad string rule", "faults:\n  - drop\n  - drop dir=up\n", `3:5: fault rule "drop dir=up": column 6: dir: "up" is not c2s, s2c or both`},
		{"bad word of an action", "faults:\n  - action: oversize\n    size: 300\n    in: topic\n", "4:5: in=topic is not payload or user_property"},
		{"server key towards the server", "faults:\n  - action: disconnect\n    reason: 0x9C\n    server_reference: x\n", "4:5: server_reference is the server's: give dir=s2c"},
		{"filter without wildcard", "faults:\n  - action: sub_wildcard\n    filter: a/b\n", `3:5: filter "a/b" has no wildcard`},
		{"bad share name", "faults:\n  - action: sub_shared\n    group: a/b\n", `3:5: group "a/b": a share name`},
		{"syntax", "faults:\n  - {action: drop\n", "2:"},
		{"faults twice", "faults: []\nfaults: []\n", `2:1: mapping key "faults" already defined at [1:1]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile([]byte(tc.yaml))
			if err == nil || !errors.Is(err, ErrRule) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %v, want one starting %q", err, tc.want)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "faults.yaml")
	os.WriteFile(p, []byte("faults:\n  - action: oversize\n    sizee: 300\n"), 0o600)
	_, err := LoadFile(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":3:5: sizee does not apply to oversize") {
		t.Errorf("error %v", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "none.yaml")); err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Errorf("missing file: %v", err)
	}
	os.WriteFile(p, []byte("faults:\n  - drop type=PUBACK\n"), 0o600)
	if rules, err := LoadFile(p); err != nil || len(rules) != 1 || rules[0].Name != "#1 drop" {
		t.Errorf("rules %v, %v", rules, err)
	}
}

// Spec embedded in another file's struct, as mqscope test's scenarios do: goccy/go-yaml calls
// its unmarshaler, and a bad rule is an error with its place.
func TestSpecEmbedded(t *testing.T) {
	type scenario struct {
		Name   string `yaml:"name"`
		Faults []Spec `yaml:"faults"`
	}
	var sc scenario
	src := "name: big\nfaults:\n  - oversize size=201\n  - {action: drop, type: PUBACK}\n"
	if err := yaml.UnmarshalWithOptions([]byte(src), &sc, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	if len(sc.Faults) != 2 || sc.Faults[0].Text != "oversize size=201" || sc.Faults[1].Text != "drop type=PUBACK" || sc.Faults[1].Line != 4 {
		t.Fatalf("specs %+v", sc.Faults)
	}
	r, err := sc.Faults[1].Rule(2)
	if err != nil || r.Name != "#2 drop" {
		t.Errorf("rule %+v, %v", r, err)
	}
	err = yaml.UnmarshalWithOptions([]byte("name: x\nfaults:\n  - {action: drop, typ: PUBACK}\n"), &sc, yaml.Strict())
	if err == nil || !strings.Contains(err.Error(), "3:20: typ does not apply to drop") {
		t.Errorf("error %v", err)
	}
}
