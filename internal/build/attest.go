package build

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/acme/webapp-pipeline/internal/attest"
	"github.com/acme/webapp-pipeline/internal/checkout"
	"github.com/acme/webapp-pipeline/internal/contract"
)

// What ships with the image (issue 13, docs/supply-chain.md): an SBOM made
// by syft from the image's own layout, beside the smoke test; a SLSA
// provenance; a signature by a KMS key over the digest. The signer is
// checked before anything is built, the claims are attached after the push
// (internal/attest), and their files land in --out/attest.

// signer is the KMS key the build signs with, checked before anything is
// built or pushed (it exists, is an ECC_NIST_P256 signing key, this identity
// may Sign). No key configured: nil, and a loud warning: the image is pushed
// unsigned, image.env names no SIGNING_KEY, and the instances refuse it
// unless VERIFY_IMAGE=off.
func signer(ctx context.Context, log interface{ Warn(string, ...any) }, pf Publish) (*attest.KMSSigner, error) {
	if pf.SigningKey == "" {
		log.Warn("UNSIGNED: no signing key (--signing-key or BUILD_SIGNING_KEY): the image gets no signature or provenance in the registry, and instances refuse it unless VERIFY_IMAGE=off")
		return nil, nil
	}
	if pf.SourceRepository == "" {
		return nil, fmt.Errorf("signing with %s needs the source repository the provenance names: set --source-repository (BUILD_SOURCE_REPOSITORY), e.g. https://github.com/acme/shop", pf.SigningKey)
	}
	return attest.NewKMSSigner(ctx, pf.SigningKey, regionOf(pf))
}

// SourceRepository is the repository the provenance names (and the instances
// check): given, else CodeBuild's CODEBUILD_SOURCE_REPO_URL, else the
// checkout's origin remote; as an https URL without credentials or .git
// (git@github.com:acme/shop.git → https://github.com/acme/shop). A checkout
// with none of them (a scratch copy, a developer's local repository) is
// named by its path, file:///abs/dir: true, and what image.env then says.
func SourceRepository(ctx context.Context, source, given string) string {
	for _, u := range []string{given, os.Getenv("CODEBUILD_SOURCE_REPO_URL")} {
		if u != "" {
			return normalizeRepoURL(u)
		}
	}
	if u := checkout.Origin(ctx, source); u != "" {
		return normalizeRepoURL(u)
	}
	if abs, err := filepath.Abs(source); err == nil {
		return "file://" + filepath.ToSlash(abs)
	}
	return ""
}

var scpLike = regexp.MustCompile(`^[A-Za-z0-9._-]+@([A-Za-z0-9.-]+):(.+)$`)

func normalizeRepoURL(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "/") { // a local clone's origin
		return "file://" + strings.TrimSuffix(s, "/")
	}
	if m := scpLike.FindStringSubmatch(s); m != nil {
		s = "https://" + m[1] + "/" + m[2]
	}
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		u.User = nil // a token in the remote URL must not reach the provenance
		if u.Scheme != "http" {
			u.Scheme = "https"
		}
		s = u.String()
	}
	return strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git")
}

// sbom exports the image's layout into dir, calls exported, and has syft
// list what the image holds (the step "sbom"). publish then pushes from dir.
// The smoke test waits for exported: it reads its container's lines from the
// engine's progress output, which trails (and has lost them) while the engine
// exports a layout at the same time; syft, a host process, runs beside it.
//
// An index gets one SBOM per platform (each platform's image holds its own
// packages), in the contract's order; the first is the one the summary counts.
func (p *session) sbom(ctx context.Context, img *builtImage, syft, dir string, exported func()) ([]*attest.SBOM, error) {
	var sboms []*attest.SBOM
	err := p.timed(ctx, "sbom", func() error {
		start := time.Now()
		err := p.exportLayouts(ctx, img, dir)
		exported()
		if err != nil {
			return newFailure("sbom", "export the image layout", err)
		}
		scanned := time.Now()
		// The SBOMs of earlier builds, by image and layers: a code change only
		// replaces the app's layer (attest.SBOMCache says when syft's answer is
		// then known without scanning the whole image).
		cache := attest.SBOMCache{}
		if p.memo.dir != "" {
			cache.Dir = filepath.Join(p.memo.dir, "sbom-layers")
		}
		each := img.platforms
		if each == nil {
			each = []*builtImage{{host: dir}}
		}
		for _, one := range each {
			sb, how, err := cache.OfLayout(ctx, syft, one.host)
			if err != nil {
				if one.platform != "" {
					err = fmt.Errorf("%s: %w", one.platform, err)
				}
				return &stepFailure{Step: "sbom", Cmd: "syft scan oci-dir:" + one.host, Exit: -1, Err: err}
			}
			sboms = append(sboms, sb)
			p.log.Info("sbom", "platform", one.platform, "packages", packageCounts(sb.Packages), "export_seconds", secs(scanned.Sub(start)),
				"sbom_seconds", secs(time.Since(scanned)), "made_by", how)
		}
		return nil
	})
	return sboms, err
}

