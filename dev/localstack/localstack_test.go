package localstack

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/webapp-pipeline/dev/devenv"
	"github.com/acme/webapp-pipeline/dev/devtest"
)

// Each set's registry accepts exactly what the real one would: ECR only moto's token, a
// Parameter Store registry the push login, and the pull-only login for pulls only.
func TestRegistryAcceptsTheSetsLogins(t *testing.T) {
	devtest.Require(t, "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_ECR", "BUILD_SIGNING_KEY")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := devenv.Env{SSMEndpoint: os.Getenv("AWS_ENDPOINT_URL_SSM"), Region: os.Getenv("AWS_REGION")}
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	other, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	pushImage := func(s *Stack, user, pw string, img v1.Image) error {
		tag, err := name.NewTag(s.Registry.Host+"/webapp:t", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: user, Password: pw}))
	}
	push := func(s *Stack, user, pw string) error { return pushImage(s, user, pw, img) }
	pull := func(s *Stack, user, pw string) error {
		d, _ := img.Digest()
		ref, _ := name.NewDigest(s.Registry.Host+"/webapp@"+d.String(), name.Insecure)
		_, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: user, Password: pw}))
		return err
	}
	start := func(set string) *Stack {
		s, err := Start(ctx, Options{Template: "../../infra/template.yml", ParamsDir: "../params", Set: set, Work: t.TempDir(), Env: env})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		return s
	}

	ecr := start("ecr")
	if err := push(ecr, "AWS", "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("ecr: a push with another password: %v, want 401", err)
	}
	if err := push(ecr, "AWS", ecr.users["AWS"]); err != nil {
		t.Errorf("ecr: a push with moto's token: %v", err)
	}
	if n := len(ecr.Recorder.Calls()); n == 0 {
		t.Errorf("ecr: the registry calls were not recorded")
	}
	for _, c := range ecr.Recorder.Calls() {
		t.Logf("ecr: recorded %s", c)
	}

	ssm := start("ssm-pull")
	pushUser := ssm.Params["RegistryUsernameParameter"]
	if ssm.PullOnly == "" {
		t.Fatal("ssm-pull: no pull-only login")
	}
	for u := range ssm.users {
		if u != ssm.PullOnly {
			pushUser = u
		}
	}
	if err := push(ssm, pushUser, ssm.users[pushUser]); err != nil {
		t.Errorf("ssm-pull: a push with the push login: %v", err)
	}
	if err := pushImage(ssm, ssm.PullOnly, ssm.users[ssm.PullOnly], other); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Errorf("ssm-pull: a push with the pull-only login: %v, want DENIED", err)
	}
	if err := pull(ssm, ssm.PullOnly, ssm.users[ssm.PullOnly]); err != nil {
		t.Errorf("ssm-pull: a pull with the pull-only login: %v", err)
	}

	// the hooks' calls, as the aws CLI makes them, recorded for the instance role with the
	// resources IAM authorizes (the alias resolved to the key's ARN)
	aws, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("no aws CLI on PATH")
	}
	for _, args := range [][]string{
		{"ssm", "get-parameter", "--with-decryption", "--name", ssm.Params["PullPasswordParameter"]},
		{"kms", "get-public-key", "--key-id", strings.TrimPrefix(os.Getenv("BUILD_SIGNING_KEY"), "awskms:///")},
	} {
		cmd := exec.CommandContext(ctx, aws, args...)
		cmd.Env = append(os.Environ(), ssm.HookEnv()...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("aws %v: %v\n%s", args, err, out)
		}
	}
	rep := ssm.Check()
	t.Log(rep.Text())
	if len(rep.Calls) != 2 || len(rep.Denied) != 0 || !strings.Contains(rep.Calls[1].Resources[0], ":key/") {
		t.Errorf("the instance's calls: %v, denied %v", rep.Calls, rep.Denied)
	}
}
