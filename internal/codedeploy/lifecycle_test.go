package codedeploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fixture copies testdata/deploy/NAME to a temp dir and writes MARKER into it.
func fixture(t *testing.T, name, marker string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := copyTree(filepath.Join("..", "..", "testdata", "deploy", name), dir, Overwrite); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "marker"), []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func testLog(t *testing.T) *tLogWriter { return &tLogWriter{t: t} }

type tLogWriter struct{ t *testing.T }

func (w *tLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func statuses(r Result) string {
	var s []string
	for _, e := range r.Events {
		s = append(s, e.Name+":"+e.Status)
	}
	return strings.Join(s, " ")
}

func TestLifecycleOrderAndPreviousRevisionStop(t *testing.T) {
	t.Parallel()
	instance := t.TempDir()
	record := filepath.Join(t.TempDir(), "record")
	opts := Options{InstanceDir: instance, Application: "webapp", Group: "dev",
		Env: []string{"RECORD=" + record, "INSTANCE_SETTING=42"}, Log: testLog(t)}

	opts.Bundle = fixture(t, "record", "rev-one")
	first, err := Deploy(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := "BeforeBlockTraffic:Skipped AfterBlockTraffic:Skipped ApplicationStop:Skipped DownloadBundle:Succeeded " +
		"BeforeInstall:Succeeded Install:Succeeded AfterInstall:Succeeded ApplicationStart:Succeeded ValidateService:Succeeded " +
		"BeforeAllowTraffic:Skipped AfterAllowTraffic:Skipped"
	if got := statuses(first); got != want {
		t.Errorf("first deployment events:\n got %s\nwant %s", got, want)
	}
	if first.PreviousDir != "" {
		t.Errorf("first deployment has a previous revision: %s", first.PreviousDir)
	}

	opts.Bundle = fixture(t, "record", "rev-two")
	second, err := Deploy(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if second.PreviousDir != first.ArchiveDir {
		t.Errorf("previous revision = %s, want the first deployment's archive %s", second.PreviousDir, first.ArchiveDir)
	}
	stop := second.Event(ApplicationStop)
	if stop.Status != Succeeded || stop.Scripts[0].Dir != first.ArchiveDir {
		t.Errorf("ApplicationStop = %+v, want it run from %s", stop, first.ArchiveDir)
	}

	data, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	wantRecord := `BeforeInstall rev-one
AfterInstall rev-one
ApplicationStart rev-one
ValidateService rev-one
ApplicationStop rev-one
BeforeInstall rev-two
AfterInstall rev-two
ApplicationStart rev-two
ValidateService rev-two
`
	if string(data) != wantRecord {
		t.Errorf("hooks ran:\n%s\nwant:\n%s", data, wantRecord)
	}

	// The lifecycle variables, the caller's settings, and nothing of the test's own environment.
	env, err := os.ReadFile(record + ".ApplicationStop.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{
		"APPLICATION_NAME=webapp", "DEPLOYMENT_GROUP_NAME=dev", "DEPLOYMENT_GROUP_ID=" + second.GroupID,
		"DEPLOYMENT_ID=" + second.DeploymentID, "LIFECYCLE_EVENT=ApplicationStop", "INSTANCE_SETTING=42",
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	} {
		if !strings.Contains(string(env), kv+"\n") {
			t.Errorf("ApplicationStop environment lacks %s:\n%s", kv, env)
		}
	}
	if strings.Contains(string(env), "GOROOT=") || strings.Contains(string(env), "HOME=") {
		t.Errorf("hook environment leaks the caller's environment:\n%s", env)
	}
	if second.GroupID != first.GroupID || second.DeploymentID == first.DeploymentID {
		t.Errorf("group ids %s/%s, deployment ids %s/%s", first.GroupID, second.GroupID, first.DeploymentID, second.DeploymentID)
	}
	if _, err := os.Stat(filepath.Join(instance, "deployment-root", second.GroupID, second.DeploymentID, "logs", "scripts.log")); err != nil {
		t.Errorf("no scripts.log: %v", err)
	}
}

// As the real agent (measured with codedeploy-local; the conformance test checks it): the "last
// successful install" is recorded right after Install, so a deployment that failed in
// ValidateService IS the previous revision of the next one; one that failed before Install is not.
func TestFailedDeploymentAfterInstallIsThePreviousRevision(t *testing.T) {
	t.Parallel()
	instance := t.TempDir()
	record := filepath.Join(t.TempDir(), "record")
	opts := Options{InstanceDir: instance, Application: "webapp", Group: "dev",
		Env: []string{"RECORD=" + record, "CHILD_PIDFILE=" + filepath.Join(t.TempDir(), "pid")}, Log: testLog(t)}
	opts.Bundle = fixture(t, "record", "good")
	good, err := Deploy(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Bundle = fixture(t, "timeout", "fails-in-BeforeInstall")
	if _, err := Deploy(context.Background(), opts); err == nil {
		t.Fatal("timeout bundle deployed")
	}
	opts.Bundle = fixture(t, "failing", "fails-in-ValidateService")
	bad, err := Deploy(context.Background(), opts)
	if err == nil {
		t.Fatal("failing bundle deployed")
	}
	if bad.PreviousDir != good.ArchiveDir {
		t.Errorf("a deployment that failed before Install became the previous revision: %s, want %s", bad.PreviousDir, good.ArchiveDir)
	}
	opts.Bundle = fixture(t, "record", "next")
	next, err := Deploy(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if next.PreviousDir != bad.ArchiveDir {
		t.Errorf("after a deployment that failed in ValidateService, ApplicationStop ran from %s, want that deployment's %s", next.PreviousDir, bad.ArchiveDir)
	}
}

func TestHookFailureMessage(t *testing.T) {
	t.Parallel()
	res, err := Deploy(context.Background(), Options{Bundle: fixture(t, "failing", "x"), InstanceDir: t.TempDir(),
		Application: "webapp", Group: "dev", Log: testLog(t)})
	var herr *HookError
	if !errors.As(err, &herr) {
		t.Fatalf("want a HookError, got %v", err)
	}
	msg := err.Error()
	// stdout and stderr are two pipes (as for the agent): their lines may interleave either way
	if !strings.Contains(msg, "ValidateService: hooks/fail.sh exited 3: ") || !strings.Contains(msg, "checking health") ||
		!strings.Contains(msg, "fail: service answered 500") {
		t.Errorf("unclear error: %s", msg)
	}
	if ev := res.Event(ValidateService); ev == nil || ev.Status != Failed || ev.Scripts[0].ExitCode != 3 {
		t.Errorf("ValidateService event = %+v", ev)
	}
}

func TestHookTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "child.pid")
	began := time.Now()
	_, err := Deploy(context.Background(), Options{Bundle: fixture(t, "timeout", "x"), InstanceDir: t.TempDir(),
		Application: "webapp", Group: "dev", Env: []string{"CHILD_PIDFILE=" + pidfile}, Log: testLog(t)})
	var herr *HookError
	if !errors.As(err, &herr) || !herr.TimedOut || herr.Event != BeforeInstall {
		t.Fatalf("want a BeforeInstall timeout, got %v", err)
	}
	if !strings.Contains(err.Error(), "BeforeInstall: hooks/sleep.sh timed out after 1s") {
		t.Errorf("unclear error: %v", err)
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Errorf("the deployment took %s: the timeout was not enforced", d)
	}
	assertDead(t, pidfile)
}

func TestBackgroundChildHoldingOutputFailsTheEvent(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "child.pid")
	_, err := Deploy(context.Background(), Options{Bundle: fixture(t, "background", "x"), InstanceDir: t.TempDir(),
		Application: "webapp", Group: "dev", Env: []string{"CHILD_PIDFILE=" + pidfile}, Log: testLog(t)})
	var herr *HookError
	if !errors.As(err, &herr) || herr.Event != AfterInstall || !strings.Contains(herr.Detail, "background process") {
		t.Fatalf("want AfterInstall failed by a background child, got %v", err)
	}
	assertDead(t, pidfile)
}

// assertDead: the process in pidfile is gone (or a zombie waiting for init).
func assertDead(t *testing.T, pidfile string) {
	t.Helper()
	data, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if errors.Is(err, os.ErrNotExist) || syscall.Kill(pid, 0) != nil ||
			(err == nil && strings.Contains(string(stat), ") Z ")) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("child %d of the killed hook is still running", pid)
}

func TestInstallFiles(t *testing.T) {
	t.Parallel()
	instance := t.TempDir()
	fsRoot := filepath.Join(instance, "fs")
	opts := Options{Bundle: fixture(t, "files", "x"), InstanceDir: instance, Application: "webapp",
		Group: "dev", Env: []string{"FS_ROOT=" + fsRoot}, Log: testLog(t)}
	for i := 0; i < 2; i++ { // OVERWRITE: a redeploy onto the installed files succeeds
		if _, err := Deploy(context.Background(), opts); err != nil {
			t.Fatalf("deployment %d: %v", i+1, err)
		}
	}
	if data, err := os.ReadFile(filepath.Join(fsRoot, "etc/webapp/deploy.env")); err != nil || string(data) != "HOST_PORT=8081\n" {
		t.Errorf("deploy.env: %q, %v", data, err)
	}
	if info, err := os.Stat(filepath.Join(fsRoot, "opt/webapp/bin/check.sh")); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("check.sh: %v, %v", info, err)
	}

	// DISALLOW (the default): the same redeploy fails on the existing file.
	spec := filepath.Join(opts.Bundle, "appspec.yml")
	data, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, []byte(strings.Replace(string(data), "file_exists_behavior: OVERWRITE\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Deploy(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "Install: ") || !strings.Contains(err.Error(), "DISALLOW") {
		t.Errorf("DISALLOW redeploy: want an Install error, got %v", err)
	}
}

func TestZipBundle(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "record", "zipped")
	zipName := filepath.Join(t.TempDir(), "bundle.zip")
	writeZip(t, dir, zipName)
	record := filepath.Join(t.TempDir(), "record")
	_, err := Deploy(context.Background(), Options{Bundle: zipName, InstanceDir: t.TempDir(),
		Application: "webapp", Group: "dev", Env: []string{"RECORD=" + record}, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(record); !strings.HasPrefix(string(data), "BeforeInstall zipped\n") {
		t.Errorf("record: %q", data)
	}
}

func TestParseAppSpec(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ spec, err string }{
		"repo appspec":   {spec: "", err: ""},
		"unknown key":    {spec: "version: 0.0\nos: linux\nhook: {}\n", err: "field hook not found"},
		"bad version":    {spec: "version: 1\nos: linux\n", err: "version must be 0.0"},
		"windows":        {spec: "version: 0.0\nos: windows\n", err: "os must be linux"},
		"unknown event":  {spec: "version: 0.0\nos: linux\nhooks:\n  Start:\n    - location: a.sh\n", err: `unknown lifecycle event "Start"`},
		"timeout > 3600": {spec: "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - {location: a.sh, timeout: 3601}\n", err: "timeout must be 1..3600"},
		"escape":         {spec: "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - {location: ../a.sh}\n", err: "location must be a path inside"},
		"behavior":       {spec: "version: 0.0\nos: linux\nfile_exists_behavior: MERGE\n", err: "file_exists_behavior"},
	} {
		t.Run(name, func(t *testing.T) {
			var (
				spec *AppSpec
				err  error
			)
			if tc.spec == "" {
				spec, err = LoadAppSpec(filepath.Join("..", ".."))
				if err == nil && (spec.Hooks[ApplicationStop][0].Location != "scripts/application_stop.sh" || spec.FileExistsBehavior != Disallow) {
					t.Errorf("repo appspec parsed as %+v", spec)
				}
			} else {
				_, err = ParseAppSpec([]byte(tc.spec))
			}
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error = %v, want %q", err, tc.err)
			}
		})
	}
}
