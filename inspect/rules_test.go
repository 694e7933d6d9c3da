package inspect

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/decode"
)

// TestRuleIDsDocumented checks that every rule ID the package uses is either in decode's
// catalog of the standard's statements or in mqscope's own table.
func TestRuleIDsDocumented(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	re := regexp.MustCompile(`"(MQTT-\d+(?:\.\d+)*-\d+|MQSCOPE-[A-Z0-9-]+)"`)
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			seen++
			id := m[1]
			if strings.HasPrefix(id, "MQSCOPE-") {
				if _, ok := mqscopeRules[id]; !ok {
					t.Errorf("%s: %s is not in mqscopeRules", f, id)
				}
			} else if _, ok := decode.LookupRule(id); !ok {
				t.Errorf("%s: %s is not in decode's catalog", f, id)
			}
		}
	}
	if seen < 40 {
		t.Errorf("found only %d rule IDs; is the pattern right?", seen)
	}
	for id, text := range mqscopeRules {
		if text == "" {
			t.Errorf("%s has no explanation", id)
		}
		if _, ok := RuleText(id); !ok {
			t.Errorf("RuleText(%s) fails", id)
		}
	}
}

// TestDecoderRulesKnown checks problemRule never passes on an empty or unknown rule.
func TestDecoderRulesKnown(t *testing.T) {
	for _, p := range []*decode.Problem{
		{Category: decode.ErrMalformed}, {Category: decode.ErrProtocol}, {Category: decode.ErrSuspicious},
		{Category: decode.ErrTooLarge}, {Category: decode.ErrProtocol, Reason: decode.PayloadFormatInvalid},
		{Category: decode.ErrProtocol, Field: "properties.subscription_identifier", Message: "Subscription Identifier is 0, which the standard forbids"},
	} {
		if _, ok := RuleText(problemRule(p)); !ok {
			t.Errorf("%+v -> %q, unknown", p, problemRule(p))
		}
	}
}

// TestRulesDoc keeps RULES.md, the table of mqscope's rule IDs, in step with mqscopeRules
// (go test ./inspect -run RulesDoc -update rewrites it).
func TestRulesDoc(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("# mqscope rule IDs\n\n")
	sb.WriteString("Every finding names a rule. IDs of the form `MQTT-x.y.z-n` are the MQTT 5.0 standard's\n")
	sb.WriteString("conformance statements (`decode.LookupRule` explains them; `mqscope` cites them as the standard\n")
	sb.WriteString("prints them). Where the standard states a requirement without a number, or a finding is advice,\n")
	sb.WriteString("mqscope uses its own IDs, listed here. IDs are stable: a rule may be reworded, never renamed.\n\n")
	sb.WriteString("| ID | Meaning |\n|---|---|\n")
	for _, id := range MQScopeRules() {
		sb.WriteString("| `" + id + "` | " + strings.ReplaceAll(mqscopeRules[id], "|", `\|`) + " |\n")
	}
	got := []byte(sb.String())
	if *update {
		if err := os.WriteFile("RULES.md", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile("RULES.md")
	if err != nil || string(want) != string(got) {
		t.Fatalf("RULES.md is out of date: go test ./inspect -run RulesDoc -update")
	}
}