// provenance is what this build knows about how it made image (repo@sha256:...):
// the contract and the settings that change the image as parameters, the
// base image by digest, the dependency files and the Dockerfile as
// materials. reproduce builds the same value from its rebuild.
func (p *session) provenance(ctx context.Context, image, repository, revision, commit string) (attest.Provenance, error) {
	base, err := p.c.Container().From(p.app.BaseImage).ImageRef(ctx)
	if err != nil || !strings.Contains(base, "@sha256:") {
		return attest.Provenance{}, fmt.Errorf("resolve the base image %s to a digest: %v", p.app.BaseImage, err)
	}
	mats, err := materials(p.b.Source, p.app)
	if err != nil {
		return attest.Provenance{}, err
	}
	id, version := builder()
	return attest.Provenance{
		Image: image, Repository: repository, Commit: commit,
		BuilderID: id, BuilderVersion: version,
		// Only what changes the image: a rebuild with other harmless
		// settings (the push repository, the login) has the same materials.
		Parameters: map[string]any{"contract": p.app, "flags": map[string]any{
			"revision": revision, "source-date-epoch": p.b.Checkout.Epoch}},
		BaseImage:    base,
		Materials:    mats,
		InvocationID: os.Getenv("CODEBUILD_BUILD_ID"),
	}, nil
}

// materials are the files besides the commit that decide the image: the
// dependency files, the Dockerfile, the contract file (paths from the
// repository root, sha256).
func materials(source string, app contract.App) ([]attest.Material, error) {
	seen := map[string]bool{}
	var files []string
	add := func(rel string) {
		if _, err := os.Stat(filepath.Join(source, rel)); err == nil && !seen[rel] {
			seen[rel] = true
			files = append(files, rel)
		}
	}
	for _, pat := range app.DepFiles() {
		matches, _ := filepath.Glob(filepath.Join(source, app.Dir, pat))
		for _, m := range matches {
			rel, _ := filepath.Rel(source, m)
			add(filepath.ToSlash(rel))
		}
	}
	if app.Build == contract.BuildDockerfile {
		add(filepath.ToSlash(filepath.Join(app.Dir, app.Dockerfile)))
	}
	add(ContractFile)
	sort.Strings(files)
	var out []attest.Material
	for _, f := range files {
		sum, err := fileSHA256(filepath.Join(source, f))
		if err != nil {
			return nil, err
		}
		out = append(out, attest.Material{Name: f, Digest: map[string]string{"sha256": hex.EncodeToString(sum)}})
	}
	return out, nil
}

// builder names the build program: its module path, version (and VCS
// revision when stamped), Go build ID and the Dagger SDK it drives.
func builder() (id string, version map[string]string) {
	id = "https://github.com/acme/webapp-pipeline/cmd/build"
	version = map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Path != "" {
			id = "https://" + bi.Path
		}
		version["cmd/build"] = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				version["vcs.revision"] = s.Value
			}
		}
		for _, d := range bi.Deps {
			if d.Path == "dagger.io/dagger" {
				version["dagger"] = d.Version
			}
		}
	}
	if prog, err := programID(); err == nil {
		version["go-build-id"] = strings.TrimPrefix(prog, "go-buildid ")
	}
	return id, version
}

// attestFiles are --out/attest: the same bytes as in the registry. sboms
// are the SBOM files by name (sbom.cdx.json; an index: sbom.<os>-<arch>.cdx.json each).
func attestFiles(res *attest.Result, sboms map[string][]byte, statement []byte) map[string][]byte {
	files := map[string][]byte{}
	for name, b := range sboms {
		files[name] = b
	}
	if res != nil {
		files["provenance.intoto.json"] = res.Statement
		files["provenance.dsse.json"] = res.Envelope
	} else if statement != nil {
		files["provenance.intoto.json"] = statement // unsigned: not attached
	}
	return files
}

