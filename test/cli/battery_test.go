package cli_test

// The local build is the CodeBuild build for the Dockerfiles people write: a battery of
// Dockerfile styles (testdata/battery), each built by the pipeline and smoke-tested on the dev
// mirror's stand-ins for the official python images; and what the contract says when it is
// the reason a build does something unexpected.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/dev/devtest"
	"github.com/acme/webapp-pipeline/internal/contract"
)

// batteryRepo is a repository whose app/ is testdata/battery/STYLE with svc.py, its pipeline.yml
// naming only what a Dockerfile cannot say (the health path). Under a stage (devtest.StageEnv)
// the Dockerfile's python and frontend images are the staged ones.
func batteryRepo(t *testing.T, style string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), style)
	app := filepath.Join(dir, "app")
	src := filepath.Join(repoRoot, "testdata", "battery")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-a", filepath.Join(src, style), app}, {filepath.Join(src, "svc.py"), app}} {
		if out, err := exec.Command("cp", args...).CombinedOutput(); err != nil {
			t.Fatalf("cp %v: %v\n%s", args, err, out)
		}
	}
	writeFile(t, filepath.Join(dir, "pipeline.yml"), "health-path: /health\n")
	if _, err := os.Stat(filepath.Join(app, "pyproject.toml")); err == nil {
		devtest.UVLock(t, app)
	}
	if os.Getenv(devtest.StageEnv) != "" {
		df := filepath.Join(app, "Dockerfile")
		b, err := os.ReadFile(df)
		if err != nil {
			t.Fatal(err)
		}
		s := regexp.MustCompile(`(?m)^(FROM )python:`).ReplaceAllString(string(b), "${1}"+strings.TrimSuffix(devtest.MirrorRef("python:x"), "x"))
		s = strings.Replace(s, "# syntax=docker/dockerfile:1", "# syntax="+devtest.MirrorRef("docker/dockerfile:1"), 1)
		writeFile(t, df, s)
	}
	return dir
}

