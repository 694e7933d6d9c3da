package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The huge page advice for the data segment is given before gopacket's layers package fills
// its tables, or it would come too late to spare their page faults: Go initialises packages
// in an order the import graph and the import paths decide, which an import could change.
func TestHugepageInitBeforeLayers(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	at := func(pkg string) int {
		for i, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "init "+pkg+" ") {
				return i
			}
		}
		t.Fatalf("no init of %s in GODEBUG=inittrace=1's output:\n%s", pkg, out)
		return 0
	}
	if h, l := at("github.com/mqscope/mqscope/internal/hugepage"), at("github.com/google/gopacket/layers"); h > l {
		t.Errorf("internal/hugepage is initialised after gopacket/layers (lines %d, %d of the trace)", h, l)
	}
}
