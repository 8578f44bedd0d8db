package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ReproduceCmd rebuilds a commit the way CodeBuild built it.
type ReproduceCmd struct {
	Commit    string `arg:"" help:"Commit to rebuild: what CODEBUILD_RESOLVED_SOURCE_VERSION was (any git revision; resolved to its SHA)." placeholder:"COMMIT"`
	Repo      string `help:"Git repository holding the commit (default: ${default})." default:"." placeholder:"DIR"`
	BaseImage string `help:"Base image, as the CodeBuild project set it (default: ${default})." env:"BUILD_BASE_IMAGE" default:"python:3.13-slim" placeholder:"IMAGE"`
	Step      string `help:"Run only this step: lint, test, image; all runs the three (default: ${default})." enum:"all,lint,test,image" default:"all"`
	Expect    string `help:"Fail unless the image digest equals this one: sha256:... or repo@sha256:... (image.env's IMAGE, build.json's digest)." placeholder:"DIGEST"`
}

// Run checks the commit out into a temporary git worktree (the working tree
// and index are not touched; git only records the worktree under .git/worktrees
// until it is removed), then runs lint, test and image there with the commit
// as the revision — the same inputs `all` has in a checkout of that commit —
// and prints the image's manifest digest: the digest a push of it gets.
func (c *ReproduceCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, out stdoutW, rep *report) error {
	sha, err := gitOut(ctx, c.Repo, "rev-parse", "--verify", "--end-of-options", c.Commit+"^{commit}")
	if err != nil {
		return fmt.Errorf("commit %q not found in %s: %w (git fetch it first)", c.Commit, c.Repo, err)
	}
	tmp, err := os.MkdirTemp("", "build-reproduce-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	wt := filepath.Join(tmp, sha[:12])
	if _, err := gitOut(ctx, c.Repo, "worktree", "add", "--quiet", "--detach", wt, sha); err != nil {
		return fmt.Errorf("check out %s into a temporary worktree: %w", sha, err)
	}
	defer func() {
		// A fresh context: the run's may be cancelled, the cleanup must still happen.
		_, _ = gitOut(context.Background(), c.Repo, "worktree", "remove", "--force", wt)
	}()
	// The commit's time, for anything that stamps a build time (reproducible builds' convention).
	if os.Getenv("SOURCE_DATE_EPOCH") == "" {
		if ts, err := gitOut(ctx, c.Repo, "log", "-1", "--format=%ct", sha); err == nil {
			os.Setenv("SOURCE_DATE_EPOCH", ts)
		}
	}
	log.Info("reproducing", "commit", sha, "base_image", c.BaseImage, "step", c.Step)

	sf := SourceFlags{Source: wt, BaseImage: c.BaseImage}
	p, err := connect(ctx, g, log, sf, rep)
	if err != nil {
		return err
	}
	defer p.close()
	rep.inv = invocation{baseImage: c.BaseImage, revision: sha, reproduce: true}

	if c.Step == "all" || c.Step == "lint" {
		if _, err := p.lint(ctx); err != nil {
			return err
		}
	}
	if c.Step == "all" || c.Step == "test" {
		if _, err := p.test(ctx); err != nil {
			return err
		}
	}
	if c.Step != "all" && c.Step != "image" {
		return nil
	}
	if _, err := p.image(ctx, sha); err != nil {
		return err
	}
	facts, err := p.imageFacts(ctx)
	if err != nil {
		return err
	}
	rep.image = facts
	fmt.Fprintln(out, facts.Digest)
	if c.Expect != "" {
		want := c.Expect[strings.LastIndex(c.Expect, "@")+1:]
		if want != facts.Digest {
			return fmt.Errorf("commit %s rebuilt to %s, not the expected %s: the build is not reproducible (inputs that moved: base image %s? engine version?)",
				sha[:12], facts.Digest, want, c.BaseImage)
		}
		log.Info("digest matches", "digest", facts.Digest)
	}
	return nil
}

// gitOut runs git -C dir args and returns its trimmed stdout; the error
// carries git's stderr.
func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, oneLine(stderr.String()))
	}
	return strings.TrimSpace(string(b)), nil
}
