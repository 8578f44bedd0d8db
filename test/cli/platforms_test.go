package cli_test

// pipeline.yml's platforms (issue 21): more than one platform is one OCI image
// index, each platform's image built, smoke-tested (the foreign one under the
// engine's emulation) and named in the summary; bad input fails at the step
// and platform that broke, and pushes nothing.

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const mirrorBase = "127.0.0.1:5000/docker/library/python:3.13-slim" // the engine's mirror of the default base image

// foreignPlatform is the platform this host runs under emulation.
func foreignPlatform() string {
	if runtime.GOARCH == "arm64" {
		return "linux/amd64"
	}
	return "linux/arm64"
}

// needForeign skips unless the engine can run the foreign platform: its
// binfmt handler is registered and the mirror's base image has it.
func needForeign(t *testing.T) {
	t.Helper()
	needEnv(t)
	qemu := map[string]string{"linux/arm64": "qemu-aarch64", "linux/amd64": "qemu-x86_64"}[foreignPlatform()]
	if b, err := os.ReadFile("/proc/sys/fs/binfmt_misc/" + qemu); err != nil || !strings.HasPrefix(string(b), "enabled") {
		t.Skipf("no %s binfmt handler: the engine cannot run %s (dev/env.sh up registers it)", qemu, foreignPlatform())
	}
	if !basePlatforms(t, mirrorBase)[foreignPlatform()] {
		t.Skipf("the mirror's %s has no %s image (dev/env.sh up adds it)", mirrorBase, foreignPlatform())
	}
}

// basePlatforms are the platforms ref's registry serves.
func basePlatforms(t *testing.T, ref string) map[string]bool {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	out := map[string]bool{}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		out[cf.OS+"/"+cf.Architecture] = true
		return out
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		if d.Platform != nil {
			out[d.Platform.OS+"/"+d.Platform.Architecture] = true
		}
	}
	return out
}

// hostOnlyBase is the mirror's base image for this host's platform alone (one
// image manifest, as many registries serve), under the mirror's stage/ names.
func hostOnlyBase(t *testing.T) string {
	t.Helper()
	src, err := name.ParseReference(mirrorBase, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.NewTag("127.0.0.1:5000/stage/issue-21/python-"+runtime.GOARCH+"-only:3.13-slim", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, img); err != nil {
		t.Fatal(err)
	}
	return dst.String()
}

// indexPlatforms reads the pushed image's index: its platforms and their digests.
func indexPlatforms(t *testing.T, ref string) map[string]string {
	t.Helper()
	cfg := t.TempDir()
	host, _, _ := strings.Cut(ref, "/")
	auth := base64.StdEncoding.EncodeToString([]byte("ci-pusher:" + registryPassword(t)))
	writeFile(t, filepath.Join(cfg, "config.json"), `{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`)
	cmd := exec.Command(os.Getenv("WEBAPP_DEV_CRANE"), "manifest", "--insecure", ref)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crane manifest %s: %v\n%s", ref, err, out)
	}
	t.Logf("crane manifest %s:\n%s", ref, out)
	var idx v1.IndexManifest
	if err := json.Unmarshal(out, &idx); err != nil || !idx.MediaType.IsIndex() {
		t.Fatalf("%s is not an image index (%v): %s", ref, err, out)
	}
	plats := map[string]string{}
	for _, d := range idx.Manifests {
		plats[d.Platform.OS+"/"+d.Platform.Architecture] = d.Digest.String()
	}
	return plats
}

