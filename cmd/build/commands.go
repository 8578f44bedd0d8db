package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/acme/webapp-pipeline/ci"
	"github.com/acme/webapp-pipeline/internal/build"
	"github.com/acme/webapp-pipeline/internal/checkout"
	"github.com/acme/webapp-pipeline/internal/ecrauth"
)

// SourceFlags name the repository checkout.
type SourceFlags struct {
	Source string `help:"Repository root holding the app, pipeline.yml, appspec.yml and scripts/ (default: ${default})." env:"CODEBUILD_SRC_DIR" default:"." placeholder:"DIR"`
}

// AppFlags are the checkout and the app's contract: every command that
// builds takes them.
type AppFlags struct {
	SourceFlags   `embed:""`
	ContractFlags `embed:""`
}

// build resolves the contract against the checkout and reads what git says of
// it (once: checkout.Read): the one value that flows from the flags into the
// build.
func (f AppFlags) build(ctx context.Context, g *Globals, log *slog.Logger, rep *build.Report) (build.Build, error) {
	app := f.app()
	app.Origin = g.Origins
	app, err := app.Resolve(f.Source)
	if err != nil {
		return build.Build{}, err
	}
	return build.Build{Source: f.Source, Checkout: checkout.Read(ctx, f.Source), App: app, Log: log, Report: rep, Verbose: g.Verbose}, nil
}

// RevisionFlags name the commit being built.
type RevisionFlags struct {
	Revision string `help:"Git commit being built; tags the image and is stamped into it. Default: git rev-parse HEAD in --source, else \"dev\"." env:"CODEBUILD_RESOLVED_SOURCE_VERSION" placeholder:"SHA"`
}

var tagRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// resolve fills in the revision from the checkout's HEAD (or "dev") and
// checks it is a valid image tag.
func (f *RevisionFlags) resolve(co checkout.Facts) error {
	if f.Revision == "" {
		f.Revision = "dev"
		if co.Commit != "" {
			f.Revision = co.Commit
		}
	}
	if !tagRe.MatchString(f.Revision) {
		return fmt.Errorf("--revision %q is not a valid image tag (letters, digits, _ . -; at most 128)", f.Revision)
	}
	return nil
}

// PublishFlags say where the image goes, where the registry credentials are
// and how the image is signed.
type PublishFlags struct {
	ImageRepo         string `help:"Image repository to push to, e.g. 127.0.0.1:5001/webapp (tag = revision)." env:"BUILD_IMAGE_REPO" placeholder:"REPO"`
	LoginFlags        `embed:""`
	PullUsernameParam string `help:"SSM parameter the INSTANCES read the registry username from, written into image.env (default: --registry-username-param). Give instances a pull-only login here." env:"BUILD_PULL_USERNAME_PARAM" placeholder:"NAME"`
	PullPasswordParam string `help:"SSM parameter the INSTANCES read the registry password from, written into image.env (default: --registry-password-param)." env:"BUILD_PULL_PASSWORD_PARAM" placeholder:"NAME"`
	SigningFlags      `embed:""`
	SourceRepository  string `help:"The repository the signed provenance names and the instances check, e.g. https://github.com/acme/shop (default: CODEBUILD_SOURCE_REPO_URL, else the checkout's origin remote, as https without credentials)." env:"BUILD_SOURCE_REPOSITORY" placeholder:"URL"`
	Syft              string `help:"The SBOM generator, syft (default: syft in PATH)." env:"BUILD_SYFT,WEBAPP_DEV_SYFT" placeholder:"PATH"`
	LBHealthCheckPath string `help:"The load balancer's health check path (the stack's HealthCheckPath, set by the CodeBuild project with a load balancer): the build fails at once unless it is the app's health-path." env:"BUILD_LB_HEALTH_CHECK_PATH" placeholder:"PATH"`
}

// checkLBHealthPath: a load balancer that checks another path than the app's health path never
// finds a target healthy, and every deployment rolls back (issue 18): say so before building.
func (f PublishFlags) checkLBHealthPath(app string) error {
	if f.LBHealthCheckPath == "" || f.LBHealthCheckPath == app {
		return nil
	}
	return fmt.Errorf("the load balancer checks %s (the stack's HealthCheckPath, BUILD_LB_HEALTH_CHECK_PATH) but the app's health-path is %s (pipeline.yml): update the stack with HealthCheckPath=%s", f.LBHealthCheckPath, app, app)
}

// LoginFlags say how the build logs in to the registry.
type LoginFlags struct {
	RegistryLogin         string `help:"How the build logs in to the registry: ecr (a token from the AWS credential chain, no stored password), ssm (username and password from the two SSM parameters), auto (ecr for an ECR registry, else ssm) (default: ${default})." env:"BUILD_REGISTRY_LOGIN" enum:"auto,ssm,ecr" default:"auto"`
	RegistryUsernameParam string `help:"SSM parameter (SecureString) holding the registry username." env:"BUILD_REGISTRY_USERNAME_PARAM" placeholder:"NAME"`
	RegistryPasswordParam string `help:"SSM parameter (SecureString) holding the registry password." env:"BUILD_REGISTRY_PASSWORD_PARAM" placeholder:"NAME"`
	Region                string `help:"AWS region of the SSM parameters and the signing key (default: the SDK's chain)." env:"AWS_REGION" placeholder:"REGION"`
}

