package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/acme/webapp-pipeline/internal/gitx"
)

// Reproduce is one `reproduce` run: a commit of a repository, the step to
// run, and the digest it must give.
type Reproduce struct {
	Repo   string // a git repository holding Commit
	Commit string // any revision; resolved to its SHA
	Step   string // all, lint, test, image
	Expect string // sha256:... or repo@sha256:...; "" checks nothing
}

// Run checks the commit out into a temporary git worktree (the working tree
// and index are not touched; git only records the worktree under
// .git/worktrees until it is removed), resolves b.App (the contract as the
// commit's pipeline.yml and the flags give it) against that checkout, then
// runs lint, test, image and smoke there with the commit as the revision —
// the same inputs `all` has in a checkout of that commit — and prints the
// image's manifest digest: the digest a push of it gets.
func (r Reproduce) Run(ctx context.Context, b Build, stdout io.Writer) error {
	sha, err := gitx.Out(ctx, r.Repo, "rev-parse", "--verify", "--end-of-options", r.Commit+"^{commit}")
	if err != nil {
		return fmt.Errorf("commit %q not found in %s: %w (git fetch it first)", r.Commit, r.Repo, err)
	}
	tmp, err := os.MkdirTemp("", "build-reproduce-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	wt := filepath.Join(tmp, sha[:12])
	if _, err := gitx.Out(ctx, r.Repo, "worktree", "add", "--quiet", "--detach", wt, sha); err != nil {
		return fmt.Errorf("check out %s into a temporary worktree: %w", sha, err)
	}
	defer func() {
		// A fresh context: the run's may be cancelled, the cleanup must still happen.
		_, _ = gitx.Out(context.Background(), r.Repo, "worktree", "remove", "--force", wt)
	}()
	// The commit's time, for anything that stamps a build time (reproducible builds' convention).
	if os.Getenv("SOURCE_DATE_EPOCH") == "" {
		if t, ok := gitx.CommitTime(ctx, r.Repo, sha); ok {
			os.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(t.Unix(), 10))
		}
	}
	app, err := b.App.Resolve(wt)
	if err != nil {
		return fmt.Errorf("commit %s: %w", sha[:12], err)
	}
	b.App, b.Source = app, wt
	b.Log.Info("reproducing", "commit", sha, "build", app.Build, "base_image", app.BaseImage, "step", r.Step)

	p, err := connect(ctx, b)
	if err != nil {
		return err
	}
	defer p.close()
	b.Report.inv = invocation{baseImage: app.BaseImage, revision: sha, reproduce: true}

	if r.Step == "all" || r.Step == "lint" {
		if _, err := p.lint(ctx); err != nil {
			return err
		}
	}
	if r.Step == "all" || r.Step == "test" {
		if _, err := p.test(ctx); err != nil {
			return err
		}
	}
	if r.Step != "all" && r.Step != "image" {
		return nil
	}
	if err := p.image(ctx, sha); err != nil {
		return err
	}
	smoke, err := p.smoke(ctx)
	if err != nil {
		return err
	}
	facts, err := p.imageFacts(ctx)
	if err != nil {
		return err
	}
	facts.Build, facts.Reproducible, facts.Smoke = app.Build, app.Reproducible(), smoke
	b.Report.image = facts
	fmt.Fprintln(stdout, facts.Digest)
	if r.Expect != "" {
		want := r.Expect[strings.LastIndex(r.Expect, "@")+1:]
		if want != facts.Digest {
			why := "inputs that moved: base image " + app.BaseImage + "? engine version?"
			if !app.Reproducible() {
				why = "a Dockerfile build is not reproducible (the engine stamps its own times): compare the SBOM or the layers instead"
			}
			return fmt.Errorf("commit %s rebuilt to %s, not the expected %s: the build is not reproducible (%s)",
				sha[:12], facts.Digest, want, why)
		}
		b.Log.Info("digest matches", "digest", facts.Digest)
	}
	return nil
}
