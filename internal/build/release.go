package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
	"github.com/acme/webapp-pipeline/internal/attest"
	"github.com/acme/webapp-pipeline/internal/contract"
	"github.com/acme/webapp-pipeline/internal/ecrauth"
	"github.com/acme/webapp-pipeline/internal/gitx"
	"github.com/acme/webapp-pipeline/internal/ocipush"
	"github.com/acme/webapp-pipeline/internal/ssmparam"
)

// buildInfo is out/build.json.
type buildInfo struct {
	Revision     string `json:"revision"`
	Image        string `json:"image"`     // repo@sha256:...
	ImageTag     string `json:"image_tag"` // repo:revision
	Digest       string `json:"digest"`
	Build        string `json:"build"`        // how the image was made: dockerfile or native
	Reproducible bool   `json:"reproducible"` // whether the same commit gives the same digest
	BaseImage    string `json:"base_image"`
	Port         int    `json:"container_port"`
	HealthPath   string `json:"health_path"`
	Smoke        string `json:"smoke"` // what the health path answered before the push
	User         string `json:"user"`  // the user the image runs as ("" = root)
	Created      string `json:"created"`
	Inputs       string `json:"inputs"`  // key of everything the build read (see uptodate.go)
	Outputs      string `json:"outputs"` // key of bundle/ and reports/ as written
	Steps        []step `json:"steps"`
	// What ships with the image (docs/supply-chain.md).
	SigningKey       string         `json:"signing_key,omitempty"` // "" = unsigned
	SourceRepository string         `json:"source_repository,omitempty"`
	SBOM             map[string]int `json:"sbom_packages"`          // components by package URL type
	SBOMHow          string         `json:"sbom_made_by,omitempty"` // syft on the whole image, memo, incremental (attest.SBOMCache)
}

// Registry logins.
const (
	LoginSSM = "ssm" // username and password from SSM Parameter Store (any registry)
	LoginECR = "ecr" // an ECR authorization token from the AWS credential chain (no stored password)
)

// Publish says where the image goes and where the registry credentials are.
type Publish struct {
	ImageRepo             string // repository to push to (tag = revision)
	Login                 string // LoginSSM or LoginECR
	RegistryUsernameParam string // SSM parameters the build reads the push login from
	RegistryPasswordParam string
	PullUsernameParam     string // ... and the instances the pull login (default: the push ones)
	PullPasswordParam     string
	Region                string // of the SSM parameters ("" = the SDK's chain)

	SigningKey       string // cosign key reference, awskms:///...; "" = push unsigned (a warning)
	SourceRepository string // the repository the provenance names (SourceRepository resolves it)
	Syft             string // the SBOM generator ("" = syft in PATH)
}

// Out is the artifacts directory.
type Out struct {
	Dir   string
	Force bool // build even when Dir holds the build of exactly these inputs
}