// SigningFlags name the key the image is signed with.
type SigningFlags struct {
	SigningKey string `help:"The KMS key that signs the image, its SLSA provenance and SBOM, as cosign names it: awskms:///KEY-ARN or awskms:///alias/NAME (the build checks it may Sign before building). Unset: the image is pushed UNSIGNED with a warning, and instances refuse it unless VERIFY_IMAGE=off." env:"BUILD_SIGNING_KEY" placeholder:"awskms:///KEY"`
}

// Validate reports the first missing publish setting.
func (f PublishFlags) Validate() error {
	switch {
	case f.ImageRepo == "":
		return errors.New("--image-repo (or BUILD_IMAGE_REPO) is required: the repository to push to, e.g. 127.0.0.1:5001/webapp")
	case strings.ContainsAny(f.ImageRepo, "@ ") || strings.Contains(f.ImageRepo[strings.LastIndex(f.ImageRepo, "/")+1:], ":"):
		return fmt.Errorf("--image-repo %q must be a repository without tag or digest, e.g. 127.0.0.1:5001/webapp", f.ImageRepo)
	case f.login() == build.LoginECR:
		return nil // the role's token: no parameters
	case f.RegistryUsernameParam == "":
		return errors.New("--registry-username-param (or BUILD_REGISTRY_USERNAME_PARAM) is required: the SSM parameter holding the registry username")
	case f.RegistryPasswordParam == "":
		return errors.New("--registry-password-param (or BUILD_REGISTRY_PASSWORD_PARAM) is required: the SSM parameter holding the registry password")
	}
	return nil
}

// login resolves auto: an ECR registry gets the token, any other the SSM login.
func (f PublishFlags) login() string { return f.LoginFlags.login(f.ImageRepo) }

// login resolves auto for the registry of repo.
func (f LoginFlags) login(repo string) string {
	switch {
	case f.RegistryLogin == build.LoginECR || f.RegistryLogin == build.LoginSSM:
		return f.RegistryLogin
	case ecrauth.IsECR(ci.RegistryHost(repo)):
		return build.LoginECR
	}
	return build.LoginSSM
}

func (f PublishFlags) publish(ctx context.Context, source string) build.Publish {
	return build.Publish{ImageRepo: f.ImageRepo, Login: f.login(), RegistryUsernameParam: f.RegistryUsernameParam,
		RegistryPasswordParam: f.RegistryPasswordParam, PullUsernameParam: f.PullUsernameParam,
		PullPasswordParam: f.PullPasswordParam, Region: f.Region,
		SigningKey: f.SigningKey, SourceRepository: build.SourceRepository(ctx, source, f.SourceRepository), Syft: f.Syft}
}

// OutFlags name the artifacts directory.
type OutFlags struct {
	Out   string `help:"Artifacts directory, replaced atomically: bundle/, reports/, build.json (default: ${default})." env:"BUILD_OUT" default:"dist" placeholder:"DIR"`
	Force bool   `help:"Build even when --out already holds the build of exactly these inputs (same program, contract, flags, commit time and files), which is otherwise reported as up to date without contacting the engine or the registry." env:"BUILD_FORCE"`
}

// LintCmd runs the lint command.
type LintCmd struct {
	AppFlags `embed:""`
}

// Run lints the app.
func (c *LintCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, rep *build.Report) error {
	b, err := c.build(ctx, g, log, rep)
	if err != nil {
		return err
	}
	return build.Lint(ctx, b)
}

// TestCmd runs the test command.
type TestCmd struct {
	AppFlags `embed:""`
}

// Run tests the app.
func (c *TestCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, rep *build.Report) error {
	b, err := c.build(ctx, g, log, rep)
	if err != nil {
		return err
	}
	return build.Test(ctx, b)
}

// ChecksCmd is lint ∥ test: what a pull request gets (no image, no push, no bundle).
type ChecksCmd struct {
	AppFlags `embed:""`
	Out      string `help:"Artifacts directory: reports/ (JUnit XML) is replaced atomically (default: ${default})." env:"BUILD_OUT" default:"dist" placeholder:"DIR"`
}

// Run lints and tests the app at once and writes their reports.
func (c *ChecksCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, rep *build.Report) error {
	b, err := c.build(ctx, g, log, rep)
	if err != nil {
		return err
	}
	return build.Checks(ctx, b, c.Out)
}

// ImageCmd builds the runtime image.
type ImageCmd struct {
	AppFlags      `embed:""`
	RevisionFlags `embed:""`
	Tarball       string `help:"Also export the image as an OCI tarball to this file." placeholder:"FILE"`
}

