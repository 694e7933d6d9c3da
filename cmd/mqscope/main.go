// Command mqscope is a debugger for MQTT 5 and 3.1.1 connections.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mqscope/mqscope/inspect"
	// For its start: it advises the data segment to use huge pages before gopacket fills
	// its tables (see the package).
	_ "github.com/mqscope/mqscope/internal/hugepage"
)

// Exit statuses, decided in one place (exitStatus) from the error a command returns.
const (
	exitOK    = 0
	exitError = 1 // an error, or findings at or above read --fail-on
	exitUsage = 2 // mqscope was called wrongly; for test, also: a scenario could not run
)

// usageError marks an error caused by how mqscope was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// findingsError is the end of a run that worked but reported findings at or above the level
// of --fail-on.
type findingsError struct {
	level            string // the --fail-on level
	errors, warnings int64  // the findings reported at each level
}

func (e findingsError) Error() string {
	n := []string{inspect.Plural(int(e.errors), "error")}
	if e.level == "warning" {
		n = append(n, inspect.Plural(int(e.warnings), "warning"))
	}
	return fmt.Sprintf("--fail-on %s: %s reported", e.level, strings.Join(n, " and "))
}

// exitStatus is the exit status for the error a command returned.
func exitStatus(err error) int {
	var ue usageError
	if code, ok := exitOfTest(err); ok {
		return code
	}
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitError // errors, and findingsError
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes mqscope with args and returns the process exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(&streams{In: stdin, Out: stdout, Err: stderr})
	root.SetArgs(args)
	err := root.Execute()
	if err != nil {
		fmt.Fprintf(stderr, "mqscope: %v\n", err)
	}
	return exitStatus(err)
}
