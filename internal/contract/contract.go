// Package contract is everything the pipeline needs to know about an app,
// and nothing else: where it is in the repository, how its image is made,
// what port it listens on and how to tell that it serves, how it declares its
// dependencies, and how it is linted and tested. The pipeline hard-codes none
// of it: cmd/build fills an App from flags, BUILD_* variables and the
// repository's pipeline.yml (in that order of precedence), and Resolve checks
// it against the app's files and fills in what is detected.
//
// The keys and their kinds are Settings (settings.go), the one list of them; their defaults and
// meaning are documented in docs/app-contract.md, whose table a test checks against Settings.
package contract

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The ways to make the image.
const (
	BuildAuto       = "auto"       // dockerfile when the app has its Dockerfile, else native
	BuildDockerfile = "dockerfile" // the app's own Dockerfile, built by the engine
	BuildNative     = "native"     // the pipeline's slim, reproducible, non-root image
)

// The ways an app declares its dependencies.
const (
	DepsAuto         = "auto"         // uv.lock, else requirements.txt, else pyproject.toml's [project]
	DepsRequirements = "requirements" // pip install -r (runtime files, then the dev files)
	DepsPyproject    = "pyproject"    // PEP 621 [project] dependencies + extras / PEP 735 groups
	DepsUV           = "uv"           // uv sync --frozen from uv.lock
)

// The platforms an image can be built for (platforms: one image each, pushed
// as one OCI image index when there is more than one).
const (
	PlatformAMD64 = "linux/amd64"
	PlatformARM64 = "linux/arm64"
)

// HostPlatform is platforms' default: the platform of the host the build
// runs on (the engine's, too: CodeBuild and a laptop run both on one host).
func HostPlatform() string { return "linux/" + runtime.GOARCH }

// App is the contract of one app. Before Resolve it holds what was asked
// (auto, empty for "detect"); after, what the build uses.
type App struct {
	Dir        string // the app directory, relative to the repository root
	Name       string // the container's name on the instances and the image's title
	Build      string // BuildAuto, BuildDockerfile or BuildNative
	Dockerfile string // relative to Dir
	Target     string // the Dockerfile's stage to build ("" = the last)
	BuildArgs  map[string]string
	Command    []string // native: what the image runs (exec form)
	Port       int      // the port the app listens on in the container (0: EXPOSE of the Dockerfile)

	HealthPath     string        // GET this on Port must answer 2xx
	HealthTimeout  time.Duration // ... within this time after the container starts (smoke test)
	RequireNonRoot bool          // a smoke test that finds the image running as root fails

	BaseImage       string   // python for lint, tests and the native image
	Platforms       []string // the image's platforms, in PlatformKinds' order (empty: HostPlatform)
	Deps            string   // DepsAuto, DepsRequirements, DepsPyproject or DepsUV
	Requirements    []string // requirements: runtime files (relative to Dir)
	DevRequirements []string // requirements: lint/test files (empty: the usual names that exist)
	DevGroups       []string // pyproject/uv: extras or dependency groups with the lint/test tools (empty: all)
	PythonPath      string   // put on PYTHONPATH, relative to Dir ("" = src when there is one, else .)
	Lint            []string // the lint command, run in the app directory
	Test            []string // the test command, run in the app directory

	// HashPinned (resolved, requirements): a requirements or constraints
	// file in Dir carries --hash: pip then installs one file at a time.
	HashPinned bool `json:"-"`

	// Origin says where each setting (by its pipeline.yml key) came from, for
	// the messages that name it: "pipeline.yml line 7", "BUILD_COMMAND",
	// "--command" or "default"; nil or missing: not known.
	Origin map[string]string
}

// From is where the setting key came from, as a message names it: " (pipeline.yml
// line 7)", or "" when not known.
func (a App) From(key string) string {
	if o := a.Origin[key]; o != "" {
		return " (" + o + ")"
	}
	return ""
}

// DefaultBaseImage is base-image's default: ECR Public's copy of the official
// image (the same bytes as Docker Hub's, without its anonymous pull limits).
const DefaultBaseImage = "public.ecr.aws/docker/library/python:3.13-slim"

// DefaultDevRequirements are the dev requirement files used when none are named.
var DefaultDevRequirements = []string{"requirements-dev.txt", "requirements-test.txt", "dev-requirements.txt", "test-requirements.txt"}

