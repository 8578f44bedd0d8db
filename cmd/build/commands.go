package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/acme/webapp-pipeline/ci"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// SourceFlags name the repository checkout and the base image.
type SourceFlags struct {
	Source    string `help:"Repository root holding app/, appspec.yml and scripts/ (default: ${default})." env:"CODEBUILD_SRC_DIR" default:"." placeholder:"DIR"`
	BaseImage string `help:"Base image with python3 and venv; lint, tests and the runtime image use it (default: ${default})." env:"BUILD_BASE_IMAGE" default:"python:3.13-slim" placeholder:"IMAGE"`
}

// appDir is the app/ directory of the checkout, which must exist.
func (f SourceFlags) appDir() (string, error) {
	dir := filepath.Join(f.Source, "app")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf("no app/ directory in --source %q: run from the repository root or set --source / CODEBUILD_SRC_DIR", f.Source)
	}
	return dir, nil
}

// RevisionFlags name the commit being built.
type RevisionFlags struct {
	Revision string `help:"Git commit being built; tags the image and is stamped into it. Default: git rev-parse HEAD in --source, else \"dev\"." env:"CODEBUILD_RESOLVED_SOURCE_VERSION" placeholder:"SHA"`
}

var tagRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// resolve fills in the revision from git (or "dev") and checks it is a valid
// image tag.
func (f *RevisionFlags) resolve(ctx context.Context, source string) error {
	if f.Revision == "" {
		f.Revision = "dev"
		if out, err := gitOut(ctx, source, "rev-parse", "HEAD"); err == nil {
			f.Revision = out
		}
	}
	if !tagRe.MatchString(f.Revision) {
		return fmt.Errorf("--revision %q is not a valid image tag (letters, digits, _ . -; at most 128)", f.Revision)
	}
	return nil
}

// PublishFlags say where the image goes and where the registry credentials are.
type PublishFlags struct {
	ImageRepo             string `help:"Image repository to push to, e.g. 127.0.0.1:5001/webapp (tag = revision)." env:"BUILD_IMAGE_REPO" placeholder:"REPO"`
	RegistryUsernameParam string `help:"SSM parameter (SecureString) holding the registry username." env:"BUILD_REGISTRY_USERNAME_PARAM" placeholder:"NAME"`
	RegistryPasswordParam string `help:"SSM parameter (SecureString) holding the registry password." env:"BUILD_REGISTRY_PASSWORD_PARAM" placeholder:"NAME"`
	PullUsernameParam     string `help:"SSM parameter the INSTANCES read the registry username from, written into image.env (default: --registry-username-param). Give instances a pull-only login here." env:"BUILD_PULL_USERNAME_PARAM" placeholder:"NAME"`
	PullPasswordParam     string `help:"SSM parameter the INSTANCES read the registry password from, written into image.env (default: --registry-password-param)." env:"BUILD_PULL_PASSWORD_PARAM" placeholder:"NAME"`
	Region                string `help:"AWS region of the SSM parameters (default: the SDK's chain)." env:"AWS_REGION" placeholder:"REGION"`
}

// Validate reports the first missing publish setting.
func (f PublishFlags) Validate() error {
	switch {
	case f.ImageRepo == "":
		return errors.New("--image-repo (or BUILD_IMAGE_REPO) is required: the repository to push to, e.g. 127.0.0.1:5001/webapp")
	case strings.ContainsAny(f.ImageRepo, "@ ") || strings.Contains(f.ImageRepo[strings.LastIndex(f.ImageRepo, "/")+1:], ":"):
		return fmt.Errorf("--image-repo %q must be a repository without tag or digest, e.g. 127.0.0.1:5001/webapp", f.ImageRepo)
	case f.RegistryUsernameParam == "":
		return errors.New("--registry-username-param (or BUILD_REGISTRY_USERNAME_PARAM) is required: the SSM parameter holding the registry username")
	case f.RegistryPasswordParam == "":
		return errors.New("--registry-password-param (or BUILD_REGISTRY_PASSWORD_PARAM) is required: the SSM parameter holding the registry password")
	}
	return nil
}

