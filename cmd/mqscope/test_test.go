package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqscope/mqscope/internal/peer"
)

// scenarioFile writes a scenario file into dir.
func scenarioFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	passing = `
scenarios:
  - name: connack comes
    device: {client: {steps: [{connect: {client_id: a}}, {disconnect: {}}]}}
    expect:
      - packet: {from: server, type: CONNACK, reason: 0, within: 5s}
`
	failing = `
name: limits
scenarios:
  - name: too big
    profile: apsaramq
    faults: ["connack max_packet_size=100"]
    device:
      client:
        steps:
          - connect: {client_id: dev-big}
          - publish: {topic: t, size: 300}
          - disconnect: {}
    expect:
      - no_finding: {rule: MQTT-3.2.2-15, by: client}
  - name: skipped
    requires: {mqtt: 4}
    device: {client: {steps: [{connect: {client_id: a}}]}}
    expect: [{closed: {}}]
`
)

// mqscope test exits 0 when all passed (skips included), 1 when an expectation failed, 2 when
// a scenario could not run or the file is wrong.
func TestTestExitStatus(t *testing.T) {
	dir := t.TempDir()
	busy := peer.FreeAddr(t)
	l, err := net.Listen("tcp", busy)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkExits(t, []exitCase{
		{"all pass", []string{"test", scenarioFile(t, dir, "pass.yaml", passing)}, exitOK, ""},
		{"a failure", []string{"test", scenarioFile(t, dir, "fail.yaml", failing)}, exitError, "scenarios: 1 failed"},
		{"a harness error", []string{"test", scenarioFile(t, dir, "err.yaml", `
scenarios:
  - name: cannot listen
    listen: "`+busy+`"
    device: {client: {steps: [{connect: {client_id: a}}]}}
    expect: [{closed: {}}]
`)}, exitUsage, "scenarios: 1 could not run"},
		{"a bad file", []string{"test", scenarioFile(t, dir, "bad.yaml", "scenarios:\n  - nmae: x\n")}, exitUsage, `unknown field "nmae"`},
		{"no such file", []string{"test", filepath.Join(dir, "none.yaml")}, exitUsage, "none.yaml"},
		{"bad format", []string{"test", "--format", "xml", filepath.Join(dir, "pass.yaml")}, exitUsage, "want text or jsonl"},
	})
}