var (
	// the characters image.env may carry unquoted (ci.ImageEnv): the hooks read the path from it
	healthPathRe = regexp.MustCompile(`^/[A-Za-z0-9@%+=:,./_-]*$`)
	nameRe       = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	argRe        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Resolve checks a against the repository at repo and returns it with the
// detected settings filled in: the way to build, the dependency spec and its
// files, the python path. Each problem is one line naming the setting, what
// is wrong and the fix.
func (a App) Resolve(repo string) (App, error) {
	r := a
	r.BuildArgs = copyMap(a.BuildArgs)
	if err := r.resolveDir(repo); err != nil {
		return App{}, err
	}
	dir := filepath.Join(repo, r.Dir)
	exists := func(rel string) bool { _, err := os.Stat(filepath.Join(dir, rel)); return err == nil }

	if !nameRe.MatchString(r.Name) {
		return App{}, fmt.Errorf("app-name %q: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit (it names the container and the image)", r.Name)
	}
	switch r.Build {
	case BuildAuto:
		r.Build = BuildNative
		if exists(r.Dockerfile) {
			r.Build = BuildDockerfile
		}
	case BuildDockerfile, BuildNative:
	default:
		return App{}, fmt.Errorf("image-build %q: must be %s", r.Build, oneOf(ImageBuilds))
	}
	if r.Build == BuildDockerfile {
		if err := inside("dockerfile", r.Dockerfile); err != nil {
			return App{}, err
		}
		if !exists(r.Dockerfile) {
			return App{}, fmt.Errorf("dockerfile %q: no such file in %s (image-build dockerfile builds it): add it, fix the path, or set image-build: native", r.Dockerfile, r.Dir)
		}
	}
	for k := range r.BuildArgs {
		if !argRe.MatchString(k) {
			return App{}, fmt.Errorf("build-args: %q is not a valid build argument name (letters, digits, _)", k)
		}
	}
	if r.Build == BuildNative {
		if len(r.Command) == 0 {
			return App{}, errors.New("image-build native needs command: what the image runs, e.g. command: [gunicorn, --bind, 0.0.0.0:8080, \"pkg:app\"] in pipeline.yml (or give the app a Dockerfile)")
		}
		if r.Port == 0 {
			return App{}, errors.New("image-build native needs container-port: the port the command listens on, e.g. container-port: 8080 in pipeline.yml")
		}
	}
	if r.Port < 0 || r.Port > 65535 {
		return App{}, fmt.Errorf("container-port %d: must be a port number from 1 to 65535", r.Port)
	}
	if !healthPathRe.MatchString(r.HealthPath) {
		return App{}, fmt.Errorf("health-path %q: must be a URL path starting with '/' (letters, digits and @%%+=:,./_-), e.g. /ready", r.HealthPath)
	}
	if r.HealthTimeout <= 0 {
		return App{}, fmt.Errorf("health-timeout %s: must be positive, e.g. 30s", r.HealthTimeout)
	}
	if strings.TrimSpace(r.BaseImage) == "" || strings.ContainsAny(r.BaseImage, " \t") {
		return App{}, fmt.Errorf("base-image %q: must be an image reference, e.g. python:3.13-slim", r.BaseImage)
	}
	plats, err := platforms(a.Platforms)
	if err != nil {
		return App{}, err
	}
	r.Platforms = plats
	if len(r.Lint) == 0 || len(r.Test) == 0 {
		return App{}, errors.New("lint-command and test-command must not be empty")
	}
	if err := r.resolveDeps(exists, dir); err != nil {
		return App{}, err
	}
	if r.PythonPath == "" {
		r.PythonPath = "."
		if st, err := os.Stat(filepath.Join(dir, "src")); err == nil && st.IsDir() {
			r.PythonPath = "src"
		}
	}
	if err := inside("python-path", r.PythonPath); err != nil {
		return App{}, err
	}
	r.PythonPath = path.Clean(r.PythonPath)
	return r, nil
}

func (r *App) resolveDir(repo string) error {
	if err := inside("app-dir", r.Dir); err != nil {
		return err
	}
	r.Dir = path.Clean(filepath.ToSlash(r.Dir))
	st, err := os.Stat(filepath.Join(repo, r.Dir))
	if err != nil || !st.IsDir() {
		return fmt.Errorf("app-dir %q: no such directory in %s: run from the repository root (or set --source / CODEBUILD_SRC_DIR), or set app-dir in pipeline.yml", r.Dir, repo)
	}
	return nil
}

func (r *App) resolveDeps(exists func(string) bool, dir string) error {
	hasProject := func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "pyproject.toml"))
		return err == nil && projectTable.Match(b)
	}
	if r.Deps == DepsAuto {
		switch {
		case exists("uv.lock"):
			r.Deps = DepsUV
		case allExist(exists, r.Requirements):
			r.Deps = DepsRequirements
		case hasProject():
			r.Deps = DepsPyproject
		default:
			return fmt.Errorf("no dependency file in %s: looked for uv.lock, %s and pyproject.toml with a [project] table: add one, or set deps and requirements in pipeline.yml",
				r.Dir, strings.Join(r.Requirements, ", "))
		}
	}
	switch r.Deps {
	case DepsRequirements:
		if len(r.Requirements) == 0 {
			return errors.New("deps requirements needs requirements: the runtime requirement files, e.g. [requirements.txt]")
		}
		for _, f := range append(append([]string{}, r.Requirements...), r.DevRequirements...) {
			if err := inside("requirements", f); err != nil {
				return err
			}
			if !exists(f) {
				return fmt.Errorf("requirements file %q: not found in %s: add it or fix requirements / dev-requirements in pipeline.yml", f, r.Dir)
			}
		}
		if len(r.DevRequirements) == 0 {
			for _, f := range DefaultDevRequirements {
				if exists(f) {
					r.DevRequirements = append(r.DevRequirements, f)
				}
			}
		}
		r.HashPinned = hashPinned(dir, r.DepFiles())
	case DepsPyproject:
		if !hasProject() {
			return fmt.Errorf("deps pyproject: %s/pyproject.toml has no [project] table (PEP 621): add one, or set deps: requirements", r.Dir)
		}
	case DepsUV:
		if !exists("uv.lock") || !exists("pyproject.toml") {
			return fmt.Errorf("deps uv: %s needs pyproject.toml and uv.lock (run `uv lock`), or set deps to requirements or pyproject", r.Dir)
		}
	default:
		return fmt.Errorf("deps %q: must be %s", r.Deps, oneOf(DepsKinds))
	}
	return nil
}

