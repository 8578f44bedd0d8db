// Package ci builds the Dagger graph of the webapp pipeline.
//
// Every function here only DESCRIBES work: it returns a *dagger.Container,
// *dagger.Directory or a string and never calls Sync, Stdout, Export or
// Publish. The command in cmd/build decides what to run and when.
package ci

import (
	"path"
	"regexp"
	"strings"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/internal/contract"
)

// Paths inside the containers.
const (
	SrcDir       = "/src"             // app source in the lint/test container
	AppDir       = "/app"             // app source in the native runtime image
	VenvDir      = "/opt/venv"        // virtualenv in every container
	ToolsDir     = "/opt/ci"          // the pipeline's own tools (uv) in the deps container, outside the venv
	PycDir       = "/root/.cache/pyc" // the lint/test commands' bytecode (PYTHONPYCACHEPREFIX, a cache volume)
	ReportsDir   = "/tmp/reports"
	PytestReport = ReportsDir + "/pytest.xml" // JUnit XML pytest writes (PYTEST_ADDOPTS)
	User         = "10001:10001"              // numeric, so the base image needs no useradd
)

// UVVersion is the uv that installs uv.lock apps (pinned like every tool the pipeline brings).
const UVVersion = "0.13.9"

// sourceExclude keeps caches, virtualenvs and build outputs out of the upload.
var sourceExclude = []string{
	".git", ".venv", "venv", "**/__pycache__", "**/.pytest_cache", "**/*.pyc",
	"dist", "build", "*.egg-info", ".mypy_cache", ".tox", ".ruff_cache",
}

// SourceExclude is the upload's exclusion list (the up-to-date check mirrors it).
func SourceExclude() []string { return append([]string(nil), sourceExclude...) }

// Source is the app directory (appDir, on the host) uploaded without caches
// or build outputs.
func Source(c *dagger.Client, appDir string) *dagger.Directory {
	return c.Host().Directory(appDir, dagger.HostDirectoryOpts{Exclude: sourceExclude})
}

// PipCache is the shared pip download/wheel cache for one base image: its name
// says what it holds and for which Python ("pip-cache-python-3.13-slim").
func PipCache(c *dagger.Client, baseImage string) *dagger.CacheVolume {
	return c.CacheVolume("pip-cache-" + slug(baseImage))
}

// PycCache holds the bytecode the lint and test commands' python writes
// (PYTHONPYCACHEPREFIX) for one base image ("pyc-cache-python-3.13-slim").
func PycCache(c *dagger.Client, baseImage string) *dagger.CacheVolume {
	return c.CacheVolume("pyc-cache-" + slug(baseImage))
}

// UVCache is uv's cache for one base image ("uv-cache-python-3.13-slim").
func UVCache(c *dagger.Client, baseImage string) *dagger.CacheVolume {
	return c.CacheVolume("uv-cache-" + slug(baseImage))
}

// venv is the base image with an empty virtualenv at /opt/venv on PATH: the
// base image's manifest for platform ("": the engine's own platform).
func venv(c *dagger.Client, baseImage string, platform dagger.Platform) *dagger.Container {
	return from(c, baseImage, platform).
		WithEnvVariable("PYTHONDONTWRITEBYTECODE", "1").
		WithEnvVariable("PYTHONUNBUFFERED", "1").
		WithEnvVariable("PIP_DISABLE_PIP_VERSION_CHECK", "1").
		WithEnvVariable("PIP_NO_INPUT", "1").
		WithEnvVariable("PIP_PROGRESS_BAR", "off").
		WithExec([]string{"python3", "-m", "venv", VenvDir}).
		WithEnvVariable("VIRTUAL_ENV", VenvDir).
		WithEnvVariable("PATH", VenvDir+"/bin:${PATH}", dagger.ContainerWithEnvVariableOpts{Expand: true})
}

// from is the base image's manifest for platform; "" is the engine's own
// platform, and the query is then exactly a single-platform build's (the same
// cache keys, the same digests as before platforms existed). Another platform
// runs its execs under the engine's emulation (qemu binfmt handlers).
func from(c *dagger.Client, baseImage string, platform dagger.Platform) *dagger.Container {
	return Emulated(c.Container(dagger.ContainerOpts{Platform: platform}).From(baseImage), platform)
}

