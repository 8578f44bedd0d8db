package fleet

import (
	"context"
	"fmt"
	"io"
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
)

// Three instances behind HAProxy, deployed OneAtATime by the real agent while a prober hits the
// load balancer every 20 ms: no request fails. Then a revision that fails on instance 2 (its app
// env file breaks the health check): the deployment stops there, instance 3 is not touched,
// instance 2 stays out of the load balancer, and still no request fails. The figures are logged,
// the only assertion on them is zero failed requests.
func TestFleetOneAtATimeNeverFailsARequest(t *testing.T) {
	env, agent, root := fleetPrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stamp := time.Now().Format("150405")
	v1, err := env.BuildImage(ctx, root, "webapp-fleet-test", "v1-"+stamp, 200)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := env.BuildImage(ctx, root, "webapp-fleet-test", "v2-"+stamp, 200)
	if err != nil {
		t.Fatal(err)
	}
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := Start(ctx, dir, 3, port, env, agent, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	bundle := func(name, image string) string {
		b := filepath.Join(dir, "bundles", name)
		if err := env.WriteBundle(root, b, devenv.ImageEnv{Image: image, Revision: name, ContainerName: "webapp", HealthPath: devenv.TestImageHealthPath}); err != nil {
			t.Fatal(err)
		}
		return b
	}
	if r := f.Deploy(ctx, bundle("v1", v1), Configs["AllAtOnce"], nil); r.Err != nil {
		t.Fatal(r.Err)
	}
	lb := fmt.Sprintf("http://127.0.0.1:%d%s", port, devenv.TestImageHealthPath)
	probe := func(deploy func() Result) (Result, devenv.Report) {
		p := devenv.StartProber(lb, 20*time.Millisecond, 100000)
		time.Sleep(200 * time.Millisecond)
		r := deploy()
		time.Sleep(500 * time.Millisecond)
		return r, p.Stop()
	}

	r, rep := probe(func() Result { return f.Deploy(ctx, bundle("v2", v2), Configs["OneAtATime"], nil) })
	t.Logf("OneAtATime v1 -> v2 over 3 instances: %d requests, %d failed, longest gap %s, %s", rep.Requests, rep.Failures, rep.LongestGap, r.Took)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if rep.Failures != 0 {
		t.Errorf("OneAtATime behind the load balancer failed %d requests", rep.Failures)
	}
	if last := rep.Bodies[len(rep.Bodies)-1]; !strings.Contains(last, "v2-"+stamp) {
		t.Errorf("the load balancer does not serve v2 after the deployment: %s", last)
	}

	broken := filepath.Join(dir, "i2-app.env")
	if err := os.WriteFile(broken, []byte("HEALTH_STATUS=500\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, rep = probe(func() Result {
		return f.Deploy(ctx, bundle("v1-again", v1), Configs["OneAtATime"], func(in *Instance) []string {
			if in.Name == "i2" {
				return []string{"APP_ENV_FILE=" + broken}
			}
			return nil
		})
	})
	t.Logf("OneAtATime with instance 2 failing: %d requests, %d failed, longest gap %s, %v", rep.Requests, rep.Failures, rep.LongestGap, r.Instances)
	if r.Err == nil {
		t.Error("the deployment succeeded although instance 2 failed")
	} else if msg := r.Err.Error(); !strings.Contains(msg, "first failed instance i2") || !strings.Contains(msg, "ValidateService") ||
		!strings.Contains(msg, "answered 500") {
		// issue 18 item 5: the summary says which instance, which hook and its last lines
		t.Errorf("the deployment's error should name instance i2, its failing hook and its last lines: %v", r.Err)
	}
	want := []string{"i1:Succeeded", "i2:Failed", "i3:Skipped"}
	for i, ir := range r.Instances {
		if got := ir.Instance + ":" + ir.Status; i >= len(want) || got != want[i] {
			t.Errorf("instance results %v, want %v", r.Instances, want)
			break
		}
	}
	if rep.Failures != 0 {
		t.Errorf("%d requests failed through the load balancer while instance 2 failed", rep.Failures)
	}
	for _, b := range rep.Bodies {
		if strings.Contains(b, "failing") {
			t.Errorf("the failed instance got traffic: %s", b)
		}
	}
	if st, _, err := f.serverStatus("i2"); err != nil || st != "MAINT" {
		t.Errorf("instance 2 in the load balancer: %q (%v), want MAINT", st, err)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// An amd64 and an arm64 instance (issue 21: a Graviton instance beside an amd64 one) deploy the
// same image.env, an image index by digest: each pulls and runs its own platform's image (the
// arm64 one under emulation) and serves through the load balancer.
func TestFleetArm64InstanceBesideAmd64(t *testing.T) {
	env, agent, root := fleetPrereqs(t, "WEBAPP_DEV_CRANE", "WEBAPP_DEV_MIRROR")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	stamp := time.Now().Format("150405")
	image, err := env.BuildImageIndex(ctx, root, "webapp-fleet-arm64", "v1-"+stamp, 200, []string{"linux/amd64", "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := StartWith(ctx, dir, 2, port, env, agent, testLog{t}, Options{Platforms: []string{"", "linux/arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	b := filepath.Join(dir, "bundles", "v1")
	if err := env.WriteBundle(root, b, devenv.ImageEnv{Image: image, Revision: "v1", ContainerName: "webapp", HealthPath: devenv.TestImageHealthPath}); err != nil {
		t.Fatal(err)
	}
	r := f.Deploy(ctx, b, Configs["AllAtOnce"], nil)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	for _, ir := range r.Instances { // AllAtOnce succeeds when one instance does: each must here
		if ir.Status != codedeploy.Succeeded {
			t.Fatalf("instance %s: %s: %v", ir.Instance, ir.Status, ir.Err)
		}
	}
	want := map[string][2]string{"i1": {"amd64", "x86_64"}, "i2": {"arm64", "aarch64"}}
	for _, in := range f.Instances {
		docker := func(args ...string) string {
			out, err := exec.Command("docker", append([]string{"-H", "unix://" + in.Socket}, args...)...).Output()
			if err != nil {
				t.Fatalf("%s: docker %v: %v", in.Name, args, err)
			}
			return strings.TrimSpace(string(out))
		}
		ids := strings.Fields(docker("ps", "-q", "--filter", "status=running"))
		if len(ids) != 1 {
			t.Fatalf("%s runs %d containers, want the app's one", in.Name, len(ids))
		}
		arch := docker("image", "inspect", "--format", "{{.Architecture}}", docker("inspect", "--format", "{{.Image}}", ids[0]))
		machine := docker("exec", ids[0], "uname", "-m")
		t.Logf("%s (platform %q): the container's image is %s, uname -m %s", in.Name, in.Platform, arch, machine)
		if w := want[in.Name]; arch != w[0] || machine != w[1] {
			t.Errorf("%s runs a %s image (uname -m %s), want %s (%s)", in.Name, arch, machine, w[0], w[1])
		}
		url := fmt.Sprintf("http://%s:%d%s", in.Addr, f.HostPort, devenv.TestImageHealthPath)
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("%s does not serve: %v", in.Name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "v1-"+stamp) {
			t.Errorf("%s: GET %s: %d %s", in.Name, url, resp.StatusCode, body)
		}
	}
	// through the load balancer: both instances answer (round robin, X-Instance names each)
	seen := map[string]bool{}
	for i := 0; i < 6; i++ {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, devenv.TestImageHealthPath))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			seen[resp.Header.Get("X-Instance")] = true
		}
	}
	if !seen["i1"] || !seen["i2"] {
		t.Errorf("the load balancer served from %v, want i1 and i2", seen)
	}
}

// fleetPrereqs is what every fleet test needs, or it fails (skips without
// the dev environment: devtest.Require): root, the dev environment and vars
// of it, the real CodeDeploy agent, the repository's root.
func fleetPrereqs(t *testing.T, vars ...string) (devenv.Env, codedeploy.Agent, string) {
	t.Helper()
	devtest.Require(t, append([]string{"DOCKER_HOST", "AWS_ENDPOINT_URL_SSM"}, vars...)...)
	if os.Geteuid() != 0 {
		t.Fatal("the fleet needs root (bridges, dockerds): run the tests as root, as `make test` does")
	}
	env, err := devenv.FromEnviron()
	if err != nil {
		t.Fatal(err)
	}
	agent, err := codedeploy.FindAgent()
	if err != nil {
		t.Fatal(err)
	}
	root, err := devenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return env, agent, root
}
