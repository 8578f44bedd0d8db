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
	"strings"
	"sync"
	"time"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
	"github.com/acme/webapp-pipeline/internal/attest"
	"github.com/acme/webapp-pipeline/internal/contract"
	"github.com/acme/webapp-pipeline/internal/gitx"
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
	// An image index (more than one platform): each platform's image; Digest is the index's.
	Platforms []platformFacts `json:"platforms,omitempty"`
}

// Out is the artifacts directory.
type Out struct {
	Dir   string
	Force bool // build even when Dir holds the build of exactly these inputs
}

// Release is `publish` (check=false) and `all` (check=true): lint ∥ test ∥
// (image → smoke ∥ sbom), then check the bundle, push, attest, write the
// artifacts; or nothing when out is up to date. It prints the pushed image to
// stdout. Each step is a function from the values it needs to the value it
// makes; this function is the graph.
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
	rep.building(revision)
	inputs := func() (string, error) {
		return inputsKey(b.Source, b.App, fmt.Sprint(check), revision, pf.ImageRepo, pf.Login,
			pf.RegistryUsernameParam, pf.RegistryPasswordParam, pf.PullUsernameParam, pf.PullPasswordParam,
			regionOf(pf), fmt.Sprint(b.Checkout.Epoch), pf.SigningKey, pf.SourceRepository, pf.Syft)
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
	pre, err := preflight(ctx, log, pf)
	if err != nil {
		return err
	}
	layoutDir, err := os.MkdirTemp("", "build-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(layoutDir)

	made, err := p.produce(ctx, revision, pre.syft, layoutDir)
	if err != nil {
		return p.keepReports(err, made, of.Dir)
	}
	prov, err := p.claims(ctx, made.img, revision, pf)
	if err != nil {
		return err
	}
	var ref string
	err = writeDirAtomic(of.Dir, func(tmp string) error {
		bundleDir, err := p.bundle(ctx, tmp, scripts, check)
		if err != nil {
			return err
		}
		pushed, err := p.publish(ctx, made, pf, pre, revision, layoutDir)
		if err != nil {
			return err
		}
		ref = pushed.Ref
		if err := p.attest(ctx, tmp, pushed.Ref, prov, pre.sign, made.sbom, pushed.Facts.Platforms, made.sboms,
			basicAuth(pre.user, pre.password)); err != nil {
			return err
		}
		env, err := imageEnv(pushed, made, pf, p.app, pre.sign).Render()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(bundleDir, "image.env"), []byte(env), 0o644); err != nil {
			return err
		}
		if err := writeFiles(filepath.Join(tmp, "reports"), made.reports); err != nil {
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
		return p.writeBuildInfo(tmp, pushed, made, pf, pre.sign, key, outputs)
	})
	if err != nil {
		return err
	}
	log.Info("published", "image", ref, "out", of.Dir)
	fmt.Fprintln(stdout, ref)
	return nil
}

// made is what the build made before anything is pushed.
type made struct {
	reports   map[string][]byte // JUnit XML by file name, also of failed checks
	checksErr error             // how lint and test ended
	img       *builtImage
	smoke     *smokeFacts
	sbom      *attest.SBOM   // the image's (an index: the first platform's)
	sboms     []*attest.SBOM // an index: each platform's, in img.platforms' order
}

// produce runs lint ∥ test ∥ (image → smoke ∥ sbom): the image does not depend
// on lint or tests, so it is built and smoke-tested meanwhile (it is only
// pushed when they pass). The first step to fail stops the rest.
func (p *session) produce(ctx context.Context, revision, syft, layoutDir string) (made, error) {
	var m made
	err := concurrently(ctx,
		func(ctx context.Context) error {
			m.reports, m.checksErr = p.checks(ctx)
			return m.checksErr
		},
		func(ctx context.Context) error {
			var err error
			if m.img, err = p.image(ctx, revision, layoutDir); err != nil {
				return err
			}
			// The SBOM needs only the image: beside the smoke test, which
			// imports the image meanwhile and starts its service once the
			// layout is exported (see sbom: the service's log lines need the
			// engine's progress output to themselves).
			exported := make(chan struct{})
			var once sync.Once
			ready := func() { once.Do(func() { close(exported) }) }
			return concurrently(ctx,
				func(ctx context.Context) error {
					sboms, err := p.sbom(ctx, m.img, syft, layoutDir, ready)
					ready()
					if err == nil {
						m.sbom = sboms[0]
						if m.img.platforms != nil {
							m.sboms = sboms
						}
					}
					return err
				},
				func(ctx context.Context) error {
					var err error
					m.smoke, err = p.smoke(ctx, m.img, exported)
					return err
				})
		})
	return m, err
}

// concurrently runs the steps at once; the first to fail stops the others
// (their context ends with the cause errOtherFailed), and failures says what
// failed.
func concurrently(ctx context.Context, steps ...func(context.Context) error) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	for i, step := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = step(ctx); errs[i] != nil {
				stop(errOtherFailed)
			}
		}()
	}
	wg.Wait()
	return failures(errs...)
}

