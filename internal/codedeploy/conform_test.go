package codedeploy

// Conformance: the same revisions deployed through the real CodeDeploy agent (codedeploy-local,
// unmodified, from ../shared/peers) and through this package's replay, compared on everything
// a hook or an operator can observe. The agent is the oracle: where they differ, the replay is
// wrong (or the difference is deliberate and listed in docs/codedeploy.md, "Conformance").

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

type deployFunc func(context.Context, Options) (Result, error)

// needAgent returns the installed codedeploy-local; without it the test fails (skips only
// under -short), naming the install script.
func needAgent(t *testing.T) Agent {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the real CodeDeploy agent (codedeploy-local): skipped under -short")
	}
	a, err := FindAgent()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// scenario is one instance deployed to in turn by the same runner.
type scenario struct {
	t        *testing.T
	deploy   deployFunc
	instance string
	record   string
}

func newScenario(t *testing.T, deploy deployFunc) *scenario {
	return &scenario{t: t, deploy: deploy, instance: t.TempDir(), record: filepath.Join(t.TempDir(), "record")}
}

// rev lays out the conform fixture with MARKER and the behaviour files (fail_at: EVENT ...).
func (s *scenario) rev(marker string, files map[string]string) string {
	s.t.Helper()
	dir := fixture(s.t, "conform", marker)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	return dir
}

func (s *scenario) run(bundle string) (Result, error, time.Duration) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	res, err := s.deploy(ctx, Options{Bundle: bundle, InstanceDir: s.instance, Application: "webapp",
		Group: "conform", Env: []string{"RECORD=" + s.record, "INSTANCE_SETTING=42"}, Log: testLog(s.t)})
	return res, err, time.Since(began)
}

func (s *scenario) recorded() string {
	b, _ := os.ReadFile(s.record)
	return string(b)
}

// hookEnv is what one hook saw, without what the shell adds itself and with ids normalized.
func (s *scenario) hookEnv(marker, event string) string {
	b, err := os.ReadFile(s.record + "." + marker + "." + event + ".env")
	if err != nil {
		return "(no env recorded: " + err.Error() + ")"
	}
	var keep []string
	for _, kv := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PWD", "OLDPWD", "SHLVL", "_":
			continue
		case "DEPLOYMENT_ID":
			kv = "DEPLOYMENT_ID=<id>"
		case "RECORD":
			kv = "RECORD=<record>"
		}
		keep = append(keep, kv)
	}
	return strings.Join(keep, "\n")
}

var deploymentIDs = regexp.MustCompile(`d-[A-Z0-9]{9}(-local)?`)

// layout lists the files under deployment-root, deployment ids replaced by their order of
// first appearance in the deployments (d1, d2 ...).
func (s *scenario) layout(ids []string) []string {
	root := filepath.Join(s.instance, "deployment-root")
	var out []string
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, normalizeIDs(rel, ids))
		return nil
	})
	sort.Strings(out)
	return out
}

func normalizeIDs(s string, ids []string) string {
	for i, id := range ids {
		s = strings.ReplaceAll(s, id, "d"+string(rune('1'+i)))
	}
	return s
}

// scriptsLog is a deployment's scripts.log without stamps, each script's lines sorted (the
// agent reads stdout and stderr in two threads: their interleaving is not defined).
func scriptsLogLines(res Result) string {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(res.ArchiveDir), "logs", "scripts.log"))
	if err != nil {
		return "(none: " + err.Error() + ")"
	}
	var blocks []string
	var cur []string
	flush := func() {
		sort.Strings(cur)
		blocks = append(blocks, strings.Join(cur, "\n"))
		cur = nil
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		m := scriptsLogLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if strings.HasPrefix(m[1], "LifecycleEvent - ") {
			flush()
		}
		cur = append(cur, m[1])
	}
	flush()
	return strings.Join(blocks, "\n")
}

func failedEvent(res Result) string {
	for _, ev := range res.Events {
		if ev.Status == Failed {
			return ev.Name
		}
	}
	return ""
}