// Run builds and smoke-tests the image and, with --tarball, exports it.
func (c *ImageCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, rep *build.Report) error {
	b, err := c.build(ctx, g, log, rep)
	if err != nil {
		return err
	}
	if err := c.resolve(b.Checkout); err != nil {
		return err
	}
	return build.Image(ctx, b, c.Revision, c.Tarball)
}

// PublishCmd is lint + test + image + smoke + push + artifacts.
type PublishCmd struct {
	AppFlags      `embed:""`
	RevisionFlags `embed:""`
	PublishFlags  `embed:""`
	OutFlags      `embed:""`
}

// Run publishes without checking the bundle.
func (c *PublishCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, out stdoutW, rep *build.Report) error {
	return release(ctx, g, log, out, rep, c.AppFlags, c.RevisionFlags, c.PublishFlags, c.OutFlags, false)
}

// AllCmd is what CodeBuild runs.
type AllCmd struct {
	AppFlags      `embed:""`
	RevisionFlags `embed:""`
	PublishFlags  `embed:""`
	OutFlags      `embed:""`
}

// Run is (lint ∥ test ∥ image → smoke) → check bundle → publish → write
// artifacts, or nothing when --out is up to date.
func (c *AllCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, out stdoutW, rep *build.Report) error {
	return release(ctx, g, log, out, rep, c.AppFlags, c.RevisionFlags, c.PublishFlags, c.OutFlags, true)
}

func release(ctx context.Context, g *Globals, log *slog.Logger, out stdoutW, rep *build.Report,
	af AppFlags, rf RevisionFlags, pf PublishFlags, of OutFlags, check bool) error {
	b, err := af.build(ctx, g, log, rep)
	if err != nil {
		return err
	}
	if err := pf.checkLBHealthPath(b.App.HealthPath); err != nil {
		return err
	}
	if err := rf.resolve(b.Checkout); err != nil {
		return err
	}
	return build.Release(ctx, b, rf.Revision, pf.publish(ctx, af.Source), build.Out{Dir: of.Out, Force: of.Force}, check, out)
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
	if err := build.CheckBundle(dir, c.Buildspec); err != nil {
		return err
	}
	log.Info("bundle ok", "dir", dir)
	return nil
}

// ShellCmd opens an interactive shell in a step's container.
type ShellCmd struct {
	AppFlags      `embed:""`
	RevisionFlags `embed:""`
	Step          string `help:"Step whose container to open: deps (the dependencies installed in /opt/venv, source in /src; when the install fails, the shell opens where it failed), lint or test (the same, after the command ran; pytest's report in /tmp/reports), image (the image, as it runs)." enum:"deps,lint,test,image" default:"test"`
	Shell         string `help:"Program to run inside (default: ${default})." default:"/bin/bash" placeholder:"PATH"`
}

// Run opens the shell (under `dagger run -i` when not already in one).
func (c *ShellCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, rep *build.Report) error {
	b, err := c.build(ctx, g, log, rep)
	if err != nil {
		return err
	}
	if err := c.resolve(b.Checkout); err != nil {
		return err
	}
	return build.Shell(ctx, b, c.Step, c.Revision, c.Shell)
}

// ReproduceCmd rebuilds a commit the way CodeBuild built it.
type ReproduceCmd struct {
	Commit        string `arg:"" help:"Commit to rebuild: what CODEBUILD_RESOLVED_SOURCE_VERSION was (any git revision; resolved to its SHA). Its own pipeline.yml applies." placeholder:"COMMIT"`
	Repo          string `help:"Git repository holding the commit (default: ${default})." default:"." placeholder:"DIR"`
	ContractFlags `embed:""`
	Step          string `help:"Run only this step: lint, test, image; all runs the three (default: ${default})." enum:"all,lint,test,image" default:"all"`
	Expect        string `help:"Fail unless the image digest equals this one: sha256:... or repo@sha256:... (image.env's IMAGE, build.json's digest). As repo@sha256:... with --signing-key, the signed provenance published with it must also match the rebuild's (source, contract, base image, materials)." placeholder:"DIGEST"`
	LoginFlags    `embed:""`
	SigningFlags  `embed:""`
}

// Run rebuilds the commit in a temporary worktree and prints its digest.
func (c *ReproduceCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, out stdoutW, rep *build.Report) error {
	app := c.app()
	app.Origin = g.Origins
	b := build.Build{App: app, Log: log, Report: rep, Verbose: g.Verbose}
	repo, _, _ := strings.Cut(c.Expect, "@")
	claims := build.Publish{Login: c.login(repo), RegistryUsernameParam: c.RegistryUsernameParam,
		RegistryPasswordParam: c.RegistryPasswordParam, Region: c.Region, SigningKey: c.SigningKey}
	return build.Reproduce{Repo: c.Repo, Commit: c.Commit, Step: c.Step, Expect: c.Expect, Claims: claims}.Run(ctx, b, out)
}
