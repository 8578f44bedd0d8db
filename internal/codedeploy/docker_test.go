package codedeploy

// Integration tests: the repository's appspec.yml and scripts/ deployed through the replay onto
// the dev environment's dockerd, pulling from its htpasswd registry with credentials from SSM
// (moto). Skipped under -short; otherwise the dev environment must be loaded
// (source /run/webapp-dev/env), or they fail saying so.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/dev/devenv"
)

type testImages struct {
	env                devenv.Env
	root               string
	v1, v2, broken     string // references by digest
	tag1, tag2, tagBad string
}

var (
	imagesOnce sync.Once
	images     testImages
	imagesErr  error
)

// TestMain removes the test images from the dev dockerd after the run (pushed copies stay in
// the registry, which dev/env.sh down wipes).
func TestMain(m *testing.M) {
	code := m.Run()
	if images.v1 != "" {
		cfg, err := os.MkdirTemp("", "cdtest-docker-config-")
		if err == nil {
			_, _ = images.env.Docker(context.Background(), cfg, nil, "image", "rm", "--force", images.v1, images.v2, images.broken)
			_ = os.RemoveAll(cfg)
		}
	}
	os.Exit(code)
}

// integration returns the dev environment and the test images (built and pushed once per run).
func integration(t *testing.T) testImages {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (dockerd, registry, SSM): skipped under -short")
	}
	imagesOnce.Do(func() {
		var img testImages
		if img.env, imagesErr = devenv.FromEnviron(); imagesErr != nil {
			return
		}
		if img.root, imagesErr = devenv.RepoRoot(); imagesErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		run := time.Now().Format("150405")
		img.tag1, img.tag2, img.tagBad = "v1-"+run, "v2-"+run, "broken-"+run
		for _, b := range []struct {
			ref    *string
			tag    string
			status int
		}{{&img.v1, img.tag1, 200}, {&img.v2, img.tag2, 200}, {&img.broken, img.tagBad, 500}} {
			if *b.ref, imagesErr = img.env.BuildImage(ctx, img.root, "webapp-cdtest", b.tag, b.status); imagesErr != nil {
				return
			}
		}
		images = img
	})
	if imagesErr != nil {
		t.Fatalf("integration setup: %v", imagesErr)
	}
	return images
}

// instance is one test's "EC2 instance": its own instance dir, container name, host port and
// docker config dir, so tests run in parallel on one dockerd.
type instance struct {
	t      *testing.T
	img    testImages
	dir    string
	name   string
	port   int
	config string
	env    []string
}

func newInstance(t *testing.T, img testImages, extraEnv ...string) *instance {
	t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, img: img, dir: t.TempDir(), port: port, config: t.TempDir(),
		name: fmt.Sprintf("cdtest-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), port)}
	in.env = img.env.HookEnv(port, in.config, append([]string{"HEALTH_TIMEOUT=20", "STOP_TIMEOUT=5"}, extraEnv...)...)
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = img.env.Docker(ctx, in.config, nil, "rm", "--force", in.name, in.name+"-next")
	})
	return in
}

func (in *instance) bundle(image, revision string) string {
	in.t.Helper()
	dir := filepath.Join(in.t.TempDir(), revision)
	err := in.img.env.WriteBundle(in.img.root, dir, devenv.ImageEnv{Image: image, Revision: revision, ContainerName: in.name})
	if err != nil {
		in.t.Fatal(err)
	}
	return dir
}

func (in *instance) deploy(bundle string) (Result, error) {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Deploy(ctx, Options{Bundle: bundle, InstanceDir: in.dir, Application: "webapp",
		Group: "dev", Env: in.env, Log: testLog(in.t)})
	in.assertNoSecret(res)
	return res, err
}

// assertNoSecret: the registry password appears in no hook output.
func (in *instance) assertNoSecret(res Result) {
	in.t.Helper()
	password, err := in.img.env.Password()
	if err != nil {
		in.t.Fatal(err)
	}
	for _, ev := range res.Events {
		for _, s := range ev.Scripts {
			if strings.Contains(s.Output, password) {
				in.t.Fatalf("%s %s printed the registry password", ev.Name, s.Location)
			}
		}
	}
}

