package cli_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/dev/codedeploy"
	"github.com/acme/webapp-pipeline/dev/devenv"
	"github.com/acme/webapp-pipeline/dev/devtest"
	"github.com/acme/webapp-pipeline/internal/ecrauth"
)

// TestECRLoginPushesWithTheRoleToken: with --registry-login ecr the build
// reads no SSM parameter; it gets an authorization token through the AWS
// credential chain (moto's ECR here) and pushes with it to a registry that
// accepts only that token; image.env tells the hooks to do the same. The bundle the build wrote
// is then deployed as CodeDeploy would: the real agent (codedeploy-local) runs its hooks, which
// log in with the role's token (moto's ECR again) and pull the image from that registry. Issue
// 18: the hooks required REGISTRY_USERNAME_PARAM, which an ECR bundle does not have, so every
// ECR deployment died in AfterInstall; a test that set the value itself had hidden it.
func TestECRLoginPushesWithTheRoleToken(t *testing.T) {
	needEnv(t)
	devtest.Require(t, "AWS_ENDPOINT_URL_ECR", "DOCKER_HOST", "WEBAPP_DEV_TOOLS")
	agent, err := codedeploy.FindAgent()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	user, password, err := ecrauth.Credentials(ctx, os.Getenv("AWS_REGION"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	repo := devtest.Registry(t, user, password) + "/webapp-ecr"
	out := filepath.Join(t.TempDir(), "dist")
	app := fmt.Sprintf("i18-ecr-%d", time.Now().UnixNano()%1e6) // the container's name on the shared dockerd
	r := runBuild(t, checkout(t), []string{"BUILD_IMAGE_REPO=" + repo, "BUILD_REGISTRY_LOGIN=ecr", "BUILD_APP_NAME=" + app,
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

	// The build's own bundle through the real agent: AfterInstall logs in with a fresh token
	// from moto's ECR and pulls; ValidateService GETs the contract's health path.
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dockerConfig, stateDir := t.TempDir(), t.TempDir()
	t.Cleanup(func() {
		devenv.StopProxies(stateDir) // the instance proxy the hooks started (scripts/proxy.sh)
		for _, args := range [][]string{{"rm", "--force", app, app + "-previous", app + "-next", app + "-failed"}, {"image", "rm", "--force", env["IMAGE"]}} {
			c := exec.Command("docker", args...)
			c.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerConfig)
			_ = c.Run()
		}
	})
	res, err := agent.Deploy(ctx, codedeploy.Options{Bundle: filepath.Join(out, "bundle"), InstanceDir: t.TempDir(),
		Application: "webapp", Group: "ecr", Env: []string{
			"DOCKER_HOST=" + os.Getenv("DOCKER_HOST"), "DOCKER_CONFIG=" + dockerConfig,
			"AWS_ENDPOINT_URL_ECR=" + os.Getenv("AWS_ENDPOINT_URL_ECR"), // the instance role's token: moto's ECR
			"AWS_ENDPOINT_URL_SSM=http://127.0.0.1:1",                   // an ECR deployment reads no parameter
			"AWS_ACCESS_KEY_ID=" + os.Getenv("AWS_ACCESS_KEY_ID"), "AWS_SECRET_ACCESS_KEY=" + os.Getenv("AWS_SECRET_ACCESS_KEY"),
			"EXTRA_PATH=" + os.Getenv("WEBAPP_DEV_TOOLS"), "WEBAPP_DEPLOY_ENV=/nonexistent/deploy.env", "APP_ENV_FILE=",
			"VERIFY_IMAGE=off", // this build is unsigned (test/cli/attest_test.go deploys signed ones)
			fmt.Sprintf("HOST_PORT=%d", port), "HEALTH_TIMEOUT=30", "STATE_DIR=" + stateDir}})
	var hooks []string
	for _, ev := range res.Events {
		for _, sc := range ev.Scripts {
			for _, line := range strings.Split(strings.TrimSpace(sc.Output), "\n") {
				t.Logf("agent %s: %s", ev.Name, line)
				if strings.Contains(line, password) {
					t.Errorf("%s printed the ECR token", ev.Name)
				}
			}
		}
		hooks = append(hooks, ev.Name)
	}
	if err != nil {
		t.Fatalf("the real agent failed to deploy the ECR build's own bundle: %v", err)
	}
	resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, env["HEALTH_PATH"]))
	if err != nil {
		t.Fatalf("after the deployment: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the deployment GET %s = %d", env["HEALTH_PATH"], resp.StatusCode)
	}
	t.Logf("the real agent deployed the ECR bundle (%s): GET %s on :%d = %d", strings.Join(hooks, ", "), env["HEALTH_PATH"], port, resp.StatusCode)
}
