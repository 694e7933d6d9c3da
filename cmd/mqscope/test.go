package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/mqscope/mqscope/capture"
	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/replay"
	"github.com/mqscope/mqscope/proxy/scenario"
	"github.com/spf13/cobra"
)

// testOptions are the options of mqscope test.
type testOptions struct {
	io *streams

	junit, format, device, captureDir string
	seed                              uint64
	parallel                          int
	verbose                           bool
}

// testFailed ends a run in which an expectation failed (exit 1) or the harness failed (exit 2).
type testFailed struct {
	failed, errored int
}

func (e testFailed) Error() string {
	var parts []string
	if e.failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", e.failed))
	}
	if e.errored > 0 {
		parts = append(parts, fmt.Sprintf("%d could not run", e.errored))
	}
	return "scenarios: " + strings.Join(parts, ", ")
}

func newTestCmd(io *streams) *cobra.Command {
	o := &testOptions{io: io}
	cmd := &cobra.Command{
		Use:   "test FILE...",
		Short: "Run fault scenarios against a device and report what it did, for CI",
		Long: `Run the scenarios of each FILE (YAML; see the README's "Scenario files"). Each scenario starts
its own proxy (and, with upstream: embedded, its own broker playing a profile), starts the
device (a command, the built-in client, or one that connects on its own), applies the fault
rules, and decides each expectation from the inspected timeline as it happens: a line per
expectation as soon as it is decided, then a line per scenario and a summary.

Exit status: 0 every scenario passed (or was skipped: a requirement unmet), 1 an expectation
failed, 2 a scenario could not run (or mqscope was called wrongly).

--junit FILE writes JUnit XML: a testsuite per file, a testcase per scenario, with its
expectations, decoded timeline and device output, and the pcapng of its run written beside
FILE and named as an attachment.`,
		Example: `  mqscope test testdata/scenarios/device/*.yaml
  mqscope test --junit out/junit.xml testdata/scenarios/apsaramq/limits.yaml
  mqscope test --device 'mosquitto_pub -h {host} -p {port} -t {topic} -m hello -q 1' device.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runTest(ctx, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.junit, "junit", "", "write JUnit XML to `FILE` (captures beside it)")
	f.StringVar(&o.format, "format", "text", "output format: text or jsonl")
	f.StringVar(&o.device, "device", "", "test this `COMMAND` instead of each scenario's device ({host}, {port}, {addr} and the scenario's vars are filled in)")
	f.StringVar(&o.captureDir, "capture-dir", "", "write each scenario's pcapng to `DIR` (default: beside --junit)")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the random source for scenarios that give none, so that a run repeats")
	f.IntVar(&o.parallel, "parallel", runtime.NumCPU(), "run up to `N` scenarios at once in files that allow it")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print each failed scenario's timeline and device output")
	return cmd
}

func runTest(ctx context.Context, o *testOptions, args []string) error {
	if o.format != "text" && o.format != "jsonl" {
		return usageError{fmt.Errorf("--format %q: want text or jsonl", o.format)}
	}
	var files []*scenario.File
	for _, a := range args {
		f, err := scenario.Load(a)
		if err != nil {
			return usageError{err}
		}
		files = append(files, f)
	}
	dir := o.captureDir
	if dir == "" && o.junit != "" {
		dir = filepath.Dir(o.junit)
	}
	if dir != "" {
		var err error
		if dir, err = filepath.Abs(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	var mu sync.Mutex // lines come from scenarios running at once
	say := func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		o.io.Out.Write(b)
	}
	logf := stderrLog(o.io.Err) // from the scenarios' proxies and brokers at once
	var results []*scenario.Result
	for _, f := range files {
		opts := scenario.Options{Seed: o.seed, CaptureDir: dir, Device: o.device,
			Logf:     logf,
			Sessions: captureSessions}
		opts.Decided = func(v scenario.Verdict) {
			if o.format == "jsonl" {
				say(scenario.JSONVerdict(f.Path, v))
			} else {
				say([]byte(scenario.Line(v) + "\n"))
			}
		}
		for _, r := range scenario.RunFile(ctx, f, opts, o.parallel) {
			results = append(results, r)
			if o.format == "jsonl" {
				say(scenario.JSONResult(r))
				continue
			}
			say([]byte(scenario.ScenarioLine(r) + "\n"))
			if o.verbose && r.Status >= scenario.Failed {
				say([]byte(indent(r.Timeline) + indent(r.Device)))
			}
		}
	}
	var n [4]int
	for _, r := range results {
		n[r.Status]++
	}
	if o.format == "text" {
		fmt.Fprintf(o.io.Out, "%d passed, %d failed, %d errors, %d skipped\n", n[scenario.Passed], n[scenario.Failed], n[scenario.Errored], n[scenario.Skipped])
	}
	if o.junit != "" {
		if err := writeJUnit(o.junit, results); err != nil {
			return err
		}
	}
	if n[scenario.Failed]+n[scenario.Errored] > 0 {
		return testFailed{failed: n[scenario.Failed], errored: n[scenario.Errored]}
	}
	return nil
}

func writeJUnit(path string, results []*scenario.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	dir, _ := filepath.Abs(filepath.Dir(path))
	if err := scenario.WriteJUnit(f, results, dir); err != nil {
		f.Close()
		return fmt.Errorf("--junit: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	return nil
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

// exitOfTest is the exit status of a test run's error.
func exitOfTest(err error) (int, bool) {
	var tf testFailed
	if !errors.As(err, &tf) {
		return 0, false
	}
	if tf.errored > 0 {
		return exitUsage, true
	}
	return exitError, true
}

// captureSessions reads the sessions of a capture file for a scenario's replay device.
func captureSessions(ctx context.Context, path string, sel replay.Selector) ([]*replay.Session, error) {
	src := &capture.Files{Names: []string{path}, Options: capture.Options{Ports: ports(capture.DefaultPort, nil)}}
	return replay.Load(ctx, src, sel, inspect.Options{})
}
