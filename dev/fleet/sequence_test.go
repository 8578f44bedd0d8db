package fleet

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/dev/devenv"
)

// TestSwitchSequence (issue 19): the instance's proxy switches instead of restarting. Through the
// real agent, a prober every 20 ms, the sequence good → new good → an image that cannot start →
// one that never gets healthy → one that passes its check and fails 10 s after its start → the
// first good one again → the second again (a redeploy of the previous revision: the container the
// instance kept): on one instance (probing its own proxy, no load
// balancer) and on two behind the load balancer (OneAtATime). Asserted: each deployment ends as
// it must, no request fails (also while the version that fails after the switch serves on a lone
// instance: the proxy retries its failed GETs on the previous container, scripts/proxy.sh), the
// previous version serves again after it, the journal says why each deployment ended. The
// figures are logged (go run ./dev/cmd/fleet -sequence prints the same table), never asserted.
func TestSwitchSequence(t *testing.T) {
	env, agent, root := fleetPrereqs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	steps, err := SequenceSteps(ctx, env, root, "webapp-switch-test", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d instances", n), func(t *testing.T) {
			port, err := devenv.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			// the load balancer checks the health path as a target group does: through each
			// instance's proxy, so it and the instance agree on what serves
			check := &HTTPCheck{Path: devenv.TestImageHealthPath, Matcher: "200", Interval: 500 * time.Millisecond,
				Timeout: 400 * time.Millisecond, Rise: 2, Fall: 2}
			f, err := StartWith(ctx, dir, n, port, env, agent, testLog{t}, Options{Settings: []string{"WATCH_SECONDS=15"}, Check: check})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(f.Stop)
			url := fmt.Sprintf("http://127.0.0.1:%d%s", port, devenv.TestImageHealthPath)
			if n == 1 {
				url = fmt.Sprintf("http://%s:%d%s", f.Instances[0].Addr, f.HostPort, devenv.TestImageHealthPath)
			}
			rows, err := f.RunSequence(ctx, root, filepath.Join(dir, "bundles"), steps, Configs["OneAtATime"], url, 20*time.Millisecond)
			var table bytes.Buffer
			PrintRows(&table, rows)
			t.Logf("probing %s every 20 ms:\n%s", url, table.String())
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range rows {
				if ok := r.Result.Err == nil; ok != r.WantOK {
					t.Errorf("%s: deployment succeeded = %v, want %v: %v", r.Label, ok, r.WantOK, r.Result.Err)
				}
				failsAfterSwitch := r.Revision == "failslater" && n == 1
				if i > 0 && r.Probe.Failures != 0 {
					t.Errorf("%s: %d requests failed (longest gap %s), want none", r.Label, r.Probe.Failures, r.Probe.LongestGap)
				}
				if failsAfterSwitch && r.SwitchedBack == "" {
					t.Errorf("%s: no instance switched back (journal)", r.Label)
				}
				if b := r.Probe.Bodies; i > 0 && (len(b) == 0 || !r.Probe.Recovered) {
					t.Errorf("%s: the prober saw no 2xx at the end: %v", r.Label, b)
				}
			}
			// after each failed deployment the previous version (v2) serves
			for _, r := range rows[2:5] {
				if b := r.Probe.Bodies; len(b) > 0 && !strings.Contains(b[len(b)-1], `"version": "v2-`) {
					t.Errorf("%s: after it the service answers %s, want v2", r.Label, b[len(b)-1])
				}
			}
			if b := rows[5].Probe.Bodies; len(b) == 0 || !strings.Contains(b[len(b)-1], `"version": "v1-`) {
				t.Errorf("after v1 again the service answers %v, want v1", b)
			}
			if b := rows[6].Probe.Bodies; len(b) == 0 || !strings.Contains(b[len(b)-1], `"version": "v2-`) {
				t.Errorf("at the end the service answers %v, want v2", b)
			}
			j, err := f.Journal(root, f.Instances[0])
			t.Logf("webapp-journal on %s:\n%s", f.Instances[0].Name, j)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"now:    revision v2", "before: revision v1",
				"revision nostart  FAILED in ApplicationStart: docker start of",
				"revision unhealthy  FAILED in ValidateService:", "it never received a request",
				"revision failslater  FAILED in ValidateService: revision failslater failed after the switch",
				"switched back: to revision v2: serving again", "kept container of revision v2 started again"} {
				if !strings.Contains(j, want) {
					t.Errorf("the journal lacks %q", want)
				}
			}
		})
	}
}
