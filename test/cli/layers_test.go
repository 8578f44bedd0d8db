package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitAt runs git in dir with author and committer time at (unix seconds).
func gitAt(t *testing.T, dir string, at int64, args ...string) string {
	t.Helper()
	when := fmt.Sprintf("@%d +0000", at)
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_AUTHOR_DATE="+when, "GIT_COMMITTER_DATE="+when)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// manifest is the pushed manifest of image (repo@digest), from the push registry.
type manifest struct {
	Layers []struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"layers"`
}

func pushedManifest(t *testing.T, image string) manifest {
	t.Helper()
	repo, digest, _ := strings.Cut(image, "@")
	host, path, _ := strings.Cut(repo, "/")
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, path, digest), nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	req.SetBasicAuth("ci-pusher", registryPassword(t))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m manifest
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK || len(m.Layers) != 3 {
		t.Fatalf("manifest of %s: HTTP %d, %v, %d layers (want 3)", image, resp.StatusCode, err, len(m.Layers))
	}
	return m
}

// TestCodeOnlyCommitChangesOnlyTheAppLayer: two real commits, a minute apart,
// the second changing one line of the app's code, each built as CodeBuild
// builds it (`all` in the checkout, the time from the commit): the pushed
// manifests share the base and venv layers, byte for byte; only the small
// app layer differs. The second build's SBOM is incremental (the first's
// scan of the shared layers is reused), and its summary says so; its
// runtime base layer is the one the first build kept in the memo (as a
// CodeBuild build gets it from the S3 cache), the same bytes.
func TestCodeOnlyCommitChangesOnlyTheAppLayer(t *testing.T) {
	needEnv(t)
	t.Parallel()
	src := checkout(t)
	repo := uniqueRepo("layers")
	env := []string{"BUILD_IMAGE_REPO=" + repo, "CODEBUILD_RESOLVED_SOURCE_VERSION=", "SOURCE_DATE_EPOCH=",
		"BUILD_CACHE_DIR=" + t.TempDir()} // the SBOM cache starts empty
	const t0 = int64(1767225600) // 2026-01-01T00:00:00Z
	gitAt(t, src, t0, "init", "-q", "-b", "main")
	gitAt(t, src, t0, "add", ".")
	gitAt(t, src, t0, "commit", "-q", "-m", "first")

	var images, sbomLines []string
	var fromMemo []bool
	for i := range 2 {
		if i == 1 {
			writeFile(t, filepath.Join(src, "app", "webapp", "codeonly.py"), "ANSWER = 42\n")
			gitAt(t, src, t0+60, "add", ".")
			gitAt(t, src, t0+60, "commit", "-q", "-m", "a code-only change")
		}
		r := runBuild(t, src, env, "all", "--out", filepath.Join(t.TempDir(), "dist"))
		if r.code != 0 {
			t.Fatalf("build of commit %d failed\n%s", i+1, r)
		}
		images = append(images, strings.TrimSpace(r.stdout))
		fromMemo = append(fromMemo, strings.Contains(r.stderr, `msg="runtime base layer from the memo"`))
		line := ""
		for _, l := range strings.Split(summary(r), "\n") {
			if strings.HasPrefix(l, "sbom ") {
				line = l
			}
		}
		sbomLines = append(sbomLines, line)
		t.Logf("commit %d: %s\n%s", i+1, images[i], summary(r))
	}
	a, b := pushedManifest(t, images[0]), pushedManifest(t, images[1])
	for i, what := range []string{"base", "venv", "app"} {
		t.Logf("%-4s layer: %s %9d B | %s %9d B", what, a.Layers[i].Digest[:19], a.Layers[i].Size, b.Layers[i].Digest[:19], b.Layers[i].Size)
	}
	if images[0] == images[1] {
		t.Fatalf("two commits gave the same image %s", images[0])
	}
	for i, what := range []string{"base", "venv"} {
		if a.Layers[i].Digest != b.Layers[i].Digest {
			t.Errorf("the code-only commit changed the %s layer: %s then %s", what, a.Layers[i].Digest, b.Layers[i].Digest)
		}
	}
	if a.Layers[2].Digest == b.Layers[2].Digest {
		t.Errorf("the code-only commit left the app layer as it was: %s", a.Layers[2].Digest)
	}
	if fromMemo[0] || !fromMemo[1] {
		t.Errorf("runtime base layer from the memo: first build (empty memo) %v, second %v; want false, true", fromMemo[0], fromMemo[1])
	}
	if !strings.Contains(sbomLines[0], "whole image") {
		t.Errorf("first build, empty SBOM cache: the sbom line should say syft scanned the whole image: %q", sbomLines[0])
	}
	if !strings.Contains(sbomLines[1], "incremental (2 lower layers") {
		t.Errorf("code-only commit: the sbom line should say it was incremental on the 2 shared layers: %q", sbomLines[1])
	}
}
