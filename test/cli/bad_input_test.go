package cli_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// breakLint adds an unused import: flake8 F401.
func breakLint(t *testing.T, src string) {
	t.Helper()
	p := filepath.Join(src, "app", "webapp", "__init__.py")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, "import colorsys  # deliberately unused\n"+string(b))
}

// breakTest adds a failing unit test.
func breakTest(t *testing.T, src string) {
	t.Helper()
	writeFile(t, filepath.Join(src, "app", "tests", "test_deliberately_broken.py"),
		"def test_deliberately_broken():\n    assert 1 + 1 == 3, \"arithmetic is broken on purpose\"\n")
}

func TestFlake8ErrorFailsWithFlake8Lines(t *testing.T) {
	needEnv(t)
	t.Parallel()
	src := checkout(t)
	breakLint(t, src)
	out := filepath.Join(t.TempDir(), "dist")

	r := runBuild(t, src, []string{"BUILD_IMAGE_REPO=" + uniqueRepo("lint")}, "all", "--out", out)
	if r.code == 0 {
		t.Fatalf("flake8 error should fail the build\n%s", r)
	}
	if !strings.Contains(r.stdout+r.stderr, "F401") {
		t.Errorf("flake8's own line (F401) should be shown\n%s", r)
	}
	assertNotExists(t, filepath.Join(out, "bundle"))
	b, err := os.ReadFile(filepath.Join(out, "reports", "flake8.xml"))
	if err != nil {
		t.Fatalf("flake8 JUnit report should be exported on failure: %v", err)
	}
	if !strings.Contains(string(b), "F401") {
		t.Errorf("flake8.xml should hold the finding:\n%s", b)
	}
}

func TestFailingUnitTestIsNamedAndReported(t *testing.T) {
	needEnv(t)
	t.Parallel()
	src := checkout(t)
	breakTest(t, src)
	out := filepath.Join(t.TempDir(), "dist")

	r := runBuild(t, src, []string{"BUILD_IMAGE_REPO=" + uniqueRepo("test")}, "all", "--out", out)
	if r.code == 0 {
		t.Fatalf("a failing unit test should fail the build\n%s", r)
	}
	if !strings.Contains(r.lastLines(25), "test_deliberately_broken") {
		t.Errorf("the failing test should be named near the end of the output\n%s", r)
	}
	b, err := os.ReadFile(filepath.Join(out, "reports", "pytest.xml"))
	if err != nil {
		t.Fatalf("pytest JUnit report should be exported on failure: %v", err)
	}
	if !strings.Contains(string(b), "test_deliberately_broken") || !strings.Contains(string(b), "<failure") {
		t.Errorf("pytest.xml should record the failure:\n%s", b)
	}
	assertNotExists(t, filepath.Join(out, "bundle"))
}

func TestMissingSSMParameterNamesItAndTheRegion(t *testing.T) {
	needEnv(t)
	t.Parallel()
	src := checkout(t)
	out := filepath.Join(t.TempDir(), "dist")
	missing := "/webapp/test/missing-" + randomSuffix()

	r := runBuild(t, src, []string{
		"BUILD_IMAGE_REPO=" + uniqueRepo("missing"),
		"BUILD_REGISTRY_PASSWORD_PARAM=" + missing,
	}, "all", "--out", out)
	if r.code == 0 {
		t.Fatalf("a missing SSM parameter should fail the build\n%s", r)
	}
	last := r.lastLines(1)
	if !strings.Contains(last, missing) || !strings.Contains(last, os.Getenv("AWS_REGION")) {
		t.Errorf("the last line should name the parameter %s and the region %s\n%s", missing, os.Getenv("AWS_REGION"), r)
	}
	assertNotExists(t, out)
}

func TestWrongRegistryPasswordPublishesNothing(t *testing.T) {
	needEnv(t)
	t.Parallel()
	src := checkout(t)
	out := filepath.Join(t.TempDir(), "dist")
	param := "/webapp/test/wrong-password-" + randomSuffix()
	putParam(t, param, "not-the-password")
	repo := uniqueRepo("wrongpw")

	r := runBuild(t, src, []string{
		"BUILD_IMAGE_REPO=" + repo,
		"BUILD_REGISTRY_PASSWORD_PARAM=" + param,
	}, "all", "--out", out, "--revision", "wrongpw")
	if r.code == 0 {
		t.Fatalf("a wrong registry password should fail the build\n%s", r)
	}
	last := strings.ToLower(r.lastLines(1))
	if !strings.Contains(last, "registry") || !(strings.Contains(last, "credential") || strings.Contains(last, "unauthorized") || strings.Contains(last, "password")) {
		t.Errorf("the last line should say the registry refused the credentials\n%s", r)
	}
	if tagExists(t, repo, "wrongpw") {
		t.Errorf("nothing should be published to %s", repo)
	}
	assertNotExists(t, out)
}

