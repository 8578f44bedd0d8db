package attest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// hookRun runs the AfterInstall hook (scripts/after_install.sh, which pulls
// and then calls verify_image) from a bundle naming image, against the dev
// dockerd, registry, SSM and KMS. It returns the exit code and stderr.
func (e devEnv) hookRun(t *testing.T, image, key, repo string, extraEnv ...string) (int, string) {
	t.Helper()
	bundle := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bundle, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Every script, as the bundle carries them (lib.sh sources its siblings).
	scripts, err := filepath.Glob(filepath.Join("..", "..", "scripts", "*.sh"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts/*.sh: %v", err)
	}
	for _, path := range scripts {
		f := filepath.Base(path)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bundle, "scripts", f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	host, _, _ := strings.Cut(e.repo, "/")
	imageEnv := fmt.Sprintf("IMAGE=%s\nIMAGE_TAG=%s:test\nREVISION=%s\nREGISTRY=%s\nREGISTRY_USERNAME_PARAM=%s\nREGISTRY_PASSWORD_PARAM=%s\n"+
		"AWS_REGION=%s\nCONTAINER_NAME=i13-web\nCONTAINER_PORT=8080\nHEALTH_PATH=/ready\nSIGNING_KEY=%s\nSOURCE_REPOSITORY=%s\n",
		image, e.repo, strings.Repeat("a", 40), host, os.Getenv("BUILD_REGISTRY_USERNAME_PARAM"), os.Getenv("BUILD_REGISTRY_PASSWORD_PARAM"),
		os.Getenv("AWS_REGION"), key, repo)
	if err := os.WriteFile(filepath.Join(bundle, "image.env"), []byte(imageEnv), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(bundle, "scripts", "after_install.sh"))
	cmd.Env = append([]string{
		"DOCKER_HOST=" + os.Getenv("DOCKER_HOST"),
		"AWS_ENDPOINT_URL_SSM=" + os.Getenv("AWS_ENDPOINT_URL_SSM"),
		"AWS_ENDPOINT_URL_KMS=" + os.Getenv("AWS_ENDPOINT_URL_KMS"),
		"AWS_ACCESS_KEY_ID=" + os.Getenv("AWS_ACCESS_KEY_ID"),
		"AWS_SECRET_ACCESS_KEY=" + os.Getenv("AWS_SECRET_ACCESS_KEY"),
		"EXTRA_PATH=" + filepath.Dir(e.cosign) + ":" + os.Getenv("WEBAPP_DEV_TOOLS"),
		"WEBAPP_DEPLOY_ENV=/nonexistent/deploy.env",
		"HOME=" + t.TempDir(),
		"TMPDIR=" + t.TempDir(),
	}, extraEnv...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr.String(), e.password) {
		t.Fatal("the registry password is in the hook's output")
	}
	t.Logf("after_install.sh (%s) exit %d:\n%s", image, code, stderr.String())
	return code, stderr.String()
}

// The hook pulls, then refuses with one line naming the digest unless the
// image carries a signature by SIGNING_KEY and a provenance naming
// SOURCE_REPOSITORY; VERIFY_IMAGE=off lets it through with a warning.
func TestAfterInstallVerifiesTheImage(t *testing.T) {
	e := requireDevEnv(t)
	ctx := context.Background()
	f := e.signed(t, "hook-signed", nil)
	keyA, keyB, signer, img, image, res := f.keyA, f.keyB, f.signer, f.img, f.image, f.res
	const repo = "https://github.com/acme/shop"
	tampered := e.tampered(t, img, res, "hook-tampered")
	unsigned := e.push(t, runnableImage(t), "hook-unsigned")
	// signed, but of the other platform: an arm64 image on an amd64 instance (or the reverse)
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	foreign := e.push(t, platformImage(t, other), "hook-foreign")
	if _, err := Attach(ctx, foreign, signer, Claims{Provenance: testProvenance(foreign)}, e.auth); err != nil {
		t.Fatal(err)
	}
	// an attachment missing: signed, then its provenance deleted from the registry
	noAtt := e.push(t, runnableImage(t), "hook-noatt")
	nres, err := Attach(ctx, noAtt, signer, Claims{Provenance: testProvenance(noAtt)}, e.auth)
	if err != nil {
		t.Fatal(err)
	}
	attTag, _ := name.NewTag(nres.Attestations, name.Insecure)
	attDesc, err := remote.Head(attTag, remote.WithAuth(e.auth))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(attTag.Context().Digest(attDesc.Digest.String()), remote.WithAuth(e.auth)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, i := range []string{image, tampered, unsigned, noAtt, foreign} {
			_ = exec.Command("docker", "-H", os.Getenv("DOCKER_HOST"), "rmi", "-f", i).Run()
		}
	})

	if code, out := e.hookRun(t, image, keyA, repo); code != 0 || !strings.Contains(out, "verified "+image) {
		t.Fatalf("a signed image was not verified (exit %d)", code)
	}
	// by the key's ARN, what the build writes into image.env
	if arn := signer.VerifyRef(); !strings.HasPrefix(arn, "awskms:///arn:aws:kms:") {
		t.Errorf("VerifyRef %s, want the key's ARN", arn)
	} else if code, out := e.hookRun(t, image, arn, repo); code != 0 || !strings.Contains(out, "verified "+image) {
		t.Fatalf("a signed image was not verified by the key's ARN (exit %d)", code)
	}
	// again, the image now present (no pull, so verify_image logs in itself)
	if code, out := e.hookRun(t, image, keyA, repo); code != 0 || !strings.Contains(out, "verified "+image) || !strings.Contains(out, "already present") {
		t.Fatalf("a signed image already present was not verified (exit %d)", code)
	}
	for _, c := range []struct{ what, image, key, repo, want string }{
		{"a tampered image", tampered, keyA, repo, "refusing " + tampered + ": no valid signature by " + keyA},
		{"an unsigned image", unsigned, keyA, repo, "refusing " + unsigned + ": no valid signature by " + keyA},
		{"a signature by another key", image, keyB, repo, "refusing " + image + ": no valid signature by " + keyB},
		{"a provenance of another repository", image, keyA, "https://github.com/evil/fork",
			"refusing " + image + ": no provenance signed by " + keyA + " naming https://github.com/evil/fork"},
		{"no SIGNING_KEY", image, "", repo, "refusing " + image + ": no SIGNING_KEY"},
		{"a missing provenance", noAtt, keyA, repo, "refusing " + noAtt + ": no provenance signed by " + keyA},
		{"another platform's image", foreign, keyA, repo, "refusing " + foreign + ": it is a linux/" + other +
			" image and this instance is linux/" + runtime.GOARCH + ": add linux/" + runtime.GOARCH + " to platforms in pipeline.yml"},
	} {
		code, out := e.hookRun(t, c.image, c.key, c.repo)
		last := lastLine(out)
		if code == 0 || !strings.Contains(last, "error: "+c.want) {
			t.Errorf("%s: exit %d, last line %q, want it to say %q", c.what, code, last, c.want)
		}
	}
	// a refused image does not stay on the instance
	if err := exec.Command("docker", "-H", os.Getenv("DOCKER_HOST"), "image", "inspect", tampered).Run(); err == nil {
		t.Error("the refused tampered image is still in the instance's docker")
	}
	code, out := e.hookRun(t, unsigned, keyA, repo, "VERIFY_IMAGE=off")
	if code != 0 || !strings.Contains(out, "WARNING: VERIFY_IMAGE=off: "+unsigned+" runs UNVERIFIED") {
		t.Fatalf("VERIFY_IMAGE=off: exit %d", code)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