// basicAuth is the registry login for go-containerregistry (the password
// stays in memory; go-containerregistry never logs it).
func basicAuth(user, password string) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
}

// claims prepares the provenance of the image about to be pushed, and checks
// it makes a valid statement (with the layout's digest as the subject):
// a provenance that cannot be made fails the build before the push.
func (p *session) claims(ctx context.Context, img *builtImage, revision string, pf Publish) (attest.Provenance, error) {
	prov, err := p.provenance(ctx, "", pf.SourceRepository, revision, commitOf(p.b.Checkout, revision))
	if err == nil && pf.SourceRepository != "" {
		check := prov
		var facts *imageFacts
		if facts, err = img.facts(ctx); err == nil {
			check.Image = pf.ImageRepo + "@" + facts.Digest
			check.Platforms = platformImages(facts.Platforms)
			_, err = check.Statement()
		}
	}
	if err != nil {
		return prov, &stepFailure{Step: "attest", Exit: -1, Err: fmt.Errorf("the image's provenance: %w (nothing was pushed)", err)}
	}
	if prov.Commit == "" {
		p.log.Warn("the provenance names no commit: --revision is not a commit and the source is not a git checkout", "revision", revision)
	}
	return prov, nil
}

// commitOf is the commit built: the revision when it is a commit id, else
// the checkout's HEAD, else "".
func commitOf(co checkout.Facts, revision string) string {
	if isCommit(revision) {
		return revision
	}
	return co.Commit
}

// attest writes --out/attest for the pushed image ref and, with a signer,
// signs the claims and attaches them in the registry (the step "attest",
// after the push: Attach refuses a digest the registry does not serve).
// Unsigned, the SBOM and the provenance statement are only written.
//
// An image index (plats: each platform's image, sboms: each one's SBOM, in
// the same order): the provenance names every platform's digest beside the
// index's, and each platform's image gets its own signature, the
// attestation and its own SBOM (attest.Claims.Platforms).
func (p *session) attest(ctx context.Context, tmp, ref string, prov attest.Provenance, s *attest.KMSSigner,
	sb *attest.SBOM, plats []platformFacts, sboms []*attest.SBOM, auth authn.Authenticator) error {
	prov.Image = ref
	prov.Platforms = platformImages(plats)
	claims := attest.Claims{Provenance: prov}
	files := map[string][]byte{}
	if len(plats) == 0 {
		claims.SBOM, files["sbom.cdx.json"] = sb.JSON, sb.JSON
	}
	for i, pl := range plats {
		claims.Platforms = append(claims.Platforms, attest.PlatformClaims{Platform: pl.Platform, Digest: pl.Digest, SBOM: sboms[i].JSON})
		files["sbom."+strings.ReplaceAll(pl.Platform, "/", "-")+".cdx.json"] = sboms[i].JSON
	}
	dir := filepath.Join(tmp, "attest")
	if s == nil {
		var statement []byte
		if prov.Repository != "" {
			var err error
			if statement, err = prov.Statement(); err != nil {
				return &stepFailure{Step: "attest", Exit: -1, Err: err}
			}
		}
		return writeFiles(dir, attestFiles(nil, files, statement))
	}
	var res *attest.Result
	err := p.timed(ctx, "attest", func() error {
		var err error
		res, err = attest.Attach(ctx, ref, s, claims, auth)
		return err
	})
	if err != nil {
		return &stepFailure{Step: "attest", Cmd: "sign with " + s.Ref() + " and attach to " + ref, Exit: -1,
			Err: fmt.Errorf("%w (the image is pushed, unsigned; --out was left as it was)", err)}
	}
	p.log.Info("attested", "signature", res.Signature, "attestations", res.Attestations, "sbom", res.SBOM, "referrers", res.Referrers,
		"platforms", strings.Join(res.Platforms, " "))
	return writeFiles(dir, attestFiles(res, files, nil))
}

// platformImages are an index's images as the provenance names them.
func platformImages(plats []platformFacts) []attest.PlatformImage {
	var out []attest.PlatformImage
	for _, pl := range plats {
		out = append(out, attest.PlatformImage{Platform: pl.Platform, Digest: pl.Digest})
	}
	return out
}
