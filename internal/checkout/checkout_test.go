package checkout

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(cmd.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z", "GIT_AUTHOR_DATE=2026-01-02T03:04:05Z")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}

func TestRead(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	ctx := context.Background()
	dir := t.TempDir()
	if f := Read(ctx, dir); f.Commit != "" || f.Epoch != 0 || !f.Time.IsZero() {
		t.Errorf("not a checkout: %+v", f)
	}
	git(t, dir, "init", "-q")
	if f := Read(ctx, dir); f.Commit != "" || f.Epoch != 0 {
		t.Errorf("no commit yet: %+v", f)
	}
	git(t, dir, "commit", "-q", "--allow-empty", "-m", "one")
	head := git(t, dir, "rev-parse", "HEAD")
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := Read(ctx, dir)
	if f.Commit+"\n" != head || !f.Time.Equal(want) || f.Epoch != want.Unix() || !f.Created().Equal(want) {
		t.Errorf("checkout: %+v, want %s at %s", f, head, want)
	}
	if a := At(ctx, dir, f.Commit); a.Epoch != want.Unix() {
		t.Errorf("At: %+v", a)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1000")
	if f := Read(ctx, dir); f.Epoch != 1000 || f.Created().Unix() != 1000 || !f.Time.Equal(want) {
		t.Errorf("SOURCE_DATE_EPOCH wins for the epoch only: %+v", f)
	}
	if o := Origin(ctx, dir); o != "" {
		t.Errorf("no origin: %q", o)
	}
	git(t, dir, "remote", "add", "origin", "https://example.com/a/b.git")
	if o := Origin(ctx, dir); o != "https://example.com/a/b.git" {
		t.Errorf("origin: %q", o)
	}
}

// Read asks git once: HEAD and its time come from one process.
func TestReadStartsOneGitProcess(t *testing.T) {
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	git(t, dir, "init", "-q")
	git(t, dir, "commit", "-q", "--allow-empty", "-m", "one")
	shim, calls := t.TempDir(), filepath.Join(t.TempDir(), "calls")
	script := "#!/bin/sh\necho \"$*\" >> " + calls + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(shim, "git"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", shim+string(os.PathListSeparator)+os.Getenv("PATH"))
	if f := Read(context.Background(), dir); f.Commit == "" {
		t.Fatalf("no commit read: %+v", f)
	}
	b, _ := os.ReadFile(calls)
	if n := strings.Count(string(b), "\n"); n != 1 {
		t.Errorf("Read started %d git processes, want 1:\n%s", n, b)
	}
}
