package attest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// The formats below are cosign's (v2, key-based, no transparency log), kept
// here instead of importing github.com/sigstore/cosign or sigstore/sigstore:
// those modules would move grpc, protobuf and go-containerregistry under the
// Dagger SDK and add minutes to every cold `go run ./cmd/build`. They are a
// handful of fixed JSON shapes and annotations, and the tests check them
// with the real cosign CLI (`cosign verify`, `cosign verify-attestation`).
const (
	// SimpleSigningMediaType is the layer of a cosign signature image.
	SimpleSigningMediaType types.MediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// DSSEMediaType is the layer of a cosign attestation image.
	DSSEMediaType types.MediaType = "application/vnd.dsse.envelope.v1+json"
	// InTotoPayloadType is the DSSE payload type of an in-toto statement.
	InTotoPayloadType = "application/vnd.in-toto+json"
	// CycloneDXMediaType is the layer of a cosign SBOM image (`cosign attach sbom`).
	CycloneDXMediaType types.MediaType = "application/vnd.cyclonedx+json"

	sigAnnotation           = "dev.cosignproject.cosign/signature"
	predicateTypeAnnotation = "predicateType"
)

// simpleSigning is cosign's signature payload ("Red Hat simple signing"):
// the signature is over these exact bytes, stored as the layer.
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// signaturePayload is the simple-signing payload for image digest d of repo.
func signaturePayload(repo name.Repository, d v1.Hash) ([]byte, error) {
	var p simpleSigning
	p.Critical.Identity.DockerReference = repo.Name()
	p.Critical.Image.DockerManifestDigest = d.String()
	p.Critical.Type = "cosign container image signature"
	return json.Marshal(p)
}

// emptyArtifact is the base of cosign's signature/attestation/SBOM images:
// an OCI manifest with an OCI config and no layers yet.
func emptyArtifact() v1.Image {
	return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
}

// signatureImage is the image cosign stores under sha256-<hex>.sig.
func signatureImage(ctx context.Context, s Signer, repo name.Repository, d v1.Hash) (v1.Image, []byte, error) {
	payload, err := signaturePayload(repo, d)
	if err != nil {
		return nil, nil, err
	}
	sig, err := s.Sign(ctx, payload)
	if err != nil {
		return nil, nil, err
	}
	img, err := mutate.Append(emptyArtifact(), mutate.Addendum{
		Layer:       static.NewLayer(payload, SimpleSigningMediaType),
		Annotations: map[string]string{sigAnnotation: base64.StdEncoding.EncodeToString(sig)},
	})
	return img, payload, err
}

// Envelope signs an in-toto statement as a DSSE envelope (what cosign
// attest writes and verify-attestation reads) and returns its JSON.
func Envelope(ctx context.Context, s Signer, statement []byte) ([]byte, error) {
	es, err := dsse.NewEnvelopeSigner(dsseSigner{s})
	if err != nil {
		return nil, err
	}
	env, err := es.SignPayload(ctx, InTotoPayloadType, statement)
	if err != nil {
		return nil, err
	}
	return json.Marshal(env)
}

// attestationImage is the image cosign stores under sha256-<hex>.att: one
// DSSE envelope a layer, annotated with its predicate type.
func attestationImage(envelopes []signedStatement) (v1.Image, error) {
	img := emptyArtifact()
	for _, e := range envelopes {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:       static.NewLayer(e.envelope, DSSEMediaType),
			Annotations: map[string]string{sigAnnotation: "", predicateTypeAnnotation: e.predicateType},
		})
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

type signedStatement struct {
	predicateType string
	envelope      []byte
}

// sbomImage is the image `cosign attach sbom` stores under sha256-<hex>.sbom.
func sbomImage(sbom []byte, mt types.MediaType) (v1.Image, error) {
	return mutate.Append(emptyArtifact(), mutate.Addendum{Layer: static.NewLayer(sbom, mt)})
}

// tagFor is cosign's tag for an attachment of digest d: sha256-<hex>.<suffix>.
func tagFor(repo name.Repository, d v1.Hash, suffix string) name.Tag {
	return repo.Tag(fmt.Sprintf("%s-%s.%s", d.Algorithm, d.Hex, suffix))
}
