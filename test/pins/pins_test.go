// Package pins_test checks that what is written down in more than one place agrees:
//   - the Dagger version: the Go SDK in go.mod, the dev engine (dev/versions.env) and the CLI
//     CodeBuild installs (buildspec.yml, which also derives the engine image from it; the
//     template must not name an engine version of its own). The SDK misbehaves with a CLI or
//     engine of another version, and a bump that misses one place would only show in CodeBuild.
//   - the Dagger CLI's tarball hash is pinned in buildspec.yml (not fetched beside the tarball);
//   - the template's default base image is the one the dev environment's mirror serves;
//   - the buildspec names no SSM parameter (the CodeBuild project defines them, once) and its
//     cache.paths keep the Go caches where its install phase puts them.
package pins_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("../../" + path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func find(t *testing.T, path, pattern string) []string {
	t.Helper()
	var found []string
	for _, m := range regexp.MustCompile(pattern).FindAllStringSubmatch(read(t, path), -1) {
		found = append(found, m[1])
	}
	if len(found) == 0 {
		t.Fatalf("%s: no match for %s", path, pattern)
	}
	return found
}

func TestDaggerVersionIsPinnedTheSameEverywhere(t *testing.T) {
	want := find(t, "go.mod", `(?m)^\s*dagger\.io/dagger v(\S+)`)[0]
	places := map[string][]string{
		"dev/versions.env": find(t, "dev/versions.env", `(?m)^DAGGER_VERSION=v(\S+)`),
		"buildspec.yml":    find(t, "buildspec.yml", `DAGGER_CLI_VERSION:\s*"?([0-9.]+)"?`),
	}
	for path, versions := range places {
		for _, v := range versions {
			if v != want {
				t.Errorf("%s pins Dagger %s, go.mod's SDK is %s: keep them equal", path, v, want)
			}
		}
	}
	// One place in the buildspec: the engine image and the engine-stop filter derive from it.
	if n := len(regexp.MustCompile(`engine:v[0-9]`).FindAllString(read(t, "buildspec.yml"), -1)); n != 0 {
		t.Errorf("buildspec.yml writes an engine version %d times: use v${DAGGER_CLI_VERSION}", n)
	}
	if strings.Contains(read(t, "infra/template.yml"), "registry.dagger.io/engine") {
		t.Error("infra/template.yml names the Dagger engine image: buildspec.yml derives it from DAGGER_CLI_VERSION")
	}
}

func TestDaggerCLIHashIsPinned(t *testing.T) {
	// one hash per architecture the build host may have (amd64, arm64: issue 21), each its own
	for _, v := range []string{"DAGGER_CLI_SHA256", "DAGGER_CLI_SHA256_ARM64", "SYFT_SHA256_ARM64"} {
		sum := find(t, "buildspec.yml", v+`:\s*"?([^"\s]*)"?`)[0]
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum) {
			t.Errorf("buildspec.yml %s %q is not a SHA-256", v, sum)
		}
	}
	if a, b := find(t, "buildspec.yml", `DAGGER_CLI_SHA256:\s*(\S+)`)[0], find(t, "buildspec.yml", `DAGGER_CLI_SHA256_ARM64:\s*(\S+)`)[0]; a == b {
		t.Error("buildspec.yml: the amd64 and arm64 Dagger CLI tarballs have the same SHA-256")
	}
	for _, line := range strings.Split(read(t, "buildspec.yml"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "- ") && strings.Contains(line, "checksums.txt") {
			t.Errorf("buildspec.yml fetches checksums.txt (%s): check the tarball against DAGGER_CLI_SHA256 only", strings.TrimSpace(line))
		}
	}
}

