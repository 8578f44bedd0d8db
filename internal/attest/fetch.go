package attest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// FetchProvenance reads the provenance statement attached to image
// (repo@sha256:...) from its .att tag and returns it once its DSSE signature
// verifies with pub and its subject is that digest: what `reproduce` compares
// a rebuild against (SameMaterials).
func FetchProvenance(ctx context.Context, image string, pub crypto.PublicKey, auth authn.Authenticator) ([]byte, error) {
	ref, err := parseImage(image)
	if err != nil {
		return nil, err
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("provenance of %s: the verification key is %T, want ECDSA", image, pub)
	}
	d, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		return nil, err
	}
	tag := tagFor(ref.Context(), d, "att")
	img, err := remote.Image(tag, remote.WithContext(ctx), remote.WithAuth(auth))
	if err != nil {
		return nil, fmt.Errorf("no provenance attached to %s (%s): %w", image, tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	ev, err := dsse.NewEnvelopeVerifier(ecdsaVerifier{ec})
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.MediaType != DSSEMediaType || l.Annotations[predicateTypeAnnotation] != SLSAProvenanceType {
			continue
		}
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return nil, err
		}
		rc, err := layer.Compressed()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		var env dsse.Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			continue
		}
		if _, err := ev.Verify(ctx, &env); err != nil {
			continue
		}
		stmt, err := env.DecodeB64Payload()
		if err != nil {
			continue
		}
		var st struct {
			Subject []struct {
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
		}
		if json.Unmarshal(stmt, &st) == nil && len(st.Subject) == 1 && st.Subject[0].Digest[d.Algorithm] == d.Hex {
			return stmt, nil
		}
	}
	return nil, fmt.Errorf("no provenance of %s signed by the given key", image)
}

// SameMaterials compares what two provenance statements say went into a
// build: the source, the base image, the materials (resolvedDependencies)
// and the parameters. Builder versions and times may differ.
func SameMaterials(published, rebuilt []byte) error {
	type def struct {
		Predicate struct {
			BuildDefinition struct {
				BuildType            string `json:"buildType"`
				ExternalParameters   any    `json:"externalParameters"`
				ResolvedDependencies any    `json:"resolvedDependencies"`
			} `json:"buildDefinition"`
		} `json:"predicate"`
	}
	var a, b def
	if err := json.Unmarshal(published, &a); err != nil {
		return fmt.Errorf("the published provenance: %w", err)
	}
	if err := json.Unmarshal(rebuilt, &b); err != nil {
		return fmt.Errorf("the rebuilt provenance: %w", err)
	}
	da, db := a.Predicate.BuildDefinition, b.Predicate.BuildDefinition
	switch {
	case da.BuildType != db.BuildType:
		return fmt.Errorf("build types differ: published %s, rebuilt %s", da.BuildType, db.BuildType)
	case !reflect.DeepEqual(da.ExternalParameters, db.ExternalParameters):
		return errors.New("the source or parameters differ from the published provenance's")
	case !reflect.DeepEqual(da.ResolvedDependencies, db.ResolvedDependencies):
		ja, _ := json.Marshal(da.ResolvedDependencies)
		jb, _ := json.Marshal(db.ResolvedDependencies)
		return fmt.Errorf("the materials differ: published %s, rebuilt %s", ja, jb)
	}
	return nil
}

type ecdsaVerifier struct{ pub *ecdsa.PublicKey }

func (v ecdsaVerifier) Verify(_ context.Context, data, sig []byte) error {
	if !verifyECDSA(v.pub, data, sig) {
		return errors.New("signature does not verify")
	}
	return nil
}
func (v ecdsaVerifier) KeyID() (string, error)   { return "", nil }
func (v ecdsaVerifier) Public() crypto.PublicKey { return v.pub }