// Release is `publish` (check=false) and `all` (check=true): lint ∥ test ∥
// (image → smoke), then check the bundle, push, write the artifacts; or
// nothing when out is up to date. It prints the pushed image to stdout.
//
// Artifacts: the whole out directory is built in a temp dir beside it and
// renamed over the old one only when everything succeeded. When lint or tests
// FAIL, ONLY out/reports is replaced (atomically, the same way) so CodeBuild
// can show what failed; out/bundle and out/build.json are left as they were
// (or absent), so nothing half-built can be deployed. Any later failure
// (image, smoke, check, SSM, publish) leaves out exactly as it was.
func Release(ctx context.Context, b Build, revision string, pf Publish, of Out, check bool, stdout io.Writer) error {
	log, rep := b.Log, b.Report
	scripts, err := scriptNames(b.Source)
	if err != nil {
		return err
	}
	rep.inv.revision = revision
	inputs := func() (string, error) {
		return inputsKey(b.Source, b.App, fmt.Sprint(check), revision, pf.ImageRepo, pf.Login,
			pf.RegistryUsernameParam, pf.RegistryPasswordParam, pf.PullUsernameParam, pf.PullPasswordParam,
			regionOf(pf), fmt.Sprint(sourceDateEpoch(ctx, b.Source)), pf.SigningKey, pf.SourceRepository, pf.Syft)
	}
	key, err := inputs()
	if err != nil {
		return fmt.Errorf("read the inputs of the build: %w", err)
	}
	if info, ok := upToDate(of.Dir, key); ok && !of.Force {
		log.Info("up to date", "image", info.Image, "out", of.Dir, "inputs", key)
		rep.upToDate(info.Image, info.Digest, of.Dir)
		fmt.Fprintln(stdout, info.Image)
		return nil
	}
	p, err := connect(ctx, b)
	if err != nil {
		return err
	}
	defer p.close()

	// Check before acting: credentials first, so a missing parameter fails in
	// a second, not after the build. The password stays in this process; its
	// only use is the push of the OCI layout (internal/ocipush), which never
	// logs it or wraps it into an error.
	user, password, err := registryCreds(ctx, pf)
	if err != nil {
		return err
	}
	// ... and the signing key and the SBOM generator: a key that is
	// unreachable or denied fails here, before anything is built or pushed.
	syft, err := attest.FindSyft(pf.Syft)
	if err != nil {
		return err
	}
	sign, err := signer(ctx, log, pf)
	if err != nil {
		return err
	}
	layoutDir, err := os.MkdirTemp("", "build-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(layoutDir)
	p.layoutDir = layoutDir // where the Dockerfile image's layout is made (sbom reads it, publish pushes it)

	// The image does not depend on lint or tests: build and smoke-test it
	// meanwhile (it is only pushed when they pass). The first of them to fail
	// stops the rest.
	bctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	type imageResult struct {
		smoke *smokeFacts
		sbom  *attest.SBOM
		err   error
	}
	imgDone := make(chan imageResult, 1)
	go func() {
		var r imageResult
		if r.err = p.image(bctx, revision); r.err == nil {
			// The SBOM needs only the image: beside the smoke test.
			sctx, stopSBOM := context.WithCancelCause(bctx)
			sbomDone, exported := make(chan error, 1), make(chan struct{})
			var once sync.Once
			ready := func() { once.Do(func() { close(exported) }) }
			go func() {
				var err error
				r.sbom, err = p.sbom(sctx, syft, layoutDir, ready)
				ready()
				sbomDone <- err
			}()
			<-exported // see sbom: the smoke test's logs need the engine to itself
			if r.smoke, r.err = p.smoke(bctx); r.err != nil {
				stopSBOM(errOtherFailed)
			}
			r.err = failures(r.err, <-sbomDone)
			stopSBOM(nil)
		}
		if r.err != nil {
			stop(errOtherFailed)
		}
		imgDone <- r
	}()
	reports, checkErr := p.checks(bctx)
	if checkErr != nil {
		stop(errOtherFailed)
	}
	img := <-imgDone
	if err := failures(checkErr, img.err); err != nil {
		if checkErr != nil && !errors.Is(checkErr, errOtherFailed) && len(reports) > 0 {
			dir := filepath.Join(of.Dir, "reports")
			if werr := writeDirAtomic(dir, func(tmp string) error { return writeFiles(tmp, reports) }); werr != nil {
				return errors.Join(err, fmt.Errorf("write reports: %w", werr))
			}
			log.Info("reports written", "dir", dir)
			rep.inv.reports = dir
		}
		return err
	}

	prov, err := p.claims(ctx, revision, pf)
	if err != nil {
		return err
	}

	var ref string
	err = writeDirAtomic(of.Dir, func(tmp string) error {
		bundleDir := filepath.Join(tmp, "bundle")
		root := p.c.Host().Directory(b.Source, dagger.HostDirectoryOpts{Include: []string{"appspec.yml", "scripts/"}})
		if _, err := ci.Bundle(p.c, root, scripts).Export(ctx, bundleDir); err != nil {
			return fmt.Errorf("export bundle: %w", explain(err))
		}
		if err := os.Chmod(bundleDir, 0o755); err != nil { // Export creates it 0700
			return err
		}
		if check {
			if err := p.timed(ctx, "check", func() error { return CheckBundle(bundleDir, buildspecIfAny(b.Source)) }); err != nil {
				return &stepFailure{Step: "check", Cmd: "check the bundle (appspec.yml, scripts/) and buildspec.yml", Exit: -1,
					Output: bundleProblemLines(err), Err: err}
			}
		}
		tag := pf.ImageRepo + ":" + revision
		registry := ci.RegistryHost(pf.ImageRepo)
		err := p.timed(ctx, "publish", func() error {
			var err error
			// Push the layout byte for byte: for the native image its digest
			// is reproducible, a Dagger Publish would re-stamp times (see
			// internal/ocipush).
			// The layout as the sbom step exported it: the bytes syft read.
			ref, err = ocipush.Push(ctx, ocipush.Dir(layoutDir), tag, user, password)
			return err
		})
		if err != nil {
			return &stepFailure{Step: "publish", Cmd: "push " + tag, Exit: -1,
				Output: lastN(strings.Split(strings.TrimSpace(err.Error()), "\n"), 8), Err: publishError(registry, pf, err)}
		}
		_, digest, _ := strings.Cut(ref, "@")
		ref = pf.ImageRepo + "@" + digest
		facts, ferr := p.imageFacts(ctx)
		if ferr != nil {
			log.Warn("image size unknown", "err", oneLine(ferr.Error()))
			facts = &imageFacts{Digest: digest}
		}
		facts.Ref, facts.Digest = ref, digest
		facts.Build, facts.Reproducible, facts.Smoke = p.app.Build, p.app.Reproducible(), img.smoke
		facts.SBOM, facts.SBOMHow = img.sbom.Packages, img.sbom.How
		rep.image = facts
		var signingKey, sourceRepo string
		if sign != nil {
			signingKey, sourceRepo = sign.VerifyRef(), pf.SourceRepository
			facts.Signed = signingKey
		}
		if err := p.attest(ctx, tmp, ref, prov, sign, img.sbom, basicAuth(user, password)); err != nil {
			return err
		}
		env, err := ci.ImageEnv{
			Image: ref, ImageTag: tag, Revision: revision, Registry: registry,
			RegistryLogin:         pf.Login,
			RegistryUsernameParam: or(pf.PullUsernameParam, pf.RegistryUsernameParam),
			RegistryPasswordParam: or(pf.PullPasswordParam, pf.RegistryPasswordParam),
			AWSRegion:             regionOf(pf), ContainerName: p.app.Name, ContainerPort: p.port,
			HealthPath: p.app.HealthPath, SigningKey: signingKey, SourceRepository: sourceRepo,
		}.Render()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(bundleDir, "image.env"), []byte(env), 0o644); err != nil {
			return err
		}
		if err := writeFiles(filepath.Join(tmp, "reports"), reports); err != nil {
			return err
		}
		outputs, err := outputsKey(tmp)
		if err != nil {
			return err
		}
		// Files read late (scripts/, appspec.yml) may have been edited while
		// the build ran: then record no inputs, and the next run builds.
		if again, err := inputs(); err != nil || again != key {
			log.Warn("the sources changed during the build: the next run builds again")
			key = ""
		}
		sort.SliceStable(p.steps, func(i, j int) bool { return stepRank(p.steps[i].Name) < stepRank(p.steps[j].Name) })
		info, _ := json.MarshalIndent(buildInfo{
			Revision: revision, Image: ref, ImageTag: tag, Digest: digest,
			Build: p.app.Build, Reproducible: p.app.Reproducible(), BaseImage: p.app.BaseImage,
			Port: p.port, HealthPath: p.app.HealthPath, Smoke: img.smoke.Answer, User: img.smoke.User,
			Created: created(ctx, b.Source), Inputs: key, Outputs: outputs, Steps: p.steps,
			SigningKey: signingKey, SourceRepository: pf.SourceRepository, SBOM: img.sbom.Packages,
			SBOMHow: img.sbom.How,
		}, "", "  ")
		return os.WriteFile(filepath.Join(tmp, "build.json"), append(info, '\n'), 0o644)
	})
	if err != nil {
		return err
	}
	log.Info("published", "image", ref, "out", of.Dir)
	fmt.Fprintln(stdout, ref)
	return nil
}