// The build program's default base image (the app contract's base-image), the sample's
// pipeline.yml and the dev mirror agree; the template leaves the choice to the app unless told.
func TestDefaultBaseImageIsServedByTheDevMirror(t *testing.T) {
	images := find(t, "dev/versions.env", `(?m)^PYTHON_IMAGES="([^"]+)"`)[0]
	def := find(t, "internal/contract/contract.go", `(?m)^const DefaultBaseImage = "([^"]+)"`)[0]
	tag, ok := strings.CutPrefix(def, "public.ecr.aws/docker/library/python:")
	if !ok || !strings.Contains(" "+images, " "+tag+"=") {
		t.Errorf("cmd/build --base-image defaults to %s; the dev mirror serves python:{%s} (dev/versions.env PYTHON_IMAGES, dev/env.sh publish_base_images)", def, images)
	}
	want := def
	if got := find(t, "pipeline.yml", `(?m)^base-image: (\S+)`)[0]; got != want {
		t.Errorf("pipeline.yml base-image is %s, want %s", got, want)
	}
	if def := find(t, "infra/template.yml", `(?m)^  BaseImage:\n(?:    .*\n)*?    Default: (\S+)`)[0]; def != `""` {
		t.Errorf("infra/template.yml BaseImage defaults to %s: it would override every app's pipeline.yml; want \"\"", def)
	}
}

func TestBuildspecNamesNoParameterAndCachesGo(t *testing.T) {
	raw := read(t, "buildspec.yml")
	var spec struct {
		Env struct {
			ParameterStore map[string]string `yaml:"parameter-store"`
		} `yaml:"env"`
		Phases map[string]struct {
			Commands []string `yaml:"commands"`
		} `yaml:"phases"`
		Cache struct {
			Paths []string `yaml:"paths"`
		} `yaml:"cache"`
	}
	if err := yaml.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	if len(spec.Env.ParameterStore) > 0 || strings.Contains(raw, "/webapp/registry") {
		t.Error("buildspec.yml names SSM parameters: the CodeBuild project's PARAMETER_STORE variables define them (infra/template.yml)")
	}
	// Each Go cache the install phase sets (export NAME="${NAME:-PATH}") is under a cache path.
	set := regexp.MustCompile(`(GOMODCACHE|GOCACHE)="\$\{(?:GOMODCACHE|GOCACHE):-([^}]+)\}"`)
	found := 0
	for _, c := range spec.Phases["install"].Commands {
		for _, m := range set.FindAllStringSubmatch(c, -1) {
			found++
			kept := false
			for _, p := range spec.Cache.Paths {
				if strings.TrimSuffix(p, "/**/*") == m[2] {
					kept = true
				}
			}
			if !kept {
				t.Errorf("%s=%s is not in cache.paths %v: the cache never keeps it", m[1], m[2], spec.Cache.Paths)
			}
		}
	}
	if found != 2 {
		t.Errorf("install sets %d of GOMODCACHE and GOCACHE; want both, so cache.paths can name them", found)
	}
}

// syft (the SBOM generator): dev/versions.env, internal/attest and the buildspec's install agree,
// and the buildspec downloads the release tarball and checks it against the SHA-256 it records
// before using it (a fresh CodeBuild host compiles nothing).
func TestSyftVersionIsPinnedTheSameEverywhere(t *testing.T) {
	want := find(t, "dev/versions.env", `(?m)^SYFT_VERSION=(\S+)`)[0]
	for path, pattern := range map[string]string{
		"buildspec.yml":           `SYFT_VERSION:\s*"?(v[0-9.]+)"?`,
		"internal/attest/sbom.go": `SyftVersion = "(v[0-9.]+)"`,
	} {
		if got := find(t, path, pattern)[0]; got != want {
			t.Errorf("%s pins syft %s, dev/versions.env %s: keep them equal", path, got, want)
		}
	}
	sum := find(t, "buildspec.yml", `SYFT_SHA256:\s*"?([^"\s]*)"?`)[0]
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum) {
		t.Errorf("buildspec.yml SYFT_SHA256 %q is not a SHA-256", sum)
	}
	spec := read(t, "buildspec.yml")
	if !strings.Contains(spec, `echo "$SYFT_SHA256  $SYFT_TGZ" | sha256sum --check --strict -`) {
		t.Error("buildspec.yml never checks the syft tarball against SYFT_SHA256")
	}
	if strings.Contains(spec, "go install") {
		t.Error("buildspec.yml builds a tool from source: CodeBuild downloads pinned releases")
	}
}
