package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_AUTHOR_DATE=2024-05-01T12:00:00Z", "GIT_COMMITTER_DATE=2024-05-01T12:00:00Z")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestReproduceMatchesTheOriginalDigest builds a commit as CodeBuild does (all, from a
// checkout, pushing), then dirties the working tree and runs `reproduce <commit>`: it must
// print the same image digest, pass --expect, and leave the working tree and worktree list
// as they were.
func TestReproduceMatchesTheOriginalDigest(t *testing.T) {
	needEnv(t)
	t.Parallel()
	repo := checkout(t)
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "the commit CodeBuild built")
	sha := git(t, repo, "rev-parse", "HEAD")

	r := runBuild(t, repo, []string{"BUILD_IMAGE_REPO=" + uniqueRepo("repro"), "CODEBUILD_RESOLVED_SOURCE_VERSION="},
		"all", "--out", filepath.Join(t.TempDir(), "dist"))
	if r.code != 0 {
		t.Fatalf("original build failed\n%s", r)
	}
	_, digest, _ := strings.Cut(strings.TrimSpace(r.stdout), "@")

	// Work in progress that reproduce must neither use nor touch.
	writeFile(t, filepath.Join(repo, "app", "webapp", "wip.py"), "WIP = True\n")
	writeFile(t, filepath.Join(repo, "app", "tests", "test_health.py"), "def test_wip():\n    assert False\n")
	status := git(t, repo, "status", "--porcelain")

	r = runBuild(t, repo, nil, "reproduce", sha, "--expect", digest)
	if r.code != 0 {
		t.Fatalf("reproduce %s (expect %s) failed\n%s", sha, digest, r)
	}
	if got := strings.TrimSpace(r.stdout); got != digest {
		t.Errorf("reproduced digest %s, original %s\n%s", got, digest, r)
	}
	t.Logf("original and reproduced: %s\n%s", digest, r.lastLines(12))
	if after := git(t, repo, "status", "--porcelain"); after != status {
		t.Errorf("working tree changed:\nbefore %s\nafter  %s", status, after)
	}
	if wts := git(t, repo, "worktree", "list", "--porcelain"); strings.Count(wts, "worktree ") != 1 {
		t.Errorf("temporary worktree left behind:\n%s", wts)
	}
}
