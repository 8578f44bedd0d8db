package build

import (
	"context"
	"errors"
	"fmt"
	"os"
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
		b.Report.wroteReports(dir)
	}
	return err
}

// Image builds the image and smoke-tests it; with tarball, it also exports
// it as an OCI archive: the layout publish pushes, so the same digest.
func Image(ctx context.Context, b Build, revision, tarball string) error {
	b.Report.building(revision)
	p, err := connect(ctx, b)
	if err != nil {
		return err
	}
	defer p.close()
	layoutDir, err := os.MkdirTemp("", "build-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(layoutDir)
	img, err := p.image(ctx, revision, layoutDir)
	if err != nil {
		return err
	}
	smoke, err := p.smoke(ctx, img, nil)
	if err != nil {
		return err
	}
	if img.platforms != nil { // the index is written over the platforms' exported layouts
		if err := p.exportLayouts(ctx, img, layoutDir); err != nil {
			return fmt.Errorf("export the image layouts: %w", err)
		}
	}
	if facts, err := img.facts(ctx); err == nil {
		facts.Build, facts.Reproducible, facts.Smoke = p.app.Build, p.app.Reproducible(), smoke
		b.Report.built(facts)
	}
	if tarball == "" {
		return nil
	}
	start := time.Now()
	var err2 error
	switch {
	case img.platforms != nil:
		err2 = tarLayout(layoutDir, tarball) // the index and every platform's image: what publish pushes
	case img.host != "":
		err2 = exportArchive(ctx, img.ctr, tarball) // the same image, exported again: the same archive
	default:
		if _, err := ci.ImageTarball(p.c, p.app.BaseImage, img.layout).Export(ctx, tarball); err != nil {
			err2 = explain(err)
		}
	}
	if err2 != nil {
		return fmt.Errorf("export image tarball to %s: %w", tarball, err2)
	}
	b.Log.Info("image exported", "file", tarball, "seconds", secs(time.Since(start)))
	return nil
}
