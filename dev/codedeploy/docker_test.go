package codedeploy

// Integration tests: the repository's appspec.yml and scripts/ deployed through the REAL
// CodeDeploy agent (codedeploy-local) onto the dev environment's dockerd, pulling from its
// htpasswd registry with credentials from SSM (moto). Skipped under -short; otherwise the dev
// environment must be loaded (source /run/webapp-dev/env) and the agent installed, or they
// fail saying so.

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
	"github.com/acme/webapp-pipeline/internal/appspec"
)

type testImages struct {
	env                      devenv.Env
	root                     string
	v1, v2, v3, broken, dead string // references by digest; broken answers 500, dead cannot start
	tag1, tag2, tag3, tagBad string
	agent                    Agent
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
			_, _ = images.env.Docker(context.Background(), cfg, nil, "image", "rm", "--force",
				images.v1, images.v2, images.v3, images.broken, images.dead)
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
	agent := needAgent(t)
	imagesOnce.Do(func() {
		img := testImages{agent: agent}
		if img.env, imagesErr = devenv.FromEnviron(); imagesErr != nil {
			return
		}
		if img.root, imagesErr = devenv.RepoRoot(); imagesErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		run := time.Now().Format("150405")
		img.tag1, img.tag2, img.tag3, img.tagBad = "v1-"+run, "v2-"+run, "v3-"+run, "broken-"+run
		for _, b := range []struct {
			ref    *string
			tag    string
			status int
		}{{&img.v1, img.tag1, 200}, {&img.v2, img.tag2, 200}, {&img.v3, img.tag3, 200},
			{&img.broken, img.tagBad, 500}, {&img.dead, "dead-" + run, devenv.CannotStart}} {
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
	copies map[string]string // test image -> its copy in this instance's own repository
	img    testImages
	dir    string
	name   string
	port   int
	config string
	state  string // STATE_DIR
	env    []string
}

func newInstance(t *testing.T, img testImages, extraEnv ...string) *instance {
	t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, img: img, dir: t.TempDir(), port: port, config: t.TempDir(),
		name: fmt.Sprintf("i11-cdtest-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), port)}
	// PROXY=off: these tests are of the restart swap, what an instance without the proxy
	// (scripts/proxy.sh) does; the switch through the proxy is dev/fleet's TestSwitchSequence.
	// STATE_DIR: the journal (and a proxy's files) go to the test's directory, not this machine's
	// /var/lib/webapp; PROXY=auto in extraEnv (later wins) tests the switch (proxy_test.go).
	in.state = shortTempDir(t) // the proxy's socket path has 107 bytes at most
	in.env = img.env.HookEnv(port, in.config, append([]string{"HEALTH_TIMEOUT=20", "STOP_TIMEOUT=5", "PROXY=off",
		"STATE_DIR=" + in.state}, extraEnv...)...)
	t.Cleanup(func() {
		devenv.StopProxies(in.state)
		ctx := context.Background()
		_, _ = img.env.Docker(ctx, in.config, nil, "rm", "--force", in.name, in.name+"-next", in.name+"-previous", in.name+"-failed")
		for _, c := range in.copies {
			_, _ = img.env.Docker(ctx, in.config, nil, "image", "rm", c)
		}
	})
	return in
}

// image is the instance's copy of a test image: same digest, in a repository of its own, so
// what the hooks prune is this instance's only. Removed from the dockerd: the hooks pull it.
func (in *instance) image(ref string) string {
	in.t.Helper()
	if c, ok := in.copies[ref]; ok {
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := in.img.env.CopyImage(ctx, ref, in.name)
	if err != nil {
		in.t.Fatal(err)
	}
	if in.copies == nil {
		in.copies = map[string]string{}
	}
	in.copies[ref] = c
	return c
}

func (in *instance) bundle(image, revision string, opts ...func(*devenv.ImageEnv)) string {
	in.t.Helper()
	dir := filepath.Join(in.t.TempDir(), revision)
	ie := devenv.ImageEnv{Image: in.image(image), Revision: revision, ContainerName: in.name}
	for _, o := range opts {
		o(&ie)
	}
	if err := in.img.env.WriteBundle(in.img.root, dir, ie); err != nil {
		in.t.Fatal(err)
	}
	return dir
}

// rerunHooks runs each hook of the deployment res twice more, in the agent's order and with its
// environment, as a re-run deployment would; check looks at the instance after each run.
func (in *instance) rerunHooks(res Result, check func(event string, run int)) {
	in.t.Helper()
	for _, event := range []string{appspec.ApplicationStop, appspec.AfterInstall, appspec.ApplicationStart, appspec.ValidateService} {
		for i := 1; i <= 2; i++ {
			env := append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LIFECYCLE_EVENT=" + event,
				"DEPLOYMENT_ID=" + res.DeploymentID}, in.env...)
			if _, err := runHook(in.t, res.ArchiveDir, hookOf(in.t, event), env); err != nil {
				in.t.Fatalf("%s run %d: %v", event, i, err)
			}
			check(event, i)
		}
	}
}

func (in *instance) deploy(bundle string) (Result, error) {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := in.img.agent.Deploy(ctx, Options{Bundle: bundle, InstanceDir: in.dir, Application: "webapp",
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
	if ev := first.Event(appspec.ApplicationStop); ev != nil && ev.Status != Skipped {
		t.Errorf("first deployment ran ApplicationStop: %+v", ev)
	}
	if v := in.health(); v != img.tag1 {
		t.Errorf("after the first deployment /healthz reports %q, want %q", v, img.tag1)
	}
	if got, want := in.containers(), fmt.Sprintf("%s %s running %s", in.name, in.image(img.v1), first.DeploymentID); got != want {
		t.Errorf("containers:\n got %s\nwant %s", got, want)
	}

	second, err := in.deploy(in.bundle(img.v2, img.tag2))
	if err != nil {
		t.Fatal(err)
	}
	// ApplicationStop ran the FIRST bundle's script: it reports the first revision and archive.
	stop := second.Event(appspec.ApplicationStop)
	if stop.Status != Succeeded || len(stop.Scripts) != 1 {
		t.Fatalf("ApplicationStop: %+v", stop)
	}
	if out := stop.Scripts[0].Output; !strings.Contains(out, "revision "+img.tag1+" (from "+first.ArchiveDir+")") {
		t.Errorf("ApplicationStop did not run from the previous revision %s:\n%s", first.ArchiveDir, out)
	}
	if v := in.health(); v != img.tag2 {
		t.Errorf("after the second deployment /healthz reports %q, want %q", v, img.tag2)
	}
	if got, want := in.containers(), fmt.Sprintf("%s %s running %s", in.name, in.image(img.v2), second.DeploymentID); got != want {
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
	in.env = append(in.env, "HEALTH_TIMEOUT=10")

	res, err := in.deploy(in.bundle(img.broken, img.tagBad))
	if err == nil {
		t.Fatal("a bundle whose /healthz answers 500 deployed")
	}
	msg := err.Error()
	for _, want := range []string{
		"ValidateService: scripts/validate_service.sh",
		"not healthy after 10s; last answer: curl: (22) The requested URL returned error: 500",
		"healthz answered 500: version " + img.tagBad + " is broken on purpose", // the container's log
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if ev := res.Event(appspec.ValidateService); ev == nil || ev.Status != Failed {
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
	want := fmt.Sprintf("%s %s running %s", in.name, in.image(img.v1), res.DeploymentID)
	in.rerunHooks(res, func(event string, run int) {
		if got := in.containers(); got != want {
			t.Errorf("after %s run %d:\n got %s\nwant %s", event, run, got, want)
		}
	})
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
			sr, err := runHook(t, bundle, script, env)
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
// measurement as `go run ./dev/cmd/downtime`.
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

// probeDuring runs fn while a prober hits the instance's health URL every 20 ms, and returns the
// prober's report (the gap is logged, never asserted: it depends on the machine).
func (in *instance) probeDuring(path string, fn func()) devenv.Report {
	in.t.Helper()
	prober := devenv.StartProber(fmt.Sprintf("http://127.0.0.1:%d%s", in.port, path), 20*time.Millisecond, 20000)
	time.Sleep(100 * time.Millisecond)
	fn()
	time.Sleep(1500 * time.Millisecond) // longer than the probe timeout: see the recovery
	return prober.Stop()
}

func hookOutput(res Result) string {
	var b strings.Builder
	for _, ev := range res.Events {
		for _, s := range ev.Scripts {
			b.WriteString(s.Output)
		}
	}
	return b.String()
}

// A new image whose container cannot start: ApplicationStart restores the previous container at
// once, says so in one line, and the deployment fails; the next deployment cleans up.
func TestDockerImageThatCannotStartKeepsTheServiceUp(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := newInstance(t, img)
	if _, err := in.deploy(in.bundle(img.v1, img.tag1)); err != nil {
		t.Fatal(err)
	}
	var res Result
	var err error
	rep := in.probeDuring("/healthz", func() { res, err = in.deploy(in.bundle(img.dead, "dead")) })
	if err == nil {
		t.Fatal("an image that cannot start deployed")
	}
	t.Logf("failed deployment of an image that cannot start: %d probes every 20 ms, %d failed, longest gap %s",
		rep.Requests, rep.Failures, rep.LongestGap.Round(time.Millisecond))
	if failedEvent(res) != appspec.ApplicationStart {
		t.Errorf("failed at %q, want ApplicationStart: %v", failedEvent(res), err)
	}
	if out := hookOutput(res); !strings.Contains(out, "rolled back: "+in.name+" (revision "+img.tag1) {
		t.Errorf("no rollback line in the hook output:\n%s", out)
	}
	if v := in.health(); v != img.tag1 {
		t.Errorf("after the failed deployment /healthz reports %q, want the previous %q", v, img.tag1)
	}
	if !rep.Recovered {
		t.Error("the prober did not see the previous version serving again")
	}
	if got := in.containers(); !strings.Contains(got, in.name+" "+in.image(img.v1)+" running") || !strings.Contains(got, in.name+"-failed ") {
		t.Errorf("want %s running v1 and %s-failed kept for its logs, got:\n%s", in.name, in.name, got)
	}
	// the next deployment (its ApplicationStop comes from the failed revision) cleans up
	next, err := in.deploy(in.bundle(img.v2, img.tag2))
	if err != nil {
		t.Fatal(err)
	}
	if stop := next.Event(appspec.ApplicationStop); stop == nil || len(stop.Scripts) == 0 || !strings.Contains(stop.Scripts[0].Output, "revision dead (from "+res.ArchiveDir) {
		t.Errorf("the agent should run the failed revision's ApplicationStop: %+v", stop)
	}
	if got, want := in.containers(), fmt.Sprintf("%s %s running %s", in.name, in.image(img.v2), next.DeploymentID); got != want {
		t.Errorf("after the next deployment:\n got %s\nwant %s", got, want)
	}
}

// A new image that starts but fails its health check: ValidateService restores the previous
// container and fails the deployment.
func TestDockerFailingHealthCheckRestoresThePrevious(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := newInstance(t, img, "HEALTH_TIMEOUT=10")
	if _, err := in.deploy(in.bundle(img.v1, img.tag1)); err != nil {
		t.Fatal(err)
	}
	var res Result
	var err error
	rep := in.probeDuring("/healthz", func() { res, err = in.deploy(in.bundle(img.broken, img.tagBad)) })
	if err == nil {
		t.Fatal("a bundle whose health check answers 500 deployed")
	}
	t.Logf("failed deployment of an unhealthy image: %d probes every 20 ms, %d failed, longest gap %s",
		rep.Requests, rep.Failures, rep.LongestGap.Round(time.Millisecond))
	out := hookOutput(res)
	for _, want := range []string{
		"not healthy after 10s; last answer: curl: (22) The requested URL returned error: 500",
		"healthz answered 500: version " + img.tagBad + " is broken on purpose", // the container's log
		"rolled back: " + in.name + " (revision " + img.tag1,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("hook output lacks %q:\n%s", want, out)
		}
	}
	if failedEvent(res) != appspec.ValidateService {
		t.Errorf("failed at %q, want ValidateService", failedEvent(res))
	}
	if v := in.health(); v != img.tag1 {
		t.Errorf("after the failed deployment /healthz reports %q, want the previous %q", v, img.tag1)
	}
}

// The agent's timeout sends SIGTERM (never SIGKILL): ValidateService's trap restores the previous
// container before it exits, so a hook timeout cannot leave the service down.
func TestDockerHookTimeoutRestoresThePrevious(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := newInstance(t, img, "HEALTH_TIMEOUT=120")
	if _, err := in.deploy(in.bundle(img.v1, img.tag1)); err != nil {
		t.Fatal(err)
	}
	bundle := in.bundle(img.broken, img.tagBad)
	spec := filepath.Join(bundle, "appspec.yml")
	b, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	// ValidateService's timeout far below HEALTH_TIMEOUT: the agent's SIGTERM ends it
	b = []byte(strings.Replace(string(b), "location: scripts/validate_service.sh\n      timeout: 300", "location: scripts/validate_service.sh\n      timeout: 6", 1))
	if !strings.Contains(string(b), "timeout: 6") {
		t.Fatal("appspec.yml changed: cannot lower ValidateService's timeout")
	}
	if err := os.WriteFile(spec, b, 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	res, err := in.deploy(bundle)
	took := time.Since(began)
	if err == nil {
		t.Fatal("deployed")
	}
	if failedEvent(res) != appspec.ValidateService || !strings.Contains(err.Error(), "ValidateService: scripts/validate_service.sh timed out") {
		t.Errorf("want ValidateService timed out, got %v", err)
	}
	if took > 100*time.Second { // HEALTH_TIMEOUT (120 s) would be the hook running on; 6 s its timeout
		t.Errorf("the deployment took %s: the hook ran on past its timeout", took)
	}
	// The agent stops reading the hook's output when it sends SIGTERM, and reports the failure
	// without waiting for the hook: its TERM trap restores the previous container after that
	// and logs beside the agent's log. Give it a bound (a loaded machine is slow to swap back).
	logFile := filepath.Join(filepath.Dir(res.ArchiveDir), "logs", "webapp-after-timeout.log")
	want := "rolled back: " + in.name + " (revision " + img.tag1
	var after []byte
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if after, _ = os.ReadFile(logFile); strings.Contains(string(after), want) {
			break
		}
	}
	if !strings.Contains(string(after), want) {
		scripts, _ := os.ReadFile(filepath.Join(filepath.Dir(res.ArchiveDir), "logs", "scripts.log"))
		t.Errorf("no rollback line in logs/webapp-after-timeout.log within 90 s:\n%s\nscripts.log:\n%s\ncontainers:\n%s",
			after, lastLines(string(scripts), 25), in.containers())
	}
	if v := in.health(); v != img.tag1 {
		t.Errorf("after the timed-out deployment /healthz reports %q, want the previous %q", v, img.tag1)
	}
}

// A revision whose ApplicationStop fails blocks the next deployment at ApplicationStop (the agent
// runs the previous revision's script), and nothing serving is touched.
func TestDockerFailingApplicationStopInThePreviousRevision(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := newInstance(t, img)
	broken := in.bundle(img.v1, img.tag1)
	if err := os.WriteFile(filepath.Join(broken, "scripts", "application_stop.sh"),
		[]byte("#!/bin/bash\necho 'a broken stop script' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := in.deploy(broken); err != nil {
		t.Fatal(err) // its own ApplicationStop does not run in its deployment
	}
	res, err := in.deploy(in.bundle(img.v2, img.tag2))
	if err == nil {
		t.Fatal("deployed past a failing ApplicationStop")
	}
	if failedEvent(res) != appspec.ApplicationStop || !strings.Contains(hookOutput(res), "a broken stop script") {
		t.Errorf("want the previous revision's ApplicationStop to fail the deployment, got %v", err)
	}
	if v := in.health(); v != img.tag1 {
		t.Errorf("/healthz reports %q, want %q untouched", v, img.tag1)
	}
}

// HEALTH_PATH from image.env, and the instance's APP_ENV_FILE given to the container (not baked
// into the image); a redeploy of the same revision (the hooks re-run by the agent) serves the same.
func TestDockerHealthPathAndAppEnvFile(t *testing.T) {
	t.Parallel()
	img := integration(t)
	envFile := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(envFile, []byte("HEALTH_PATH=/ready\nAPP_SETTING=from-the-instance\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, img, "APP_ENV_FILE="+envFile)
	bundle := in.bundle(img.v1, img.tag1, func(e *devenv.ImageEnv) { e.HealthPath = "/ready" })
	for i := 1; i <= 2; i++ {
		res, err := in.deploy(bundle)
		if err != nil {
			t.Fatalf("deployment %d: %v", i, err)
		}
		if out := hookOutput(res); !strings.Contains(out, "healthy: http://127.0.0.1:"+fmt.Sprint(in.port)+"/ready answered") {
			t.Errorf("ValidateService did not check /ready:\n%s", out)
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", in.port))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `"setting": "from-the-instance"`) {
			t.Errorf("deployment %d: /ready = %s, want the setting from the app env file", i, body)
		}
		if got := in.containers(); strings.Count(got, "\n") != 0 {
			t.Errorf("deployment %d left more than one container:\n%s", i, got)
		}
	}
	// instance hygiene: the container's json-file log is capped
	if lc, err := img.env.Docker(context.Background(), in.config, nil, "inspect", "--format", "{{.HostConfig.LogConfig.Config}}", in.name); err != nil || !strings.Contains(lc, "max-size:10m") {
		t.Errorf("container log not capped (%v): %s", err, lc)
	}
	cfg, err := img.env.Docker(context.Background(), in.config, nil, "image", "inspect", "--format", "{{.Config.Env}}", in.image(img.v1))
	if err != nil || strings.Contains(cfg, "from-the-instance") {
		t.Errorf("the app setting is in the image's config (%v): %s", err, cfg)
	}
}

// Instance hygiene: after validated deployments of v1, v2, v3 only v3 (current) and v2 (previous,
// for a rollback) stay on the instance.
func TestDockerOldImagesArePruned(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := newInstance(t, img)
	for _, v := range []struct{ ref, tag string }{{img.v1, img.tag1}, {img.v2, img.tag2}, {img.v3, img.tag3}} {
		if _, err := in.deploy(in.bundle(v.ref, v.tag)); err != nil {
			t.Fatal(err)
		}
	}
	present := func(ref string) bool {
		_, err := img.env.Docker(context.Background(), in.config, nil, "image", "inspect", ref)
		return err == nil
	}
	if present(in.image(img.v1)) {
		t.Error("v1 is still on the instance after v3 was validated")
	}
	if !present(in.image(img.v2)) || !present(in.image(img.v3)) {
		t.Error("the current (v3) and the previous (v2) image must stay")
	}
}

// A deployment that ended between ApplicationStart and ValidateService (the agent killed, the
// instance rebooted) leaves NAME (never validated) and NAME-previous: the next deployment drops
// NAME, keeps NAME-previous as the one to restore, and restores it when the new one fails.
func TestDockerInterruptedSwapIsCleanedUp(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := newInstance(t, img, "HEALTH_TIMEOUT=10")
	if _, err := in.deploy(in.bundle(img.v1, img.tag1)); err != nil {
		t.Fatal(err)
	}
	// v2's ApplicationStart alone, as an interrupted deployment would have run it
	half := in.bundle(img.v2, img.tag2)
	env := append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LIFECYCLE_EVENT=AfterInstall", "DEPLOYMENT_ID=d-INTERRUPT"}, in.env...)
	for _, s := range []string{"scripts/after_install.sh", "scripts/application_start.sh"} {
		if _, err := runHook(t, half, s, env); err != nil {
			t.Fatal(err)
		}
	}
	if got := in.containers(); !strings.Contains(got, in.name+"-previous "+in.image(img.v1)) {
		t.Fatalf("want v1 kept as %s-previous:\n%s", in.name, got)
	}
	res, err := in.deploy(in.bundle(img.broken, img.tagBad))
	if err == nil {
		t.Fatal("the unhealthy revision deployed")
	}
	if out := hookOutput(res); !strings.Contains(out, "never validated") || !strings.Contains(out, "rolled back: "+in.name+" (revision "+img.tag1) {
		t.Errorf("want v2 dropped as never validated and v1 restored:\n%s", out)
	}
	if v := in.health(); v != img.tag1 {
		t.Errorf("/healthz reports %q, want the last validated %q", v, img.tag1)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// failedEvent is the event the agent failed the deployment in ("" when none).
func failedEvent(res Result) string {
	for _, ev := range res.Events {
		if ev.Status == Failed {
			return ev.Name
		}
	}
	return ""
}

// shortTempDir: a temporary directory with a short path (t.TempDir's carries the test's name).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cdst")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