// registryCreds are the push login: an ECR token from the credential chain,
// or the username and password from SSM.
func registryCreds(ctx context.Context, pf Publish) (user, password string, err error) {
	if pf.Login == LoginECR {
		return ecrauth.Credentials(ctx, pf.Region, ci.RegistryHost(pf.ImageRepo))
	}
	r, err := ssmparam.New(ctx, pf.Region)
	if err != nil {
		return "", "", err
	}
	if user, err = r.Get(ctx, pf.RegistryUsernameParam); err != nil {
		return "", "", err
	}
	if password, err = r.Get(ctx, pf.RegistryPasswordParam); err != nil {
		return "", "", err
	}
	return user, password, nil
}

// publishError makes a rejected login one clear line; nothing was pushed.
func publishError(registry string, pf Publish, err error) error {
	msg := strings.ToLower(err.Error())
	if strings.Contains(msg, "immutable") || strings.Contains(msg, "already exists") {
		return fmt.Errorf("registry %s refused the tag: it already names another digest and the repository's tags are immutable (this commit rebuilt to a different image): push a new commit (nothing was published)", registry)
	}
	if pf.Login == LoginECR {
		for _, s := range []string{"401", "unauthorized", "403", "denied"} {
			if strings.Contains(msg, s) {
				return fmt.Errorf("ECR %s refused the push with this role's token: the role needs ecr:InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, PutImage and BatchCheckLayerAvailability on the repository (nothing was published)", registry)
			}
		}
	}
	for _, s := range []string{"401", "unauthorized", "authentication required", "403", "denied"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("registry %s rejected the credentials from SSM parameters %s and %s: fix their values (nothing was published)",
				registry, pf.RegistryUsernameParam, pf.RegistryPasswordParam)
		}
	}
	return fmt.Errorf("push to %s: %w", pf.ImageRepo, explain(err))
}

