// Package devtest gives integration tests the dev environment (dev/env.sh up): the real engine,
// registries, moto_server and dockerd. They skip only under -short; otherwise a missing
// environment fails them, naming what is missing and how to start it.
package devtest

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
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

// UVLock writes dir/uv.lock for dir/pyproject.toml with the uv the pipeline
// pins (ci.UVVersion), run in the engine's base image: the uv fixtures keep
// no lock file (it would name the package index) and get one per test.
func UVLock(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	c, err := dagger.Connect(ctx)
	if err != nil {
		t.Fatalf("connect to the engine: %v", err)
	}
	defer c.Close()
	lock := c.Container().From("python:3.13-slim").
		WithExec([]string{"python3", "-m", "venv", "/uv"}).
		WithExec([]string{"/uv/bin/pip", "install", "-q", "uv==" + ci.UVVersion}).
		WithEnvVariable("UV_SYSTEM_CERTS", "1").
		WithEnvVariable("UV_PYTHON_DOWNLOADS", "never").
		WithDirectory("/p", c.Host().Directory(dir, dagger.HostDirectoryOpts{Include: []string{"pyproject.toml"}})).
		WithWorkdir("/p").
		WithExec([]string{"/uv/bin/uv", "lock"}).
		File("uv.lock")
	if _, err := lock.Export(ctx, filepath.Join(dir, "uv.lock")); err != nil {
		t.Fatalf("uv lock: %v", err)
	}
}

// StageEnv names a stage of `dev/env.sh stage NAME`: set, the tests that exercise the base
// images use the ones staged under 127.0.0.1:5000/stage/NAME/ (a base image change tried while
// others use the mirror's real names); unset, the names a user writes.
const StageEnv = "WEBAPP_DEV_STAGE"

// MirrorRef is ref ("python:3.13-slim", "public.ecr.aws/docker/library/python:3.11-slim",
// "docker/dockerfile:1") as the tests pull it: itself, or its staged copy (StageEnv).
func MirrorRef(ref string) string {
	stage := os.Getenv(StageEnv)
	if stage == "" {
		return ref
	}
	path := ref
	if p, ok := strings.CutPrefix(ref, "public.ecr.aws/"); ok {
		path = p
	} else if p, ok := strings.CutPrefix(ref, "docker.io/"); ok {
		path = p
	}
	if !strings.Contains(path, "/") {
		path = "library/" + path
	}
	return "127.0.0.1:5000/stage/" + stage + "/" + path
}

// PythonTags are the python image tags the dev mirror holds (dev/versions.env PYTHON_IMAGES:
// "3.13-slim", "3.11-slim") with the Debian suite of each.
func PythonTags(t testing.TB) map[string]string {
	t.Helper()
	tags := map[string]string{}
	for _, kv := range strings.Fields(versionsEnv(t, "PYTHON_IMAGES")) {
		tag, suite, _ := strings.Cut(kv, "=")
		tags[tag] = suite
	}
	if len(tags) == 0 {
		t.Fatal("dev/versions.env has no PYTHON_IMAGES")
	}
	return tags
}

// PythonPlatforms are the platforms each of those images holds ("linux/amd64", "linux/arm64":
// dev/versions.env PYTHON_ARCHES, linux/ARCH each).
func PythonPlatforms(t testing.TB) []string {
	t.Helper()
	var platforms []string
	for _, arch := range strings.Fields(versionsEnv(t, "PYTHON_ARCHES")) {
		platforms = append(platforms, "linux/"+arch)
	}
	if len(platforms) == 0 {
		t.Fatal("dev/versions.env has no PYTHON_ARCHES")
	}
	return platforms
}

// versionsEnv is dev/versions.env's value of key (quotes removed).
func versionsEnv(t testing.TB, key string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "dev", "versions.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
