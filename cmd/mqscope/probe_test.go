package main

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/internal/junit"
	"github.com/mqscope/mqscope/internal/peer"
)

// quick are the flags that keep a probe of the embedded broker short.
var quick = []string{"--no-search", "--max-keepalive-wait", "1s", "--wait", "300ms"}

func TestProbeExitStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  []string // regular expressions, in stdout
		err  string   // in stderr
	}{
		{"all enforced", append([]string{"probe", "embedded", "--profile", "apsaramq"}, quick...), 0,
			[]string{`Maximum Packet Size +131072 +yes +DISCONNECT 0x95 Packet too large +MQTT-3.2.2-15 +131072`,
				`Topic Alias Maximum +30 +yes +DISCONNECT 0x94`}, ""},
		// mochi grants no Topic Alias Maximum (0) but takes alias 1.
		{"not enforced", append([]string{"probe", "embedded"}, quick...), 1,
			[]string{`Topic Alias Maximum +0 \(default\) +no +accepted`}, "1 limit not enforced as the standard says: Topic Alias Maximum (no)"},
		{"bad format", []string{"probe", "embedded", "--format", "xml"}, 2, nil, `--format "xml"`},
		{"no broker", []string{"probe"}, 2, nil, "accepts 1 arg"},
		{"bad cap", []string{"probe", "embedded", "--max-conns", "0"}, 2, nil, "--max-conns 0"},
		{"bad address", []string{"probe", "foo://x"}, 2, nil, "unknown scheme"},
		{"TLS flags on TCP", []string{"probe", "127.0.0.1:1", "--insecure"}, 2, nil, "need a tls:// or wss:// broker"},
		{"unreachable", []string{"probe", "127.0.0.1:1", "--connect-timeout", "2s"}, 1, nil, "probe 127.0.0.1:1: dial 127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCmd(t, "", tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errs)
			}
			for _, re := range tc.out {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("stdout lacks /%s/:\n%s", re, out)
				}
			}
			if !strings.Contains(errs, tc.err) {
				t.Errorf("stderr lacks %q:\n%s", tc.err, errs)
			}
		})
	}
}

// TestProbeSecrets: the password is sent (the broker needs it) but never shown: not in the dry
// run, the table, the JSON lines, the JUnit report or the errors.
func TestProbeSecrets(t *testing.T) {
	const pw = "hunter2-secret"
	code, out, errs := runCmd(t, "", "probe", "--dry-run", "-u", "dev", "-P", pw, "127.0.0.1:1883")
	if code != 0 || !strings.Contains(out, `user name "dev", password <redacted>`) || strings.Contains(out+errs, pw) {
		t.Errorf("dry run: exit %d\n%s%s", code, out, errs)
	}
	t.Setenv("MQSCOPE_PASSWORD", pw)
	dir := t.TempDir()
	xmlFile := filepath.Join(dir, "probe.xml")
	code, out, errs = runCmd(t, "", append([]string{"probe", "embedded", "-u", "dev", "--format", "jsonl", "--junit", xmlFile}, quick...)...)
	if code != 1 {
		t.Errorf("exit %d, want 1 (mochi takes an alias it did not grant)\n%s", code, errs)
	}
	b, err := os.ReadFile(xmlFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out+errs+string(b), pw) {
		t.Error("the password is in the output")
	}
	// JSON lines: a probe record per row, then the summary.
	var kinds []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var rec struct {
			Kind, Limit, Enforced string
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		kinds = append(kinds, rec.Kind)
		if rec.Limit == "Topic Alias Maximum" && rec.Enforced != "no" {
			t.Errorf("alias row %s", sc.Text())
		}
	}
	if len(kinds) != 10 || kinds[0] != "probe" || kinds[9] != "probe-summary" {
		t.Errorf("record kinds %v", kinds)
	}
	// JUnit: a testcase per row, the unenforced alias a failure.
	var doc junit.Suites
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	s := doc.Suites[0]
	if s.Tests != 9 || s.Failures != 1 || len(s.Cases) != 9 {
		t.Fatalf("suite %d tests, %d failures", s.Tests, s.Failures)
	}
	for _, c := range s.Cases {
		if (c.Failure != nil) != (c.Name == "Topic Alias Maximum") {
			t.Errorf("case %s failure %+v", c.Name, c.Failure)
		}
	}
}