// QemuCPU is the CPU the emulator (qemu-user, through binfmt_misc) models for
// an arm64 program: qemu's default "max", with the implementation-defined
// pointer-authentication algorithm instead of the architected QARMA5, which
// qemu computes slowly in software, and Debian's arm64 python signs every
// return address. Measured on the dev dockerd (qemu 7.2), python3 importing
// json, ssl, email, asyncio and http.client: 35-39 s with the default, 6-9 s
// with this. The program runs the same (pointer authentication works; only
// its keys' algorithm differs). qemu (6.0 and later) reads QEMU_CPU from the
// environment of the program it runs; nothing else does.
const QemuCPU = "max,pauth-impdef=on"

// Emulated is ctr with what the emulator of an arm64 platform reads set
// (QEMU_CPU); ctr itself for any other platform, and for "" (the engine's
// own: nothing emulated).
func Emulated(ctr *dagger.Container, platform dagger.Platform) *dagger.Container {
	if strings.HasPrefix(string(platform), "linux/arm64") {
		return ctr.WithEnvVariable("QEMU_CPU", QemuCPU)
	}
	return ctr
}

// withPip runs args with the pip cache mounted (not part of any layer).
func withPip(c *dagger.Client, ctr *dagger.Container, baseImage string, args ...string) *dagger.Container {
	return ctr.
		WithMountedCache("/root/.cache/pip", PipCache(c, baseImage)).
		WithExec(args).
		WithoutMount("/root/.cache/pip")
}

// withUV installs the pinned uv into its own venv (never into the app's),
// then runs `uv args...` on the app's venv with uv's cache mounted.
func withUV(c *dagger.Client, ctr *dagger.Container, baseImage string, args ...string) *dagger.Container {
	ctr = withPip(c, ctr.WithExec([]string{"python3", "-m", "venv", ToolsDir}), baseImage,
		ToolsDir+"/bin/pip", "install", "uv=="+UVVersion)
	return ctr.
		WithEnvVariable("UV_PROJECT_ENVIRONMENT", VenvDir).
		WithEnvVariable("UV_PYTHON_DOWNLOADS", "never").
		WithEnvVariable("UV_LINK_MODE", "copy").
		// The base image's CA store, as pip uses it (uv bundles its own roots otherwise).
		WithEnvVariable("UV_SYSTEM_CERTS", "1").
		WithMountedCache("/root/.cache/uv", UVCache(c, baseImage)).
		WithExec(append([]string{ToolsDir + "/bin/uv"}, args...)).
		WithoutMount("/root/.cache/uv")
}

// depFiles is a directory holding only the app's dependency declarations.
func depFiles(c *dagger.Client, app contract.App, src *dagger.Directory) *dagger.Directory {
	return c.Directory().WithDirectory(".", src, dagger.DirectoryWithDirectoryOpts{Include: app.DepFiles()})
}

// pipInstall is a pip install of the app's dependencies, with args. No bytecode
// from pip: the image compiles its own, deterministically, and lint and test
// read theirs from PYTHONPYCACHEPREFIX (Deps), where python never looks for
// a __pycache__ beside the sources; compiling the whole venv was ~1 CPU-s of
// every dependency change for nothing.
func pipInstall(args ...string) []string {
	return append([]string{"pip", "install", "--no-compile"}, args...)
}

// installDeps installs what the app declares into the venv of ctr, whose
// working directory holds the dependency files: the runtime dependencies,
// and with dev also the lint/test tools.
func installDeps(c *dagger.Client, ctr *dagger.Container, app contract.App, dev bool) *dagger.Container {
	switch app.Deps {
	case contract.DepsUV:
		args := []string{"sync", "--frozen", "--no-install-project"}
		switch {
		case !dev:
			args = append(args, "--no-dev")
		case len(app.DevGroups) == 0:
			args = append(args, "--all-groups", "--all-extras")
		default:
			for _, g := range app.DevGroups {
				args = append(args, "--group", g)
			}
		}
		return withUV(c, ctr, app.BaseImage, args...)
	case contract.DepsPyproject:
		list, reqs := []string{"python3", "/ci/pydeps.py", "pyproject.toml"}, "/tmp/runtime-requirements.txt"
		if dev {
			list, reqs = append(append(list, "--dev"), app.DevGroups...), "/tmp/dev-requirements.txt"
		}
		ctr = ctr.WithMountedDirectory("/ci", toolsDir(c)).
			WithExec(list, dagger.ContainerWithExecOpts{RedirectStdout: reqs}).
			WithoutMount("/ci")
		return withPip(c, ctr, app.BaseImage, pipInstall("-r", reqs)...)
	}
	files := app.Requirements
	if dev {
		files = append(append([]string{}, files...), app.DevRequirements...)
	}
	// One pip for all the files (one start, one resolution: ~1.5 s less on
	// every dependency change and cold build than a pip per file), unless a
	// file has hashes (pip-compile --generate-hashes, poetry export): they
	// put a pip in --require-hashes mode for every file it reads, and an
	// unhashed requirements-dev.txt would then fail with "Hashes are
	// required"; then one pip per file, in order, as developers run them.
	if !app.HashPinned {
		var args []string
		for _, r := range files {
			args = append(args, "-r", r)
		}
		return withPip(c, ctr, app.BaseImage, pipInstall(args...)...)
	}
	for _, r := range files {
		ctr = withPip(c, ctr, app.BaseImage, pipInstall("-r", r)...)
	}
	return ctr
}

