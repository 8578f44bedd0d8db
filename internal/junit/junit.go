// Package junit writes and reads the small subset of JUnit XML that CodeBuild
// reports use, and converts flake8's default output into it.
package junit

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"regexp"
	"strings"
)

// Suites is the <testsuites> root.
type Suites struct {
	XMLName xml.Name `xml:"testsuites"`
	Suites  []Suite  `xml:"testsuite"`
}

// Suite is one <testsuite>.
type Suite struct {
	Name     string `xml:"name,attr"`
	Tests    int    `xml:"tests,attr"`
	Failures int    `xml:"failures,attr"`
	Errors   int    `xml:"errors,attr"`
	Skipped  int    `xml:"skipped,attr"`
	Cases    []Case `xml:"testcase"`
}

// Case is one <testcase>.
type Case struct {
	Name      string   `xml:"name,attr"`
	Classname string   `xml:"classname,attr"`
	File      string   `xml:"file,attr,omitempty"`
	Line      int      `xml:"line,attr,omitempty"`
	Failure   *Problem `xml:"failure"`
	Error     *Problem `xml:"error"`
	Skipped   *Problem `xml:"skipped"`
}

// Problem is a <failure>, <error> or <skipped> element.
type Problem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// flake8Line matches flake8's default format: path:line:col: CODE message.
var flake8Line = regexp.MustCompile(`^(.+?):(\d+):(\d+): ([A-Z]+\d+) (.*)$`)

// FromFlake8 converts flake8's default output and exit code into JUnit XML:
// one failing test case per violation, or a single passing case "flake8"
// when there are none. A non-zero exit without parsable lines (a crash, a bad
// config) becomes one failing case carrying the raw output.
func FromFlake8(output string, exitCode int) ([]byte, int) {
	s := Suite{Name: "flake8"}
	var other []string
	sc := bufio.NewScanner(strings.NewReader(output))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		m := flake8Line.FindStringSubmatch(line)
		if m == nil {
			if strings.TrimSpace(line) != "" {
				other = append(other, line)
			}
			continue
		}
		var ln int
		fmt.Sscan(m[2], &ln)
		s.Cases = append(s.Cases, Case{
			Name:      fmt.Sprintf("%s:%s:%s %s", m[1], m[2], m[3], m[4]),
			Classname: "flake8." + m[4],
			File:      m[1],
			Line:      ln,
			Failure:   &Problem{Message: m[4] + " " + m[5], Type: m[4], Text: line},
		})
	}
	switch {
	case len(s.Cases) == 0 && exitCode == 0:
		s.Cases = append(s.Cases, Case{Name: "flake8", Classname: "flake8"})
	case len(s.Cases) == 0:
		s.Cases = append(s.Cases, Case{Name: "flake8", Classname: "flake8", Error: &Problem{
			Message: fmt.Sprintf("flake8 exited with code %d", exitCode), Text: strings.Join(other, "\n"),
		}})
	}
	return Marshal(s), len(s.Cases) - countPassed(s.Cases)
}

func countPassed(cases []Case) int {
	n := 0
	for _, c := range cases {
		if c.Failure == nil && c.Error == nil {
			n++
		}
	}
	return n
}

// Marshal renders one suite as a complete JUnit XML document.
func Marshal(s Suite) []byte {
	s.Tests, s.Failures, s.Errors, s.Skipped = len(s.Cases), 0, 0, 0
	for _, c := range s.Cases {
		switch {
		case c.Failure != nil:
			s.Failures++
		case c.Error != nil:
			s.Errors++
		case c.Skipped != nil:
			s.Skipped++
		}
	}
	out, err := xml.MarshalIndent(Suites{Suites: []Suite{s}}, "", "  ")
	if err != nil { // only possible for types xml cannot encode; ours are plain
		panic(err)
	}
	return append([]byte(xml.Header), append(out, '\n')...)
}

// Failed returns "classname::name" of every failing or erroring test case in
// a JUnit XML document (pytest writes <testsuites> or a bare <testsuite>).
func Failed(doc []byte) ([]string, error) {
	var root Suites
	if err := xml.Unmarshal(doc, &root); err != nil || len(root.Suites) == 0 {
		var one Suite
		if err2 := xml.Unmarshal(doc, &one); err2 != nil {
			return nil, fmt.Errorf("parse junit xml: %w", err2)
		}
		root.Suites = []Suite{one}
	}
	var failed []string
	for _, s := range root.Suites {
		for _, c := range s.Cases {
			if c.Failure != nil || c.Error != nil {
				failed = append(failed, c.Classname+"::"+c.Name)
			}
		}
	}
	return failed, nil
}
