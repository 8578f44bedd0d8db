package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/dev/devenv"
	"github.com/acme/webapp-pipeline/internal/codedeploy"
	"github.com/acme/webapp-pipeline/internal/devtest"
)

// Three instances behind HAProxy, deployed OneAtATime by the real agent while a prober hits the
// load balancer every 20 ms: no request fails. Then a revision that fails on instance 2 (its app
// env file breaks the health check): the deployment stops there, instance 3 is not touched,
// instance 2 stays out of the load balancer, and still no request fails. The figures are logged,
// the only assertion on them is zero failed requests.
func TestFleetOneAtATimeNeverFailsARequest(t *testing.T) {
	devtest.Require(t, "DOCKER_HOST", "AWS_ENDPOINT_URL_SSM")
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
