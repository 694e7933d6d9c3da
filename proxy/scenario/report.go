package scenario

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// Line is a verdict as one line of text: "PASS  scenario › expectation: what decided it".
func Line(v Verdict) string {
	return fmt.Sprintf("%-5s %s › %s", strings.ToUpper(v.Status.String()), v.Scenario, v)
}

// ScenarioLine is a scenario's end as one line of text.
func ScenarioLine(r *Result) string {
	s := fmt.Sprintf("%-5s %s (%s)", strings.ToUpper(r.Status.String()), r.Scenario.Name, r.Duration.Round(time.Millisecond))
	switch r.Status {
	case Skipped:
		s += ": " + r.Skip
	case Errored:
		s += ": " + r.Err.Error()
	}
	return s
}

// jsonVerdict is a verdict in JSON lines.
type jsonVerdict struct {
	Kind     string  `json:"kind"`
	File     string  `json:"file"`
	Scenario string  `json:"scenario"`
	Name     string  `json:"expectation"`
	Pos      string  `json:"pos,omitempty"`
	Status   string  `json:"status"`
	Expected string  `json:"expected"`
	Seen     string  `json:"seen"`
	At       float64 `json:"at_s"`
}

// JSONVerdict is a verdict as a JSON line (kind "expectation").
func JSONVerdict(file string, v Verdict) []byte {
	b, _ := json.Marshal(jsonVerdict{Kind: "expectation", File: file, Scenario: v.Scenario, Name: v.Name, Pos: v.Pos,
		Status: v.Status.String(), Expected: v.Expected, Seen: v.Seen, At: v.At.Seconds()})
	return append(b, '\n')
}

// JSONResult is a scenario's end as a JSON line (kind "scenario").
func JSONResult(r *Result) []byte {
	m := map[string]any{"kind": "scenario", "file": r.File.Path, "scenario": r.Scenario.Name, "status": r.Status.String(),
		"seed": r.Seed, "duration_s": r.Duration.Seconds()}
	if r.ClientID != "" {
		m["client_id"] = r.ClientID
	}
	if r.Skip != "" {
		m["skipped"] = r.Skip
	}
	if r.Err != nil {
		m["error"] = r.Err.Error()
	}
	if r.Capture != "" {
		m["capture"] = r.Capture
	}
	b, _ := json.Marshal(m)
	return append(b, '\n')
}

// The JUnit XML format as CI systems read it (Jenkins, GitLab, GitHub actions): testsuites of
// testcases, each with at most one failure, error or skipped, properties, and system-out. The
// schema is testdata/junit.xsd.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	File      string      `xml:"file,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name       string          `xml:"name,attr"`
	Classname  string          `xml:"classname,attr"`
	Time       string          `xml:"time,attr"`
	File       string          `xml:"file,attr,omitempty"`
	Line       string          `xml:"line,attr,omitempty"`
	Properties *junitProps     `xml:"properties,omitempty"`
	Skipped    *junitMessage   `xml:"skipped,omitempty"`
	Error      *junitMessage   `xml:"error,omitempty"`
	Failure    []*junitMessage `xml:"failure,omitempty"`
	SystemOut  *junitText      `xml:"system-out,omitempty"`
	SystemErr  *junitText      `xml:"system-err,omitempty"`
}

// junitText is text kept readable in the XML (a CDATA section).
type junitText struct {
	Text string `xml:",cdata"`
}

type junitProps struct {
	Props []junitProp `xml:"property"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes results as JUnit XML: a testsuite per file, a testcase per scenario.
// Capture paths are written relative to dir (where the XML goes), as CI attachments expect.
func WriteJUnit(w io.Writer, results []*Result, dir string) error {
	all := junitSuites{Name: "mqscope test"}
	var total time.Duration
	var suiteTime []time.Duration
	bySuite := map[*File]int{}
	for _, r := range results {
		i, ok := bySuite[r.File]
		if !ok {
			i = len(all.Suites)
			bySuite[r.File] = i
			suiteTime = append(suiteTime, 0)
			all.Suites = append(all.Suites, junitSuite{Name: r.File.Name, File: r.File.Path, Timestamp: r.Start.UTC().Format("2006-01-02T15:04:05")})
		}
		s := &all.Suites[i]
		c := junitCase{Name: r.Scenario.Name, Classname: r.File.Name, Time: seconds(r.Duration), File: r.File.Path}
		if line, _, ok := strings.Cut(r.Scenario.pos, ":"); ok {
			c.Line = line
		}
		props := []junitProp{{"seed", fmt.Sprint(r.Seed)}}
		if r.ClientID != "" {
			props = append(props, junitProp{"client_id", r.ClientID})
		}
		for _, l := range r.Limits {
			props = append(props, junitProp{"negotiated." + l[0], l[1]})
		}
		c.Properties = &junitProps{Props: props}
		s.Tests++
		switch r.Status {
		case Skipped:
			s.Skipped++
			c.Skipped = &junitMessage{Message: xmlSafe(r.Skip)}
		case Errored:
			s.Errors++
			c.Error = &junitMessage{Message: xmlSafe(r.Err.Error()), Type: "harness"}
		case Failed:
			s.Failures++
			var msgs, texts []string
			for _, v := range r.Verdicts {
				if v.Status == Failed {
					msgs = append(msgs, v.Name)
					texts = append(texts, fmt.Sprintf("%s (line %s)\n  expected: %s\n  seen:     %s", v.Name, v.Pos, v.Expected, v.Seen))
				}
			}
			c.Failure = []*junitMessage{{Message: xmlSafe("expected " + strings.Join(msgs, "; ")), Type: "expectation", Text: xmlSafe(strings.Join(texts, "\n"))}}
		}
		var out strings.Builder
		for _, v := range r.Verdicts {
			fmt.Fprintf(&out, "%s\n", Line(v))
		}
		if r.Timeline != "" {
			fmt.Fprintf(&out, "\ntimeline:\n%s", r.Timeline)
		}
		if r.Capture != "" {
			rel, err := filepath.Rel(dir, r.Capture)
			if err != nil {
				rel = r.Capture
			}
			fmt.Fprintf(&out, "\n[[ATTACHMENT|%s]]\n", rel)
		}
		c.SystemOut = &junitText{xmlSafe(out.String())}
		if r.Device != "" {
			c.SystemErr = &junitText{xmlSafe(r.Device)}
		}
		s.Cases = append(s.Cases, c)
		suiteTime[i] += r.Duration
		s.Time = seconds(suiteTime[i])
		total += r.Duration
	}
	for _, s := range all.Suites {
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
		all.Skipped += s.Skipped
	}
	all.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// xmlSafe replaces what XML 1.0 cannot hold (control characters other than tab and newline,
// which a device's output may have) with U+FFFD.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r != 0xFFFE && r != 0xFFFF) {
			return r
		}
		return '\uFFFD'
	}, s)
}
