package junit

import (
	"bytes"
	"encoding/xml"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mqscope/mqscope/internal/peer"
)

func sample() *Suites {
	s := &Suite{Name: "probe 127.0.0.1:1883", Properties: []Property{{"broker", "127.0.0.1:1883"}}}
	s.Add(&Case{Name: "Maximum Packet Size", Classname: "probe", Time: Duration(1500 * time.Millisecond)})
	s.Add(&Case{Name: "Topic Alias Maximum", Classname: "probe", Failure: &Result{Message: "not enforced", Type: "no", Text: "sent <alias 3> & got nothing"}})
	s.Add(&Case{Name: "Receive Maximum", Classname: "probe", Skipped: &Result{Message: "QoS 2 not granted"}})
	s.Add(&Case{Name: "Keep Alive", Classname: "probe", Error: &Result{Message: "connection refused"}, SystemOut: "line 1\nline 2"})
	return &Suites{Name: "mqscope", Suites: []*Suite{s}}
}

func TestCounts(t *testing.T) {
	s := sample().Suites[0]
	if s.Tests != 4 || s.Failures != 1 || s.Skipped != 1 || s.Errors != 1 || time.Duration(s.Time) != 1500*time.Millisecond {
		t.Errorf("counts %+v", s)
	}
}

// TestRoundTrip: what Write writes reads back, special characters included.
func TestRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := sample().Write(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), `<?xml version="1.0" encoding="UTF-8"?>`) {
		t.Errorf("no XML header:\n%s", b.String())
	}
	var back Suites
	if err := xml.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	c := back.Suites[0].Cases[1]
	if c.Failure == nil || c.Failure.Text != "sent <alias 3> & got nothing" || back.Suites[0].Cases[3].SystemOut != "line 1\nline 2" {
		t.Errorf("read back %+v", back.Suites[0])
	}
	if !strings.Contains(b.String(), `time="1.500"`) || !strings.Contains(b.String(), `<property name="broker" value="127.0.0.1:1883"></property>`) {
		t.Errorf("attributes:\n%s", b.String())
	}
}

// TestPython: a second parser (Python's ElementTree) reads the counts and the failure.
func TestPython(t *testing.T) {
	py := peer.Require(t, "python3")
	var b bytes.Buffer
	if err := sample().Write(&b); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", `import sys, xml.etree.ElementTree as ET
r = ET.fromstring(sys.stdin.buffer.read())
s = r.find("testsuite")
print(s.get("tests"), s.get("failures"), s.get("errors"), s.get("skipped"), len(s.findall("testcase")))
print(s.findall("testcase")[1].find("failure").text)`)
	cmd.Stdin = &b
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if got := string(out); got != "4 1 1 1 4\nsent <alias 3> & got nothing\n" {
		t.Errorf("python read %q", got)
	}
}

// TestControlCharacters: what XML 1.0 cannot hold (a device's colour codes, a NUL, bytes that are
// not UTF-8) in any field is written as U+FFFD, so the document still parses; tab, newline and
// carriage return are kept.
func TestControlCharacters(t *testing.T) {
	bad := "a\x00b\x1b[31mc\xffd\uFFFEe\tf\r\ng"
	want := "a\uFFFDb\uFFFD[31mc\uFFFDd\uFFFDe\tf\r\ng"
	s := &Suite{Name: bad, Properties: []Property{{bad, bad}}}
	s.Add(&Case{Name: bad, Classname: bad, Properties: []Property{{"client_id", bad}},
		Failure: &Result{Message: bad, Type: bad, Text: bad}, SystemOut: bad, SystemErr: bad})
	var b bytes.Buffer
	if err := (&Suites{Name: bad, Suites: []*Suite{s}}).Write(&b); err != nil {
		t.Fatal(err)
	}
	var back Suites
	if err := xml.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("%v:\n%q", err, b.String())
	}
	bs, c := back.Suites[0], back.Suites[0].Cases[0]
	for name, got := range map[string]string{"suites name": back.Name, "suite name": bs.Name, "suite property": bs.Properties[0].Value,
		"case name": c.Name, "classname": c.Classname, "case property": c.Properties[0].Value, "failure message": c.Failure.Message,
		"failure text": c.Failure.Text, "system-out": c.SystemOut, "system-err": c.SystemErr} {
		if got != want {
			t.Errorf("%s read back %q, want %q", name, got, want)
		}
	}
}
