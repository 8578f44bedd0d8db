package cli_test

// The pipeline builds apps that are not the sample: each fixture under
// testdata/apps is another framework, server, layout and dependency spec,
// built through `all`, pulled back and run; broken ones fail at `smoke`
// with nothing pushed.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/dev/devtest"
)

// fixtureRepo is a git repository holding testdata/apps/NAME and this
// repository's deploy files (appspec.yml, scripts/, buildspec.yml), as a
// team adopting the pipeline would have it. edit changes files before the
// commit. A uv project gets its uv.lock made here (by the pinned uv, in the
// engine), so no lock file with index URLs is kept in the repository.
func fixtureRepo(t *testing.T, name string, edit func(dir string)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	cp := exec.Command("cp", "-a", filepath.Join(repoRoot, "testdata", "apps", name), dir)
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("copy fixture: %v\n%s", err, out)
	}
	for _, p := range []string{"appspec.yml", "scripts", "buildspec.yml"} {
		if out, err := exec.Command("cp", "-a", filepath.Join(repoRoot, p), filepath.Join(dir, p)).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v\n%s", p, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "app", "pyproject.toml")); err == nil && strings.HasPrefix(name, "uv-") {
		devtest.UVLock(t, filepath.Join(dir, "app"))
	}
	if edit != nil {
		edit(dir)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "fixture"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

type buildJSON struct {
	Image        string `json:"image"`
	Digest       string `json:"digest"`
	Build        string `json:"build"`
	Reproducible bool   `json:"reproducible"`
	Port         int    `json:"container_port"`
	HealthPath   string `json:"health_path"`
	Smoke        string `json:"smoke"`
	User         string `json:"user"`
}

func readBuildJSON(t *testing.T, out string) buildJSON {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, "build.json"))
	if err != nil {
		t.Fatal(err)
	}
	var b buildJSON
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// summary is the closing block of a successful build (what the user reads).
func summary(r result) string {
	_, after, _ := strings.Cut(r.stderr, "---- build succeeded")
	return "---- build succeeded" + after
}

// getUntil GETs url until it answers 2xx or 30 s pass.
func getUntil(t *testing.T, url string) (int, string) {
	t.Helper()
	var code int
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		b := make([]byte, 512)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		code, body = resp.StatusCode, string(b[:n])
		if code/100 == 2 {
			break
		}
	}
	return code, body
}

// TestFixtureApps: each app through `all`, then pulled back through dockerd,
// run the way the hooks run it (image.env's port), and asked its health path.
func TestFixtureApps(t *testing.T) {
	needEnv(t)
	for _, c := range []struct {
		name, build string
		port        int
		health      string
		reproduce   bool
	}{
		{"dockerfile-starlette", "dockerfile", 8000, "/health", false},
		{"native-bottle", "native", 9090, "/ping", true},
		{"uv-falcon", "native", 7000, "/status", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := fixtureRepo(t, c.name, nil)
			out := filepath.Join(t.TempDir(), "dist")
			repo := uniqueRepo(c.name)
			r := runBuild(t, src, []string{"BUILD_IMAGE_REPO=" + repo}, "all", "--out", out)
			if r.code != 0 {
				t.Fatalf("build should pass\n%s", r)
			}
			t.Logf("%s:\n%s", c.name, summary(r))
			info := readBuildJSON(t, out)
			if info.Build != c.build || info.Reproducible != c.reproduce || info.Port != c.port || info.HealthPath != c.health ||
				!strings.Contains(info.Smoke, " 200 ") {
				t.Errorf("build.json: %+v", info)
			}
			env := readImageEnv(t, out)
			if env["CONTAINER_PORT"] != fmt.Sprint(c.port) || env["HEALTH_PATH"] != c.health || env["IMAGE"] != info.Image {
				t.Errorf("image.env: %v", env)
			}
			for _, want := range []string{"built    " + c.build, "smoke    GET http://app:", "runs as  10001"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("the summary lacks %q:\n%s", want, summary(r))
				}
			}

			docker(t, "", "login", "--username", "ci-pusher", "--password-stdin", strings.Split(repo, "/")[0]).stdin(registryPassword(t)).run()
			docker(t, "", "pull", "-q", info.Image).run()
			name := "cli-fixture-" + randomSuffix()
			docker(t, "", "run", "-d", "--name", name, "-p", fmt.Sprintf("127.0.0.1::%d", c.port), info.Image).run()
			t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
			addr := strings.Split(strings.TrimSpace(docker(t, "", "port", name, fmt.Sprintf("%d/tcp", c.port)).run()), "\n")[0]
			code, body := getUntil(t, "http://"+addr+c.health)
			if code/100 != 2 {
				t.Errorf("the pulled image: GET %s = %d %q\nlogs:\n%s", c.health, code, body, docker(t, "", "logs", name).run())
			}
			t.Logf("pulled %s and ran it: GET %s -> %d %s", info.Image, c.health, code, strings.TrimSpace(body))
		})
	}
}

