package build

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/acme/webapp-pipeline/internal/attest"
	"github.com/acme/webapp-pipeline/internal/checkout"
	"github.com/acme/webapp-pipeline/internal/gitx"
)

// Reproduce is one `reproduce` run: a commit of a repository, the step to
// run, and the digest it must give.
type Reproduce struct {
	Repo   string // a git repository holding Commit
	Commit string // any revision; resolved to its SHA
	Step   string // all, lint, test, image
	Expect string // sha256:... or repo@sha256:...; "" checks nothing
	// Claims: with Expect as repo@sha256:... and a SigningKey, the provenance
	// published with that image (its signature checked with the key's public
	// half) must name the same source, parameters and materials as the
	// rebuild's. Login and Region say how to read it from the registry.
	Claims Publish
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
	app, err := b.App.Resolve(wt)
	if err != nil {
		return fmt.Errorf("commit %s: %w", sha[:12], err)
	}
	// The commit's facts (its time dates the image), passed on as values: the
	// same the build of a checkout of that commit reads.
	b.App, b.Source, b.Checkout = app, wt, checkout.At(ctx, r.Repo, sha)
	b.Log.Info("reproducing", "commit", sha, "build", app.Build, "base_image", app.BaseImage, "step", r.Step)

	p, err := connect(ctx, b)
	if err != nil {
		return err
	}
	defer p.close()
	b.Report.reproducing(app.BaseImage, sha)

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
	layoutDir := filepath.Join(tmp, "layout")
	img, err := p.image(ctx, sha, layoutDir)
	if err != nil {
		return err
	}
	smoke, err := p.smoke(ctx, img, nil)
	if err != nil {
		return err
	}
	if img.platforms != nil { // the index's digest is known once it is written over the platforms' layouts
		if err := p.exportLayouts(ctx, img, layoutDir); err != nil {
			return fmt.Errorf("export the image layouts: %w", err)
		}
	}
	facts, err := img.facts(ctx)
	if err != nil {
		return err
	}
	facts.Build, facts.Reproducible, facts.Smoke = app.Build, app.Reproducible(), smoke
	b.Report.built(facts)
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
		return r.checkClaims(ctx, p, sha)
	}
	return nil
}

// checkClaims compares the signed provenance published with r.Expect with
// the rebuild's (attest.SameMaterials: source, parameters, base image,
// materials; builder versions and times may differ).
func (r Reproduce) checkClaims(ctx context.Context, p *session, sha string) error {
	repo, _, ok := strings.Cut(r.Expect, "@")
	if !ok || r.Claims.SigningKey == "" {
		p.log.Info("provenance not checked: give --expect as repo@sha256:... and --signing-key (BUILD_SIGNING_KEY)")
		return nil
	}
	pub, err := attest.KMSPublicKey(ctx, r.Claims.SigningKey, regionOf(r.Claims))
	if err != nil {
		return err
	}
	pf := r.Claims
	pf.ImageRepo = repo
	user, password, err := registryCreds(ctx, pf)
	if err != nil {
		return err
	}
	published, err := attest.FetchProvenance(ctx, r.Expect, pub, basicAuth(user, password))
	if err != nil {
		return fmt.Errorf("commit %s rebuilt to the same digest, but its provenance cannot be checked: %w", sha[:12], err)
	}
	var st struct {
		Predicate struct {
			BuildDefinition struct {
				ExternalParameters struct {
					Source struct{ Repository, Commit string }
				}
			}
		}
	}
	if err := json.Unmarshal(published, &st); err != nil {
		return fmt.Errorf("the provenance of %s: %w", r.Expect, err)
	}
	src := st.Predicate.BuildDefinition.ExternalParameters.Source
	if src.Commit != sha {
		return fmt.Errorf("the provenance of %s names commit %s, not %s: this image was built from another commit", r.Expect, src.Commit, sha)
	}
	// The repository is a claim the rebuild cannot re-derive (the commit it checks).
	prov, err := p.provenance(ctx, r.Expect, src.Repository, sha, sha)
	if err != nil {
		return err
	}
	rebuilt, err := prov.Statement()
	if err != nil {
		return err
	}
	if err := attest.SameMaterials(published, rebuilt); err != nil {
		return fmt.Errorf("commit %s rebuilt to the same digest, but its signed provenance does not match the rebuild: %w", sha[:12], err)
	}
	p.log.Info("provenance matches", "image", r.Expect, "signed_by", r.Claims.SigningKey, "repository", src.Repository)
	return nil
}
