package cli_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/webapp-pipeline/dev/devtest"
)

// needSigning is needEnv plus what dev/install-attest.sh adds: moto's KMS and its signing key,
// syft and cosign.
func needSigning(t *testing.T) {
	t.Helper()
	needEnv(t)
	devtest.Require(t, "AWS_ENDPOINT_URL_KMS", "BUILD_SIGNING_KEY", "WEBAPP_DEV_SYFT", "WEBAPP_DEV_COSIGN")
}

// cosign runs the real cosign CLI logged in to the push registry; it returns the output and
// whether it passed.
func cosign(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	host := strings.Split(os.Getenv("BUILD_IMAGE_REPO"), "/")[0]
	auth := base64.StdEncoding.EncodeToString([]byte("ci-pusher:" + registryPassword(t)))
	writeFile(t, filepath.Join(dir, "docker", "config.json"), fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth))
	writeFile(t, filepath.Join(dir, "root.json"), `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`)
	args = append(args, "--insecure-ignore-tlog=true", "--trusted-root", filepath.Join(dir, "root.json"),
		"--allow-http-registry", "--allow-insecure-registry")
	cmd := exec.Command(os.Getenv("WEBAPP_DEV_COSIGN"), args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(dir, "docker"), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// TestSignedBuildAttachesWhatCosignVerifies: `all` with the dev env's KMS key signs the pushed
// digest and attaches the SLSA provenance and the SBOM; the real cosign verifies both with the
// key image.env names; the provenance names the origin remote (its token stripped); the SBOM
// lists the Python distributions the image holds; no secret (registry password, AWS secret key,
// the remote's token) or private key is in the output, the artifacts or the image; and
// `reproduce --expect` checks the signed provenance against the rebuild.
func TestSignedBuildAttachesWhatCosignVerifies(t *testing.T) {
	needSigning(t)
	t.Parallel()
	src := checkout(t)
	git(t, src, "init", "-q", "-b", "main")
	git(t, src, "add", ".")
	git(t, src, "commit", "-q", "-m", "signed")
	sha := git(t, src, "rev-parse", "HEAD")
	token := "ghp_" + randomSuffix() + randomSuffix()
	git(t, src, "remote", "add", "origin", "https://x-access-token:"+token+"@github.com/acme/shop.git")
	awsSecret := "aws-secret-" + randomSuffix() + randomSuffix() // moto takes any credentials
	out := filepath.Join(t.TempDir(), "dist")
	repo := uniqueRepo("signed")
	env := []string{"BUILD_IMAGE_REPO=" + repo, "BUILD_SOURCE_REPOSITORY=", "CODEBUILD_SOURCE_REPO_URL=",
		"CODEBUILD_RESOLVED_SOURCE_VERSION=", "AWS_SECRET_ACCESS_KEY=" + awsSecret}

	r := runBuild(t, src, env, "all", "--out", out)
	if r.code != 0 {
		t.Fatalf("signed build should pass\n%s", r)
	}
	ie := readImageEnv(t, out)
	image, key := ie["IMAGE"], ie["SIGNING_KEY"]
	if !strings.HasPrefix(key, "awskms:///arn:aws:kms:") {
		t.Fatalf("image.env SIGNING_KEY = %q, want the key by its ARN", key)
	}
	if got := ie["SOURCE_REPOSITORY"]; got != "https://github.com/acme/shop" {
		t.Errorf("image.env SOURCE_REPOSITORY = %q, want the origin remote without its token", got)
	}
	t.Logf("%s", r.lastLines(4))

	t.Run("cosign verifies the signature and the provenance", func(t *testing.T) {
		o, ok := cosign(t, "verify", "--key", key, image)
		if !ok {
			t.Fatalf("cosign verify %s failed:\n%s", image, o)
		}
		t.Logf("cosign verify:\n%s", o)
		policy := filepath.Join(t.TempDir(), "p.rego")
		writeFile(t, policy, "package signature\ndefault allow = false\nallow {\n  input.predicate.buildDefinition.externalParameters.source.repository == \"https://github.com/acme/shop\"\n}\n")
		if o, ok := cosign(t, "verify-attestation", "--key", key, "--type", "slsaprovenance1", "--policy", policy, image); !ok {
			t.Errorf("cosign verify-attestation failed:\n%s", o)
		}
	})

	t.Run("the artifacts hold the claims", func(t *testing.T) {
		var st struct {
			Subject []struct {
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
			Predicate struct {
				BuildDefinition struct {
					ExternalParameters struct {
						Source struct{ Repository, Commit string } `json:"source"`
					} `json:"externalParameters"`
					ResolvedDependencies []struct {
						Name, URI string
						Digest    map[string]string
					} `json:"resolvedDependencies"`
				} `json:"buildDefinition"`
			} `json:"predicate"`
		}
		b, err := os.ReadFile(filepath.Join(out, "attest", "provenance.intoto.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		_, digest, _ := strings.Cut(image, "@sha256:")
		if len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] != digest {
			t.Errorf("provenance subject %v, want %s", st.Subject, digest)
		}
		src := st.Predicate.BuildDefinition.ExternalParameters.Source
		if src.Repository != "https://github.com/acme/shop" || src.Commit != sha {
			t.Errorf("provenance source %+v, want https://github.com/acme/shop at %s", src, sha)
		}
		names := map[string]bool{}
		for _, d := range st.Predicate.BuildDefinition.ResolvedDependencies {
			names[d.Name] = d.Digest["sha256"] != ""
		}
		if !names["base-image"] || !names["app/requirements.txt"] {
			t.Errorf("materials should name the base image and app/requirements.txt by digest: %s", b)
		}
		for _, f := range []string{"sbom.cdx.json", "provenance.dsse.json"} {
			assertExists(t, filepath.Join(out, "attest", f))
		}
	})

	t.Run("the SBOM lists what the image holds", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(out, "attest", "sbom.cdx.json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Components []struct{ Name, PURL string } `json:"components"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		pypi, deb := map[string]bool{}, 0
		for _, c := range doc.Components {
			switch {
			case strings.HasPrefix(c.PURL, "pkg:pypi/"):
				pypi[strings.ToLower(strings.ReplaceAll(c.Name, "_", "-"))] = true
			case strings.HasPrefix(c.PURL, "pkg:deb/"):
				deb++
			}
		}
		// pip is uninstalled from the runtime image: ask importlib.metadata, what pip list reads.
		docker(t, "", "login", "--username", "ci-pusher", "--password-stdin", strings.Split(repo, "/")[0]).stdin(registryPassword(t)).run()
		docker(t, "", "pull", "-q", image).run()
		list := docker(t, "", "run", "--rm", "--entrypoint", "python", image, "-c",
			"import importlib.metadata as m; print('\\n'.join(sorted({d.metadata['Name'].lower().replace('_','-') for d in m.distributions()})))").run()
		inImage := strings.Fields(list)
		for _, n := range inImage {
			if !pypi[n] {
				t.Errorf("the image holds %s, the SBOM does not list it", n)
			}
		}
		if len(pypi) != len(inImage) || deb < 30 {
			t.Errorf("SBOM: %d pypi (image: %d), %d deb (want the ~38 kept packages of the dpkg status)", len(pypi), len(inImage), deb)
		}
		t.Logf("SBOM: %d pypi = %d distributions in the image (%s); %d deb", len(pypi), len(inImage), strings.Join(inImage, " "), deb)
	})

	t.Run("no secret or private key in outputs, artifacts or layers", func(t *testing.T) {
		// The private key never leaves KMS; what could leak is a PEM block of one (in the image,
		// the base's openssl and Python libraries spell "PRIVATE KEY" by nature: not checked there).
		canaries := map[string]string{"the registry password": registryPassword(t), "the AWS secret key": awsSecret,
			"the remote's token": token}
		outputs := map[string]string{"a PEM private key": "PRIVATE KEY-----"}
		for k, v := range canaries {
			outputs[k] = v
		}
		for what, c := range outputs {
			if strings.Contains(r.stdout+r.stderr, c) {
				t.Errorf("%s appears in the build's output", what)
			}
			_ = filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if b, _ := os.ReadFile(p); strings.Contains(string(b), c) {
						t.Errorf("%s appears in artifact %s", what, p)
					}
				}
				return err
			})
		}
		docker(t, "", "pull", "-q", image).run()
		saved := filepath.Join(t.TempDir(), "image.tar")
		docker(t, "", "save", "-o", saved, image).run()
		for what, c := range canaries {
			if where := findInImageTar(t, saved, c); where != "" {
				t.Errorf("%s appears in the image: %s", what, where)
			}
		}
	})

	t.Run("reproduce checks the signed provenance", func(t *testing.T) {
		r := runBuild(t, src, []string{"AWS_SECRET_ACCESS_KEY=" + awsSecret}, "reproduce", sha, "--step", "image", "--expect", image)
		if r.code != 0 {
			t.Fatalf("reproduce %s --expect %s failed\n%s", sha, image, r)
		}
		if !strings.Contains(r.stderr, "provenance matches") {
			t.Errorf("reproduce should say the provenance matches\n%s", r)
		}
	})
}