// Deps is the lint/test container: base image, venv with the app's runtime
// AND lint/test dependencies, then the source in /src (the working
// directory, with the python path on PYTHONPATH). Only the dependency files
// are copied before the install runs, so a code-only change does not re-run it.
func Deps(c *dagger.Client, app contract.App, src *dagger.Directory) *dagger.Container {
	ctr := venv(c, app.BaseImage, ""). // lint and tests run once, on the build host's platform
						WithDirectory(SrcDir, depFiles(c, app, src)).
						WithWorkdir(SrcDir)
	return installDeps(c, ctr, app, true).
		WithEnvVariable("PYTHONPATH", path.Join(SrcDir, app.PythonPath)).
		// Every python start compiles what it imports that has no
		// bytecode yet: the base image, like the official one, ships
		// none for the standard library, and a lint or test exec's
		// writes are gone with it. A cache volume keeps the bytecode
		// (the prefix tree, not __pycache__ beside the sources) for the
		// next commit's lint and test; a cache mount is not part of an
		// exec's cache key, and python writes each .pyc atomically.
		WithMountedCache(PycDir, PycCache(c, app.BaseImage)).
		WithEnvVariable("PYTHONPYCACHEPREFIX", PycDir).
		WithoutEnvVariable("PYTHONDONTWRITEBYTECODE").
		WithDirectory(SrcDir, src)
}

// Lint runs the app's lint command in /src. Any exit code is accepted so
// the caller can read the exit code and output.
func Lint(deps *dagger.Container, app contract.App) *dagger.Container {
	return deps.WithExec(app.Lint, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
}

// PytestOpts make any pytest the test command starts (directly, through
// tox, make or a script) write its JUnit report where Test reads it.
const PytestOpts = "-p no:cacheprovider -rfE --junitxml=" + PytestReport + " -o junit_family=xunit2"

// Test runs the app's test command in /src; pytest writes JUnit XML to
// PytestReport (PYTEST_ADDOPTS). Any exit code is accepted so the caller can
// read the report and the output even on failure.
func Test(deps *dagger.Container, app contract.App) *dagger.Container {
	return deps.
		WithEnvVariable("PYTEST_ADDOPTS", PytestOpts).
		WithExec(app.Test, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
}

// Bundle is the CodeDeploy revision without image.env: appspec.yml at the
// root and the named hook scripts (file names in root/scripts) with mode
// 0755, whatever mode they had in the source (a CODE_ZIP may lose it).
// image.env names the pushed digest, so the caller adds it after publishing
// (see ImageEnv).
func Bundle(c *dagger.Client, root *dagger.Directory, scripts []string) *dagger.Directory {
	dir := c.Directory().WithFile("appspec.yml", root.File("appspec.yml"))
	for _, name := range scripts {
		dir = dir.WithFile("scripts/"+name, root.File("scripts/"+name), dagger.DirectoryWithFileOpts{Permissions: 0o755})
	}
	return dir
}

var nonSlug = regexp.MustCompile(`[^a-z0-9.]+`)

// slug turns an image reference into a cache-volume-safe name:
// "python:3.13-slim" → "python-3.13-slim".
func slug(s string) string {
	s = s[strings.LastIndex(s, "/")+1:] // drop registry and namespace
	return strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
}
