package main

// Integration tests: the real Dagger engine, registry, moto (SSM) and dockerd
// of the dev environment (dev/env.sh up). They run in the normal suite and
// FAIL, with the fix, when the environment is missing; only -short skips them.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/acme/webapp-pipeline/dev/devtest"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/acme/webapp-pipeline/internal/build"
	"github.com/acme/webapp-pipeline/internal/ssmparam"
)

var devEnvKeys = []string{
	"_EXPERIMENTAL_DAGGER_CLI_BIN", "_EXPERIMENTAL_DAGGER_RUNNER_HOST", "AWS_ENDPOINT_URL_SSM", "AWS_REGION",
	"BUILD_IMAGE_REPO", "BUILD_REGISTRY_USERNAME_PARAM", "BUILD_REGISTRY_PASSWORD_PARAM", "DOCKER_HOST",
}

// devEnv loads /run/webapp-dev/env into the test's environment (unless the
// variables are already set) and fails clearly when it is not there.
func devEnv(t *testing.T) {
	t.Helper()
	devtest.Require(t, devEnvKeys...)
}

// fixture copies testdata/apps/hello to a temp dir, applying edits
// (path → new content).
func fixture(t *testing.T, edits map[string]string) string {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", "apps", "hello")
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range edits {
		if err := os.WriteFile(filepath.Join(dst, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// cli runs the command in-process and returns stdout, stderr and the error.
func cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	start := time.Now()
	err := run(args, &out, &errb)
	t.Logf("build %s: %s, err=%v\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), err, errb.String())
	return out.String(), errb.String(), err
}

func uniqueRevision() string { return fmt.Sprintf("it-%d", time.Now().UnixNano()) }

func registryCredsForTest(t *testing.T) (string, string) {
	t.Helper()
	r, err := ssmparam.New(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	user, err := r.Get(t.Context(), os.Getenv("BUILD_REGISTRY_USERNAME_PARAM"))
	if err != nil {
		t.Fatal(err)
	}
	pw, err := r.Get(t.Context(), os.Getenv("BUILD_REGISTRY_PASSWORD_PARAM"))
	if err != nil {
		t.Fatal(err)
	}
	return user, pw
}

// manifestStatus asks the registry for repo:tag with the real credentials.
func manifestStatus(t *testing.T, repo, tag string) int {
	t.Helper()
	user, pw := registryCredsForTest(t)
	host, name, _ := strings.Cut(repo, "/")
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+host+"/v2/"+name+"/manifests/"+tag, nil)
	req.SetBasicAuth(user, pw)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestIntegrationAll is the happy path CodeBuild runs, then the image is
// pulled back through dockerd and run.
func TestIntegrationAll(t *testing.T) {
	devEnv(t)
	src := fixture(t, nil)
	out := filepath.Join(t.TempDir(), "dist")
	rev := uniqueRevision()
	stdout, _, err := cli(t, "all", "--source", src, "--out", out, "--revision", rev)
	if err != nil {
		t.Fatal(err)
	}
	repo := os.Getenv("BUILD_IMAGE_REPO")
	ref := strings.TrimSpace(stdout)
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(repo) + `@sha256:[0-9a-f]{64}$`).MatchString(ref) {
		t.Fatalf("stdout %q is not %s@sha256:...", ref, repo)
	}

	// Artifacts.
	env, err := os.ReadFile(filepath.Join(out, "bundle", "image.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"IMAGE=" + ref + "\n", "IMAGE_TAG=" + repo + ":" + rev + "\n", "REVISION=" + rev + "\n", "CONTAINER_PORT=8080\n"} {
		if !strings.Contains(string(env), want) {
			t.Errorf("image.env lacks %q:\n%s", want, env)
		}
	}
	for _, s := range []string{"start.sh", "validate.sh"} { // 0644 in the fixture
		st, err := os.Stat(filepath.Join(out, "bundle", "scripts", s))
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("bundle/scripts/%s: %v, mode %v; want 0755", s, err, st.Mode())
		}
	}
	for _, f := range []string{"bundle/appspec.yml", "reports/flake8.xml", "reports/pytest.xml"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	var info struct {
		Image, Revision, Build, HealthPath string
		Reproducible                       bool
		Port                               int `json:"container_port"`
		Steps                              []struct{ Name string }
	}
	raw, _ := os.ReadFile(filepath.Join(out, "build.json"))
	if err := json.Unmarshal(raw, &info); err != nil || info.Image != ref || info.Revision != rev || len(info.Steps) < 6 ||
		info.Build != "native" || !info.Reproducible || info.Port != 8080 {
		t.Errorf("build.json = %+v, %v", info, err)
	}
	if err := build.CheckBundle(filepath.Join(out, "bundle"), ""); err != nil {
		t.Errorf("published bundle does not pass check: %v", err)
	}
	pw, _ := registryCredsForTest(t)
	if bytes.Contains(raw, []byte(pw)) || bytes.Contains(env, []byte(pw)) {
		t.Error("registry password in the artifacts")
	}

	// Pull it back and run it.
	user, pw := registryCredsForTest(t)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	login := exec.CommandContext(t.Context(), "docker", "login", "-u", user, "--password-stdin", repo[:strings.Index(repo, "/")])
	login.Stdin = strings.NewReader(pw)
	if b, err := login.CombinedOutput(); err != nil {
		t.Fatalf("docker login: %v\n%s", err, b)
	}
	docker(t, "pull", "-q", ref)
	if got := docker(t, "inspect", "--format", `{{index .Config.Labels "org.opencontainers.image.revision"}}`, ref); got != rev {
		t.Errorf("revision label = %q, want %q", got, rev)
	}
	if got := docker(t, "run", "--rm", ref, "id", "-u"); got == "0" || got == "" {
		t.Errorf("image runs as uid %q, want non-root", got)
	}
	id := docker(t, "run", "-d", "-p", "127.0.0.1::8080", ref)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	addr := strings.Split(docker(t, "port", id, "8080"), "\n")[0]
	var body string
	client := &http.Client{Timeout: 5 * time.Second}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && !strings.Contains(body, rev); {
		time.Sleep(200 * time.Millisecond)
		if resp, err := client.Get("http://" + addr + "/healthz"); err == nil {
			b := new(bytes.Buffer)
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			body = b.String()
		}
	}
	if !strings.Contains(body, `"status":"ok"`) || !strings.Contains(body, rev) {
		t.Errorf("GET /healthz = %q, want status ok and revision %s; logs:\n%s", body, rev, docker(t, "logs", id))
	}

	// The same inputs again: up to date from the out dir alone — it succeeds
	// with no engine to talk to — and --force does go to the engine.
	t.Run("UpToDate", func(t *testing.T) {
		t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "unix:///nonexistent/engine.sock")
		again, stderr, err := cli(t, "all", "--source", src, "--out", out, "--revision", rev)
		if err != nil || strings.TrimSpace(again) != ref || !strings.Contains(stderr, "up to date") {
			t.Fatalf("rerun with the same inputs: err=%v stdout=%q, want %s and \"up to date\"", err, again, ref)
		}
		if raw2, _ := os.ReadFile(filepath.Join(out, "build.json")); !bytes.Equal(raw, raw2) {
			t.Error("up-to-date run rewrote build.json")
		}
		if _, _, err := cli(t, "all", "--source", src, "--out", out, "--revision", rev, "--force"); err == nil || !strings.Contains(err.Error(), "no Dagger engine") {
			t.Errorf("--force: err = %v, want it to need the engine", err)
		}
	})

	// --force asks the engine again; the second time the memo has the smoke
	// test of this digest: it is not run again, and the image's user (which
	// reading would import the image) comes from the memo too.
	t.Run("ForceMemo", func(t *testing.T) {
		t.Setenv("BUILD_CACHE_DIR", t.TempDir())
		for i, wantMemo := range []bool{false, true} {
			again, stderr, err := cli(t, "all", "--source", src, "--out", filepath.Join(t.TempDir(), "dist"), "--revision", rev, "--force")
			if err != nil || strings.TrimSpace(again) != ref {
				t.Fatalf("--force run %d: err=%v stdout=%q, want %s", i+1, err, again, ref)
			}
			if got := strings.Contains(stderr, "not run again"); got != wantMemo {
				t.Errorf("--force run %d: smoke test from the memo = %v, want %v", i+1, got, wantMemo)
			}
			if !regexp.MustCompile(`(?m)^runs as +10001:10001$`).MatchString(stderr) {
				t.Errorf("--force run %d: the report does not say the image runs as 10001:10001", i+1)
			}
		}
	})

	// A failing test on the next run: reports replaced, bundle untouched.
	broken := fixture(t, map[string]string{"app/tests/test_broken.py": "def test_broken():\n    assert 1 == 2\n"})
	_, _, err = cli(t, "all", "--source", broken, "--out", out, "--revision", uniqueRevision())
	if err == nil || !strings.Contains(err.Error(), "test_broken") {
		t.Fatalf("failing test: err = %v, want it named", err)
	}
	if env2, _ := os.ReadFile(filepath.Join(out, "bundle", "image.env")); !bytes.Equal(env, env2) {
		t.Error("failed run changed the bundle")
	}
	if xml, _ := os.ReadFile(filepath.Join(out, "reports", "pytest.xml")); !strings.Contains(string(xml), "test_broken") {
		t.Error("failed run did not write its pytest report")
	}
	// Back to the first sources: reports/ now holds the failure, so --out is
	// not up to date any more: the run needs the engine (here: none).
	t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "unix:///nonexistent/engine.sock")
	if _, _, err := cli(t, "all", "--source", src, "--out", out, "--revision", rev); err == nil || !strings.Contains(err.Error(), "no Dagger engine") {
		t.Errorf("after a failed run, the first sources again: err = %v, want a build (which needs the engine)", err)
	}
}

func TestIntegrationLintFailure(t *testing.T) {
	devEnv(t)
	src := fixture(t, map[string]string{"app/webapp/extra.py": "import os\n"})
	_, stderr, err := cli(t, "lint", "--source", src)
	if err == nil || !strings.Contains(err.Error(), "flake8") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line about flake8", err)
	}
	if !strings.Contains(stderr, "webapp/extra.py:1:1: F401") {
		t.Errorf("flake8's own lines not shown:\n%s", stderr)
	}
}

func TestIntegrationMissingParameter(t *testing.T) {
	devEnv(t)
	out := filepath.Join(t.TempDir(), "dist")
	_, _, err := cli(t, "all", "--source", fixture(t, nil), "--out", out, "--registry-password-param", "/webapp/it/nope")
	if err == nil {
		t.Fatal("missing parameter: no error")
	}
	for _, want := range []string{`"/webapp/it/nope"`, os.Getenv("AWS_REGION"), os.Getenv("AWS_ENDPOINT_URL_SSM")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err %q lacks %s", err, want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("out dir written: %v", err)
	}
}

func TestIntegrationWrongPassword(t *testing.T) {
	devEnv(t)
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	param := "/webapp/it/wrong-password"
	_, err = ssm.NewFromConfig(cfg).PutParameter(t.Context(), &ssm.PutParameterInput{
		Name: aws.String(param), Value: aws.String("not-the-password"), Type: "SecureString", Overwrite: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	rev := uniqueRevision()
	out := filepath.Join(t.TempDir(), "dist")
	_, stderr, err := cli(t, "publish", "--source", fixture(t, nil), "--out", out, "--revision", rev, "--registry-password-param", param)
	if err == nil || !strings.Contains(err.Error(), "rejected the credentials") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line about rejected credentials", err)
	}
	if strings.Contains(stderr+err.Error(), "not-the-password") {
		t.Error("password printed")
	}
	if code := manifestStatus(t, os.Getenv("BUILD_IMAGE_REPO"), rev); code != http.StatusNotFound {
		t.Errorf("tag %s: registry answered %d, want 404 (nothing published)", rev, code)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("out dir written after a failed publish: %v", err)
	}
}

// A code-only change must not re-run pip: the deps step is then a cache hit.
// The summary says so from the engine's own spans; a requirements change is
// the control (pip runs: "ran").
func TestIntegrationCodeChangeSkipsPip(t *testing.T) {
	devEnv(t)
	if _, _, err := cli(t, "lint", "--source", fixture(t, nil)); err != nil { // warm
		t.Fatal(err)
	}
	stamp := time.Now().UnixNano()
	changed := fixture(t, map[string]string{"app/webapp/extra.py": fmt.Sprintf("VALUE = %d\n", stamp)})
	_, stderr, err := cli(t, "lint", "--source", changed)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^  deps +[0-9.]+s  cached$`).MatchString(stderr) {
		t.Errorf("deps (pip install) not served from the cache after a code-only change:\n%s", stderr)
	}
	if !regexp.MustCompile(`(?m)^  lint +[0-9.]+s  ran$`).MatchString(stderr) {
		t.Errorf("lint did not run again after a code change:\n%s", stderr)
	}
	reqs, err := os.ReadFile(filepath.Join(changed, "app", "requirements-dev.txt"))
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, err = cli(t, "lint", "--source", fixture(t, map[string]string{
		"app/requirements-dev.txt": fmt.Sprintf("%s# %d\n", reqs, stamp)}))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^  deps +[0-9.]+s  ran$`).MatchString(stderr) {
		t.Errorf("deps not said to run after a requirements change:\n%s", stderr)
	}
}