// health returns the version the instance's /healthz reports.
func (in *instance) health() string {
	in.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", in.port))
	if err != nil {
		in.t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var h struct{ Status, Version string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &h) != nil {
		in.t.Fatalf("GET /healthz: %s %s", resp.Status, body)
	}
	return h.Version
}

// containers lists "name image state deployment-id" of this instance's containers, running or
// not (a leftover NAME-next shows too).
func (in *instance) containers() string {
	in.t.Helper()
	ctx := context.Background()
	ids, err := in.img.env.Docker(ctx, in.config, nil, "ps", "--all", "--quiet", "--filter", "name=^"+in.name)
	if err != nil || ids == "" {
		if err != nil {
			in.t.Fatal(err)
		}
		return ""
	}
	out, err := in.img.env.Docker(ctx, in.config, nil, append([]string{"inspect", "--format",
		`{{slice .Name 1}} {{.Config.Image}} {{.State.Status}} {{index .Config.Labels "webapp.deployment-id"}}`},
		strings.Fields(ids)...)...)
	if err != nil {
		in.t.Fatal(err)
	}
	return out
}

func TestDockerFirstThenSecondDeployment(t *testing.T) {
	t.Parallel()
	img := integration(t)
	tmp := t.TempDir() // the hooks' TMPDIR: where their throwaway docker login lives
	in := newInstance(t, img, "TMPDIR="+tmp)

	first, err := in.deploy(in.bundle(img.v1, img.tag1))
	if err != nil {
		t.Fatal(err)
	}
	if ev := first.Event(ApplicationStop); ev.Status != Skipped {
		t.Errorf("first deployment ran ApplicationStop: %+v", ev)
	}
	if v := in.health(); v != img.tag1 {
		t.Errorf("after the first deployment /healthz reports %q, want %q", v, img.tag1)
	}
	if got, want := in.containers(), fmt.Sprintf("%s %s running %s", in.name, img.v1, first.DeploymentID); got != want {
		t.Errorf("containers:\n got %s\nwant %s", got, want)
	}

	second, err := in.deploy(in.bundle(img.v2, img.tag2))
	if err != nil {
		t.Fatal(err)
	}
	// ApplicationStop ran the FIRST bundle's script: it reports the first revision and archive.
	stop := second.Event(ApplicationStop)
	if stop.Status != Succeeded || len(stop.Scripts) != 1 {
		t.Fatalf("ApplicationStop: %+v", stop)
	}
	if out := stop.Scripts[0].Output; !strings.Contains(out, "revision "+img.tag1+" (from "+first.ArchiveDir+")") {
		t.Errorf("ApplicationStop did not run from the previous revision %s:\n%s", first.ArchiveDir, out)
	}
	if v := in.health(); v != img.tag2 {
		t.Errorf("after the second deployment /healthz reports %q, want %q", v, img.tag2)
	}
	if got, want := in.containers(), fmt.Sprintf("%s %s running %s", in.name, img.v2, second.DeploymentID); got != want {
		t.Errorf("containers:\n got %s\nwant %s", got, want)
	}
	// The registry login is not left on the "instance": no docker config of the hooks remains,
	// and the instance's own docker config holds no password.
	if left, _ := filepath.Glob(filepath.Join(tmp, "webapp-docker-config.*")); len(left) > 0 {
		t.Errorf("the hooks left their docker login behind: %v", left)
	}
	password, err := img.env.Password()
	if err != nil {
		t.Fatal(err)
	}
	_ = filepath.WalkDir(in.config, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), password) || strings.Contains(string(b), "auths") {
				t.Errorf("%s holds a registry login", p)
			}
		}
		return nil
	})
}

