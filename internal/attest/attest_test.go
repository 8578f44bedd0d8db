package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

func newKey(t *testing.T, name string) KeySigner {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return KeySigner{Key: k, Name: name}
}

// pushRandom pushes a random image to host/app and returns repo@digest.
func pushRandom(t *testing.T, host string, auth authn.Authenticator) (string, v1.Image) {
	t.Helper()
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(host+"/app:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithAuth(auth)); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return host + "/app@" + d.String(), img
}

func testProvenance(image string) Provenance {
	return Provenance{
		Image: image, Repository: "https://github.com/acme/shop", Commit: strings.Repeat("a", 40), Ref: "refs/heads/main",
		BuilderID:      "https://github.com/acme/webapp-pipeline/cmd/build",
		BuilderVersion: map[string]string{"cmd/build": "(devel)", "go-build-id": "abc/def"},
		Parameters:     map[string]any{"contract": map[string]any{"port": 8080, "health_path": "/healthz"}, "flags": map[string]any{"force": false}},
		BaseImage:      "docker.io/library/python@sha256:" + strings.Repeat("b", 64),
		Materials:      []Material{{Name: "requirements.txt", Digest: map[string]string{"sha256": strings.Repeat("c", 64)}}},
	}
}

func inProcessRegistry(t *testing.T, referrers bool) string {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(referrers)))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func fetchLayers(t *testing.T, ref string) ([]v1.Descriptor, [][]byte) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("fetch %s: %v", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	var blobs [][]byte
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		blobs = append(blobs, b)
	}
	return m.Layers, blobs
}

