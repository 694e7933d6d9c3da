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