// TestDockerfileBattery: every style builds through `build image` (the engine builds the
// Dockerfile, the smoke test runs the image and GETs /health) and answers 200. They run side by
// side: the engine shares the base image pulls and the layers they have in common.
func TestDockerfileBattery(t *testing.T) {
	needEnv(t)
	styles, err := os.ReadDir(filepath.Join(repoRoot, "testdata", "battery"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	table := []string{}
	t.Cleanup(func() {
		sort.Strings(table)
		t.Logf("the battery (style | result | seconds | image size | smoke):\n%s", strings.Join(table, "\n"))
	})
	base := devtest.MirrorRef(contract.DefaultBaseImage)
	t.Run("styles", func(t *testing.T) {
		for _, s := range styles {
			if !s.IsDir() {
				continue
			}
			style := s.Name()
			t.Run(style, func(t *testing.T) {
				t.Parallel()
				dir := batteryRepo(t, style)
				start := time.Now()
				// a memo of its own: every style's smoke test runs (an image that passed before is not run again)
				r := runBuild(t, dir, []string{"BUILD_BASE_IMAGE=" + base, "BUILD_CACHE_DIR=" + t.TempDir()}, "image")
				secs := time.Since(start).Seconds()
				line := func(re string) string {
					if m := regexp.MustCompile(`(?m)^` + re + `\s+(.*)$`).FindStringSubmatch(r.stderr); m != nil {
						return m[1]
					}
					return "-"
				}
				result := "ok"
				if r.code != 0 {
					result = "FAILED: " + r.lastLines(1)
				}
				mu.Lock()
				table = append(table, fmt.Sprintf("%-14s | %s | %.1f s | %s | %s", style, result, secs, line("size"), line("smoke")))
				mu.Unlock()
				if r.code != 0 {
					t.Fatalf("%s should build and pass its smoke test\n%s", style, r)
				}
				if !strings.Contains(line("smoke"), "/health: 200 after") || !strings.HasPrefix(line("built"), "dockerfile") {
					t.Errorf("%s: the summary lacks the smoke test's 200 or the build way:\n%s", style, summary(r))
				}
			})
		}
	})
}

// TestContractSaysWhereTheCommandCameFrom: an app with its own Dockerfile under a pipeline.yml
// that forces image-build native (the sample's, kept by a user who replaced app/) gets a warning
// naming the line and the ignored Dockerfile; its smoke failure names where the command came
// from. A Dockerfile image whose CMD fails names the Dockerfile's CMD line.
func TestContractSaysWhereTheCommandCameFrom(t *testing.T) {
	needEnv(t)
	base := devtest.MirrorRef(contract.DefaultBaseImage)
	native := batteryRepo(t, "plain-pip")
	writeFile(t, filepath.Join(native, "pipeline.yml"),
		"app-dir: app\nimage-build: native\ncommand: [no-such-server, --port, \"8000\"]\ncontainer-port: 8000\nhealth-path: /health\n")
	broken := batteryRepo(t, "plain-pip")
	replaceIn(t, filepath.Join(broken, "app", "Dockerfile"), `CMD ["gunicorn",`, `CMD ["no-such-server",`)
	for _, c := range []struct {
		name string
		dir  string
		want []string
	}{
		{"native ignores the Dockerfile", native, []string{
			"image-build native (pipeline.yml line 2): app/Dockerfile is ignored",
			"from the contract's command (pipeline.yml line 3), run by image-build native (pipeline.yml line 2)",
			"---- build failed in smoke"}},
		{"the Dockerfile's CMD", broken, []string{
			"from the Dockerfile's CMD (app/Dockerfile line 7)", "---- build failed in smoke"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runBuild(t, c.dir, []string{"BUILD_BASE_IMAGE=" + base, "BUILD_HEALTH_TIMEOUT=5s"}, "image")
			if r.code == 0 {
				t.Fatalf("the build should fail\n%s", r)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q\n%s", w, r)
				}
			}
			t.Logf("%s:\n%s", c.name, r.lastLines(12))
		})
	}
}

// TestUnknownTagIsOneLine: a base image or FROM tag the dev mirror does not hold is one line
// naming the tag, the tags the mirror has and how to add one, before the engine is asked
// (not a registry time-out).
func TestUnknownTagIsOneLine(t *testing.T) {
	needEnv(t)
	dir := batteryRepo(t, "plain-pip")
	replaceIn(t, filepath.Join(dir, "app", "Dockerfile"), "FROM ", "FROM python:3.12-slim AS unused\nFROM ")
	for _, c := range []struct {
		name string
		env  []string
		want string
	}{
		{"base-image", []string{"BUILD_BASE_IMAGE=python:3.12-slim"}, "base-image: python:3.12-slim is not on this machine's registry mirror"},
		{"FROM", []string{"BUILD_BASE_IMAGE=" + devtest.MirrorRef(contract.DefaultBaseImage)}, "app/Dockerfile line 1: python:3.12-slim is not on this machine's registry mirror"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			r := runBuild(t, dir, c.env, "image")
			line := r.lastLines(1)
			t.Logf("%.1f s: %s", time.Since(start).Seconds(), line)
			if r.code != 1 || !strings.Contains(line, c.want) || !strings.Contains(line, "3.13-slim") ||
				!strings.Contains(line, "PYTHON_IMAGES in dev/versions.env") {
				t.Errorf("want one line with %q, the tags and how to add one\n%s", c.want, r)
			}
			if time.Since(start) > 20*time.Second {
				t.Errorf("took %s: the check should answer before any registry time-out", time.Since(start))
			}
		})
	}
}

// TestHashedRuntimeUnhashedDevRequirements: the pipeline's own deps step installs
// requirements.txt with hashes and an index URL (as poetry export writes them) and an unhashed
// requirements-dev.txt pinned by a constraints file, one pip per file, as a developer does: one
// pip for both refuses the dev file ("Hashes are required").
func TestHashedRuntimeUnhashedDevRequirements(t *testing.T) {
	needEnv(t)
	dir := batteryRepo(t, "poetry-export")
	// the lint command checks what was installed: waitress from the hashed file, flake8 at the constraint's pin
	lint := `BUILD_LINT_COMMAND=python -c "import sys, waitress, flake8; sys.exit(flake8.__version__ != '7.1.1')"`
	r := runBuild(t, dir, []string{"BUILD_BASE_IMAGE=" + devtest.MirrorRef(contract.DefaultBaseImage), lint}, "lint")
	if r.code != 0 {
		t.Fatalf("lint (its deps: hashed runtime + unhashed dev requirements) should pass\n%s", r)
	}
}
