package fault

import (
	"slices"
	"strings"
)

// ActionInfo is a fault action as --help shows it: its name, its parameters' grammar
// ("size=EXPR") and its sentence.
type ActionInfo struct{ Name, Params, Help string }

// Catalog lists the fault actions, by name (the UI's fault palette).
func Catalog() []ActionInfo {
	out := make([]ActionInfo, 0, len(actions))
	for _, a := range actions {
		out = append(out, ActionInfo{Name: a.name, Params: a.params, Help: a.help})
	}
	slices.SortFunc(out, func(a, b ActionInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
