// Package devtest gives integration tests the dev environment (dev/env.sh up): the real engine,
// registries, moto_server and dockerd. They skip only under -short; otherwise a missing
// environment fails them, naming what is missing and how to start it.
package devtest

import (
	"bufio"
	"os"
	"strings"
	"sync"
	"testing"
)

// EnvFile is what `dev/env.sh up` writes.
const EnvFile = "/run/webapp-dev/env"

var loadOnce sync.Once

// Require skips under -short. Otherwise, when the engine variables are not set yet (go test run
// by hand, not through `make test`), it loads EnvFile into the process environment, then fails
// the test if any of the engine's or vars' variables is still unset.
func Require(t testing.TB, vars ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the dev environment (skipped with -short)")
	}
	loadOnce.Do(load)
	var missing []string
	for _, k := range append([]string{"_EXPERIMENTAL_DAGGER_RUNNER_HOST"}, vars...) {
		if os.Getenv(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the dev environment is not up (missing %s): run `sudo dev/env.sh up` or `make test`; `go test -short` runs the unit tests only",
			strings.Join(missing, ", "))
	}
}

// load reads the `export K=V ...` lines of EnvFile (its values hold no spaces).
func load() {
	if os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST") != "" {
		return
	}
	f, err := os.Open(EnvFile)
	if err != nil {
		return // Require names what is missing
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(line) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				os.Setenv(k, os.ExpandEnv(v))
			}
		}
	}
}
