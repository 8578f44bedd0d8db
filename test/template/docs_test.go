package template

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

var backticked = regexp.MustCompile("`([^`]*)`")

// TestDocsMatchTheTemplate: docs/deploy.md's parameter table names every parameter with the
// template's default, and its list of outputs is the template's (issue 18: they had drifted).
func TestDocsMatchTheTemplate(t *testing.T) {
	doc, err := os.ReadFile("../../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := Load(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 6 || !strings.HasPrefix(strings.TrimSpace(cells[2]), "`") {
			continue // not a row of the parameter table
		}
		var names, defaults []string
		for _, m := range backticked.FindAllStringSubmatch(cells[2], -1) {
			names = append(names, m[1])
		}
		def := strings.TrimSpace(cells[3])
		switch {
		case def == "(required)":
		case strings.HasPrefix(def, "empty"):
			defaults = []string{""}
		default:
			for _, m := range backticked.FindAllStringSubmatch(def, -1) {
				defaults = append(defaults, m[1])
			}
		}
		for i, name := range names {
			p, ok := tpl.Parameters[name]
			if !ok {
				t.Errorf("docs/deploy.md documents %s, which the template does not have", name)
				continue
			}
			documented[name] = true
			want, has := p["Default"]
			switch {
			case !has && def != "(required)":
				t.Errorf("%s: docs say default %q, the template has none (required)", name, def)
			case has && def == "(required)":
				t.Errorf("%s: docs say required, the template's default is %q", name, fmt.Sprint(want))
			case has:
				got := defaults[0]
				if len(defaults) == len(names) {
					got = defaults[i]
				}
				if got != fmt.Sprint(want) {
					t.Errorf("%s: docs say default %q, the template's is %q", name, got, fmt.Sprint(want))
				}
			}
		}
	}
	for name := range tpl.Parameters {
		if !documented[name] {
			t.Errorf("parameter %s is missing from docs/deploy.md's table", name)
		}
	}
	// The outputs: the paragraph after the describe-stacks command.
	_, rest, _ := strings.Cut(string(doc), "--query 'Stacks[0].Outputs'")
	_, rest, _ = strings.Cut(rest, "```\n")
	para, _, _ := strings.Cut(strings.TrimLeft(rest, "\n"), "\n\n")
	listed := map[string]bool{}
	for _, m := range backticked.FindAllStringSubmatch(para, -1) {
		if !strings.Contains(m[1], "<") {
			listed[m[1]] = true
		}
	}
	for name := range tpl.Outputs {
		if !listed[name] {
			t.Errorf("output %s is missing from docs/deploy.md's list of outputs", name)
		}
		delete(listed, name)
	}
	for name := range listed {
		t.Errorf("docs/deploy.md lists output %s, which the template does not have", name)
	}
}