// denySign is moto's KMS with kms:Sign denied, as AWS answers a role without the permission
// (moto enforces no IAM): every other call goes through.
func denySign(t *testing.T) string {
	t.Helper()
	moto, err := url.Parse(os.Getenv("AWS_ENDPOINT_URL_KMS"))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(moto)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "TrentService.Sign" {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"__type":"AccessDeniedException","message":"User: arn:aws:sts::123456789012:assumed-role/CodeBuildRole/build is not authorized to perform: kms:Sign on this resource because no identity-based policy allows the kms:Sign action"}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestSigningKeyProblemsPushNothing: a signing key that does not exist, a KMS that cannot be
// reached, a role denied kms:Sign, a key that cannot sign: the build fails before it builds
// anything, with one line naming the key, nothing pushed and --out not written.
func TestSigningKeyProblemsPushNothing(t *testing.T) {
	needSigning(t)
	t.Parallel()
	for name, tt := range map[string]struct {
		env  []string
		want string
	}{
		"missing":     {[]string{"BUILD_SIGNING_KEY=awskms:///alias/i13-no-such-key"}, "kms:GetPublicKey failed"},
		"unreachable": {[]string{"AWS_ENDPOINT_URL_KMS=http://127.0.0.1:9", "AWS_MAX_ATTEMPTS=1"}, "kms:GetPublicKey failed"},
		"denied":      {[]string{"AWS_ENDPOINT_URL_KMS=" + denySign(t)}, "kms:Sign failed (the build role needs kms:Sign on it)"},
		"not a signing key": {[]string{"BUILD_SIGNING_KEY=" + newKey(t, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")},
			"create an asymmetric ECC_NIST_P256 SIGN_VERIFY key"},
		"not a key reference": {[]string{"BUILD_SIGNING_KEY=alias/webapp-signing"}, "want awskms://[ENDPOINT]/KEY"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := checkout(t)
			out := filepath.Join(t.TempDir(), "dist")
			repo := uniqueRepo("badkey")
			r := runBuild(t, src, append([]string{"BUILD_IMAGE_REPO=" + repo, "BUILD_SOURCE_REPOSITORY=https://github.com/acme/shop"}, tt.env...),
				"all", "--out", out, "--revision", "badkey1")
			if r.code == 0 {
				t.Fatalf("the build should fail\n%s", r)
			}
			last := r.lastLines(1)
			if !strings.HasPrefix(last, "build: error: ") || !strings.Contains(last, "signing key") || !strings.Contains(last, tt.want) {
				t.Errorf("the last line should name the signing key and say %q:\n%s", tt.want, r)
			}
			if strings.Contains(r.stderr, "step done") {
				t.Errorf("nothing should be built with a bad key\n%s", r)
			}
			if tagExists(t, repo, "badkey1") {
				t.Errorf("%s:badkey1 was pushed", repo)
			}
			assertNotExists(t, out)
			t.Logf("%s", last)
		})
	}
}

// newKey creates a key in moto's KMS and returns its cosign reference.
func newKey(t *testing.T, spec, usage string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(os.Getenv("WEBAPP_DEV_TOOLS"), "aws"), "kms", "create-key", "--key-spec", spec,
		"--key-usage", usage, "--query", "KeyMetadata.KeyId", "--output", "text").CombinedOutput()
	if err != nil {
		t.Fatalf("create a KMS key: %v\n%s", err, out)
	}
	return "awskms:///" + strings.TrimSpace(string(out))
}

// TestUnsignedBuildWarnsAndNamesNoKey: without a signing key the image is pushed with a warning,
// image.env names no SIGNING_KEY (so the instances refuse it unless VERIFY_IMAGE=off), nothing
// is attached, and the SBOM is still in the artifacts.
func TestUnsignedBuildWarnsAndNamesNoKey(t *testing.T) {
	needSigning(t)
	t.Parallel()
	src := checkout(t)
	out := filepath.Join(t.TempDir(), "dist")
	repo := uniqueRepo("unsigned")
	r := runBuild(t, src, []string{"BUILD_IMAGE_REPO=" + repo, "BUILD_SIGNING_KEY="}, "publish", "--out", out, "--revision", "unsigned1")
	if r.code != 0 {
		t.Fatalf("an unsigned build should pass\n%s", r)
	}
	if !strings.Contains(r.stderr, "UNSIGNED") || !strings.Contains(r.stderr, "VERIFY_IMAGE=off") {
		t.Errorf("the build should warn that the image is unsigned\n%s", r)
	}
	ie := readImageEnv(t, out)
	if _, ok := ie["SIGNING_KEY"]; ok {
		t.Errorf("image.env names a SIGNING_KEY for an unsigned image: %v", ie)
	}
	_, digest, _ := strings.Cut(ie["IMAGE"], "@")
	if tagExists(t, repo, strings.Replace(digest, ":", "-", 1)+".sig") {
		t.Errorf("an unsigned build attached a signature")
	}
	assertExists(t, filepath.Join(out, "attest", "sbom.cdx.json"))
}