// observation is what one runner showed in one conformance point.
type observation map[string]string

// TestConformanceWithTheRealAgent runs each point through both and compares observations.
func TestConformanceWithTheRealAgent(t *testing.T) {
	agent := needAgent(t)
	runners := []struct {
		name   string
		deploy deployFunc
	}{{"agent", agent.Deploy}, {"replay", Deploy}}

	points := []struct {
		name string
		run  func(t *testing.T, s *scenario) observation
	}{
		{"first deployment: hook order, no previous-revision hooks", func(t *testing.T, s *scenario) observation {
			_, err, _ := s.run(s.rev("one", nil))
			return observation{"error": errString(err), "record": s.recorded()}
		}},
		{"hook environment: lifecycle variables and the caller settings, nothing else", func(t *testing.T, s *scenario) observation {
			s.run(s.rev("one", nil))
			s.run(s.rev("two", nil))
			o := observation{}
			for _, ev := range []string{BeforeInstall, ValidateService, AfterAllowTraffic} {
				o[ev] = s.hookEnv("two", ev)
			}
			o["ApplicationStop (run from revision one)"] = s.hookEnv("one", ApplicationStop)
			return o
		}},
		{"second deployment: BlockTraffic and ApplicationStop from the previous revision", func(t *testing.T, s *scenario) observation {
			s.run(s.rev("one", nil))
			res, err, _ := s.run(s.rev("two", nil))
			return observation{"error": errString(err), "record": s.recorded(),
				"ApplicationStop ran from previous archive": boolString(res.PreviousDir != "" && strings.Contains(s.recorded(), "ApplicationStop one"))}
		}},
		{"a deployment that failed in ValidateService is the previous revision next time", func(t *testing.T, s *scenario) observation {
			s.run(s.rev("one", nil))
			_, err2, _ := s.run(s.rev("two", map[string]string{"fail_at": ValidateService}))
			_, err3, _ := s.run(s.rev("three", nil))
			return observation{"second failed": boolString(err2 != nil), "third": errString(err3), "record": s.recorded()}
		}},
		{"a deployment that failed before Install is not", func(t *testing.T, s *scenario) observation {
			s.run(s.rev("one", nil))
			_, err2, _ := s.run(s.rev("two", map[string]string{"fail_at": BeforeInstall}))
			s.run(s.rev("three", nil))
			return observation{"second failed": boolString(err2 != nil), "record": s.recorded()}
		}},
		{"a failing ApplicationStop in the previous revision fails every next deployment", func(t *testing.T, s *scenario) observation {
			_, err1, _ := s.run(s.rev("one", map[string]string{"fail_at": ApplicationStop}))
			res2, err2, _ := s.run(s.rev("two", nil))
			res3, err3, _ := s.run(s.rev("three", nil))
			return observation{"first": errString(err1), "second fails at": failedEvent(res2) + " " + boolString(err2 != nil),
				"third fails at": failedEvent(res3) + " " + boolString(err3 != nil), "record": s.recorded()}
		}},
		{"exit code: the event fails, the deployment stops there", func(t *testing.T, s *scenario) observation {
			res, err, _ := s.run(s.rev("one", map[string]string{"fail_at": AfterInstall}))
			return observation{"fails at": failedEvent(res), "failed": boolString(err != nil), "record": s.recorded()}
		}},
		{"timeout: SIGTERM to the process group, the event fails", func(t *testing.T, s *scenario) observation {
			res, err, took := s.run(s.rev("one", map[string]string{"sleep_at": BeforeInstall}))
			// The trap's line may land just after the deployment returns (the agent does not
			// wait for the terminated hook): give it a few seconds, in both.
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && !strings.Contains(s.recorded(), "got TERM"); {
				time.Sleep(100 * time.Millisecond)
			}
			// The hook's timeout is 3 s and it sleeps 30 s: 25 s tells the two apart, with room
			// for the agent's own start on a loaded machine.
			return observation{"fails at": failedEvent(res), "failed": boolString(err != nil), "record": s.recorded(),
				"ended well before the hook's sleep": boolString(took < 25*time.Second)}
		}},
		{"a background child holding stdout fails the event", func(t *testing.T, s *scenario) observation {
			res, err, _ := s.run(s.rev("one", map[string]string{"leak_at": BeforeInstall}))
			return observation{"fails at": failedEvent(res), "failed": boolString(err != nil)}
		}},
		{"a missing script is found when its hook is reached", func(t *testing.T, s *scenario) observation {
			bundle := s.rev("one", nil)
			spec := filepath.Join(bundle, "appspec.yml")
			b, _ := os.ReadFile(spec)
			_ = os.WriteFile(spec, []byte(strings.Replace(string(b),
				"AfterInstall:\n    - {location: hooks/conform.sh", "AfterInstall:\n    - {location: hooks/missing.sh", 1)), 0o644)
			res, err, _ := s.run(bundle)
			return observation{"fails at": failedEvent(res), "failed": boolString(err != nil), "record": s.recorded()}
		}},
		{"archive layout, instructions and scripts.log", func(t *testing.T, s *scenario) observation {
			r1, _, _ := s.run(s.rev("one", nil))
			r2, _, _ := s.run(s.rev("two", map[string]string{"fail_at": ValidateService}))
			ids := []string{r1.DeploymentID, r2.DeploymentID}
			o := observation{"scripts.log of the second": normalizeIDs(scriptsLogLines(r2), ids)}
			for _, kind := range []string{"last_successful_install", "most_recent_install"} {
				b, _ := os.ReadFile(filepath.Join(s.instance, "deployment-root", "deployment-instructions", r1.GroupID+"_"+kind))
				rel, _ := filepath.Rel(filepath.Join(s.instance, "deployment-root"), string(b))
				o[kind] = normalizeIDs(rel, ids)
			}
			// the files the replay writes; the agent writes these and more (compared below)
			var modelled []string
			for _, f := range s.layout(ids) {
				if strings.Contains(f, "/deployment-archive/") || strings.HasSuffix(f, "scripts.log") ||
					strings.HasSuffix(f, "_install") {
					modelled = append(modelled, strings.Replace(f, r1.GroupID, "<group>", 1))
				}
			}
			o["layout"] = strings.Join(modelled, "\n")
			return o
		}},
		{"retention: five deployment directories per group, oldest removed first", func(t *testing.T, s *scenario) observation {
			var kept []string
			for i := 1; i <= 7; i++ {
				s.run(s.rev(string(rune('0'+i)), nil))
				time.Sleep(20 * time.Millisecond) // distinct mtimes
			}
			groupDirs, _ := filepath.Glob(filepath.Join(s.instance, "deployment-root", "*", "d-*"))
			for _, d := range groupDirs {
				m, _ := os.ReadFile(filepath.Join(d, "deployment-archive", "marker"))
				kept = append(kept, string(m))
			}
			sort.Strings(kept)
			return observation{"kept revisions": strings.Join(kept, " ")}
		}},
	}

	var table []string
	for _, p := range points {
		obs := map[string]observation{}
		for _, r := range runners {
			t.Run(p.name+"/"+r.name, func(t *testing.T) {
				obs[r.name] = p.run(t, newScenario(t, r.deploy))
			})
		}
		verdict := "same"
		for k, want := range obs["agent"] {
			if got := obs["replay"][k]; got != want {
				verdict = "DIFFERS"
				t.Errorf("%s: %s:\nagent:\n%s\nreplay:\n%s", p.name, k, want, got)
			}
		}
		table = append(table, "| "+p.name+" | "+verdict+" |")
	}
	t.Logf("conformance, real agent vs replay:\n| point | result |\n|---|---|\n%s", strings.Join(table, "\n"))
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return "failed"
}

func boolString(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