func TestDockerUnhealthyImageFailsValidateService(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := newInstance(t, img)
	in.env = append(in.env, "HEALTH_TIMEOUT=3")

	res, err := in.deploy(in.bundle(img.broken, img.tagBad))
	if err == nil {
		t.Fatal("a bundle whose /healthz answers 500 deployed")
	}
	msg := err.Error()
	for _, want := range []string{
		"ValidateService: scripts/validate_service.sh exited 1:",
		"not healthy after 3s; last answer: curl: (22) The requested URL returned error: 500",
		"healthz answered 500: version " + img.tagBad + " is broken on purpose", // the container's log
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if ev := res.Event(ValidateService); ev == nil || ev.Status != Failed {
		t.Errorf("ValidateService event: %+v", ev)
	}
}

// Each hook, run twice in a row, leaves the same state: one running container of the image,
// healthy, no leftover "-next" container.
func TestDockerHooksAreIdempotent(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := newInstance(t, img)
	res, err := in.deploy(in.bundle(img.v1, img.tag1))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s %s running %s", in.name, img.v1, res.DeploymentID)
	spec, err := LoadAppSpec(res.ArchiveDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, event := range []string{ApplicationStop, AfterInstall, ApplicationStart, ValidateService} {
		for i := 1; i <= 2; i++ {
			env := append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LIFECYCLE_EVENT=" + event,
				"DEPLOYMENT_ID=" + res.DeploymentID}, in.env...)
			if _, err := runScript(context.Background(), scriptRun{Event: event, Hook: spec.Hooks[event][0],
				ArchiveDir: res.ArchiveDir, Env: env, Log: testLog(t)}); err != nil {
				t.Fatalf("%s run %d: %v", event, i, err)
			}
			if got := in.containers(); got != want {
				t.Errorf("after %s run %d:\n got %s\nwant %s", event, i, got, want)
			}
		}
	}
	if v := in.health(); v != img.tag1 {
		t.Errorf("/healthz reports %q, want %q", v, img.tag1)
	}
}

func TestDockerStopWithNothingRunning(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := newInstance(t, img)
	bundle := in.bundle(img.v1, img.tag1)
	env := append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LIFECYCLE_EVENT=ApplicationStop"}, in.env...)
	// The ApplicationStop hook, and the stop step of the swap (lib.sh stop_container).
	for _, script := range []string{"scripts/application_stop.sh", "scripts/stop_for_test.sh"} {
		if script == "scripts/stop_for_test.sh" {
			body := "#!/usr/bin/env bash\nset -euo pipefail\nsource \"$(dirname \"$0\")/lib.sh\"\nload_config\nstop_container \"$CONTAINER_NAME\"\n"
			if err := os.WriteFile(filepath.Join(bundle, script), []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for i := 1; i <= 2; i++ {
			sr, err := runScript(context.Background(), scriptRun{Event: ApplicationStop,
				Hook: Hook{Location: script, Timeout: 60}, ArchiveDir: bundle, Env: env, Log: testLog(t)})
			if err != nil {
				t.Fatalf("%s with nothing running (run %d): %v", script, i, err)
			}
			if script == "scripts/stop_for_test.sh" && !strings.Contains(sr.Output, "no container "+in.name+": nothing to stop") {
				t.Errorf("%s: %s", script, sr.Output)
			}
		}
	}
	if got := in.containers(); got != "" {
		t.Errorf("containers after stop: %s", got)
	}
}

// The downtime of a redeploy, logged (not asserted: it depends on the machine). The same
// measurement as `go run ./cmd/downtime`.
func TestDockerRedeployDowntime(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := newInstance(t, img)
	if _, err := in.deploy(in.bundle(img.v1, img.tag1)); err != nil {
		t.Fatal(err)
	}
	prober := devenv.StartProber(fmt.Sprintf("http://127.0.0.1:%d/healthz", in.port), 20*time.Millisecond, 10000)
	res, err := in.deploy(in.bundle(img.v2, img.tag2))
	time.Sleep(1500 * time.Millisecond) // longer than the probe timeout: see the recovery
	rep := prober.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("redeploy v1 -> v2: %d probes every 20 ms, %d failed, longest gap without a 2xx %s (deployment %s)",
		rep.Requests, rep.Failures, rep.LongestGap.Round(time.Millisecond), res.Duration.Round(time.Millisecond))
	if n := len(rep.Bodies); !rep.Recovered || n == 0 || !strings.Contains(rep.Bodies[n-1], img.tag2) {
		t.Errorf("the prober never saw %s: %q", img.tag2, rep.Bodies)
	}
}