func TestEngineUnreachableSaysHowToStartOne(t *testing.T) {
	needEnv(t)
	t.Parallel()
	src := checkout(t)
	start := time.Now()
	r := runBuild(t, src, []string{"_EXPERIMENTAL_DAGGER_RUNNER_HOST=unix:///nonexistent/engine.sock"}, "lint")
	if r.code == 0 {
		t.Fatalf("no engine should fail\n%s", r)
	}
	if last := r.lastLines(1); !strings.Contains(last, "dev/env.sh up") {
		t.Errorf("the last line should say how to start an engine\n%s", r)
	}
	t.Logf("failed after %s", time.Since(start).Round(time.Millisecond))
}

// TestPublishRoundTrip is the happy path end to end, then the properties that hang on it:
// the image is pulled back from the registry and answers /healthz in dockerd; the registry
// password (a random canary per environment) is in no output, artifact or layer; and a later
// failed build leaves those artifacts exactly as they were.
func TestPublishRoundTrip(t *testing.T) {
	needEnv(t)
	src := checkout(t)
	out := filepath.Join(t.TempDir(), "dist")
	repo := uniqueRepo("roundtrip")
	canary := registryPassword(t)

	// git runs through a shim that counts its processes: the checkout's facts are read once
	gitShim, gitCalls := gitCounter(t)
	r := runBuild(t, src, []string{"BUILD_IMAGE_REPO=" + repo, "PATH=" + gitShim + string(os.PathListSeparator) + os.Getenv("PATH")},
		"all", "--out", out, "--revision", "roundtrip1")
	if r.code != 0 {
		t.Fatalf("build should pass\n%s", r)
	}
	// HEAD and its time, the origin remote, the dependency files' last change: one process each (there were 9)
	if calls := gitCalls(); len(calls) > 3 {
		t.Errorf("one all run started %d git processes, want at most 3:\n%s", len(calls), strings.Join(calls, "\n"))
	}
	image := readImageEnv(t, out)["IMAGE"]
	if !strings.HasPrefix(image, repo+"@sha256:") {
		t.Fatalf("image.env IMAGE = %q, want %s@sha256:...", image, repo)
	}

	t.Run("no secret in outputs or artifacts", func(t *testing.T) {
		if strings.Contains(r.stdout+r.stderr, canary) {
			t.Error("the registry password appears in the build's output")
		}
		_ = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if b, _ := os.ReadFile(p); strings.Contains(string(b), canary) {
				t.Errorf("the registry password appears in artifact %s", p)
			}
			return nil
		})
	})

	t.Run("pulled back, runs, answers health, no secret in layers", func(t *testing.T) {
		docker(t, "", "login", "--username", "ci-pusher", "--password-stdin", strings.Split(repo, "/")[0]).stdin(canary).run()
		docker(t, "", "pull", image).run()
		saved := filepath.Join(t.TempDir(), "image.tar")
		docker(t, "", "save", "-o", saved, image).run()
		if where := findInImageTar(t, saved, canary); where != "" {
			t.Errorf("the registry password appears in the image: %s", where)
		}
		name := "cli-roundtrip-" + randomSuffix()
		user := strings.TrimSpace(docker(t, "", "image", "inspect", "-f", "{{.Config.User}}", image).run())
		if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "0:") {
			t.Errorf("image should run as a non-root user, has User=%q", user)
		}
		docker(t, "", "run", "-d", "--name", name, "-p", "127.0.0.1::8080", image).run()
		t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
		port := strings.TrimSpace(docker(t, "", "port", name, "8080/tcp").run())
		url := "http://" + port + "/healthz"
		var body string
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if resp, err := http.Get(url); err == nil {
				b := make([]byte, 512)
				n, _ := resp.Body.Read(b)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					body = string(b[:n])
					break
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(body, `"ok"`) || !strings.Contains(body, "roundtrip1") {
			t.Errorf("GET %s should answer ok with the revision, got %q\nlogs:\n%s", url, body, docker(t, "", "logs", name).run())
		}
	})

	t.Run("a failed build leaves the previous artifacts untouched", func(t *testing.T) {
		before := treeHash(t, out)
		breakTest(t, src)
		r := runBuild(t, src, []string{"BUILD_IMAGE_REPO=" + repo}, "all", "--out", out, "--revision", "roundtrip2")
		if r.code == 0 {
			t.Fatalf("build should fail\n%s", r)
		}
		if after := treeHash(t, out); after != before {
			t.Errorf("bundle changed after a failed build:\nbefore %s\nafter  %s", before, after)
		}
	})
}

