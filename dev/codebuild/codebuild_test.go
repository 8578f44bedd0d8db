package codebuild

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type fakeParams map[string]string

func (f fakeParams) Get(_ context.Context, name string) (string, error) {
	v, ok := f[name]
	if !ok {
		return "", fmt.Errorf("SSM parameter %q not found", name)
	}
	return v, nil
}

func parse(t *testing.T, src string) *Spec {
	t.Helper()
	var s Spec
	if err := yaml.Unmarshal([]byte(src), &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func runSpec(t *testing.T, src string) (*Result, string, string) {
	t.Helper()
	dir := t.TempDir()
	var log bytes.Buffer
	res, err := Run(context.Background(), Options{
		Spec: parse(t, src), SrcDir: dir, Env: []string{"PATH=" + os.Getenv("PATH")},
		Overrides: map[string]string{"FROM_OVERRIDE": "override"},
		Params:    fakeParams{"/p/secret": "hunter2-canary"}, Log: &log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res, log.String(), dir
}

func statuses(r *Result) string {
	var s []string
	for _, p := range r.Phases {
		s = append(s, p.Name+"="+p.Status)
	}
	return strings.Join(s, " ")
}

func TestStateCarriesAcrossCommandsAndPhases(t *testing.T) {
	t.Parallel()
	res, log, _ := runSpec(t, `
version: 0.2
env:
  variables: {GREETING: hello, FROM_OVERRIDE: buildspec}
phases:
  install:
    commands:
      - export CARRIED=yes
      - mkdir -p sub && cd sub
  build:
    commands:
      - echo "carried=$CARRIED cwd=$(basename "$PWD") greeting=$GREETING override=$FROM_OVERRIDE"
`)
	if !res.Succeeded {
		t.Fatalf("should succeed: %s\n%s", statuses(res), log)
	}
	if !strings.Contains(log, "carried=yes cwd=sub greeting=hello override=override") {
		t.Errorf("exports, cwd, env.variables and overrides should reach later commands:\n%s", log)
	}
}

func TestFailureSemantics(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, spec, want string
		mustLog          []string
		mustNotLog       []string
	}{{
		name: "failed build command skips the rest of build, finally and post_build still run",
		spec: `
version: 0.2
phases:
  build:
    commands: ["echo one", "false", "echo never-printed"]
    finally: ["echo finally-ran"]
  post_build:
    commands: ['echo "post succeeding=$CODEBUILD_BUILD_SUCCEEDING"']
`,
		want:       "build=FAILED post_build=SUCCEEDED",
		mustLog:    []string{"finally-ran", "post succeeding=0"},
		mustNotLog: []string{"never-printed\n"},
	}, {
		name: "on-failure ABORT on build skips post_build",
		spec: `
version: 0.2
phases:
  build: {on-failure: ABORT, commands: ["exit 3"]}
  post_build: {commands: ["echo post-ran"]}
`,
		want: "build=FAILED post_build=SKIPPED", mustNotLog: []string{"post-ran\n"},
	}, {
		name: "failed pre_build ends the build",
		spec: `
version: 0.2
phases:
  pre_build: {commands: ["false"]}
  build: {commands: ["echo build-ran"]}
  post_build: {commands: ["echo post-ran"]}
`,
		want: "pre_build=FAILED build=SKIPPED post_build=SKIPPED", mustNotLog: []string{"build-ran\n", "post-ran\n"},
	}, {
		name: "on-failure CONTINUE goes on to the next phase",
		spec: `
version: 0.2
phases:
  install: {on-failure: CONTINUE, commands: ["false"]}
  build: {commands: ['echo "build succeeding=$CODEBUILD_BUILD_SUCCEEDING"']}
`,
		want: "install=FAILED build=SUCCEEDED", mustLog: []string{"build succeeding=0"},
	}, {
		name: "post_build guard fails a build whose build phase failed",
		spec: `
version: 0.2
phases:
  build: {commands: ["false"]}
  post_build: {commands: ['[ "${CODEBUILD_BUILD_SUCCEEDING:-0}" -eq 1 ] || exit 1', "echo shipped"]}
`,
		want: "build=FAILED post_build=FAILED", mustNotLog: []string{"shipped\n"},
	}, {
		name: "parameter-store values are resolved and masked in the log",
		spec: `
version: 0.2
env:
  parameter-store: {SECRET: /p/secret}
phases:
  build: {commands: ['echo "secret is $SECRET"', '[ "$SECRET" = hunter2-canary ]']}
`,
		want: "build=SUCCEEDED", mustLog: []string{"secret is ***"}, mustNotLog: []string{"hunter2-canary"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			res, log, _ := runSpec(t, c.spec)
			if got := statuses(res); got != c.want {
				t.Errorf("phases = %s, want %s\n%s", got, c.want, log)
			}
			for _, s := range c.mustLog {
				if !strings.Contains(log, s) {
					t.Errorf("log should contain %q:\n%s", s, log)
				}
			}
			for _, s := range c.mustNotLog {
				if strings.Contains(log, s) {
					t.Errorf("log should not contain %q:\n%s", s, log)
				}
			}
		})
	}
}

func TestMissingParameterIsARunnerError(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), Options{
		Spec:   parse(t, "version: 0.2\nenv: {parameter-store: {X: /p/missing}}\nphases: {build: {commands: [true]}}"),
		SrcDir: t.TempDir(), Params: fakeParams{}, Log: &bytes.Buffer{},
	})
	if err == nil || !strings.Contains(err.Error(), "/p/missing") {
		t.Fatalf("err = %v, want one naming /p/missing", err)
	}
}

func TestCollectArtifacts(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	for name, mode := range map[string]os.FileMode{
		"dist/bundle/appspec.yml": 0o644, "dist/bundle/scripts/start.sh": 0o755, "dist/bundle/image.env": 0o644, "other.txt": 0o644,
	} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(name), mode)
	}
	spec := &Spec{Artifacts: Artifacts{BaseDirectory: "dist/bundle", Files: []string{"**/*"}, DiscardPaths: "no"}}
	zipPath := filepath.Join(t.TempDir(), "artifact.zip")
	names, err := CollectArtifacts(spec, src, zipPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, ","); got != "appspec.yml,image.env,scripts/start.sh" {
		t.Errorf("names = %s", got)
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.Name == "scripts/start.sh" && f.Mode().Perm() != 0o755 {
			t.Errorf("scripts/start.sh mode = %v, want 0755 (hooks must stay executable)", f.Mode())
		}
	}

	spec.Artifacts.BaseDirectory = "missing"
	if _, err := CollectArtifacts(spec, src, zipPath); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a missing base-directory should be named, got %v", err)
	}
}

func TestMatchGlob(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"**/*", "appspec.yml", true},
		{"**/*", "scripts/a/b.sh", true},
		{"*.xml", "pytest.xml", true},
		{"*.xml", "sub/pytest.xml", false},
		{"scripts/**/*", "scripts/x.sh", true},
		{"scripts/*", "app/x.sh", false},
		{"appspec.yml", "appspec.yml", true},
	} {
		if got := matchGlob(c.pattern, c.name); got != c.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestLoadRejectsWhatItCannotRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, src := range map[string]string{
		"version":    "version: 0.1\nphases: {}",
		"phase":      "version: 0.2\nphases: {compile: {commands: [true]}}",
		"on-failure": "version: 0.2\nphases: {build: {on-failure: RETRY, commands: [true]}}",
	} {
		p := filepath.Join(dir, name+".yml")
		os.WriteFile(p, []byte(src), 0o644)
		if _, err := Load(p); err == nil {
			t.Errorf("%s: Load should fail", name)
		}
	}
	if _, err := Load("../../buildspec.yml"); err != nil {
		t.Errorf("the project's buildspec.yml should load: %v", err)
	}
}
