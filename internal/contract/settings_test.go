package contract

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The documentation's table of pipeline.yml keys lists exactly Settings, and each choice's row
// names every value it allows.
func TestDocListsTheSettings(t *testing.T) {
	const doc = "../../docs/bring-your-own-app.md"
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile("`([^`]+)`")
	rows := map[string]string{} // key -> its row
	inTable := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "| key "):
			inTable = true
			continue
		case inTable && !strings.HasPrefix(line, "|"):
			inTable = false
		}
		if !inTable || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			rows[m[1]] = line
		}
	}
	var documented []string
	for k := range rows {
		documented = append(documented, k)
	}
	sort.Strings(documented)
	want := Keys()
	sort.Strings(want)
	if strings.Join(documented, " ") != strings.Join(want, " ") {
		t.Errorf("%s's table documents\n  %s\nbut the contract's settings are\n  %s", doc, strings.Join(documented, " "), strings.Join(want, " "))
	}
	for _, s := range Settings {
		for _, v := range s.Values {
			if row, ok := rows[s.Key]; ok && !strings.Contains(row, "`"+v+"`") {
				t.Errorf("%s: the row of %s does not name the value `%s`", doc, s.Key, v)
			}
		}
	}
}

// Every choice's values are what Resolve accepts, and nothing else.
func TestChoicesAreWhatResolveAccepts(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(dir+"/app", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"requirements.txt", "Dockerfile"} {
		if err := os.WriteFile(dir+"/app/"+f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := App{Dir: "app", Name: "x", Build: BuildNative, Dockerfile: "Dockerfile", Command: []string{"x"}, Port: 1,
		HealthPath: "/", HealthTimeout: 1, BaseImage: "python", Deps: DepsRequirements,
		Requirements: []string{"requirements.txt"}, Lint: []string{"l"}, Test: []string{"t"}}
	for _, v := range ImageBuilds {
		a := base
		a.Build = v
		if _, err := a.Resolve(dir); err != nil {
			t.Errorf("image-build %s: %v", v, err)
		}
	}
	for _, v := range DepsKinds {
		a := base
		a.Deps = v
		if _, err := a.Resolve(dir); err != nil && strings.Contains(err.Error(), "must be") {
			t.Errorf("deps %s refused as a value: %v", v, err)
		}
	}
	a := base
	a.Build = "docker"
	if _, err := a.Resolve(dir); err == nil || !strings.Contains(err.Error(), "must be dockerfile, native or auto") {
		t.Errorf("image-build docker: %v", err)
	}
}