// TestSmokeFailuresPushNothing: an image that cannot start, one that never
// answers its health path and one that never listens fail at `smoke` with the
// container's exit code or answer and its last log lines; nothing is pushed
// and --out stays as the last success left it. A Dockerfile whose RUN fails
// names the instruction and shows its output.
func TestSmokeFailuresPushNothing(t *testing.T) {
	needEnv(t)
	starlette := fixtureRepo(t, "dockerfile-starlette", func(dir string) {
		replaceIn(t, filepath.Join(dir, "app", "Dockerfile"), `"/srv/venv/bin/uvicorn"`, `"/srv/venv/bin/gunicorn"`)
	})
	runFails := fixtureRepo(t, "dockerfile-starlette", func(dir string) {
		replaceIn(t, filepath.Join(dir, "app", "Dockerfile"), "-r requirements.txt", "-r requirements.txt no-such-package-xyz==9.9")
	})
	bottle := fixtureRepo(t, "native-bottle", nil)
	root := fixtureRepo(t, "dockerfile-starlette", func(dir string) {
		replaceIn(t, filepath.Join(dir, "app", "Dockerfile"), "USER 10001:10001\n", "")
	})
	for _, c := range []struct {
		name string
		src  string
		env  []string
		want []string // in stderr
	}{
		{"broken CMD", starlette, nil, []string{"---- build failed in smoke", "exit     1", "no such file or directory",
			"the container exited 1 before it listened on port 8000"}},
		// (the running container's own lines come through the engine's telemetry: shown when they
		// arrive in time, which a loaded machine does not promise; a crashed one's are, from the
		// telemetry or else from running its command once more)
		{"never healthy", bottle, []string{"BUILD_HEALTH_PATH=/nope", "BUILD_HEALTH_TIMEOUT=3s"}, []string{"---- build failed in smoke",
			"HTTP 404", "not 2xx within 3s"}},
		{"never listens", bottle, []string{"BUILD_COMMAND=waitress-serve --listen=127.0.0.1:9090 shop:app", "BUILD_HEALTH_TIMEOUT=3s"},
			[]string{"---- build failed in smoke", "did not listen on port 9090 (waited 16s"}},
		{"runs as root, non-root required", root, []string{"BUILD_REQUIRE_NON_ROOT=true"}, []string{"---- build failed in smoke",
			"the image runs as root", "require-non-root: add USER to the Dockerfile"}},
		{"RUN fails", runFails, nil, []string{"---- build failed in image", "command  RUN python3 -m venv /srv/venv",
			"No matching distribution found for no-such-package-xyz==9.9", "exit     1"}},
	} {
		t.Run(c.name, func(t *testing.T) { buildFailsPushingNothing(t, c.src, "smoke", c.env, c.want, "") })
	}
}