// keepReports writes out/reports alone (atomically) when lint or tests
// failed, so CodeBuild shows the failure; err is returned either way.
func (p *session) keepReports(err error, m made, out string) error {
	if m.checksErr == nil || errors.Is(m.checksErr, errOtherFailed) || len(m.reports) == 0 {
		return err
	}
	dir := filepath.Join(out, "reports")
	if werr := writeDirAtomic(dir, func(tmp string) error { return writeFiles(tmp, m.reports) }); werr != nil {
		return errors.Join(err, fmt.Errorf("write reports: %w", werr))
	}
	p.log.Info("reports written", "dir", dir)
	p.rep.wroteReports(dir)
	return err
}

// bundle exports appspec.yml and scripts/ into tmp/bundle and, for all, runs
// the step "check" on it.
func (p *session) bundle(ctx context.Context, tmp string, scripts []string, check bool) (string, error) {
	dir := filepath.Join(tmp, "bundle")
	root := p.c.Host().Directory(p.b.Source, dagger.HostDirectoryOpts{Include: []string{"appspec.yml", "scripts/"}})
	if _, err := ci.Bundle(p.c, root, scripts).Export(ctx, dir); err != nil {
		return "", fmt.Errorf("export bundle: %w", explain(err))
	}
	if err := os.Chmod(dir, 0o755); err != nil { // Export creates it 0700
		return "", err
	}
	if !check {
		return dir, nil
	}
	if err := p.timed(ctx, "check", func() error { return CheckBundle(dir, buildspecIfAny(p.b.Source)) }); err != nil {
		return "", &stepFailure{Step: "check", Cmd: "check the bundle (appspec.yml, scripts/) and buildspec.yml", Exit: -1,
			Output: bundleProblemLines(err), Err: err}
	}
	return dir, nil
}

// writeBuildInfo writes tmp/build.json: the record of this build.
func (p *session) writeBuildInfo(tmp string, img pushed, m made, pf Publish, sign *attest.KMSSigner, inputs, outputs string) error {
	var signingKey string
	if sign != nil {
		signingKey = sign.VerifyRef()
	}
	p.mu.Lock()
	steps := append([]step(nil), p.steps...)
	p.mu.Unlock()
	sort.SliceStable(steps, func(i, j int) bool { return stepRank(steps[i].Name) < stepRank(steps[j].Name) })
	info, _ := json.MarshalIndent(buildInfo{
		Revision: img.Revision, Image: img.Ref, ImageTag: img.Tag, Digest: img.Facts.Digest,
		Build: p.app.Build, Reproducible: p.app.Reproducible(), BaseImage: p.app.BaseImage,
		Port: m.img.port, HealthPath: p.app.HealthPath, Smoke: m.smoke.Answer, User: m.smoke.User,
		Created: p.b.Checkout.Created().Format(time.RFC3339), Inputs: inputs, Outputs: outputs, Steps: steps,
		SigningKey: signingKey, SourceRepository: pf.SourceRepository, SBOM: m.sbom.Packages,
		SBOMHow: m.sbom.How, Platforms: img.Facts.Platforms,
	}, "", "  ")
	return os.WriteFile(filepath.Join(tmp, "build.json"), append(info, '\n'), 0o644)
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

// depsEpoch dates the venv layer: the time of the last commit that changed
// the app's dependency files (pipeline.yml's deps decide which), so a
// code-only commit leaves that layer's bytes as they were; never later than
// the build's own time (epoch, checkout.Facts.Epoch, also the answer outside
// a checkout).
func depsEpoch(ctx context.Context, appDir string, epoch int64, app contract.App) int64 {
	t, ok := gitx.LastChange(ctx, appDir, app.DepFiles()...)
	if ok && (epoch == 0 || t.Unix() < epoch) {
		return t.Unix()
	}
	return epoch
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
