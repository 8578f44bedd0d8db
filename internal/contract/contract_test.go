package contract

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func repo(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// defaults are the CLI's defaults.
func defaults() App {
	return App{Dir: "app", Name: "webapp", Build: BuildAuto, Dockerfile: "Dockerfile", HealthPath: "/",
		HealthTimeout: 30 * time.Second, BaseImage: "python:3.13-slim", Deps: DepsAuto,
		Requirements: []string{"requirements.txt"}, Lint: []string{"flake8", "."}, Test: []string{"python", "-m", "pytest"}}
}

func TestResolveDetects(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		files             map[string]string
		build, deps, path string
		dev               []string
	}{
		"dockerfile + requirements": {files: map[string]string{"app/Dockerfile": "FROM x", "app/requirements.txt": "", "app/requirements-dev.txt": ""},
			build: BuildDockerfile, deps: DepsRequirements, path: ".", dev: []string{"requirements-dev.txt"}},
		"uv, src layout": {files: map[string]string{"app/pyproject.toml": "[project]\n", "app/uv.lock": "", "app/src/x/__init__.py": ""},
			build: BuildNative, deps: DepsUV, path: "src"},
		"pyproject": {files: map[string]string{"app/pyproject.toml": "[tool.x]\n[project]\nname='a'\n"},
			build: BuildNative, deps: DepsPyproject, path: "."},
		"requirements beat a tool-only pyproject": {files: map[string]string{"app/pyproject.toml": "[tool.ruff]\n", "app/requirements.txt": ""},
			build: BuildNative, deps: DepsRequirements, path: "."},
	} {
		t.Run(name, func(t *testing.T) {
			a := defaults()
			a.Command, a.Port = []string{"srv"}, 8000
			r, err := a.Resolve(repo(t, c.files))
			if err != nil {
				t.Fatal(err)
			}
			if r.Build != c.build || r.Deps != c.deps || r.PythonPath != c.path || strings.Join(r.DevRequirements, ",") != strings.Join(c.dev, ",") {
				t.Errorf("resolved %+v", r)
			}
		})
	}
}

// Each bad contract is one line naming the setting and the fix.
func TestResolveBadInput(t *testing.T) {
	t.Parallel()
	ok := map[string]string{"app/requirements.txt": "", "app/Dockerfile": "FROM x"}
	for name, c := range map[string]struct {
		files map[string]string
		edit  func(*App)
		want  string
	}{
		"no app dir":             {map[string]string{}, func(a *App) {}, `app-dir "app": no such directory`},
		"app dir outside":        {ok, func(a *App) { a.Dir = "../x" }, `app-dir "../x": must be a relative path inside the repository`},
		"health path":            {ok, func(a *App) { a.HealthPath = "healthz" }, `health-path "healthz": must be a URL path starting with '/'`},
		"dockerfile missing":     {ok, func(a *App) { a.Build, a.Dockerfile = BuildDockerfile, "docker/Dockerfile" }, `dockerfile "docker/Dockerfile": no such file in app`},
		"no dependency file":     {map[string]string{"app/x.py": ""}, func(a *App) { a.Build = BuildNative; a.Command, a.Port = []string{"srv"}, 1 }, "no dependency file in app: looked for uv.lock, requirements.txt and pyproject.toml"},
		"native without command": {ok, func(a *App) { a.Build = BuildNative }, "image-build native needs command"},
		"native without port":    {ok, func(a *App) { a.Build, a.Command = BuildNative, []string{"srv"} }, "image-build native needs container-port"},
		"port range":             {ok, func(a *App) { a.Port = 70000 }, "container-port 70000: must be a port number"},
		"build arg name":         {ok, func(a *App) { a.BuildArgs = map[string]string{"A B": "1"} }, `build-args: "A B" is not a valid build argument name`},
		"missing dev file":       {ok, func(a *App) { a.DevRequirements = []string{"dev.txt"} }, `requirements file "dev.txt": not found in app`},
		"uv without lock":        {map[string]string{"app/pyproject.toml": "[project]\n", "app/Dockerfile": ""}, func(a *App) { a.Deps = DepsUV }, "deps uv: app needs pyproject.toml and uv.lock"},
		"bad name":               {ok, func(a *App) { a.Name = "Web App" }, `app-name "Web App"`},
	} {
		t.Run(name, func(t *testing.T) {
			a := defaults()
			c.edit(&a)
			_, err := a.Resolve(repo(t, c.files))
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with %q", err, c.want)
			}
		})
	}
}

// TestResolveHashPinned: a requirements or constraints file with --hash
// makes the install one pip per file (ci.installDeps); none, one pip.
func TestResolveHashPinned(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"no hashes", map[string]string{"app/requirements.txt": "flask==3.1.3\n", "app/requirements-dev.txt": "-r requirements.txt\npytest==9.2.0\n"}, false},
		{"hashed runtime file", map[string]string{"app/requirements.txt": "flask==3.1.3 \\\n    --hash=sha256:0123\n", "app/requirements-dev.txt": "pytest==9.2.0\n"}, true},
		{"hashed constraints beside them", map[string]string{"app/requirements.txt": "-c constraints.txt\nflask\n", "app/constraints.txt": "flask==3.1.3 --hash=sha256:0123\n"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := defaults()
			app.Deps, app.Command, app.Port = DepsRequirements, []string{"gunicorn", "app:app"}, 8080
			got, err := app.Resolve(repo(t, c.files))
			if err != nil {
				t.Fatal(err)
			}
			if got.HashPinned != c.want {
				t.Errorf("HashPinned = %v, want %v", got.HashPinned, c.want)
			}
		})
	}
}

// platforms: the host's by default; the allowed ones in one order; a typo or
// a duplicate is one line naming it.
func TestPlatforms(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(dir+"/app", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/app/requirements.txt", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	base := App{Dir: "app", Name: "x", Build: BuildNative, Dockerfile: "Dockerfile", Command: []string{"x"}, Port: 1,
		HealthPath: "/", HealthTimeout: 1, BaseImage: "python", Deps: DepsRequirements,
		Requirements: []string{"requirements.txt"}, Lint: []string{"l"}, Test: []string{"t"}}
	for _, c := range []struct {
		asked []string
		want  string
		err   string
	}{
		{nil, HostPlatform(), ""},
		{[]string{"linux/arm64"}, "linux/arm64", ""},
		{[]string{"linux/arm64", "linux/amd64"}, "linux/amd64 linux/arm64", ""},
		{[]string{"linux/arm"}, "", `platforms: "linux/arm" is not a platform the pipeline builds: use linux/amd64 or linux/arm64`},
		{[]string{"linux/amd64", "linux/amd64"}, "", `platforms: "linux/amd64" is listed twice`},
	} {
		a := base
		a.Platforms = c.asked
		r, err := a.Resolve(dir)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "\n")):
			t.Errorf("platforms %v: got %v, want one line with %q", c.asked, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("platforms %v: %v", c.asked, err)
		case c.err == "" && strings.Join(r.Platforms, " ") != c.want:
			t.Errorf("platforms %v resolved to %v, want %s", c.asked, r.Platforms, c.want)
		}
	}
}
