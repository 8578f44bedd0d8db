package build

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
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

// Checks runs lint and test at once (what a pull request gets) and replaces
// out/reports with their JUnit reports, atomically, pass or fail.
func Checks(ctx context.Context, b Build, out string) error {
	p, err := connect(ctx, b)
	if err != nil {
		return err
	}
	defer p.close()
	reports, err := p.checks(ctx)
	if len(reports) > 0 {
		dir := filepath.Join(out, "reports")
		if werr := writeDirAtomic(dir, func(tmp string) error { return writeFiles(tmp, reports) }); werr != nil {
			return errors.Join(err, fmt.Errorf("write reports: %w", werr))
		}
		b.Report.inv.reports = dir
	}
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
	var err2 error
	if p.hostLayout != "" {
		err2 = exportArchive(ctx, p.img, tarball) // the same image, exported again: the same archive
	} else if _, err := ci.ImageTarball(p.c, p.app.BaseImage, p.layout).Export(ctx, tarball); err != nil {
		err2 = explain(err)
	}
	if err2 != nil {
		return fmt.Errorf("export image tarball to %s: %w", tarball, err2)
	}
	b.Log.Info("image exported", "file", tarball, "seconds", secs(time.Since(start)))
	return nil
}