var projectTable = regexp.MustCompile(`(?m)^\s*\[project\]\s*$`)

// hashPinned says whether a file of dir matching patterns (DepFiles: every
// file an -r or -c may name beside them) holds a --hash option: one such
// file puts the pip that reads it in --require-hashes mode for every file
// it reads, so an unhashed requirements-dev.txt read by the same pip fails
// with "Hashes are required".
func hashPinned(dir string, patterns []string) bool {
	for _, pat := range patterns {
		files, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte("--hash")) {
				return true
			}
		}
	}
	return false
}

// DepFiles are the files of Dir that the dependency install reads: copied
// into the container before the source, so a code change does not re-run it.
func (a App) DepFiles() []string {
	switch a.Deps {
	case DepsUV:
		return []string{"pyproject.toml", "uv.lock"}
	case DepsPyproject:
		return []string{"pyproject.toml"}
	}
	// -r / -c includes are usually beside them: every requirements*/constraints* file goes in.
	return append(append([]string{"requirements*.txt", "constraints*.txt"}, a.Requirements...), a.DevRequirements...)
}

// platforms checks the platforms asked for and puts them in PlatformKinds'
// order (the order of the pushed index's manifests: the same set gives the
// same index); none is the host's.
func platforms(asked []string) ([]string, error) {
	if len(asked) == 0 {
		return []string{HostPlatform()}, nil
	}
	seen := map[string]bool{}
	for _, p := range asked {
		switch {
		case !slices.Contains(PlatformKinds, p):
			return nil, fmt.Errorf("platforms: %q is not a platform the pipeline builds: use %s (e.g. platforms: [%s, %s] in pipeline.yml)",
				p, oneOf(PlatformKinds), PlatformAMD64, PlatformARM64)
		case seen[p]:
			return nil, fmt.Errorf("platforms: %q is listed twice: keep one", p)
		}
		seen[p] = true
	}
	var out []string
	for _, p := range PlatformKinds {
		if seen[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

// MultiPlatform says whether the image is an index of several platforms'
// images (otherwise it is one image manifest, as it always was).
func (a App) MultiPlatform() bool { return len(a.Platforms) > 1 }

// Reproducible says whether the same commit gives the same image digest:
// the native image is written deterministically; a Dockerfile build is not.
func (a App) Reproducible() bool { return a.Build == BuildNative }

func inside(key, p string) error {
	clean := path.Clean(filepath.ToSlash(p))
	if p == "" || path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Errorf("%s %q: must be a relative path inside the repository", key, p)
	}
	return nil
}

func allExist(exists func(string) bool, files []string) bool {
	for _, f := range files {
		if !exists(f) {
			return false
		}
	}
	return len(files) > 0
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
