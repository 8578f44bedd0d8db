package cli_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/internal/devtest"
	"github.com/acme/webapp-pipeline/internal/ecrauth"
)

// TestECRLoginPushesWithTheRoleToken: with --registry-login ecr the build
// reads no SSM parameter; it gets an authorization token through the AWS
// credential chain (moto's ECR here) and pushes with it to a registry that
// accepts only that token; image.env tells the hooks to do the same.
func TestECRLoginPushesWithTheRoleToken(t *testing.T) {
	needEnv(t)
	devtest.Require(t, "AWS_ENDPOINT_URL_ECR")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	user, password, err := ecrauth.Credentials(ctx, os.Getenv("AWS_REGION"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	repo := devtest.Registry(t, user, password) + "/webapp-ecr"
	out := filepath.Join(t.TempDir(), "dist")
	r := runBuild(t, checkout(t), []string{"BUILD_IMAGE_REPO=" + repo, "BUILD_REGISTRY_LOGIN=ecr",
		"BUILD_REGISTRY_USERNAME_PARAM=", "BUILD_REGISTRY_PASSWORD_PARAM=", "AWS_ENDPOINT_URL_SSM=http://127.0.0.1:1"},
		"all", "--out", out, "--revision", "ecr1")
	if r.code != 0 {
		t.Fatalf("build with the ECR token should pass\n%s", r)
	}
	env := readImageEnv(t, out)
	if env["REGISTRY_LOGIN"] != "ecr" || env["REGISTRY_USERNAME_PARAM"] != "" || !strings.HasPrefix(env["IMAGE"], repo+"@sha256:") {
		t.Errorf("image.env: %v", env)
	}
	host, path, _ := strings.Cut(repo, "/")
	req, _ := http.NewRequest(http.MethodHead, "http://"+host+"/v2/"+path+"/manifests/ecr1", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD %s:ecr1 with the token = %d, want 200", repo, resp.StatusCode)
	}
	if strings.Contains(r.stdout+r.stderr, password) {
		t.Error("the ECR token appears in the build's output")
	}
	t.Logf("pushed %s with the token (user %s); image.env REGISTRY_LOGIN=%s", env["IMAGE"], user, env["REGISTRY_LOGIN"])
}