// Attach pushes the SBOM, the DSSE-signed provenance and the cosign
// signature under cosign's tags; each verifies with the signer's public key
// and names the image's digest.
func TestAttachWritesCosignTagsThatVerify(t *testing.T) {
	for _, referrers := range []bool{false, true} {
		host := inProcessRegistry(t, referrers)
		ctx := context.Background()
		image, _ := pushRandom(t, host, authn.Anonymous)
		key := newKey(t, "test-key")
		sbom := []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}`)
		res, err := Attach(ctx, image, key, Claims{SBOM: sbom, Provenance: testProvenance(image)}, authn.Anonymous)
		if err != nil {
			t.Fatal(err)
		}
		if res.Referrers != referrers {
			t.Fatalf("referrers API detected = %v, the registry has it: %v", res.Referrers, referrers)
		}
		_, hexd, _ := strings.Cut(image, "@sha256:")
		if want := host + "/app:sha256-" + hexd + ".sig"; res.Signature != want {
			t.Fatalf("signature tag %s, want %s", res.Signature, want)
		}

		// .sig: the simple-signing payload names the digest; the annotation verifies.
		descs, blobs := fetchLayers(t, res.Signature)
		if len(blobs) != 1 || descs[0].MediaType != SimpleSigningMediaType {
			t.Fatalf("signature image layers %v", descs)
		}
		var p simpleSigning
		if err := json.Unmarshal(blobs[0], &p); err != nil || p.Critical.Image.DockerManifestDigest != "sha256:"+hexd {
			t.Fatalf("payload %s (%v)", blobs[0], err)
		}
		sig, _ := base64.StdEncoding.DecodeString(descs[0].Annotations[sigAnnotation])
		if !verifyECDSA(&key.Key.PublicKey, blobs[0], sig) {
			t.Fatal("the signature does not verify with the signer's public key")
		}
		other := newKey(t, "other")
		if verifyECDSA(&other.Key.PublicKey, blobs[0], sig) {
			t.Fatal("the signature verifies with another key")
		}

		// .att: a DSSE envelope of the provenance, with the SBOM's digest as a byproduct.
		descs, blobs = fetchLayers(t, res.Attestations)
		if len(blobs) != 1 || descs[0].MediaType != DSSEMediaType || descs[0].Annotations[predicateTypeAnnotation] != SLSAProvenanceType {
			t.Fatalf("attestation image layers %v", descs)
		}
		var env dsse.Envelope
		if err := json.Unmarshal(blobs[0], &env); err != nil {
			t.Fatal(err)
		}
		ev, _ := dsse.NewEnvelopeVerifier(ecdsaVerifier{&key.Key.PublicKey})
		if _, err := ev.Verify(ctx, &env); err != nil {
			t.Fatalf("the envelope does not verify: %v", err)
		}
		stmt, _ := env.DecodeB64Payload()
		if !bytes.Equal(stmt, res.Statement) {
			t.Fatal("the pushed statement differs from Result.Statement")
		}
		for _, want := range []string{`"sha256":"` + hexd + `"`, `"repository":"https://github.com/acme/shop"`, `"name":"sbom.cdx.json"`} {
			if !strings.Contains(string(stmt), want) {
				t.Fatalf("statement lacks %s: %s", want, stmt)
			}
		}
		_, blobs = fetchLayers(t, res.SBOM)
		if !bytes.Equal(blobs[0], sbom) {
			t.Fatal("the .sbom image does not hold the SBOM")
		}

		// The canary: nothing pushed or returned holds the private key.
		var all bytes.Buffer
		all.Write(res.Statement)
		all.Write(res.Envelope)
		for _, tag := range []string{res.Signature, res.Attestations, res.SBOM} {
			_, blobs := fetchLayers(t, tag)
			for _, b := range blobs {
				all.Write(b)
			}
		}
		d := key.Key.D.Bytes()
		for _, secret := range [][]byte{d, []byte(base64.StdEncoding.EncodeToString(d)), []byte(hex.EncodeToString(d))} {
			if bytes.Contains(all.Bytes(), secret) {
				t.Fatal("the private key is in an attachment")
			}
		}

		if referrers {
			d, _ := name.NewDigest(image, name.Insecure)
			idx, err := remote.Referrers(d)
			if err != nil {
				t.Fatal(err)
			}
			im, _ := idx.IndexManifest()
			if len(im.Manifests) != 2 {
				t.Fatalf("%d referrers of the image, want the SBOM and the attestation", len(im.Manifests))
			}
		}
	}
}

// Attachments are pushed only after the image: an image the registry lacks
// is refused and nothing is written.
func TestAttachRefusesAnImageNotPushed(t *testing.T) {
	host := inProcessRegistry(t, false)
	img, _ := random.Image(64, 1)
	d, _ := img.Digest()
	image := host + "/app@" + d.String()
	_, err := Attach(context.Background(), image, newKey(t, "k"), Claims{Provenance: testProvenance(image)}, authn.Anonymous)
	if err == nil || !strings.Contains(err.Error(), "must be pushed first") {
		t.Fatalf("err = %v", err)
	}
	repo, _ := name.NewRepository(host+"/app", name.Insecure)
	if tags, _ := remote.List(repo); len(tags) != 0 {
		t.Fatalf("tags written: %v", tags)
	}
}

// A signer that fails leaves the registry as it was.
func TestAttachSignsBeforePushing(t *testing.T) {
	host := inProcessRegistry(t, false)
	image, _ := pushRandom(t, host, authn.Anonymous)
	_, err := Attach(context.Background(), image, failing{}, Claims{Provenance: testProvenance(image)}, authn.Anonymous)
	if err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("err = %v", err)
	}
	repo, _ := name.NewRepository(host+"/app", name.Insecure)
	tags, _ := remote.List(repo)
	if len(tags) != 1 || tags[0] != "latest" {
		t.Fatalf("tags %v, want only the image's", tags)
	}
}

type failing struct{}

func (failing) Sign(context.Context, []byte) ([]byte, error) { return nil, errDenied }
func (failing) Public() crypto.PublicKey                     { return nil }
func (failing) Ref() string                                  { return "failing" }

var errDenied = &deniedError{}

type deniedError struct{}

func (*deniedError) Error() string { return "signing key failing: kms:Sign denied" }

// The statement is canonical (same inputs, same bytes) and validates as an
// in-toto statement with a SLSA v1 predicate; bad input is refused.
func TestProvenanceStatement(t *testing.T) {
	image := "127.0.0.1:5001/webapp@sha256:" + strings.Repeat("d", 64)
	a, err := testProvenance(image).Statement()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := testProvenance(image).Statement()
	if !bytes.Equal(a, b) {
		t.Fatal("two statements of the same provenance differ")
	}
	var st map[string]any
	if err := json.Unmarshal(a, &st); err != nil {
		t.Fatal(err)
	}
	if st["_type"] != "https://in-toto.io/Statement/v1" || st["predicateType"] != SLSAProvenanceType {
		t.Fatalf("statement %s", a)
	}
	pred := st["predicate"].(map[string]any)
	deps := pred["buildDefinition"].(map[string]any)["resolvedDependencies"].([]any)
	if len(deps) != 3 || !strings.Contains(string(a), `"name":"base-image","uri":"oci://docker.io/library/python"`) {
		t.Fatalf("resolvedDependencies %v", deps)
	}
	bad := testProvenance(image)
	bad.BaseImage = "python:3.13-slim"
	if _, err := bad.Statement(); err == nil || !strings.Contains(err.Error(), "by digest") {
		t.Fatalf("a base image by tag: err = %v", err)
	}
	bad = testProvenance("127.0.0.1:5001/webapp:latest")
	if _, err := bad.Statement(); err == nil {
		t.Fatal("a subject by tag was accepted")
	}
}

// FetchProvenance returns the attached statement only when it verifies with
// the key; SameMaterials accepts a rebuild with other times and builder,
// and names a changed material.
func TestFetchProvenanceAndSameMaterials(t *testing.T) {
	host := inProcessRegistry(t, false)
	ctx := context.Background()
	image, _ := pushRandom(t, host, authn.Anonymous)
	key := newKey(t, "k")
	res, err := Attach(ctx, image, key, Claims{Provenance: testProvenance(image)}, authn.Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	got, err := FetchProvenance(ctx, image, key.Public(), authn.Anonymous)
	if err != nil || !bytes.Equal(got, res.Statement) {
		t.Fatalf("FetchProvenance: %v", err)
	}
	if _, err := FetchProvenance(ctx, image, newKey(t, "other").Public(), authn.Anonymous); err == nil {
		t.Fatal("a provenance verified with another key")
	}
	unsigned, _ := pushRandom(t, host, authn.Anonymous)
	if _, err := FetchProvenance(ctx, unsigned, key.Public(), authn.Anonymous); err == nil || !strings.Contains(err.Error(), "no provenance attached") {
		t.Fatalf("unsigned: err = %v", err)
	}

	rebuilt := testProvenance(image)
	rebuilt.BuilderVersion = map[string]string{"cmd/build": "v2"}
	rebuilt.InvocationID = "another-build"
	b, _ := rebuilt.Statement()
	if err := SameMaterials(got, b); err != nil {
		t.Fatalf("same materials, other builder: %v", err)
	}
	rebuilt.Materials[0].Digest = map[string]string{"sha256": strings.Repeat("e", 64)}
	b, _ = rebuilt.Statement()
	if err := SameMaterials(got, b); err == nil || !strings.Contains(err.Error(), "materials differ") {
		t.Fatalf("changed requirements: err = %v", err)
	}
}

// An image index: the index and each platform's image get a signature that
// verifies over their own digest; the provenance (attached to each) names
// every platform's digest with its platform, and each platform's SBOM.
func TestAttachIndexSignsEveryPlatform(t *testing.T) {
	host := inProcessRegistry(t, true)
	ctx := context.Background()
	var adds []mutate.IndexAddendum
	var plats []PlatformClaims
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
		plats = append(plats, PlatformClaims{Platform: "linux/" + arch, Digest: d.String(),
			SBOM: []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","metadata":{"arch":"` + arch + `"}}`)})
	}
	ii := mutate.AppendManifests(empty.Index, adds...)
	tag, err := name.NewTag(host+"/app:multi", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, ii); err != nil {
		t.Fatal(err)
	}
	id, _ := ii.Digest()
	image := host + "/app@" + id.String()
	key := newKey(t, "k")
	prov := testProvenance(image)
	for _, pc := range plats {
		prov.Platforms = append(prov.Platforms, PlatformImage{Platform: pc.Platform, Digest: pc.Digest})
	}
	res, err := Attach(ctx, image, key, Claims{Provenance: prov, Platforms: plats}, authn.Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Platforms) != 2 {
		t.Fatalf("platform signatures: %v", res.Platforms)
	}
	for i, pc := range plats {
		hexd := strings.TrimPrefix(pc.Digest, "sha256:")
		descs, blobs := fetchLayers(t, host+"/app:sha256-"+hexd+".sig")
		var p simpleSigning
		if err := json.Unmarshal(blobs[0], &p); err != nil || p.Critical.Image.DockerManifestDigest != pc.Digest {
			t.Fatalf("%s: payload %s (%v)", pc.Platform, blobs[0], err)
		}
		sig, _ := base64.StdEncoding.DecodeString(descs[0].Annotations[sigAnnotation])
		if !verifyECDSA(&key.Key.PublicKey, blobs[0], sig) {
			t.Fatalf("%s: the signature does not verify", pc.Platform)
		}
		if res.Platforms[i] != host+"/app:sha256-"+hexd+".sig" {
			t.Errorf("%s: signature tag %s", pc.Platform, res.Platforms[i])
		}
		_, blobs = fetchLayers(t, host+"/app:sha256-"+hexd+".sbom")
		if !bytes.Equal(blobs[0], pc.SBOM) {
			t.Errorf("%s: the .sbom image holds %s", pc.Platform, blobs[0])
		}
		_, blobs = fetchLayers(t, host+"/app:sha256-"+hexd+".att")
		var env dsse.Envelope
		if err := json.Unmarshal(blobs[0], &env); err != nil {
			t.Fatal(err)
		}
		stmt, _ := env.DecodeB64Payload()
		if !bytes.Equal(stmt, res.Statement) {
			t.Errorf("%s: its attestation is not the index's", pc.Platform)
		}
	}
	var st struct {
		Subject []struct {
			Digest      map[string]string `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(res.Statement, &st); err != nil || len(st.Subject) != 3 {
		t.Fatalf("subjects: %s (%v)", res.Statement, err)
	}
	for i, pc := range plats {
		s := st.Subject[i+1]
		if "sha256:"+s.Digest["sha256"] != pc.Digest || s.Annotations["platform"] != pc.Platform {
			t.Errorf("subject %d: %+v, want %s %s", i+1, s, pc.Platform, pc.Digest)
		}
	}
	for _, want := range []string{`"name":"sbom.linux-amd64.cdx.json"`, `"name":"sbom.linux-arm64.cdx.json"`} {
		if !strings.Contains(string(res.Statement), want) {
			t.Errorf("statement lacks %s", want)
		}
	}
}