// regionOf is the region written to image.env: the flag, else AWS_REGION,
// else AWS_DEFAULT_REGION.
func regionOf(pf Publish) string {
	for _, r := range []string{pf.Region, os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION")} {
		if r != "" {
			return r
		}
	}
	return ""
}

// scriptNames lists the regular files in source/scripts.
func scriptNames(source string) ([]string, error) {
	if _, err := os.Stat(filepath.Join(source, "appspec.yml")); err != nil {
		return nil, fmt.Errorf("no appspec.yml in --source %q: the bundle needs it at the repository root", source)
	}
	entries, err := os.ReadDir(filepath.Join(source, "scripts"))
	if err != nil {
		return nil, fmt.Errorf("no scripts/ directory in --source %q: the bundle needs the hook scripts", source)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func buildspecIfAny(source string) string {
	p := filepath.Join(source, "buildspec.yml")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// sourceDateEpoch is the reproducible build time: SOURCE_DATE_EPOCH when set,
// else the commit time of HEAD in source, else 0 (not a git checkout, e.g. a
// CODE_ZIP without SOURCE_DATE_EPOCH: still reproducible, just undated; the
// pipeline's source action delivers a clone, so CodeBuild has the commit).
func sourceDateEpoch(ctx context.Context, source string) int64 {
	if v, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil && v > 0 {
		return v
	}
	if t, ok := gitx.CommitTime(ctx, source, ""); ok {
		return t.Unix()
	}
	return 0
}

// depsEpoch dates the venv layer: the time of the last commit that changed
// the app's dependency files (pipeline.yml's deps decide which), so a
// code-only commit leaves that layer's bytes as they were; never later than
// the build's own time (sourceDateEpoch, also the answer outside a checkout).
func depsEpoch(ctx context.Context, source string, app contract.App) int64 {
	epoch := sourceDateEpoch(ctx, source)
	t, ok := gitx.LastChange(ctx, filepath.Join(source, app.Dir), app.DepFiles()...)
	if ok && (epoch == 0 || t.Unix() < epoch) {
		return t.Unix()
	}
	return epoch
}

// created is the commit time of HEAD (so rebuilding a commit gives the same
// label), else now.
func created(ctx context.Context, source string) string {
	t, ok := gitx.CommitTime(ctx, source, "")
	if !ok {
		t = time.Now()
	}
	return t.UTC().Format(time.RFC3339)
}

// bundleProblemLines splits checkBundle's one-line error into its problems.
func bundleProblemLines(err error) []string {
	_, rest, ok := strings.Cut(err.Error(), "problem(s): ")
	if !ok {
		return []string{err.Error()}
	}
	return strings.Split(rest, "; ")
}

// or is a, else b.
func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
