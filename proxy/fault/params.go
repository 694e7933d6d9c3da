package fault

import (
	"fmt"
	"math"

	"github.com/mqscope/mqscope/stream"
)

// required, as a default, says a parameter must be given.
const required = math.MinInt

// takeInt removes key from params and parses it as an integer from lo to hi (def when absent).
func takeInt(params map[string]token, key string, def, lo, hi int) (int, error) {
	t, ok := params[key]
	if !ok {
		if def == required {
			return 0, fmt.Errorf("%s= is required", key)
		}
		return def, nil
	}
	delete(params, key)
	n, err := intIn(t.val, lo, hi)
	if err != nil {
		return 0, t.errorf("%s: %w", key, err)
	}
	return n, nil
}

// takeWord removes key from params and checks it is one of words (the first when absent).
func takeWord(params map[string]token, key string, words ...string) (string, error) {
	t, ok := params[key]
	if !ok {
		return words[0], nil
	}
	delete(params, key)
	if contains(words, t.val) {
		return t.val, nil
	}
	return "", t.errorf("%s: %q is not one of %v", key, t.val, words)
}

// oneDir checks the rule names one direction, for faults that act on one side.
func (r *Rule) oneDir(action, what string) error {
	if r.Dirs == Both {
		return fmt.Errorf("%s %s: give dir=c2s (towards the broker) or dir=s2c (towards the device)", action, what)
	}
	return nil
}

// receiver names the side that receives what goes in dir.
func receiver(dir stream.Dir) string {
	if dir == stream.C2S {
		return "broker"
	}
	return "device"
}
