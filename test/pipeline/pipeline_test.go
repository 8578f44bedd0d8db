// Package pipeline_test runs the whole pipeline locally (dev/cmd/codepipeline) on a scratch clone of
// this repository: a commit on a branch goes through Source → Build (buildspec.yml) → Deploy
// (appspec.yml) against the dev environment's engine, registry, SSM and dockerd.
package pipeline_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/dev/devenv"
	"github.com/acme/webapp-pipeline/dev/devtest"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

func needEnv(t *testing.T) {
	t.Helper()
	devtest.Require(t, "AWS_ENDPOINT_URL_SSM", "BUILD_IMAGE_REPO", "DOCKER_HOST")
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// commitAll commits everything in the scratch clone on the current branch.
func commitAll(t *testing.T, dir, msg string) {
	t.Helper()
	run(t, dir, "git", "add", "-A")
	run(t, dir, "git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.com", "commit", "-qm", msg)
}

// replaceInTree rewrites old to new in every file under dir/sub.
func replaceInTree(t *testing.T, dir, sub, old, new string) {
	t.Helper()
	err := filepath.Walk(filepath.Join(dir, sub), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".py") {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(old)) {
			return os.WriteFile(p, bytes.ReplaceAll(b, []byte(old), []byte(new)), info.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func greeting(t *testing.T, port int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/greeting?name=CI", port))
	if err != nil {
		t.Fatalf("GET greeting: %v", err)
	}
	defer resp.Body.Close()
	var body struct{ Greeting string }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("greeting answered %d %q: %v", resp.StatusCode, b, err)
	}
	return body.Greeting
}

type pipelineRun struct {
	code           int
	stdout, stderr string
}

// TestCommitOnBranchIsServed commits a visible change on a branch, runs the pipeline, and checks
// the change is served; then commits a change that breaks a unit test, runs it again, and checks
// the run stops at the Build stage saying why while the previous version keeps serving.
func TestCommitOnBranchIsServed(t *testing.T) {
	needEnv(t)
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "pipeline")
	run(t, root, "go", "build", "-o", bin, "./dev/cmd/codepipeline")

	scratch := filepath.Join(t.TempDir(), "repo")
	run(t, root, "git", "clone", "-q", "--no-hardlinks", root, scratch)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	branch := "feature/e2e-" + hex.EncodeToString(suffix)
	run(t, scratch, "git", "checkout", "-q", "-b", branch)

	work, port := t.TempDir(), freePort(t)
	pipeline := func() pipelineRun {
		cmd := exec.Command(bin, "--repo", scratch, "--branch", branch, "--work", work, "--port", fmt.Sprint(port))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		r := pipelineRun{stdout: stdout.String(), stderr: stderr.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("pipeline run: exit %d in %s\n%s", r.code, time.Since(start).Round(time.Millisecond), r.stdout)
		return r
	}
	cleanupInstance(t, work, "webapp")

	replaceInTree(t, scratch, "app", "Hello, ", "Howdy, ")
	commitAll(t, scratch, "app: greet with Howdy")
	first := pipeline()
	if first.code != 0 {
		t.Fatalf("pipeline should deploy the change\n%s\n%s", first.stdout, first.stderr)
	}
	if !strings.Contains(first.stdout, "Deploy  with the CodeDeploy agent") {
		t.Errorf("the Deploy stage should run through the real agent (dev/env.sh up installs it):\n%s", first.stdout)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if !strings.Contains(first.stdout, url) {
		t.Errorf("the run should end by printing %s:\n%s", url, first.stdout)
	}
	if got := greeting(t, port); got != "Howdy, CI!" {
		t.Fatalf("served greeting = %q, want the committed change %q", got, "Howdy, CI!")
	}

	if err := os.WriteFile(filepath.Join(scratch, "app", "tests", "test_deliberately_broken.py"),
		[]byte("def test_deliberately_broken():\n    assert 1 + 1 == 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	replaceInTree(t, scratch, "app/webapp", "Howdy, ", "Ahoy, ")
	commitAll(t, scratch, "app: a change whose test fails")
	second := pipeline()
	if second.code == 0 {
		t.Fatalf("a commit that breaks a unit test must not deploy\n%s", second.stdout)
	}
	out := second.stdout + second.stderr
	for _, want := range []string{"Build stage failed", "phase BUILD", "test_deliberately_broken"} {
		if !strings.Contains(out, want) {
			t.Errorf("the failed run should say %q:\n%s", want, lastLines(second.stderr, 30))
		}
	}
	if got := greeting(t, port); got != "Howdy, CI!" {
		t.Errorf("after the failed run the previous version should keep serving; greeting = %q", got)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cleanupInstance: when the test ends, the local instance's containers of app name go, and the
// proxy its hooks started (scripts/proxy.sh; STATE_DIR is dev/cmd/codepipeline's <work>/instance/state).
func cleanupInstance(t *testing.T, work, name string) {
	t.Cleanup(func() {
		_ = exec.Command("docker", "rm", "-f", name, name+"-previous", name+"-next", name+"-failed").Run()
		devenv.StopProxies(filepath.Join(work, "instance", "state"))
	})
}
