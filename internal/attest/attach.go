package attest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Claims are what Attach signs and pushes beside an image.
type Claims struct {
	// SBOM is the image's CycloneDX JSON (from SBOM); nil: none. It is bound
	// to the signed provenance by its digest (a byproduct).
	SBOM []byte
	// Provenance of the image; its Image must be the image Attach is given.
	Provenance Provenance
	// Platforms: when the image is an index, each platform's image and its
	// SBOM. Each gets its own signature (as `cosign sign --recursive` does),
	// the index's attestation (its subjects name every platform's digest)
	// and its SBOM, so cosign verifies an instance's own platform's image by
	// its digest too.
	Platforms []PlatformClaims
}

// PlatformClaims are one platform's image of an index and its SBOM.
type PlatformClaims struct {
	Platform string // linux/arm64
	Digest   string // its manifest digest, sha256:...
	SBOM     []byte // its CycloneDX JSON
}

// Result says what Attach wrote (write Statement and SBOM into the build's
// artifacts: they are the same bytes as in the registry).
type Result struct {
	Image        string   // repo@sha256:...
	Signature    string   // repo:sha256-<hex>.sig
	Attestations string   // repo:sha256-<hex>.att (the DSSE-signed provenance)
	SBOM         string   // repo:sha256-<hex>.sbom, "" without an SBOM
	Platforms    []string // an index: each platform's signature tag, repo:sha256-<hex>.sig
	Referrers    bool     // the registry has the OCI referrers API: the attestation and SBOM are also referrers of the image
	Statement    []byte   // the in-toto provenance statement, as signed
	Envelope     []byte   // its DSSE envelope
}

// Attach signs image (repo@sha256:..., already pushed: Attach refuses
// otherwise) with s and pushes, in this order, the SBOM, the signed
// provenance and the signature, where cosign finds them: the tags
// sha256-<hex>.sbom/.att/.sig of the image's repository (what `cosign
// verify` and `cosign verify-attestation` read, on every registry). Where
// the registry serves the OCI referrers API, the SBOM and the attestation are
// pushed as referrers of the image too. The signature goes last: whoever sees
// it can fetch the rest.
//
// auth is the registry login (the password is never logged or put into an
// error).
func Attach(ctx context.Context, image string, s Signer, c Claims, auth authn.Authenticator) (*Result, error) {
	ref, err := parseImage(image)
	if err != nil {
		return nil, err
	}
	if c.Provenance.Image != image {
		return nil, fmt.Errorf("the provenance is of %q, not of %s", c.Provenance.Image, image)
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth)}
	desc, err := remote.Head(ref, ropts...)
	if err != nil {
		return nil, fmt.Errorf("attach to %s: the image must be pushed first: %w", image, err)
	}
	d := desc.Digest
	repo := ref.Context()
	res := &Result{Image: image, Signature: tagFor(repo, d, "sig").String(), Attestations: tagFor(repo, d, "att").String()}

	// Everything is signed before anything is pushed: a key that fails
	// leaves the registry as it was.
	prov := c.Provenance
	var sbom v1.Image
	if c.SBOM != nil {
		sum := sha256.Sum256(c.SBOM)
		prov.Byproducts = append(append([]Material(nil), prov.Byproducts...), Material{
			Name: "sbom.cdx.json", MediaType: string(CycloneDXMediaType), Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}})
		if sbom, err = sbomImage(c.SBOM, CycloneDXMediaType); err != nil {
			return nil, err
		}
		res.SBOM = tagFor(repo, d, "sbom").String()
	}
	type platformClaims struct {
		desc      *v1.Descriptor
		sbom, sig v1.Image
	}
	var plats []platformClaims
	prov.Byproducts = append([]Material(nil), prov.Byproducts...)
	for _, pc := range c.Platforms {
		h, err := v1.NewHash(pc.Digest)
		if err != nil {
			return nil, fmt.Errorf("the %s image's digest %q: %w", pc.Platform, pc.Digest, err)
		}
		pd, err := remote.Head(repo.Digest(pc.Digest), ropts...)
		if err != nil {
			return nil, fmt.Errorf("attach to the %s image %s: it must be pushed first: %w", pc.Platform, pc.Digest, err)
		}
		one := platformClaims{desc: pd}
		if pc.SBOM != nil {
			sum := sha256.Sum256(pc.SBOM)
			prov.Byproducts = append(prov.Byproducts, Material{Name: "sbom." + strings.ReplaceAll(pc.Platform, "/", "-") + ".cdx.json",
				MediaType: string(CycloneDXMediaType), Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}})
			if one.sbom, err = sbomImage(pc.SBOM, CycloneDXMediaType); err != nil {
				return nil, err
			}
		}
		if one.sig, _, err = signatureImage(ctx, s, repo, h); err != nil {
			return nil, err
		}
		plats = append(plats, one)
		res.Platforms = append(res.Platforms, tagFor(repo, h, "sig").String())
	}
	if res.Statement, err = prov.Statement(); err != nil {
		return nil, err
	}
	if res.Envelope, err = Envelope(ctx, s, res.Statement); err != nil {
		return nil, err
	}
	att, err := attestationImage([]signedStatement{{predicateType: SLSAProvenanceType, envelope: res.Envelope}})
	if err != nil {
		return nil, err
	}
	sig, _, err := signatureImage(ctx, s, repo, d)
	if err != nil {
		return nil, err
	}

	res.Referrers, err = hasReferrersAPI(ctx, ref, auth)
	if err != nil {
		return nil, err
	}
	push := func(img v1.Image, tag name.Tag) error { return pushArtifact(img, tag, desc, res.Referrers, ropts) }
	for _, pc := range plats {
		pd := pc.desc.Digest
		if pc.sbom != nil {
			if err := pushArtifact(pc.sbom, tagFor(repo, pd, "sbom"), pc.desc, res.Referrers, ropts); err != nil {
				return nil, err
			}
		}
		if err := pushArtifact(att, tagFor(repo, pd, "att"), pc.desc, res.Referrers, ropts); err != nil {
			return nil, err
		}
		if err := remote.Write(tagFor(repo, pd, "sig"), pc.sig, ropts...); err != nil {
			return nil, fmt.Errorf("push %s: %w", tagFor(repo, pd, "sig"), err)
		}
	}
	if sbom != nil {
		if err := push(sbom, tagFor(repo, d, "sbom")); err != nil {
			return nil, err
		}
	}
	if err := push(att, tagFor(repo, d, "att")); err != nil {
		return nil, err
	}
	if err := remote.Write(tagFor(repo, d, "sig"), sig, ropts...); err != nil {
		return nil, fmt.Errorf("push %s: %w", res.Signature, err)
	}
	return res, nil
}

