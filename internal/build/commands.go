package build

import (
	"context"
	"fmt"
	"time"

	"github.com/acme/webapp-pipeline/ci"
)

// Lint runs the contract's lint command on the app.
func Lint(ctx context.Context, b Build) error {
	p, err := connect(ctx, b)
	if err != nil {
		return err
	}
	defer p.close()
	_, err = p.lint(ctx)
	return err
}

// Test runs the contract's test command on the app.
func Test(ctx context.Context, b Build) error {
	p, err := connect(ctx, b)
	if err != nil {
		return err
	}
	defer p.close()
	_, err = p.test(ctx)
	return err
}

// Image builds the image and smoke-tests it; with tarball, it also exports
// it as an OCI archive: the layout publish pushes, so the same digest.
func Image(ctx context.Context, b Build, revision, tarball string) error {
	b.Report.inv.revision = revision
	p, err := connect(ctx, b)
	if err != nil {
		return err
	}
	defer p.close()
	if err := p.image(ctx, revision); err != nil {
		return err
	}
	smoke, err := p.smoke(ctx)
	if err != nil {
		return err
	}
	if facts, err := p.imageFacts(ctx); err == nil {
		facts.Build, facts.Reproducible, facts.Smoke = p.app.Build, p.app.Reproducible(), smoke
		b.Report.image = facts
	}
	if tarball == "" {
		return nil
	}
	start := time.Now()
	if _, err := ci.ImageTarball(p.c, p.app.BaseImage, p.layout).Export(ctx, tarball); err != nil {
		return fmt.Errorf("export image tarball to %s: %w", tarball, explain(err))
	}
	b.Log.Info("image exported", "file", tarball, "seconds", secs(time.Since(start)))
	return nil
}
