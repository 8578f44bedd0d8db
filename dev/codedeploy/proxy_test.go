package codedeploy

// The switch through the instance's proxy (scripts/proxy.sh), through the real agent: the hooks'
// rules under it (re-runs, the timeout's SIGTERM during the watch) and an instance that ran the
// restart swap before its proxy was installed. The sequence with a prober is dev/fleet's
// TestSwitchSequence.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/internal/appspec"
)

// proxyInstance: an instance whose hooks switch through the proxy, watching 2 s.
func proxyInstance(t *testing.T, img testImages, extra ...string) *instance {
	return newInstance(t, img, append([]string{"PROXY=auto", "WATCH_SECONDS=2"}, extra...)...)
}

// Each hook of a switched deployment, run again, leaves the same state: the new version serves
// through the proxy, the previous one is kept stopped, nothing else.
func TestProxyHooksAreIdempotent(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := proxyInstance(t, img)
	if _, err := in.deploy(in.bundle(img.v1, img.tag1)); err != nil {
		t.Fatal(err)
	}
	res, err := in.deploy(in.bundle(img.v2, img.tag2))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s %s running %s\n%s-previous %s exited ", in.name, in.image(img.v2), res.DeploymentID, in.name, in.image(img.v1))
	in.rerunHooks(res, func(event string, run int) {
		if got := sortedLines(in.containers()); !strings.HasPrefix(got, want) {
			t.Errorf("after %s run %d:\n got %s\nwant %s...", event, run, got, want)
		}
	})
	if v := in.health(); v != img.tag2 {
		t.Errorf("/healthz reports %q, want %q", v, img.tag2)
	}
}

// The agent's timeout during the watch: ValidateService's TERM trap switches back to the
// previous container, which kept running, and no request fails.
func TestProxyTimeoutDuringTheWatchSwitchesBack(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := proxyInstance(t, img)
	if _, err := in.deploy(in.bundle(img.v1, img.tag1)); err != nil {
		t.Fatal(err)
	}
	in.env = append(in.env, "WATCH_SECONDS=120")
	bundle := in.bundle(img.v2, img.tag2)
	spec := filepath.Join(bundle, "appspec.yml")
	b, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	// ValidateService's timeout far below the watch: the agent's SIGTERM comes during it
	b = []byte(strings.Replace(string(b), "location: scripts/validate_service.sh\n      timeout: 300", "location: scripts/validate_service.sh\n      timeout: 10", 1))
	if !strings.Contains(string(b), "timeout: 10") {
		t.Fatal("appspec.yml changed: cannot lower ValidateService's timeout")
	}
	if err := os.WriteFile(spec, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var res Result
	rep := in.probeDuring("/healthz", func() {
		res, err = in.deploy(bundle)
		logFile := filepath.Join(filepath.Dir(res.ArchiveDir), "logs", "webapp-after-timeout.log")
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if after, _ := os.ReadFile(logFile); strings.Contains(string(after), "switched back") {
				return
			}
		}
		after, _ := os.ReadFile(logFile)
		t.Errorf("no switch back in %s within 60 s:\n%s\ncontainers:\n%s", logFile, after, in.containers())
	})
	if err == nil || failedEvent(res) != appspec.ValidateService {
		t.Fatalf("want ValidateService timed out, got %v", err)
	}
	t.Logf("timeout during the watch: %d probes every 20 ms, %d failed, longest gap %s", rep.Requests, rep.Failures, rep.LongestGap)
	if rep.Failures != 0 {
		t.Errorf("%d requests failed", rep.Failures)
	}
	if v := in.health(); v != img.tag1 {
		t.Errorf("after the timed-out deployment /healthz reports %q, want the previous %q", v, img.tag1)
	}
}

// An instance that ran the restart swap (no proxy yet) gets its proxy with the next deployment:
// its container gives up the host port to the proxy, once; from then on the switch.
func TestProxyTakesOverFromTheRestartSwap(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := newInstance(t, img) // PROXY=off
	res, err := in.deploy(in.bundle(img.v1, img.tag1))
	if err != nil {
		t.Fatal(err)
	}
	if out := hookOutput(res); !strings.Contains(out, "WARNING: PROXY=off") {
		t.Errorf("no warning that the proxy is off:\n%s", out)
	}
	in.env = append(in.env, "PROXY=auto", "WATCH_SECONDS=2")
	if res, err = in.deploy(in.bundle(img.v2, img.tag2)); err != nil {
		t.Fatal(err)
	}
	if out := hookOutput(res); !strings.Contains(out, "published host port "+fmt.Sprint(in.port)+" itself: stopped so the proxy can take the port") {
		t.Errorf("no word of the proxy taking the port over:\n%s", out)
	}
	if v := in.health(); v != img.tag2 {
		t.Errorf("/healthz reports %q, want %q", v, img.tag2)
	}
	rep := in.probeDuring("/healthz", func() {
		if _, err = in.deploy(in.bundle(img.v3, img.tag3)); err != nil {
			t.Error(err)
		}
	})
	t.Logf("the next deployment, switched: %d probes every 20 ms, %d failed, longest gap %s", rep.Requests, rep.Failures, rep.LongestGap)
	if rep.Failures != 0 {
		t.Errorf("%d requests failed in a switched deployment", rep.Failures)
	}
	if v := in.health(); v != img.tag3 {
		t.Errorf("/healthz reports %q, want %q", v, img.tag3)
	}
}

func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// The proxy is what serves: killed (the instance restarted), it comes back from the config the
// hooks wrote last and serves the last version that passed its watch, as the bootstrap's
// webapp-proxy@ unit starts it at boot (here without systemd: the same haproxy on the same file);
// and a deployment finding no proxy running starts it from that file before it switches.
func TestProxyRestartServesTheLastGoodVersion(t *testing.T) {
	t.Parallel()
	img := integration(t)
	in := proxyInstance(t, img)
	for _, v := range []struct{ ref, tag string }{{img.v1, img.tag1}, {img.v2, img.tag2}} {
		if _, err := in.deploy(in.bundle(v.ref, v.tag)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(in.state, in.name)
	kill := func() {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "proxy.pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	kill()
	if _, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", in.port)); err == nil {
		t.Fatal("the instance still answers with its proxy killed")
	}
	if out, err := exec.Command("haproxy", "-D", "-q", "-f", filepath.Join(dir, "proxy.cfg")).CombinedOutput(); err != nil {
		t.Fatalf("haproxy on the hooks' config: %v\n%s", err, out)
	}
	if v := in.health(); v != img.tag2 {
		t.Errorf("the restarted proxy serves %q, want the last good %q", v, img.tag2)
	}
	kill()
	res, err := in.deploy(in.bundle(img.v3, img.tag3))
	if err != nil {
		t.Fatal(err)
	}
	if out := hookOutput(res); !strings.Contains(out, "proxy serving host port") {
		t.Errorf("ValidateService did not start the proxy again:\n%s", out)
	}
	if v := in.health(); v != img.tag3 {
		t.Errorf("/healthz reports %q, want %q", v, img.tag3)
	}
}