// Bad input fails at image, naming the platform; nothing is pushed and --out
// stays as it was: a base image without the platform (one manifest, served
// for any platform asked), and (with the foreign platform runnable) a
// Dockerfile RUN step that only works on this host's architecture.
func TestPlatformsBadInputPushesNothing(t *testing.T) {
	needEnv(t)
	both := "BUILD_PLATFORMS=linux/amd64,linux/arm64"
	cases := []struct {
		name string
		src  string
		env  []string
		want []string
	}{
		{"a base image without the platform", fixtureRepo(t, "native-bottle", nil), []string{both, "BUILD_BASE_IMAGE=" + hostOnlyBase(t)},
			[]string{"---- build failed in image", "has no " + foreignPlatform() + " image", "nothing was pushed"}},
	}
	cases = append(cases, struct {
		name string
		src  string
		env  []string
		want []string
	}{"a Dockerfile FROM an image without the platform", fixtureRepo(t, "dockerfile-starlette", func(dir string) {
		replaceIn(t, filepath.Join(dir, "app", "Dockerfile"), "FROM python:3.13-slim", "FROM "+hostOnlyBase(t))
	}), []string{both}, []string{"---- build failed in image", "image for " + foreignPlatform() + " (its /bin/sh is", "its FROM image has no " + foreignPlatform() + " image"}})
	if basePlatforms(t, mirrorBase)[foreignPlatform()] {
		machine := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
		cases = append(cases, struct {
			name string
			src  string
			env  []string
			want []string
		}{"a RUN step for one architecture", fixtureRepo(t, "dockerfile-starlette", func(dir string) {
			replaceIn(t, filepath.Join(dir, "app", "Dockerfile"), "\nCOPY ", "\nRUN test \"$(uname -m)\" = "+machine+"\nCOPY ")
		}), []string{both}, []string{"---- build failed in image", "RUN test \"$(uname -m)\" = " + machine, foreignPlatform() + " (under emulation)"}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { buildFailsPushingNothing(t, c.src, "platforms", c.env, c.want, foreignPlatform()) })
	}
}

// `all` with both platforms pushes one image index (crane manifest lists
// both), smoke-tests each (the summary says which ran under emulation),
// writes the index's digest into image.env and build.json with each
// platform's, and signs each platform's image; built again, the same commit
// gives the same index digest.
func TestPlatformsPushOneIndex(t *testing.T) {
	needForeign(t)
	src := fixtureRepo(t, "native-bottle", nil)
	env := []string{"BUILD_PLATFORMS=linux/amd64,linux/arm64"}
	var digests []string
	for i := range 2 {
		out := filepath.Join(t.TempDir(), "dist")
		repo := uniqueRepo("platforms")
		r := runBuild(t, src, append([]string{"BUILD_IMAGE_REPO=" + repo}, env...), "all", "--out", out, "--force")
		if r.code != 0 {
			t.Fatalf("build %d failed\n%s", i+1, r)
		}
		sum := summary(r)
		t.Logf("build %d:\n%s", i+1, sum)
		for _, w := range []string{"index    2 platforms", "linux/amd64", "linux/arm64", foreignPlatform() + " (under emulation, health timeout 3m20s: 10× 20s): GET"} {
			if !strings.Contains(sum, w) {
				t.Errorf("summary lacks %q", w)
			}
		}
		b := readBuildJSON(t, out)
		imageEnv := readImageEnv(t, out)
		if imageEnv["IMAGE"] != b.Image || !strings.HasSuffix(b.Image, "@"+b.Digest) {
			t.Errorf("image.env IMAGE=%s, build.json image %s digest %s", imageEnv["IMAGE"], b.Image, b.Digest)
		}
		plats := indexPlatforms(t, b.Image)
		if len(plats) != 2 || plats["linux/amd64"] == "" || plats["linux/arm64"] == "" {
			t.Fatalf("the pushed index lists %v", plats)
		}
		if os.Getenv("BUILD_SIGNING_KEY") != "" && os.Getenv("WEBAPP_DEV_COSIGN") != "" {
			for plat, d := range plats {
				if out, ok := cosign(t, "verify", "--key", imageEnv["SIGNING_KEY"], repo+"@"+d); !ok {
					t.Errorf("cosign verify of the %s image %s: %s", plat, d, out)
				}
			}
		}
		digests = append(digests, b.Digest)
	}
	if digests[0] != digests[1] {
		t.Errorf("the same commit gave index %s, then %s", digests[0], digests[1])
	}
}

// A smoke test that fails only on the foreign platform names it; nothing is pushed.
func TestPlatformsForeignSmokeFailureNamesIt(t *testing.T) {
	needForeign(t)
	machine := map[string]string{"linux/arm64": "aarch64", "linux/amd64": "x86_64"}[foreignPlatform()]
	src := fixtureRepo(t, "native-bottle", nil)
	repo := uniqueRepo("platforms")
	head := strings.TrimSpace(gitOut(t, src, "rev-parse", "HEAD"))
	cmd := `python -c "import os, platform, sys; platform.machine() == '` + machine + `' and sys.exit(3); ` +
		`os.execvp('waitress-serve', ['waitress-serve', '--listen=0.0.0.0:9090', 'shop:app'])"`
	r := runBuild(t, src, []string{"BUILD_IMAGE_REPO=" + repo, "BUILD_PLATFORMS=linux/amd64,linux/arm64", "BUILD_COMMAND=" + cmd}, "all",
		"--out", filepath.Join(t.TempDir(), "dist"))
	if r.code == 0 {
		t.Fatalf("build should fail\n%s", r)
	}
	last := r.lastLines(1)
	want := foreignPlatform() + " (under emulation): smoke test: the container exited 3"
	if !strings.Contains(r.stderr, "---- build failed in smoke") || !strings.Contains(last, want) {
		t.Errorf("last line %q: want it to say %q\n%s", last, want, r)
	}
	if tagExists(t, repo, head) {
		t.Errorf("%s:%s was pushed", repo, head)
	}
}