func readImageEnv(t *testing.T, out string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "bundle", "image.env"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			m[k] = strings.Trim(v, `'"`)
		}
	}
	return m
}

// treeHash hashes the paths, modes and contents under dir/bundle and dir/build.json: what a
// deployment would ship. (reports/ may legitimately be refreshed by a failed run.)
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	for _, root := range []string{filepath.Join(dir, "bundle"), filepath.Join(dir, "build.json")} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, _ := d.Info()
			fmt.Fprintf(h, "%s %v\n", strings.TrimPrefix(p, dir), info.Mode())
			if !d.IsDir() {
				b, _ := os.ReadFile(p)
				h.Write(b)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", root, err)
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

type dockerCmd struct {
	t     *testing.T
	cmd   *exec.Cmd
	input string
}

// docker runs the docker CLI against the dev environment's dockerd (DOCKER_HOST).
func docker(t *testing.T, dir string, args ...string) *dockerCmd {
	cmd := exec.Command("docker", args...)
	cmd.Dir = dir
	return &dockerCmd{t: t, cmd: cmd}
}

func (d *dockerCmd) stdin(s string) *dockerCmd { d.input = s; return d }

func (d *dockerCmd) run() string {
	d.t.Helper()
	if d.input != "" {
		d.cmd.Stdin = strings.NewReader(d.input)
	}
	out, err := d.cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("%v: %v\n%s", d.cmd.Args, err, out)
	}
	return string(out)
}

// findInImageTar searches every entry of a `docker save` tar for s, looking inside gzip-compressed
// layers too (a containerd image store saves layers compressed), and names the entry it is in.
func findInImageTar(t *testing.T, path, s string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	entries := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries++
		if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
				if u, err := io.ReadAll(zr); err == nil {
					b = u
				}
			}
		}
		if bytes.Contains(b, []byte(s)) {
			return h.Name
		}
	}
	if entries < 3 {
		t.Fatalf("%s has %d entries: not an image tar", path, entries)
	}
	return ""
}

// TestInstancesGetThePullParameters: with pull-only SSM names set, image.env (what the instances
// read) names those, not the push login's.
func TestInstancesGetThePullParameters(t *testing.T) {
	needEnv(t)
	t.Parallel()
	src := checkout(t)
	out := filepath.Join(t.TempDir(), "dist")
	r := runBuild(t, src, []string{
		"BUILD_IMAGE_REPO=" + uniqueRepo("pull"),
		"BUILD_PULL_USERNAME_PARAM=/webapp/pull/username",
		"BUILD_PULL_PASSWORD_PARAM=/webapp/pull/password",
	}, "all", "--out", out)
	if r.code != 0 {
		t.Fatalf("build should pass\n%s", r)
	}
	env := readImageEnv(t, out)
	if env["REGISTRY_USERNAME_PARAM"] != "/webapp/pull/username" || env["REGISTRY_PASSWORD_PARAM"] != "/webapp/pull/password" {
		t.Errorf("image.env should name the pull parameters, has %q and %q", env["REGISTRY_USERNAME_PARAM"], env["REGISTRY_PASSWORD_PARAM"])
	}
}

// gitCounter is a directory holding a git that logs its arguments and runs the real one, and a
// function returning the calls so far.
func gitCounter(t *testing.T) (dir string, calls func() []string) {
	t.Helper()
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	log := filepath.Join(t.TempDir(), "calls")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "git"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, func() []string {
		b, _ := os.ReadFile(log)
		if s := strings.TrimSpace(string(b)); s != "" {
			return strings.Split(s, "\n")
		}
		return nil
	}
}
