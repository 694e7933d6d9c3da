package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/peer"
	"github.com/mqscope/mqscope/proxy"
)

const (
	limitsCapture  = "../../testdata/captures/mqtt5-limits.pcapng"
	sessionCapture = "../../testdata/captures/mqtt5-session.pcapng"
)

// TestExitStatus: 0 when all went well, 1 on errors, 2 when mqscope was called wrongly, an
// unknown command as much as an unknown flag.
func TestExitStatus(t *testing.T) {
	checkExits(t, []exitCase{
		{"ok", []string{"read", "--summary", sessionCapture}, exitOK, ""},
		{"no command", []string{}, exitOK, ""},
		{"unknown command", []string{"reed", sessionCapture}, exitUsage, `unknown command "reed" for "mqscope"; did you mean read?`},
		{"unknown subcommand", []string{"ca", "int"}, exitUsage, `unknown command "int" for "mqscope ca"; did you mean init?`},
		{"unknown flag", []string{"--nope"}, exitUsage, "unknown flag: --nope"},
		{"unknown flag of a command", []string{"read", "--nope", sessionCapture}, exitUsage, "unknown flag: --nope"},
		{"argument to version", []string{"version", "x"}, exitUsage, `unknown command "x" for "mqscope version"`},
		{"unknown shell", []string{"completion", "tcsh"}, exitUsage, `unknown command "tcsh" for "mqscope completion"`},
		{"completion", []string{"completion", "bash"}, exitOK, ""},
		{"help of a command", []string{"help", "read"}, exitOK, ""},
		{"help of an unknown command", []string{"help", "reed"}, exitUsage, `unknown command "reed" for "mqscope"; did you mean read?`},
		{"bad --color", []string{"--color", "sometimes", "version"}, exitUsage, "want auto, always, never"},
		{"bad --fail-on", []string{"read", "--fail-on", "info", sessionCapture}, exitUsage, "want error or warning"},
		{"bad --port", []string{"read", "--port", "0", sessionCapture}, exitUsage, "port 0: want 1 to 65535"},
		{"missing file", []string{"read", "no/such.pcap"}, exitError, "no/such.pcap"},
		{"malformed packet", []string{"decode", "60 02 00 01"}, exitError, "MQTT-3.6.1-1"},
		{"findings", []string{"read", "--fail-on", "error", limitsCapture}, exitError, "--fail-on error: 14 errors reported"},
	})
}

// exitCase is a command line with the exit status it ends with and a part of its stderr.
type exitCase struct {
	name string
	args []string
	code int
	err  string
}

func checkExits(t *testing.T, cases []exitCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tc.code, tc.err)
			}
		})
	}
}

// TestReadFailOn: read --fail-on exits 1 when a finding at or above the level was reported,
// counted the same in every output mode (one goroutine or several, text, JSON lines, summary),
// and the counts agree with the findings in the JSON lines themselves.
func TestReadFailOn(t *testing.T) {
	_, js, _ := runCmd(t, "", "read", "--format", "jsonl", limitsCapture)
	levels := map[string]int{}
	for _, r := range jsonLines(t, js) {
		notes, _ := r["notes"].([]any)
		for _, n := range notes {
			levels[n.(map[string]any)["level"].(string)]++
		}
	}
	if levels["error"] == 0 || levels["warning"] == 0 {
		t.Fatalf("the capture has findings %v; want errors and warnings", levels)
	}
	want := fmt.Sprintf("--fail-on warning: %s and %s reported", inspect.Plural(levels["error"], "error"), inspect.Plural(levels["warning"], "warning"))
	for _, mode := range [][]string{{}, {"--format", "jsonl"}, {"--summary"}, {"--summary", "--format", "jsonl"},
		{"--write", filepath.Join(t.TempDir(), "w.pcapng")}} {
		args := append(append([]string{"read", "--fail-on", "warning"}, mode...), limitsCapture)
		if code, _, errOut := runCmd(t, "", args...); code != exitError || !strings.Contains(errOut, want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and %q", mode, code, errOut, want)
		}
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		// Connection 8 has one warning (on its close) and no error.
		{"warning only, --fail-on error", []string{"--fail-on", "error", "--filter", "conn == 8", limitsCapture}, exitOK, ""},
		{"warning only, --fail-on warning", []string{"--fail-on", "warning", "--filter", "conn == 8", limitsCapture}, exitError, "0 errors and 1 warning reported"},
		{"info only", []string{"--fail-on", "warning", sessionCapture}, exitOK, ""},
		{"filtered out", []string{"--fail-on", "error", "--filter", `type == "PINGREQ"`, limitsCapture}, exitOK, ""},
		{"without --fail-on", []string{limitsCapture}, exitOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, "", append([]string{"read", "--summary"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", code, errOut, tc.code, tc.stderr)
			}
		})
	}
}

