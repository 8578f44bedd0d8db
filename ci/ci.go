// Package ci builds the Dagger graph of the webapp pipeline.
//
// Every function here only DESCRIBES work: it returns a *dagger.Container,
// *dagger.Directory or a string and never calls Sync, Stdout, Export or
// Publish. The command in cmd/build decides what to run and when.
package ci

import (
	"regexp"
	"strings"

	"dagger.io/dagger"
)

// Paths inside the containers.
const (
	SrcDir       = "/src"      // app source in the lint/test container
	AppDir       = "/app"      // app source in the runtime image
	VenvDir      = "/opt/venv" // virtualenv in every container
	ReportsDir   = "/tmp/reports"
	PytestReport = ReportsDir + "/pytest.xml" // JUnit XML written by Test
	Port         = 8080
	User         = "10001:10001" // numeric, so the base image needs no useradd
)

// sourceExclude keeps caches, virtualenvs and build outputs out of the upload.
var sourceExclude = []string{
	".git", ".venv", "venv", "**/__pycache__", "**/.pytest_cache", "**/*.pyc",
	"dist", "build", "*.egg-info", ".mypy_cache", ".tox",
}

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

// venv is the base image with an empty virtualenv at /opt/venv on PATH.
func venv(c *dagger.Client, baseImage string) *dagger.Container {
	return c.Container().From(baseImage).
		WithEnvVariable("PYTHONDONTWRITEBYTECODE", "1").
		WithEnvVariable("PYTHONUNBUFFERED", "1").
		WithEnvVariable("PIP_DISABLE_PIP_VERSION_CHECK", "1").
		WithEnvVariable("PIP_NO_INPUT", "1").
		WithEnvVariable("PIP_PROGRESS_BAR", "off").
		WithExec([]string{"python3", "-m", "venv", VenvDir}).
		WithEnvVariable("VIRTUAL_ENV", VenvDir).
		WithEnvVariable("PATH", VenvDir+"/bin:${PATH}", dagger.ContainerWithEnvVariableOpts{Expand: true})
}

// pipInstall installs the given requirements files (paths inside the
// container) into the venv, with the pip cache mounted (not part of any layer).
func pipInstall(c *dagger.Client, ctr *dagger.Container, baseImage string, reqs ...string) *dagger.Container {
	args := []string{"pip", "install"}
	for _, r := range reqs {
		args = append(args, "-r", r)
	}
	return ctr.
		WithMountedCache("/root/.cache/pip", PipCache(c, baseImage)).
		WithExec(args).
		WithoutMount("/root/.cache/pip")
}

// Deps is the lint/test container: base image, venv with the runtime AND dev
// requirements, then the source in /src. Only requirements*.txt are copied
// before pip runs, so a code-only change does not re-run pip.
func Deps(c *dagger.Client, baseImage string, src *dagger.Directory) *dagger.Container {
	reqs := c.Directory().WithDirectory(".", src, dagger.DirectoryWithDirectoryOpts{
		Include: []string{"requirements*.txt"},
	})
	ctr := venv(c, baseImage).
		WithDirectory(SrcDir, reqs).
		WithWorkdir(SrcDir)
	return pipInstall(c, ctr, baseImage, "requirements.txt", "requirements-dev.txt").
		WithDirectory(SrcDir, src)
}

// Lint runs flake8 (default output format, config from setup.cfg / .flake8)
// over the source. Any exit code is accepted so the caller can read the exit
// code and output.
func Lint(deps *dagger.Container) *dagger.Container {
	return deps.WithExec(LintArgs, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
}

// LintArgs and TestArgs are the commands Lint and Test run (failure reports quote them).
var (
	LintArgs = []string{"flake8", "."}
	TestArgs = []string{"python", "-m", "pytest", "-p", "no:cacheprovider", "-rfE",
		"--junitxml=" + PytestReport, "-o", "junit_family=xunit2"}
)

// Test runs pytest and writes JUnit XML to PytestReport. Any exit code is
// accepted so the caller can read the report and the output even on failure.
func Test(deps *dagger.Container) *dagger.Container {
	// pytest creates ReportsDir for --junitxml: no separate mkdir exec (each
	// exec is a container start).
	return deps.
		WithExec(TestArgs, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
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
