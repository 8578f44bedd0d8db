package ecrauth

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/dev/devtest"
	"github.com/acme/webapp-pipeline/internal/ocipush"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestECRLoginWithMotoToken is the ECR login end to end against real peers: moto_server answers
// ECR's GetAuthorizationToken (the SDK reaches it through AWS_ENDPOINT_URL_ECR), and Debian's
// docker-registry stands for the ECR registry, configured to accept exactly that token's
// user:password with HTTP Basic, the scheme ECR's registry uses. The build side pushes with
// Credentials; the hook side (scripts/lib.sh registry_login with REGISTRY_LOGIN=ecr) logs the
// dev dockerd in with `aws ecr get-login-password` and pulls the image by digest.
func TestECRLoginWithMotoToken(t *testing.T) {
	devtest.Require(t, "AWS_ENDPOINT_URL_ECR", "DOCKER_HOST", "WEBAPP_DEV_TOOLS")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The build's login: a token from moto through the default credential chain.
	user, password, err := Credentials(ctx, os.Getenv("AWS_REGION"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if user != "AWS" || password == "" {
		t.Fatalf("token from moto: user %q, password of %d bytes; want AWS and a password", user, len(password))
	}
	t.Logf("build: GetAuthorizationToken (%s) -> user %s, password of %d bytes", Where(os.Getenv("AWS_REGION")), user, len(password))

	host := devtest.Registry(t, user, password)
	repo := host + "/i12-ecrauth"

	// A wrong password is refused: the registry checks the token, it is not open.
	img, err := random.Image(2048, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(repo+":wrong", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	err = remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: user, Password: password + "x"}))
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") {
		t.Fatalf("push with a wrong password: err = %v, want 401 Unauthorized", err)
	}
	t.Logf("build: push with a wrong password -> refused (401 Unauthorized)")

	// The build pushes with the token, through its own pusher (internal/ocipush: an OCI layout,
	// byte for byte), as cmd/build does.
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	ref, err := ocipush.Push(ctx, ocipush.Dir(dir), repo+":1", user, password)
	if err != nil {
		t.Fatalf("push with moto's token: %v", err)
	}
	if digest, _ := img.Digest(); ref != repo+"@"+digest.String() {
		t.Fatalf("pushed %s, want %s@%s", ref, repo, digest)
	}
	t.Logf("build: ocipush.Push %s:1 with the token -> %s", repo, ref)

	// The hook pulls: registry_login from scripts/lib.sh (REGISTRY_LOGIN=ecr), then docker pull.
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dockerConfig := t.TempDir()
	driver := `set -euo pipefail
source scripts/lib.sh
PATH=$WEBAPP_DEV_TOOLS:$PATH # the instance's aws CLI (EXTRA_PATH in deploy.env)
registry_login
docker pull --quiet "$IMAGE" >/dev/null
echo "pulled $IMAGE"`
	cmd := exec.CommandContext(ctx, "bash", "-c", driver)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "REGISTRY="+host, "REGISTRY_LOGIN=ecr", "IMAGE="+ref, "DOCKER_CONFIG="+dockerConfig)
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "--force", ref).Run() })
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		t.Logf("hook:  %s", line)
	}
	if err != nil {
		t.Fatalf("hook login + pull: %v", err)
	}
	if strings.Contains(string(out), password) {
		t.Fatal("the hook printed the ECR token")
	}
	if err := exec.Command("docker", "image", "inspect", ref).Run(); err != nil {
		t.Fatalf("dockerd has no %s after the hook's pull: %v", ref, err)
	}

	// No token (the ECR endpoint is down, or the role lacks the grant): one line naming the
	// cause and the fix, a non-zero exit, no login.
	cmd = exec.CommandContext(ctx, "bash", "-c", driver)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "REGISTRY="+host, "REGISTRY_LOGIN=ecr", "IMAGE="+ref, "DOCKER_CONFIG="+t.TempDir(),
		"AWS_ENDPOINT_URL_ECR=http://127.0.0.1:9", "AWS_MAX_ATTEMPTS=1")
	out, err = cmd.CombinedOutput()
	t.Logf("hook, ECR endpoint down: %v: %s", err, lastLine(string(out)))
	if err == nil || !strings.Contains(lastLine(string(out)), "cannot get an ECR token in us-east-1 (instance role needs ecr:GetAuthorizationToken)") {
		t.Fatalf("hook without a token: err = %v, last line %q", err, lastLine(string(out)))
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