// TestVersion: mqscope --version and mqscope version say the version, the commit and the Go
// version, from -ldflags, VCS stamping or the module's (pseudo-)version.
func TestVersion(t *testing.T) {
	_, v1, _ := runCmd(t, "", "version")
	code, v2, errOut := runCmd(t, "", "--version")
	if code != 0 || v1 != v2 || !regexp.MustCompile(`^mqscope \S+ \(commit \S+, go1\.\d+`).MatchString(v2) {
		t.Errorf("--version: exit %d %q (stderr %q); version: %q", code, v2, errOut, v1)
	}
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name             string
		info             *debug.BuildInfo
		ldVersion, ldCom string
		want             string
	}{
		{"go build in a checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", "2eb3964f00dfeedfacecafe0123456789abcdef0", "vcs.modified", "true")}, "", "",
			"(devel) (commit 2eb3964f00df, modified, go1.26.8)"},
		{"go install @tag, no VCS stamp", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}}, "", "",
			"v1.4.0 (commit unknown, go1.26.8)"},
		{"go install @latest on an untagged commit", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261205072357-2eb3964f00df"}}, "", "",
			"v0.0.0-20261205072357-2eb3964f00df (commit 2eb3964f00df, go1.26.8)"},
		{"pseudo-version after a tag", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.1-0.20261205072357-2eb3964f00df"}}, "", "",
			"v1.4.1-0.20261205072357-2eb3964f00df (commit 2eb3964f00df, go1.26.8)"},
		{"-ldflags, -buildvcs=false", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "v1.5.0", "2eb3964f00dfeedface",
			"v1.5.0 (commit 2eb3964f00df, go1.26.8)"},
		{"nothing known", nil, "", "", "(devel) (commit unknown)"},
	} {
		if got := describeBuild(tc.info, tc.ldVersion, tc.ldCom); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestVersionBuildLine builds mqscope with the build line of the README (no VCS stamping) and
// expects the version and commit it sets.
func TestVersionBuildLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mqscope")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`go build -buildvcs=false -ldflags "([^"]+)" -o mqscope ./cmd/mqscope`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no build line with -ldflags")
	}
	// $(git describe ...) and $(git rev-parse HEAD) become known values.
	flags := regexp.MustCompile(`\$\(git describe[^)]*\)`).ReplaceAllString(string(m[1]), "v9.8.7")
	flags = regexp.MustCompile(`\$\(git rev-parse HEAD\)`).ReplaceAllString(flags, "0123456789abcdef0123")
	bin := filepath.Join(t.TempDir(), "mqscope")
	if out, err := exec.Command("go", "build", "-buildvcs=false", "-ldflags", flags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags %q: %v\n%s", flags, err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "mqscope v9.8.7 (commit 0123456789ab, go") {
		t.Errorf("--version: %q, %v", out, err)
	}
}

// TestHelpDefaults: no flag's help shows an empty default such as "(default [])".
func TestHelpDefaults(t *testing.T) {
	root := newRootCmd(&streams{})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		u := c.Flags().FlagUsages()
		for _, bad := range []string{"(default [])", `(default "")`, "(default 0)"} {
			if strings.Contains(u, bad) {
				t.Errorf("%s --help: %s", c.CommandPath(), bad)
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

// TestCompletion: flag values complete in the shell (through cobra's __complete).
func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broker.yaml"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "more"), 0o755)
	ifs, _ := net.Interfaces()
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	for _, tc := range []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"read", "--profile", ""}, append(inspect.Profiles(), "spec", "apsaramq"), nil},
		{[]string{"proxy", "--profile", "aps"}, []string{"apsaramq"}, []string{"spec"}},
		{[]string{"read", "--profile", dir + "/"}, []string{dir + "/broker.yaml", dir + "/more/"}, []string{"notes.txt"}},
		{[]string{"read", "--payload", ""}, []string{"none", "preview", "full"}, nil},
		{[]string{"capture", "--format", ""}, []string{"text", "jsonl"}, nil},
		{[]string{"decode", "--payload", ""}, []string{"none", "preview", "full"}, nil},
		{[]string{"capture", "-i", ""}, names, nil},
		{[]string{"read", "--color", ""}, []string{"auto", "always", "never"}, nil},
		{[]string{"read", "--fail-on", ""}, []string{"error", "warning"}, nil},
	} {
		_, out, _ := runCmd(t, "", append([]string{cobra.ShellCompRequestCmd}, tc.args...)...)
		got := strings.Split(out, "\n")
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%v: %q not offered: %q", tc.args, w, out)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out, n) {
				t.Errorf("%v: %q offered: %q", tc.args, n, out)
			}
		}
	}
	if len(names) == 0 {
		t.Error("no network interface to offer")
	}
}

// openPTY returns the terminal end of a new pseudo-terminal, or skips the test.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestColor: --color always and never decide; auto colours a terminal unless NO_COLOR is set
// or TERM=dumb, and never a file or pipe.
func TestColor(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ansi bool
	}{
		{[]string{"--color", "always"}, true},
		{[]string{"--color=never"}, false},
		{nil, false}, // auto, into a buffer
	} {
		_, out, _ := runCmd(t, "", append(tc.args, "read", limitsCapture)...)
		if strings.Contains(out, "\x1b[") != tc.ansi {
			t.Errorf("%v: ANSI colour %v, want %v", tc.args, !tc.ansi, tc.ansi)
		}
	}
	tty := openPTY(t)
	for _, tc := range []struct {
		term, noColor string
		mode          colorMode
		want          bool
	}{
		{"xterm-256color", "", "auto", true},
		{"dumb", "", "auto", false},
		{"xterm", "1", "auto", false},
		{"dumb", "", "always", true},
		{"xterm", "", "never", false},
	} {
		t.Setenv("TERM", tc.term)
		t.Setenv("NO_COLOR", tc.noColor)
		if got := tc.mode.colorFor(tty); got != tc.want {
			t.Errorf("TERM=%s NO_COLOR=%q --color %s on a terminal: colour %v, want %v", tc.term, tc.noColor, tc.mode, got, tc.want)
		}
		// The terminal UI draws on the terminal whatever standard output is (here not one).
		if got := tc.mode.colorForScreen(); got != tc.want {
			t.Errorf("TERM=%s NO_COLOR=%q --color %s, the UI: colour %v, want %v", tc.term, tc.noColor, tc.mode, got, tc.want)
		}
	}
}

// TestProgressBarFirstTick: the bar's clock starts with the reading, so a first tick that comes
// at once shows no rate computed over the nanoseconds since the tick before.
func TestProgressBarFirstTick(t *testing.T) {
	var b bytes.Buffer
	start := time.Now()
	move := newProgressBar(&b, 1<<30)
	move(512 << 20)
	elapsed := time.Since(start)
	units := map[string]float64{"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15}
	for _, m := range regexp.MustCompile(`([\d.]+) ([kKMGTP]?B)/s`).FindAllStringSubmatch(b.String(), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		if rate, most := v*units[m[2]], float64(512<<20)/elapsed.Seconds(); rate > most*1.01 {
			t.Errorf("rate %s/s, more than the %.0f B/s possible since the start: %q", m[1]+" "+m[2], most, b.String())
		}
	}
}

// TestProxyUpstreamUnresolved: an upstream name that does not resolve is said at start, and
// the proxy runs all the same.
func TestProxyUpstreamUnresolved(t *testing.T) {
	var out, errb peer.Buffer
	o := &proxyOptions{io: &streams{Out: &out, Err: &errb}, listen: "127.0.0.1:0", upstream: "no-such-broker.invalid:1883",
		format: "text", payload: "preview", maxFrame: 1 << 20, bufferSize: 4096, shutdownTimeout: 5 * time.Second}
	_, stop := startProxyCmd(t, o)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errb.String(), "warning: --upstream host no-such-broker.invalid does not resolve now") ||
		!strings.Contains(errb.String(), "proxying 127.0.0.1:") {
		t.Errorf("stderr %q", errb.String())
	}
	errb = peer.Buffer{}
	o.upstream = "localhost:1883"
	_, stop = startProxyCmd(t, o)
	stop()
	if strings.Contains(errb.String(), "resolve") {
		t.Errorf("localhost: stderr %q", errb.String())
	}
}

// looseFile writes a file others can read, as a file left by another tool would be.
func looseFile(t *testing.T, name, content string) string {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return name
}

func wantMode(t *testing.T, name string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s: mode %04o, want %04o", name, fi.Mode().Perm(), want)
	}
}

// TestPrivateFiles: files that hold passwords or keys are 0600, also when they existed with a
// looser mode (the user is told); a directory for the CA's key is 0700 or refused.
func TestPrivateFiles(t *testing.T) {
	dir := t.TempDir()
	t.Run("read --write", func(t *testing.T) {
		fresh := filepath.Join(dir, "fresh.pcapng")
		if code, _, errOut := runCmd(t, "", "read", "--summary", "--write", fresh, sessionCapture); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		wantMode(t, fresh, 0o600)
		old := looseFile(t, filepath.Join(dir, "old.pcapng"), "")
		code, _, errOut := runCmd(t, "", "read", "--summary", "--write", old, sessionCapture)
		if code != 0 || !strings.Contains(errOut, old+" was open to others (mode 0644); it will hold secrets, so it is now 0600") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
		wantMode(t, old, 0o600)
	})
	t.Run("capture --write", func(t *testing.T) {
		// The output is opened before the interface: a missing one still shows the mode fixed.
		old := looseFile(t, filepath.Join(dir, "live.pcapng"), "")
		var errb bytes.Buffer
		o := &captureOptions{io: &streams{Out: &bytes.Buffer{}, Err: &errb}, iface: "no-such-if0",
			out: outputOptions{format: "jsonl", payload: "preview", write: old}}
		runCapture(context.Background(), o)
		wantMode(t, old, 0o600)
		if !strings.Contains(errb.String(), "it is now 0600") {
			t.Errorf("stderr %q", errb.String())
		}
	})
	t.Run("proxy --record and --keylog", func(t *testing.T) {
		rec := looseFile(t, filepath.Join(dir, "rec.pcapng"), "")
		keys := looseFile(t, filepath.Join(dir, "keys.txt"), "CLIENT_RANDOM earlier session\n")
		var out, errb peer.Buffer
		o := &proxyOptions{io: &streams{Out: &out, Err: &errb}, listen: "127.0.0.1:0", upstream: "tls://127.0.0.1:1", insecure: true,
			record: rec, keylog: keys, format: "text", payload: "preview", maxFrame: 1 << 20, bufferSize: 4096, shutdownTimeout: 5 * time.Second}
		_, stop := startProxyCmd(t, o)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		wantMode(t, rec, 0o600)
		wantMode(t, keys, 0o600)
		if b, _ := os.ReadFile(keys); !strings.HasPrefix(string(b), "CLIENT_RANDOM earlier session\n") {
			t.Errorf("the key log was not appended to: %q", b)
		}
		for _, w := range []string{rec + " was open to others", keys + " was open to others",
			"warning: --insecure: the broker's certificate is not verified", "warning: --keylog: the TLS secrets of every connection go to " + keys} {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("stderr lacks %q:\n%s", w, errb.String())
			}
		}
	})
	t.Run("ca init --dir", func(t *testing.T) {
		ca := filepath.Join(dir, "ca")
		os.Mkdir(ca, 0o755)
		os.Chmod(ca, 0o755)
		var out, errb bytes.Buffer
		if err := runCAInit(&caInitOptions{io: &streams{Out: &out, Err: &errb}, dir: ca}); err != nil {
			t.Fatal(err)
		}
		wantMode(t, ca, 0o700)
		wantMode(t, filepath.Join(ca, proxy.CAKeyFile), 0o600)
		if !strings.Contains(errb.String(), "was open to others (mode 0755); it holds the CA's key, so it is now 0700") {
			t.Errorf("stderr %q", errb.String())
		}
		// A shared directory holding other files is not changed: refused.
		shared := filepath.Join(dir, "shared")
		os.Mkdir(shared, 0o755)
		os.Chmod(shared, 0o755)
		os.WriteFile(filepath.Join(shared, "notes.txt"), nil, 0o644)
		code, _, errOut := runCmd(t, "", "ca", "init", "--dir", shared)
		if code != exitError || !strings.Contains(errOut, "holds other files (notes.txt)") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
		wantMode(t, shared, 0o755)
		if _, err := os.Stat(filepath.Join(shared, proxy.CAKeyFile)); err == nil {
			t.Error("a key was written into the shared directory")
		}
	})
}

// TestPlurals: the lines that count things say "1 error", "2 errors", in text, summaries and
// the end lines on standard error.
func TestPlurals(t *testing.T) {
	wrong := regexp.MustCompile(`\b1 (errors|warnings|packets|records|lines|problems)\b|\b([02-9]|\d\d+) (error|warning|packet|problem)\b[^s]`)
	seen := map[string]bool{}
	for _, args := range [][]string{
		{"read", limitsCapture}, {"read", "--summary", limitsCapture}, {"read", "--fail-on", "warning", "--summary", limitsCapture},
		{"read", "--summary", "--filter", "conn == 8", "--fail-on", "warning", limitsCapture},
		{"decode", "60 02 00 01"}, {"decode", "60 02 00 01 60 02 00 01"},
	} {
		_, out, errOut := runCmd(t, "", args...)
		if m := wrong.FindString(out + errOut); m != "" {
			t.Errorf("%v: %q", args, m)
		}
		for _, s := range regexp.MustCompile(`\b1 (error|warning|packet|problem)\b`).FindAllString(out+errOut, -1) {
			seen[s] = true
		}
	}
	for _, s := range []string{"1 error", "1 warning", "1 packet", "1 problem"} {
		if !seen[s] {
			t.Errorf("no %q in any output: the test does not reach that count", s)
		}
	}
}

// TestReadmePerformance: the README's Performance section is commands that exist and a short
// table of the latest figures; the history of runs is in docs/performance.md.
func TestReadmePerformance(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\n## Performance\n(.*?)\n## `).FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no Performance section")
	}
	sec := string(m[1])
	if n := strings.Count(sec, "\n"); n > 50 {
		t.Errorf("the Performance section has %d lines; the history of runs belongs in docs/performance.md", n)
	}
	cmds := regexp.MustCompile("(?m)^(?:bash|go run|go test) [^#\n]*").FindAllString(sec, -1)
	if len(cmds) < 2 {
		t.Errorf("commands to reproduce the figures: %q", cmds)
	}
	for _, c := range cmds {
		for _, f := range strings.Fields(c) {
			if strings.HasPrefix(f, "./") || strings.HasSuffix(f, ".sh") {
				if _, err := os.Stat(filepath.Join("../..", f)); err != nil {
					t.Errorf("%q: %v", c, err)
				}
			}
		}
	}
	if !strings.Contains(sec, "(docs/performance.md)") {
		t.Error("no link to docs/performance.md")
	}
	doc, err := os.ReadFile("../../docs/performance.md")
	if err != nil || !strings.Contains(string(doc), "bash capture/bench.sh") {
		t.Errorf("docs/performance.md: %v", err)
	}
}

// TestStderrLogConcurrent: lines logged from many goroutines at once (the embedded broker's
// connections) come out whole, one per call, into a writer not safe for concurrent use (the
// race detector watches it).
func TestStderrLogConcurrent(t *testing.T) {
	var b bytes.Buffer
	logf := stderrLog(&b)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				logf("goroutine %d line %d", g, i)
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "mqscope: goroutine ") {
			t.Fatalf("line %q", l)
		}
	}
}
