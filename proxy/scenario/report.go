package scenario

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/mqscope/mqscope/internal/junit"
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

// WriteJUnit writes results as JUnit XML: a testsuite per file, a testcase per scenario (its
// expectations, decoded timeline and capture attachment in system-out, the device's output in
// system-err). Capture paths are written relative to dir (where the XML goes), as CI
// attachments expect.
func WriteJUnit(w io.Writer, results []*Result, dir string) error {
	doc := junit.Suites{Name: "mqscope test"}
	bySuite := map[*File]*junit.Suite{}
	for _, r := range results {
		s, ok := bySuite[r.File]
		if !ok {
			s = &junit.Suite{Name: r.File.Name, Timestamp: r.Start.UTC().Format("2006-01-02T15:04:05")}
			bySuite[r.File] = s
			doc.Suites = append(doc.Suites, s)
		}
		c := &junit.Case{Name: r.Scenario.Name, Classname: r.File.Name, Time: junit.Duration(r.Duration)}
		c.Properties = []junit.Property{{Name: "seed", Value: fmt.Sprint(r.Seed)}}
		if r.ClientID != "" {
			c.Properties = append(c.Properties, junit.Property{Name: "client_id", Value: r.ClientID})
		}
		for _, l := range r.Limits {
			c.Properties = append(c.Properties, junit.Property{Name: "negotiated." + l[0], Value: l[1]})
		}
		switch r.Status {
		case Skipped:
			c.Skipped = &junit.Result{Message: r.Skip}
		case Errored:
			c.Error = &junit.Result{Message: r.Err.Error(), Type: "harness"}
		case Failed:
			var msgs, texts []string
			for _, v := range r.Verdicts {
				if v.Status == Failed {
					msgs = append(msgs, v.Name)
					texts = append(texts, fmt.Sprintf("%s (%s:%s)\n  expected: %s\n  seen:     %s", v.Name, r.File.Path, v.Pos, v.Expected, v.Seen))
				}
			}
			c.Failure = &junit.Result{Message: "expected " + strings.Join(msgs, "; "), Type: "expectation", Text: strings.Join(texts, "\n")}
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
		c.SystemOut = out.String()
		c.SystemErr = r.Device
		s.Add(c)
	}
	return doc.Write(w)
}