// The JUnit report is valid against the schema CI systems read (xmllint --schema, libxml2's
// validator), and a second parser (Python's xml.etree) reads the counts, the failure's
// expected and seen, the skip's reason, the properties, and the attachment, whose pcapng is
// beside the report.
func TestTestJUnit(t *testing.T) {
	xmllint := peer.Require(t, "xmllint")
	python := peer.Require(t, "python3")
	dir := t.TempDir()
	junit := filepath.Join(dir, "report", "junit.xml")
	code, out, errOut := runCmd(t, "", "test", "--junit", junit, scenarioFile(t, dir, "pass.yaml", passing), scenarioFile(t, dir, "fail.yaml", failing))
	if code != exitError {
		t.Fatalf("exit %d, want 1:\n%s\n%s", code, out, errOut)
	}
	for _, w := range []string{
		"PASS  connack comes › CONNACK with reason 0x00 from server: CONNACK 0x00 Success from server",
		"FAIL  too big › no finding MQTT-3.2.2-15 on what the client sent: expected no finding MQTT-3.2.2-15 on what the client sent; seen: error MQTT-3.2.2-15: PUBLISH of 300 bytes is over the 100-byte Maximum Packet Size",
		"SKIP  skipped (",
		"1 passed, 1 failed, 0 errors, 1 skipped",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	v, err := exec.Command(xmllint, "--noout", "--schema", "../../proxy/scenario/testdata/junit.xsd", junit).CombinedOutput()
	if err != nil {
		t.Fatalf("xmllint: %v\n%s", err, v)
	}
	py := `
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = {}
for s in root.iter("testsuite"):
    for c in s.iter("testcase"):
        f = c.find("failure")
        k = c.find("skipped")
        cases[c.get("name")] = {
            "suite": s.get("name"),
            "failure": None if f is None else f.text,
            "skipped": None if k is None else k.get("message"),
            "props": {p.get("name"): p.get("value") for p in c.iter("property")},
            "out": c.find("system-out").text if c.find("system-out") is not None else "",
        }
total = lambda k: str(sum(int(s.get(k)) for s in root.iter("testsuite")))
print(json.dumps({"tests": total("tests"), "failures": total("failures"), "skipped": total("skipped"), "cases": cases}))
`
	pout, err := exec.Command(python, "-c", py, junit).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var got struct {
		Tests, Failures, Skipped string
		Cases                    map[string]struct {
			Suite, Failure, Skipped, Out string
			Props                        map[string]string
		}
	}
	if err := json.Unmarshal(pout, &got); err != nil {
		t.Fatalf("%v: %s", err, pout)
	}
	if got.Tests != "3" || got.Failures != "1" || got.Skipped != "1" {
		t.Errorf("tests %s failures %s skipped %s, want 3, 1, 1", got.Tests, got.Failures, got.Skipped)
	}
	big := got.Cases["too big"]
	if big.Suite != "limits" || !strings.Contains(big.Failure, "expected: no finding MQTT-3.2.2-15") || !strings.Contains(big.Failure, "seen:     error MQTT-3.2.2-15") {
		t.Errorf("failure of too big: suite %q, %q", big.Suite, big.Failure)
	}
	for k, want := range map[string]string{"client_id": "dev-big", "seed": "1", "negotiated.c2s.maximum_packet_size": "100", "negotiated.c2s.topic_alias_maximum": "30"} {
		if big.Props[k] != want {
			t.Errorf("property %s = %q, want %q", k, big.Props[k], want)
		}
	}
	if !strings.Contains(big.Out, "→ PUBLISH") || !strings.Contains(big.Out, "[[ATTACHMENT|limits-too-big.pcapng]]") {
		t.Errorf("system-out lacks the timeline or the attachment:\n%s", big.Out)
	}
	if st, err := os.Stat(filepath.Join(dir, "report", "limits-too-big.pcapng")); err != nil || st.Size() == 0 {
		t.Errorf("the attached capture: %v", err)
	}
	if got.Cases["skipped"].Skipped != "requires MQTT 3.1.1; the client speaks 5" {
		t.Errorf("skipped: %q", got.Cases["skipped"].Skipped)
	}
}

// --format jsonl: a line per expectation as decided, then per scenario.
func TestTestJSONL(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCmd(t, "", "test", "--format", "jsonl", scenarioFile(t, dir, "fail.yaml", failing))
	if code != exitError {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errOut)
	}
	var kinds []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		kinds = append(kinds, m["kind"].(string)+":"+m["status"].(string))
	}
	if strings.Join(kinds, " ") != "expectation:fail scenario:fail scenario:skip" {
		t.Errorf("lines %v", kinds)
	}
}

// TestTestReplayCapture: a captured device session as a scenario's device. The pack in
// testdata/scenarios/replay passes: the embedded broker, playing the capture's broker limits,
// refuses connection 9's 278-byte PUBLISH again. The same replay against the embedded broker
// without those limits fails on the DISCONNECT 0x95 expected; a session that is not in the
// capture is a harness error.
func TestTestReplayCapture(t *testing.T) {
	capture, err := filepath.Abs(limitsCapture)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	noLimits := scenarioFile(t, dir, "nolimits.yaml", `
scenarios:
  - name: no limit to break
    device: {replay: {capture: "`+capture+`", conn: 9}}
    expect:
      - disconnect: {from: server, reason: 0x95, within: 2s}
`)
	missing := scenarioFile(t, dir, "missing.yaml", `
scenarios:
  - name: no such connection
    device: {replay: {capture: "`+capture+`", conn: 999}}
    expect: [{closed: {}}]
`)
	checkExits(t, []exitCase{
		{"the pack", []string{"test", filepath.Join("..", "..", "testdata", "scenarios", "replay", "limits-capture.yaml")}, exitOK, ""},
		{"no limits", []string{"test", noLimits}, exitError, "scenarios: 1 failed"},
	})
	for _, c := range []struct {
		file string
		exit int
		says []string
	}{
		{noLimits, exitError, []string{"FAIL", "0x95"}},
		{missing, exitUsage, []string{"ERROR", "no session with a CONNECT matches (conn 999"}},
	} {
		var out, errb bytes.Buffer
		code := run([]string{"test", c.file}, nil, &out, &errb)
		for _, w := range c.says {
			if code != c.exit || !strings.Contains(out.String(), w) {
				t.Errorf("%s: exit %d (want %d), output without %q:\n%s%s", filepath.Base(c.file), code, c.exit, w, out.String(), errb.String())
			}
		}
	}
}
