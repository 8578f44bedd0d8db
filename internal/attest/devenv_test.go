package attest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/webapp-pipeline/dev/devtest"
)

// devEnv is what the integration tests use of the dev environment: the push
// registry :5001 (htpasswd), moto's KMS, cosign and syft as dev/install-attest.sh installs them.
type devEnv struct {
	repo     string // 127.0.0.1:5001/i13-attest-test
	user     string
	password string // the canary: never in an attachment, a result or an error
	auth     authn.Authenticator
	kms      *kms.Client
	cosign   string
}

func requireDevEnv(t *testing.T) devEnv {
	t.Helper()
	devtest.Require(t, "AWS_ENDPOINT_URL_KMS", "WEBAPP_DEV_COSIGN", "WEBAPP_DEV_REGISTRY_PASSWORD_FILE", "BUILD_IMAGE_REPO")
	pw, err := os.ReadFile(os.Getenv("WEBAPP_DEV_REGISTRY_PASSWORD_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := strings.Cut(os.Getenv("BUILD_IMAGE_REPO"), "/")
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e := devEnv{repo: host + "/i13-attest-test", user: "ci-pusher", password: strings.TrimSpace(string(pw)),
		kms: kms.NewFromConfig(cfg), cosign: os.Getenv("WEBAPP_DEV_COSIGN")}
	e.auth = authn.FromConfig(authn.AuthConfig{Username: e.user, Password: e.password})
	return e
}

// newKMSKey creates a key in moto's KMS and returns its cosign reference.
func (e devEnv) newKMSKey(t *testing.T, spec kmstypes.KeySpec, usage kmstypes.KeyUsageType) string {
	t.Helper()
	out, err := e.kms.CreateKey(context.Background(), &kms.CreateKeyInput{KeySpec: spec, KeyUsage: usage,
		Description: aws.String("internal/attest test key")})
	if err != nil {
		t.Fatal(err)
	}
	return "awskms:///" + *out.KeyMetadata.KeyId
}

// push writes img to repo:tag and returns repo@digest.
func (e devEnv) push(t *testing.T, img v1.Image, tag string) string {
	t.Helper()
	ref, err := name.NewTag(e.repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(e.auth)); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return e.repo + "@" + d.String()
}

// runnableImage is a random image with a platform (docker pulls it): the
// dev dockerd's, this host's (the hook refuses another).
func runnableImage(t *testing.T) v1.Image {
	t.Helper()
	return platformImage(t, runtime.GOARCH)
}

// platformImage is a random image whose config says linux/arch.
func platformImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// dockerConfig is a DOCKER_CONFIG directory logged in to the registry (for cosign).
func (e devEnv) dockerConfig(t *testing.T) string {
	dir := t.TempDir()
	host, _, _ := strings.Cut(e.repo, "/")
	cfg := map[string]any{"auths": map[string]any{host: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(e.user + ":" + e.password))}}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cosignRun runs the real cosign CLI; it returns its combined output and whether it succeeded.
func (e devEnv) cosignRun(t *testing.T, dockerConfig string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(e.cosign, args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerConfig, "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// trustedRoot is an empty Sigstore trusted root: with a key cosign needs none, and without one it
// would try to fetch the public-good roots over the internet (as scripts/verify_image.sh does too).
func trustedRoot(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(p, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fixture: an image pushed and attached with moto KMS key A; key B is another key.
type fixture struct {
	keyA, keyB string
	signer     *KMSSigner
	img        v1.Image
	image      string
	res        *Result
}

func (e devEnv) signed(t *testing.T, tag string, sbom []byte) fixture {
	t.Helper()
	f := fixture{
		keyA: e.newKMSKey(t, kmstypes.KeySpecEccNistP256, kmstypes.KeyUsageTypeSignVerify),
		keyB: e.newKMSKey(t, kmstypes.KeySpecEccNistP256, kmstypes.KeyUsageTypeSignVerify),
		img:  runnableImage(t),
	}
	var err error
	if f.signer, err = NewKMSSigner(context.Background(), f.keyA, ""); err != nil {
		t.Fatal(err)
	}
	f.image = e.push(t, f.img, tag)
	if f.res, err = Attach(context.Background(), f.image, f.signer, Claims{SBOM: sbom, Provenance: testProvenance(f.image)}, e.auth); err != nil {
		t.Fatal(err)
	}
	return f
}

// tampered pushes img with one more layer (another digest) as repo:tag and
// copies res's signature and provenance onto its cosign tags: what someone
// who changed an image and kept its attachments would publish.
func (e devEnv) tampered(t *testing.T, img v1.Image, res *Result, tag string) string {
	t.Helper()
	extra, _ := random.Layer(64, "application/vnd.oci.image.layer.v1.tar+gzip")
	changed, err := mutate.AppendLayers(img, extra)
	if err != nil {
		t.Fatal(err)
	}
	image := e.push(t, changed, tag)
	d, _ := changed.Digest()
	for suffix, src := range map[string]string{"sig": res.Signature, "att": res.Attestations} {
		from, _ := name.NewTag(src, name.Insecure)
		si, err := remote.Image(from, remote.WithAuth(e.auth))
		if err != nil {
			t.Fatal(err)
		}
		to, _ := name.NewTag(e.repo+":sha256-"+d.Hex+"."+suffix, name.Insecure)
		if err := remote.Write(to, si, remote.WithAuth(e.auth)); err != nil {
			t.Fatal(err)
		}
	}
	return image
}

// refused: cosign must refuse, for the reason want (not for some other failure).
func (e devEnv) refused(t *testing.T, dockerConfig, what, want string, args []string) {
	t.Helper()
	out, ok := e.cosignRun(t, dockerConfig, args...)
	if ok {
		t.Fatalf("cosign %s accepted %s:\n%s", args[0], what, out)
	}
	if !strings.Contains(out, want) {
		t.Fatalf("cosign %s refused %s, but not with %q:\n%s", args[0], what, want, out)
	}
}

func verifyArgs(t *testing.T, key, image string) []string {
	return []string{"verify", "--key", key, "--insecure-ignore-tlog=true", "--trusted-root", trustedRoot(t),
		"--allow-http-registry", "--allow-insecure-registry", image}
}

func attestArgs(t *testing.T, key, image, policy string) []string {
	return []string{"verify-attestation", "--key", key, "--insecure-ignore-tlog=true", "--trusted-root", trustedRoot(t),
		"--allow-http-registry", "--allow-insecure-registry", "--type", "slsaprovenance1", "--policy", policy, image}
}

func repoPolicy(t *testing.T, repo string) string {
	p := filepath.Join(t.TempDir(), "provenance.rego")
	body := "package signature\ndefault allow = false\nallow {\n  input.predicate.buildDefinition.externalParameters.source.repository == \"" + repo + "\"\n}\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The oracle is the real cosign CLI: it accepts what Attach wrote with a
// moto KMS key (public key by kms:GetPublicKey), and refuses another key, a
// tampered image carrying a copied signature, and an unsigned image.
func TestCosignVerifiesAttachWithMotoKMS(t *testing.T) {
	e := requireDevEnv(t)
	f := e.signed(t, "signed", []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`))
	keyA, keyB, img, image, res := f.keyA, f.keyB, f.img, f.image, f.res
	if res.Referrers {
		t.Fatal("docker-registry 2.8 has no referrers API, but Attach says it has")
	}
	dc := e.dockerConfig(t)

	if out, ok := e.cosignRun(t, dc, verifyArgs(t, keyA, image)...); !ok {
		t.Fatalf("cosign verify refused the signed image:\n%s", out)
	}
	if out, ok := e.cosignRun(t, dc, attestArgs(t, keyA, image, repoPolicy(t, "https://github.com/acme/shop"))...); !ok {
		t.Fatalf("cosign verify-attestation refused the provenance:\n%s", out)
	}
	e.refused(t, dc, "a provenance of another repository", "validation errors occurred",
		attestArgs(t, keyA, image, repoPolicy(t, "https://github.com/evil/fork")))
	e.refused(t, dc, "a signature by another key", "no matching signatures", verifyArgs(t, keyB, image))

	// Tampered: one more layer is another digest; its tags carry the original's signature.
	timage := e.tampered(t, img, res, "tampered")
	e.refused(t, dc, "a tampered image with a copied signature", "no matching signatures", verifyArgs(t, keyA, timage))
	e.refused(t, dc, "a tampered image with a copied provenance", "no matching attestations",
		attestArgs(t, keyA, timage, repoPolicy(t, "https://github.com/acme/shop")))
	unsigned := e.push(t, runnableImage(t), "unsigned")
	e.refused(t, dc, "an unsigned image", "no signatures found", verifyArgs(t, keyA, unsigned))

	// The canary: the registry password is in nothing Attach returned or pushed.
	var all bytes.Buffer
	all.Write(res.Statement)
	all.Write(res.Envelope)
	for _, tag := range []string{res.Signature, res.Attestations, res.SBOM} {
		_, blobs := fetchLayersAuth(t, tag, e.auth)
		for _, b := range blobs {
			all.Write(b)
		}
	}
	if bytes.Contains(all.Bytes(), []byte(e.password)) {
		t.Fatal("the registry password is in an attachment")
	}
}

// A rejected login is an error that does not hold the password, and
// nothing is pushed.
func TestAttachKeepsARejectedPasswordOutOfErrors(t *testing.T) {
	e := requireDevEnv(t)
	ctx := context.Background()
	image := e.push(t, runnableImage(t), "badlogin")
	canary := fmt.Sprintf("canary-%d", time.Now().UnixNano())
	bad := authn.FromConfig(authn.AuthConfig{Username: e.user, Password: canary})
	_, err := Attach(ctx, image, newKey(t, "k"), Claims{Provenance: testProvenance(image)}, bad)
	if err == nil || strings.Contains(err.Error(), canary) {
		t.Fatalf("err = %v", err)
	}
}

// NewKMSSigner checks the key before anything is built: a missing key, a
// key of the wrong kind and a malformed reference are one line each.
func TestKMSSignerRefusesBadKeys(t *testing.T) {
	e := requireDevEnv(t)
	ctx := context.Background()
	rsa := e.newKMSKey(t, kmstypes.KeySpecRsa2048, kmstypes.KeyUsageTypeSignVerify)
	for ref, want := range map[string]string{
		"awskms:///alias/i13-no-such-key": "kms:GetPublicKey failed",
		rsa:                               "is a RSA_2048 SIGN_VERIFY key",
		"kms://alias/x":                   "want awskms://",
		"awskms://":                       "want awskms://",
	} {
		_, err := NewKMSSigner(ctx, ref, "")
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want one line with %q", ref, err, want)
		}
	}
	// KMS unreachable: one line too (after the SDK's retries)
	t.Setenv("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:1")
	_, err := NewKMSSigner(ctx, rsa, "")
	if err == nil || !strings.Contains(err.Error(), "kms:GetPublicKey failed") || strings.Contains(err.Error(), "\n") {
		t.Errorf("unreachable KMS: err = %v", err)
	}
}

// Messages over 4 KiB go to KMS as a digest. moto 5.2 signs the digest as
// if it were the message: the signer's own check must catch that rather
// than publish a signature nobody can verify (on AWS both kinds verify).
func TestKMSSignerChecksEverySignature(t *testing.T) {
	e := requireDevEnv(t)
	ctx := context.Background()
	s, err := NewKMSSigner(ctx, e.newKMSKey(t, kmstypes.KeySpecEccNistP256, kmstypes.KeyUsageTypeSignVerify), "")
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), kmsRawMax+1)
	sig, err := s.Sign(ctx, big)
	switch {
	case err == nil && !verifyECDSA(s.pub, big, sig):
		t.Fatal("Sign returned a signature that does not verify")
	case err != nil && !strings.Contains(err.Error(), "does not sign what it is asked to"):
		t.Fatalf("err = %v", err)
	}
	small := []byte("small message")
	sig, err = s.Sign(ctx, small)
	if err != nil || !verifyECDSA(s.pub, small, sig) {
		t.Fatalf("RAW sign: %v", err)
	}
}

func fetchLayersAuth(t *testing.T, ref string, auth authn.Authenticator) ([]v1.Descriptor, [][]byte) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithAuth(auth))
	if err != nil {
		t.Fatalf("fetch %s: %v", ref, err)
	}
	m, _ := img.Manifest()
	raw, _ := img.RawManifest()
	blobs := [][]byte{raw}
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, _ := l.Compressed()
		var b bytes.Buffer
		_, _ = b.ReadFrom(rc)
		rc.Close()
		blobs = append(blobs, b.Bytes())
	}
	return m.Layers, blobs
}
