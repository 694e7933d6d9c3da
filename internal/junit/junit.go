// Package junit writes JUnit XML reports, in the form CI systems read (Jenkins, GitLab,
// GitHub's test reporters): testsuites of testcases, each passed, failed (an expectation not
// met), in error (the harness failed) or skipped, with properties and captured output.
package junit

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Suites is the document: one or more suites.
type Suites struct {
	XMLName xml.Name `xml:"testsuites"`
	Name    string   `xml:"name,attr,omitempty"`
	Suites  []*Suite `xml:"testsuite"`
}

// Suite is a group of test cases.
type Suite struct {
	Name       string     `xml:"name,attr"`
	Tests      int        `xml:"tests,attr"`
	Failures   int        `xml:"failures,attr"`
	Errors     int        `xml:"errors,attr"`
	Skipped    int        `xml:"skipped,attr"`
	Time       seconds    `xml:"time,attr"`
	Timestamp  string     `xml:"timestamp,attr,omitempty"`
	Properties []Property `xml:"properties>property,omitempty"`
	Cases      []*Case    `xml:"testcase"`
}

// Property is a name and value attached to a suite or a case.
type Property struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// Case is one test case. At most one of Failure, Error and Skipped is set.
type Case struct {
	Name       string     `xml:"name,attr"`
	Classname  string     `xml:"classname,attr"`
	Time       seconds    `xml:"time,attr"`
	Properties []Property `xml:"properties>property,omitempty"`
	Failure    *Result    `xml:"failure,omitempty"`
	Error      *Result    `xml:"error,omitempty"`
	Skipped    *Result    `xml:"skipped,omitempty"`
	SystemOut  string     `xml:"system-out,omitempty"`
	SystemErr  string     `xml:"system-err,omitempty"`
}

// Result is a failure, an error or a skip: a one-line message and details.
type Result struct {
	Message string `xml:"message,attr,omitempty"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// seconds is a duration written as decimal seconds.
type seconds time.Duration

func (s seconds) MarshalXMLAttr(name xml.Name) (xml.Attr, error) {
	return xml.Attr{Name: name, Value: fmt.Sprintf("%.3f", time.Duration(s).Seconds())}, nil
}

func (s *seconds) UnmarshalXMLAttr(a xml.Attr) error {
	f, err := strconv.ParseFloat(a.Value, 64)
	if err != nil {
		return fmt.Errorf("junit: time %q: %w", a.Value, err)
	}
	*s = seconds(f * float64(time.Second))
	return nil
}

// Duration sets a case's or suite's time.
func Duration(d time.Duration) seconds { return seconds(d) }

// Add appends a case to the suite and counts it.
func (s *Suite) Add(c *Case) {
	s.Cases = append(s.Cases, c)
	s.Tests++
	switch {
	case c.Failure != nil:
		s.Failures++
	case c.Error != nil:
		s.Errors++
	case c.Skipped != nil:
		s.Skipped++
	}
	s.Time += c.Time
}

// Write writes the document, with its XML header.
func (d *Suites) Write(w io.Writer) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(d); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}
