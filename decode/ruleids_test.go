package decode

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var codeRuleIDPattern = regexp.MustCompile(`^MQTT-[0-9.]+-[0-9]+$`)

// TestRuleIDsAreKnown: every conformance statement ID written in the package's code is in the
// catalog, so a user who looks a problem's rule up finds it (a wrong ID is worse than none).
func TestRuleIDsAreKnown(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	n := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "rules.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(node ast.Node) bool {
			lit, ok := node.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil || !strings.HasPrefix(s, "MQTT-") {
				return true
			}
			n++
			if !codeRuleIDPattern.MatchString(s) {
				t.Errorf("%s: %q is not a rule ID", fset.Position(lit.Pos()), s)
			} else if _, ok := LookupRule(s); !ok {
				t.Errorf("%s: rule %s is not in the catalog", fset.Position(lit.Pos()), s)
			}
			return true
		})
	}
	if n < 20 {
		t.Errorf("found only %d rule IDs in the code", n)
	}
	// The rules the problem table expects are known too, apart from mqscope's own.
	for _, c := range problemCases {
		for _, w := range c.want {
			if _, ok := LookupRule(w.rule); w.rule != "" && w.rule != ruleControlChar && !ok {
				t.Errorf("%s: rule %s is not in the catalog", c.name, w.rule)
			}
		}
	}
}
