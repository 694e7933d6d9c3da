// Package layout holds the test that keeps mqscope's import graph as README's Layout section
// says: imports flow one way.
package layout

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/mqscope/mqscope/"

// TestImports: decode and stream import nothing of ours; inspect only decode, stream and its
// own helpers; capture and proxy not each other; pcapng no source; ui
// reads records, never a source (neither capture nor proxy). A package's own
// subpackages (capture/tlsdecrypt) are its own business.
func TestImports(t *testing.T) {
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Skipf("go list: %v", err)
		}
		var ours []string
		for _, p := range strings.Fields(string(out)) {
			if rest, ok := strings.CutPrefix(p, mod); ok && rest != pkg && !strings.HasPrefix(rest, pkg+"/") {
				ours = append(ours, rest)
			}
		}
		return ours
	}
	for pkg, allowed := range map[string][]string{
		"decode":  nil,
		"stream":  nil,
		"inspect": {"decode", "stream", "inspect/payload", "internal/jsonstr"},
		"pcapng":  {"stream"},
		"capture": {"decode", "stream", "inspect", "inspect/payload", "internal/jsonstr", "pcapng"},
		"proxy":   {"decode", "stream", "inspect", "inspect/payload", "internal/jsonstr", "internal/wsconn"},
		"ui":      {"decode", "stream", "inspect", "inspect/payload", "internal/jsonstr", "pcapng"},
		// The raw client of probe, replay and tests: no source.
		"internal/mqttclient": {"decode", "stream", "inspect", "inspect/payload", "internal/jsonstr", "internal/wsconn"},
		"internal/probe":      {"decode", "stream", "inspect", "inspect/payload", "internal/jsonstr", "internal/mqttclient", "internal/wsconn"},
		"internal/junit":      nil,
		// The WebSocket byte stream of both the proxy and the raw client.
		"internal/wsconn": nil,
		// The replay engine takes its sessions from any stream.Source: no source of its own, so
		// that proxy-side code (scenarios) may use it.
		"internal/replay": {"decode", "stream", "inspect", "inspect/payload", "internal/jsonstr", "internal/mqttclient", "internal/wsconn"},
		// mqscope test: runs the proxy with faults, records, reports in JUnit; replays captured
		// sessions it is given (it reads no capture: cmd gives it the sessions).
		"proxy/scenario": {"decode", "stream", "inspect", "inspect/payload", "internal/jsonstr", "pcapng", "proxy", "proxy/fault", "internal/junit", "internal/mqttclient", "internal/replay", "internal/wsconn"},
	} {
		for _, d := range deps(pkg) {
			if !slices.Contains(allowed, d) {
				t.Errorf("%s imports %s", pkg, d)
			}
		}
	}
}
