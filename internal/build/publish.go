package build

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/acme/webapp-pipeline/ci"
	"github.com/acme/webapp-pipeline/internal/attest"
	"github.com/acme/webapp-pipeline/internal/contract"
	"github.com/acme/webapp-pipeline/internal/ecrauth"
	"github.com/acme/webapp-pipeline/internal/ocipush"
	"github.com/acme/webapp-pipeline/internal/ssmparam"
)

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

// tools are what the push and the signature need, found and checked before
// anything is built: credentials first, so a missing parameter fails in a
// second, not after the build. The password stays in this process; its only
// use is the push of the OCI layout (internal/ocipush), which never logs it
// or wraps it into an error. A signing key that is unreachable or denied, or
// no SBOM generator, fails here too.
type tools struct {
	user, password string
	syft           string
	sign           *attest.KMSSigner // nil: unsigned
}

func preflight(ctx context.Context, log interface{ Warn(string, ...any) }, pf Publish) (tools, error) {
	var t tools
	var err error
	if t.user, t.password, err = registryCreds(ctx, pf); err != nil {
		return tools{}, err
	}
	if t.syft, err = attest.FindSyft(pf.Syft); err != nil {
		return tools{}, err
	}
	if t.sign, err = signer(ctx, log, pf); err != nil {
		return tools{}, err
	}
	return t, nil
}

// pushed is the image in the registry.
type pushed struct {
	Ref      string // repo@sha256:...
	Tag      string // repo:revision
	Revision string
	Facts    *imageFacts
}

// publish pushes the layout the sbom step exported (the bytes syft read)
// byte for byte: for the native image its digest is reproducible, a Dagger
// Publish would re-stamp times (see internal/ocipush).
func (p *session) publish(ctx context.Context, m made, pf Publish, t tools, revision, layoutDir string) (pushed, error) {
	tag := pf.ImageRepo + ":" + revision
	var ref string
	err := p.timed(ctx, "publish", func() error {
		var err error
		ref, err = ocipush.Push(ctx, ocipush.Dir(layoutDir), tag, t.user, t.password)
		return err
	})
	if err != nil {
		return pushed{}, &stepFailure{Step: "publish", Cmd: "push " + tag, Exit: -1,
			Output: lastN(strings.Split(strings.TrimSpace(err.Error()), "\n"), 8), Err: publishError(ci.RegistryHost(pf.ImageRepo), pf, err)}
	}
	_, digest, _ := strings.Cut(ref, "@")
	ref = pf.ImageRepo + "@" + digest
	facts, ferr := m.img.facts(ctx)
	if ferr != nil {
		p.log.Warn("image size unknown", "err", oneLine(ferr.Error()))
		facts = &imageFacts{Digest: digest}
	}
	facts.Ref, facts.Digest = ref, digest
	facts.Build, facts.Reproducible, facts.Smoke = p.app.Build, p.app.Reproducible(), m.smoke
	facts.SBOM, facts.SBOMHow = m.sbom.Packages, m.sbom.How
	if t.sign != nil {
		facts.Signed = t.sign.VerifyRef()
	}
	p.rep.built(facts)
	return pushed{Ref: ref, Tag: tag, Revision: revision, Facts: facts}, nil
}

// imageEnv is what the bundle tells the instances: the image by digest, the
// pull login, the container's name, port and health path, the key to verify.
func imageEnv(img pushed, m made, pf Publish, app contract.App, sign *attest.KMSSigner) ci.ImageEnv {
	var signingKey, sourceRepo string
	if sign != nil {
		signingKey, sourceRepo = sign.VerifyRef(), pf.SourceRepository
	}
	return ci.ImageEnv{
		Image: img.Ref, ImageTag: img.Tag, Revision: img.Revision, Registry: ci.RegistryHost(pf.ImageRepo),
		RegistryLogin:         pf.Login,
		RegistryUsernameParam: or(pf.PullUsernameParam, pf.RegistryUsernameParam),
		RegistryPasswordParam: or(pf.PullPasswordParam, pf.RegistryPasswordParam),
		AWSRegion:             regionOf(pf), ContainerName: app.Name, ContainerPort: m.img.port,
		HealthPath: app.HealthPath, SigningKey: signingKey, SourceRepository: sourceRepo,
	}
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
