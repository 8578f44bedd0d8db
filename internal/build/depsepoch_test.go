package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/acme/webapp-pipeline/internal/checkout"
	"github.com/acme/webapp-pipeline/internal/contract"
)

// TestDepsEpoch: the venv layer is dated by the last commit that changed the
// app's dependency files, whatever later commits changed; a requirements
// file outside the app directory's top level does not count; outside a
// checkout it is the build's own time.
func TestDepsEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	ctx := context.Background()
	repo := t.TempDir()
	git := func(when string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.com", "GIT_AUTHOR_DATE=@"+when+" +0000", "GIT_COMMITTER_DATE=@"+when+" +0000")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(repo, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(when, msg string) {
		t.Helper()
		git(when, "add", "-A")
		git(when, "commit", "-q", "-m", msg)
	}
	app := contract.App{Dir: "app", Deps: contract.DepsRequirements, Requirements: []string{"requirements.txt"},
		DevRequirements: []string{"requirements-dev.txt"}}

	if got := depsEpoch(ctx, filepath.Join(repo, app.Dir), checkout.Read(ctx, repo).Epoch, app); got != 0 {
		t.Errorf("not a checkout: %d, want 0 (undated, as the commit time)", got)
	}
	git("1700000000", "init", "-q")
	write("app/requirements.txt", "flask==3.1.2\n")
	write("app/webapp.py", "x = 1\n")
	commit("1700000000", "app")
	write("app/webapp.py", "x = 2\n")
	write("app/tests/requirements.txt", "not the app's\n")
	commit("1700000100", "code only")
	if got := depsEpoch(ctx, filepath.Join(repo, app.Dir), checkout.Read(ctx, repo).Epoch, app); got != 1700000000 {
		t.Errorf("after a code-only commit: %d, want the requirements' commit 1700000000", got)
	}
	write("app/requirements-dev.txt", "pytest==8.4.2\n")
	commit("1700000200", "a dev requirement")
	write("app/webapp.py", "x = 3\n")
	commit("1700000300", "code only")
	if got := depsEpoch(ctx, filepath.Join(repo, app.Dir), checkout.Read(ctx, repo).Epoch, app); got != 1700000200 {
		t.Errorf("after a dev requirements commit then code: %d, want 1700000200", got)
	}
	// pyproject apps: only pyproject.toml counts, requirements files do not
	app.Deps = contract.DepsPyproject
	if got := depsEpoch(ctx, filepath.Join(repo, app.Dir), checkout.Read(ctx, repo).Epoch, app); got != 1700000300 {
		t.Errorf("pyproject app without a committed pyproject.toml: %d, want the commit time 1700000300", got)
	}
	write("app/pyproject.toml", "[project]\nname = \"x\"\n")
	commit("1700000400", "pyproject")
	write("app/webapp.py", "x = 4\n")
	commit("1700000500", "code only")
	if got := depsEpoch(ctx, filepath.Join(repo, app.Dir), checkout.Read(ctx, repo).Epoch, app); got != 1700000400 {
		t.Errorf("pyproject app: %d, want 1700000400", got)
	}
	// SOURCE_DATE_EPOCH earlier than the dependency commit: never later than the build's time
	t.Setenv("SOURCE_DATE_EPOCH", "1600000000")
	if got := depsEpoch(ctx, filepath.Join(repo, app.Dir), checkout.Read(ctx, repo).Epoch, app); got != 1600000000 {
		t.Errorf("SOURCE_DATE_EPOCH=1600000000: %d, want 1600000000", got)
	}
}
