package ecrauth

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/internal/devtest"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
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

	host := startRegistry(t, user, password)
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

	// The build pushes with the token.
	tag, err = name.NewTag(repo+":1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: user, Password: password})); err != nil {
		t.Fatalf("push with moto's token: %v", err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref := repo + "@" + digest.String()
	t.Logf("build: pushed %s with the token", ref)

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
	cmd.Env = append(os.Environ(), "REGISTRY="+host, "REGISTRY_LOGIN=ecr", "IMAGE="+ref, "DOCKER_CONFIG="+dockerConfig,
		"REGISTRY_USERNAME_PARAM=/unused", "REGISTRY_PASSWORD_PARAM=/unused")
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
}

// startRegistry runs Debian's docker-registry on a free loopback port, accepting only
// user:password (bcrypt htpasswd), and returns its host:port. It is stopped at cleanup.
func startRegistry(t *testing.T, user, password string) string {
	t.Helper()
	for _, tool := range []string{"docker-registry", "htpasswd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: dev/env.sh up installs it (Debian docker-registry, apache2-utils)", tool)
		}
	}
	dir := t.TempDir()
	htp, err := exec.Command("htpasswd", "-Bbn", user, password).Output()
	if err != nil {
		t.Fatalf("htpasswd: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), htp, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: %s}
http:
  addr: %s
auth:
  htpasswd: {realm: i12-ecr, path: %s}
`, filepath.Join(dir, "storage"), host, filepath.Join(dir, "htpasswd"))
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", filepath.Join(dir, "config.yml"))
	log, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); log.Close() })
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return host
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
	t.Fatalf("registry on %s did not come up: %s", host, b)
	return ""
}