// OutFlags name the artifacts directory.
type OutFlags struct {
	Out   string `help:"Artifacts directory, replaced atomically: bundle/, reports/, build.json (default: ${default})." env:"BUILD_OUT" default:"dist" placeholder:"DIR"`
	Force bool   `help:"Build even when --out already holds the build of exactly these inputs (same program, flags, commit time and files), which is otherwise reported as up to date without contacting the engine or the registry." env:"BUILD_FORCE"`
}

// LintCmd runs flake8.
type LintCmd struct {
	SourceFlags `embed:""`
}

// Run lints app/.
func (c *LintCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, rep *report) error {
	p, err := connect(ctx, g, log, c.SourceFlags, rep)
	if err != nil {
		return err
	}
	defer p.close()
	_, err = p.lint(ctx)
	return err
}

// TestCmd runs pytest.
type TestCmd struct {
	SourceFlags `embed:""`
}

// Run tests app/.
func (c *TestCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, rep *report) error {
	p, err := connect(ctx, g, log, c.SourceFlags, rep)
	if err != nil {
		return err
	}
	defer p.close()
	_, err = p.test(ctx)
	return err
}

// ImageCmd builds the runtime image.
type ImageCmd struct {
	SourceFlags   `embed:""`
	RevisionFlags `embed:""`
	Tarball       string `help:"Also export the image as an OCI tarball to this file." placeholder:"FILE"`
}

// Run builds the image and, with --tarball, exports it.
func (c *ImageCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, rep *report) error {
	if err := c.resolve(ctx, c.Source); err != nil {
		return err
	}
	rep.inv.revision = c.Revision
	p, err := connect(ctx, g, log, c.SourceFlags, rep)
	if err != nil {
		return err
	}
	defer p.close()
	if _, err := p.image(ctx, c.Revision); err != nil || c.Tarball == "" {
		return err
	}
	start := time.Now()
	// The layout publish pushes, as one OCI archive: the same bytes, so the same digest.
	tarball := ci.ImageTarball(p.c, c.BaseImage, ci.ImageLayout(p.c, p.src, p.imageOpts))
	if _, err := tarball.Export(ctx, c.Tarball); err != nil {
		return fmt.Errorf("export image tarball to %s: %w", c.Tarball, explain(err))
	}
	log.Info("image exported", "file", c.Tarball, "seconds", secs(time.Since(start)))
	return nil
}

// PublishCmd is lint + test + image + push + artifacts.
type PublishCmd struct {
	SourceFlags   `embed:""`
	RevisionFlags `embed:""`
	PublishFlags  `embed:""`
	OutFlags      `embed:""`
}

// Run publishes without checking the bundle.
func (c *PublishCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, out stdoutW, rep *report) error {
	return release(ctx, g, log, out, rep, c.SourceFlags, c.RevisionFlags, c.PublishFlags, c.OutFlags, false)
}

// AllCmd is what CodeBuild runs.
type AllCmd struct {
	SourceFlags   `embed:""`
	RevisionFlags `embed:""`
	PublishFlags  `embed:""`
	OutFlags      `embed:""`
}

// Run is (lint ∥ test ∥ image) → check bundle → publish → write artifacts,
// or nothing when --out is up to date.
func (c *AllCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, out stdoutW, rep *report) error {
	return release(ctx, g, log, out, rep, c.SourceFlags, c.RevisionFlags, c.PublishFlags, c.OutFlags, true)
}

// CheckCmd validates a bundle directory.
type CheckCmd struct {
	Bundle    string `arg:"" optional:"" help:"Bundle directory to check (default: dist/bundle)." placeholder:"DIR"`
	Buildspec string `help:"Also check that this buildspec.yml parses." placeholder:"FILE"`
}

// Run checks the bundle (and buildspec).
func (c *CheckCmd) Run(log *slog.Logger) error {
	dir := c.Bundle
	if dir == "" {
		dir = filepath.Join("dist", "bundle")
	}
	if err := checkBundle(dir, c.Buildspec); err != nil {
		return err
	}
	log.Info("bundle ok", "dir", dir)
	return nil
}
