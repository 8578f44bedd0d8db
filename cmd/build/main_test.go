package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/webapp-pipeline/internal/checkout"
)

var update = flag.Bool("update", false, "rewrite testdata/help/*.txt")

// TestHelp golden-tests the --help output of the root and every command.
func TestHelp(t *testing.T) {
	t.Setenv("COLUMNS", "80") // kong wraps help to the terminal width
	for _, cmd := range []string{"", "lint", "test", "checks", "image", "publish", "check", "all", "shell", "reproduce"} {
		name := cmd
		if name == "" {
			name = "root"
		}
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			var cli CLI
			parser, err := newParser(&cli, &buf, func(int) {})
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"--help"}
			if cmd != "" {
				args = []string{cmd, "--help"}
			}
			_, _ = parser.Parse(args) // help printed; the rest of the parse does not matter
			golden := filepath.Join("..", "..", "testdata", "help", name+".txt")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/build -run TestHelp -update)", err)
			}
			if buf.String() != string(want) {
				t.Errorf("help differs from %s (run with -update if intended):\n%s", golden, buf.String())
			}
		})
	}
}

func TestPublishFlagsValidate(t *testing.T) {
	t.Parallel()
	ok := PublishFlags{ImageRepo: "127.0.0.1:5001/webapp", LoginFlags: LoginFlags{RegistryUsernameParam: "/u", RegistryPasswordParam: "/p"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		mod  func(*PublishFlags)
		want string
	}{
		"no repo":     {func(f *PublishFlags) { f.ImageRepo = "" }, "--image-repo"},
		"tagged repo": {func(f *PublishFlags) { f.ImageRepo = "127.0.0.1:5001/webapp:v1" }, "without tag"},
		"digest repo": {func(f *PublishFlags) { f.ImageRepo = "r/webapp@sha256:00" }, "without tag"},
		"no user":     {func(f *PublishFlags) { f.RegistryUsernameParam = "" }, "BUILD_REGISTRY_USERNAME_PARAM"},
		"no password": {func(f *PublishFlags) { f.RegistryPasswordParam = "" }, "BUILD_REGISTRY_PASSWORD_PARAM"},
	} {
		f := ok
		tt.mod(&f)
		if err := f.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want mention of %s", name, err, tt.want)
		}
	}
}

func TestRevisionResolve(t *testing.T) {
	t.Parallel()
	f := RevisionFlags{}
	if err := f.resolve(checkout.Read(t.Context(), t.TempDir())); err != nil || f.Revision != "dev" {
		t.Errorf("no git: revision %q, %v", f.Revision, err)
	}
	f = RevisionFlags{}
	if err := f.resolve(checkout.Facts{Commit: strings.Repeat("a", 40)}); err != nil || f.Revision != strings.Repeat("a", 40) {
		t.Errorf("a checkout: revision %q, %v", f.Revision, err)
	}
	f = RevisionFlags{Revision: "feature/x"}
	if err := f.resolve(checkout.Facts{}); err == nil {
		t.Error("revision with / accepted as a tag")
	}
}

func TestEngineUnreachable(t *testing.T) {
	t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "unix:///nonexistent/engine.sock")
	var out, errb bytes.Buffer
	err := run([]string{"lint", "--source", filepath.Join("..", "..", "testdata", "apps", "hello")}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "sudo dev/env.sh up") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line saying how to start an engine", err)
	}
}

func TestNoAppDir(t *testing.T) {
	var out, errb bytes.Buffer
	err := run([]string{"lint", "--source", t.TempDir()}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), `app-dir "app": no such directory`) {
		t.Fatalf("err = %v", err)
	}
}

// Issue 18: the stack's load balancer health check (BUILD_LB_HEALTH_CHECK_PATH, from the
// template's HealthCheckPath) must be the app's health path, or no target ever becomes healthy.
func TestLoadBalancerHealthPathMustBeTheApps(t *testing.T) {
	t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "unix:///nonexistent/engine.sock")
	args := []string{"all", "--source", filepath.Join("..", "..", "testdata", "apps", "hello"), "--out", t.TempDir(),
		"--image-repo", "127.0.0.1:1/webapp", "--registry-login", "ecr", "--revision", "r1"}
	var out, errb bytes.Buffer
	t.Setenv("BUILD_LB_HEALTH_CHECK_PATH", "/")
	err := run(args, &out, &errb)
	want := "the load balancer checks / (the stack's HealthCheckPath, BUILD_LB_HEALTH_CHECK_PATH) but the app's health-path is /healthz (pipeline.yml): update the stack with HealthCheckPath=/healthz"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	// the same path passes the check: the build goes on (to the engine, absent here)
	t.Setenv("BUILD_LB_HEALTH_CHECK_PATH", "/healthz")
	if err := run(args, &out, &errb); err == nil || !strings.Contains(err.Error(), "sudo dev/env.sh up") {
		t.Fatalf("err = %v, want the engine's (the check passed)", err)
	}
}