// buildFailsPushingNothing runs `all` in src with env, which must fail:
// stderr holds every want, the last line is one `build: error:` line (naming
// lastHas, when not ""), the commit's tag is not in the registry (repository
// repoPrefix-*), and --out (a last success's files) is as it was.
func buildFailsPushingNothing(t *testing.T, src, repoPrefix string, env, want []string, lastHas string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dist")
	writeFile(t, filepath.Join(out, "build.json"), `{"image": "the last success"}`)
	writeFile(t, filepath.Join(out, "bundle", "image.env"), "IMAGE=the-last-success\n")
	before := treeHash(t, out)
	repo := uniqueRepo(repoPrefix)
	head := strings.TrimSpace(gitOut(t, src, "rev-parse", "HEAD"))
	r := runBuild(t, src, append([]string{"BUILD_IMAGE_REPO=" + repo}, env...), "all", "--out", out)
	if r.code == 0 {
		t.Fatalf("build should fail\n%s", r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q\n%s", w, r)
		}
	}
	if last := r.lastLines(1); !strings.HasPrefix(last, "build: error: ") || strings.Count(last, "\n") > 0 || !strings.Contains(last, lastHas) {
		t.Errorf("last line %q: want one `build: error:` line naming %q", last, lastHas)
	}
	if tagExists(t, repo, head) {
		t.Errorf("%s:%s was pushed", repo, head)
	}
	if treeHash(t, out) != before {
		t.Error("--out changed")
	}
	t.Logf("%s:\n%s", t.Name(), r.stderr[strings.LastIndex(r.stderr, "---- build failed"):])
}

// TestContractBadInput: a bad contract is one line naming the cause and the
// fix, a non-zero exit, and nothing written; no engine is needed to say so.
func TestContractBadInput(t *testing.T) {
	noEngine := "_EXPERIMENTAL_DAGGER_RUNNER_HOST=unix:///nonexistent/engine.sock"
	for _, c := range []struct {
		name string
		yml  string // pipeline.yml of the sample's checkout ("" keeps the repository's)
		env  []string
		rm   string // a file of the checkout to remove
		want string
	}{
		{name: "unknown key", yml: "app-dir: app\nhealthpath: /x\n", want: `pipeline.yml:2: unknown key "healthpath"; allowed: app-dir,`},
		{name: "wrong type", yml: "health-timeout: [30]\n", want: "pipeline.yml:1: health-timeout must be a duration such as 30s: got a list"},
		{name: "port not a number", env: []string{"BUILD_CONTAINER_PORT=http"}, want: `--container-port: must be a port number from 1 to 65535, got "http" (from envar BUILD_CONTAINER_PORT="http")`},
		{name: "health path", env: []string{"BUILD_HEALTH_PATH=healthz"}, want: `health-path "healthz": must be a URL path starting with '/'`},
		{name: "dockerfile missing", env: []string{"BUILD_IMAGE_BUILD=dockerfile"}, want: `dockerfile "Dockerfile": no such file in app`},
		{name: "no dependency file", env: []string{"BUILD_DEPS=auto"}, rm: "app/requirements.txt", want: "no dependency file in app: looked for uv.lock, requirements.txt and pyproject.toml"},
		{name: "native without command", yml: "image-build: native\ncontainer-port: 8080\n", want: "image-build native needs command"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := checkout(t)
			if c.yml != "" {
				writeFile(t, filepath.Join(src, "pipeline.yml"), c.yml)
			}
			if c.rm != "" {
				if err := os.Remove(filepath.Join(src, c.rm)); err != nil {
					t.Fatal(err)
				}
			}
			out := filepath.Join(t.TempDir(), "dist")
			r := runBuild(t, src, append([]string{noEngine}, c.env...), "all", "--out", out)
			last := r.lastLines(1)
			if r.code == 0 || !strings.Contains(last, c.want) || !strings.HasPrefix(last, "build: error: ") {
				t.Errorf("want a non-zero exit and the last line to say %q\n%s", c.want, r)
			}
			if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n > 0 {
				t.Errorf("want one line, got %d:\n%s", n+1, r.stderr)
			}
			assertNotExists(t, out)
		})
	}
}

func replaceIn(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	writeFile(t, path, strings.Replace(string(b), old, new, 1))
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}