// pushArtifact pushes img (an SBOM or attestation) under cosign's tag and,
// where the registry has the referrers API, as a referrer of subject too.
func pushArtifact(img v1.Image, tag name.Tag, subject *v1.Descriptor, referrers bool, ropts []remote.Option) error {
	if err := remote.Write(tag, img, ropts...); err != nil {
		return fmt.Errorf("push %s: %w", tag, err)
	}
	if !referrers {
		return nil
	}
	// the same artifact, naming the image as its subject (OCI 1.1)
	ref := mutate.Subject(img, *subject).(v1.Image)
	rd, err := ref.Digest()
	if err != nil {
		return err
	}
	if err := remote.Write(tag.Context().Digest(rd.String()), ref, ropts...); err != nil {
		return fmt.Errorf("push the referrer of %s: %w", tag, err)
	}
	return nil
}

// hasReferrersAPI asks the registry for the referrers of ref: an OCI 1.1
// registry answers with an index, an older one (Docker distribution 2.8)
// with 404.
func hasReferrersAPI(ctx context.Context, ref name.Digest, auth authn.Authenticator) (bool, error) {
	repo := ref.Context()
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, remote.DefaultTransport, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return false, fmt.Errorf("registry %s: %w", repo.RegistryStr(), err)
	}
	u := fmt.Sprintf("%s://%s/v2/%s/referrers/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), ref.DigestStr())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return false, fmt.Errorf("registry %s: %w", repo.RegistryStr(), err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/vnd.oci.image.index.v1+json"), nil
}

// parseImage parses repo@sha256:.... go-containerregistry speaks plain http
// to registries on loopback (and private) addresses by itself.
func parseImage(image string) (name.Digest, error) {
	ref, err := name.NewDigest(image)
	if err != nil {
		return name.Digest{}, fmt.Errorf("image %q: want repo@sha256:...: %w", image, err)
	}
	return ref, nil
}
