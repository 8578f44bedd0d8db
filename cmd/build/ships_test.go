package main

import (
	"os/exec"
	"strings"
	"testing"
)

// What CodeBuild runs is this command and what it imports; the local stand-ins, dev tools and
// test helpers live under dev/ and must never be part of it.
func TestShipsNothingFromDev(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/acme/webapp-pipeline/"
	var ours []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, module) {
			ours = append(ours, strings.TrimPrefix(p, module))
		}
	}
	if len(ours) == 0 {
		t.Fatal("go list -deps found none of the module's packages")
	}
	for _, p := range ours {
		if strings.HasPrefix(p, "dev/") || strings.HasPrefix(p, "test/") || strings.HasPrefix(p, "bench") {
			t.Errorf("cmd/build imports %s: what ships must not import dev tools, tests or the bench", p)
		}
	}
	t.Logf("cmd/build ships: %s", strings.Join(ours, " "))
}