// TestProbeWriteProfile: --write-profile writes a profile mqscope reads, with what was found.
func TestProbeWriteProfile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "found.yaml")
	code, _, errs := runCmd(t, "", append([]string{"probe", "embedded", "--profile", "apsaramq", "--write-profile", name}, quick...)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	p, err := inspect.LoadProfile(name)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "found" || p.MaximumPacketSize != 131072 || p.TopicAliasMaximum != 30 || p.KeepAlive.Max != 480 {
		t.Errorf("profile %+v", p)
	}
}

// TestProbeTLS: mosquitto on TLS with its defaults, verified with --ca and --sni; it answers a
// breach of its Receive Maximum (20) with PUBREC 0x97 instead of DISCONNECT 0x93: exit 1.
func TestProbeTLS(t *testing.T) {
	cert, key, _ := peer.ServerCert(t, "broker.test")
	addr := peer.FreeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	peer.StartMosquitto(t, "listener "+port+" 127.0.0.1", "certfile "+cert, "keyfile "+key)
	peer.WaitUp(t, addr)
	code, out, errs := runCmd(t, "", append([]string{"probe", "tls://" + addr, "--ca", cert, "--sni", "broker.test"}, quick...)...)
	if code != 1 || !regexp.MustCompile(`Receive Maximum +20 +other +PUBREC 0x97 Quota exceeded`).MatchString(out) ||
		!strings.Contains(out, "MQTT 5.0") {
		t.Errorf("exit %d\n%s\n%s", code, out, errs)
	}
}

// TestProbeProfileDiffers: mosquitto granting 30 aliases and QoS 1, against a profile that
// says 31: every limit enforced, and exit 1 for the difference alone.
func TestProbeProfileDiffers(t *testing.T) {
	m := peer.StartMosquitto(t, "max_topic_alias 30", "max_qos 1")
	prof := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(prof, []byte("topic_alias_maximum: 31\nmaximum_qos: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "", append([]string{"probe", m.Addr, "--profile", prof}, quick...)...)
	if code != 1 || !regexp.MustCompile(`Topic Alias Maximum +30 +yes +DISCONNECT 0x94 Topic Alias invalid +MQTT-3.2.2-17 +differs: 31`).MatchString(out) ||
		!regexp.MustCompile(`Maximum QoS +1 +yes +DISCONNECT 0x9B QoS not supported +MQTT-3.2.2-11 +1\n`).MatchString(out) ||
		!strings.Contains(errs, "probe: the broker differs from the profile on Topic Alias Maximum\n") {
		t.Errorf("exit %d\n%s\n%s", code, out, errs)
	}
}

// TestProbe311: MQTT 3.1.1 has no limits in CONNACK: the keep alive and the searches only;
// mosquitto's message_size_limit is found.
func TestProbe311(t *testing.T) {
	m := peer.StartMosquitto(t, "message_size_limit 5000")
	code, out, errs := runCmd(t, "", "probe", m.Addr, "--version", "4", "--wait", "300ms", "--max-keepalive-wait", "1s", "--max-subscriptions", "20")
	if code != 0 || !strings.Contains(out, "(MQTT 3.1.1)") || !regexp.MustCompile(`Largest payload accepted +5000 +found +5001 bytes: not delivered`).MatchString(out) ||
		strings.Contains(out, "Topic Alias Maximum") {
		t.Errorf("exit %d\n%s\n%s", code, out, errs)
	}
}
