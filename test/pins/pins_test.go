// Package pins_test checks that the Dagger version is the same everywhere it is written down:
// the Go SDK in go.mod, the dev engine (dev/versions.env), the CLI CodeBuild installs
// (buildspec.yml) and the engine image the CodeBuild project runs (infra/template.yml). The SDK
// misbehaves with a CLI or engine of another version, and a bump that misses one place would
// only show in CodeBuild.
package pins_test

import (
	"os"
	"regexp"
	"testing"
)

func find(t *testing.T, path, pattern string) []string {
	t.Helper()
	b, err := os.ReadFile("../../" + path)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, m := range regexp.MustCompile(pattern).FindAllStringSubmatch(string(b), -1) {
		found = append(found, m[1])
	}
	if len(found) == 0 {
		t.Fatalf("%s: no match for %s", path, pattern)
	}
	return found
}

func TestDaggerVersionIsPinnedTheSameEverywhere(t *testing.T) {
	want := find(t, "go.mod", `(?m)^\s*dagger\.io/dagger v(\S+)`)[0]
	places := map[string][]string{
		"dev/versions.env":   find(t, "dev/versions.env", `(?m)^DAGGER_VERSION=v(\S+)`),
		"buildspec.yml":      find(t, "buildspec.yml", `DAGGER_CLI_VERSION:\s*"?([0-9.]+)"?`),
		"infra/template.yml": find(t, "infra/template.yml", `registry\.dagger\.io/engine:v([0-9.]+)`),
	}
	for path, versions := range places {
		for _, v := range versions {
			if v != want {
				t.Errorf("%s pins Dagger %s, go.mod's SDK is %s: keep them equal", path, v, want)
			}
		}
	}
}
