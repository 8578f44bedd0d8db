package codedeploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/internal/appspec"
)

// hookBundle lays out the repository's appspec.yml and scripts/ with an image.env, and a bin/
// of small fakes (docker, aws) for the hooks' unit tests: no daemon, no registry.
func hookBundle(t *testing.T, fakeDocker string) (bundle string, env []string) {
	t.Helper()
	bundle = t.TempDir()
	root := filepath.Join("..", "..")
	if err := os.CopyFS(filepath.Join(bundle, "scripts"), os.DirFS(filepath.Join(root, "scripts"))); err != nil {
		t.Fatal(err)
	}
	image := "registry.example/webapp@sha256:" + strings.Repeat("a", 64)
	if err := os.WriteFile(filepath.Join(bundle, "image.env"), []byte("IMAGE="+image+"\nREVISION=r1\nREGISTRY=registry.example\n"+
		"REGISTRY_USERNAME_PARAM=/u\nREGISTRY_PASSWORD_PARAM=/p\nAWS_REGION=eu-west-1\nCONTAINER_NAME=webapp\nCONTAINER_PORT=8080\nHEALTH_PATH=/ready\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(bundle, "fakebin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"docker": fakeDocker, "aws": "#!/bin/sh\necho value\n"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/bash\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bundle, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LIFECYCLE_EVENT=AfterInstall", "EXTRA_PATH=" + bin,
		"WEBAPP_DEPLOY_ENV=/nonexistent", "APP_ENV_FILE=", "TMPDIR=" + t.TempDir(), "STATE_DIR=" + t.TempDir()}
}

// runHook runs one hook script of bundle as the agent does: from / in its own process group,
// with env only, its stdout and stderr together, under the timeout the repository's appspec.yml
// gives it (60 s for a script it does not name).
func runHook(t *testing.T, bundle, location string, env []string) (hookRun, error) {
	t.Helper()
	timeout := 60 * time.Second
	for _, hooks := range repoAppSpec(t).Hooks {
		for _, h := range hooks {
			if h.Location == location && h.Timeout != nil {
				timeout = time.Duration(*h.Timeout) * time.Second
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bundle, location))
	cmd.Dir, cmd.Env = "/", env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	t.Logf("%s:\n%s", location, out)
	return hookRun{Output: string(out)}, err
}

// repoAppSpec is the repository's appspec.yml.
func repoAppSpec(t *testing.T) appspec.AppSpec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "appspec.yml"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := appspec.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// hookOf is the location of the repository appspec's (first) script for event.
func hookOf(t *testing.T, event string) string {
	t.Helper()
	hooks := repoAppSpec(t).Hooks[event]
	if len(hooks) == 0 {
		t.Fatalf("appspec.yml has no %s script", event)
	}
	return hooks[0].Location
}

// hookRun is what a hook printed.
type hookRun struct{ Output string }

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

// A full disk gets one line naming it and the way out, not docker's raw error three times.
func TestHookFullDiskIsOneClearLine(t *testing.T) {
	t.Parallel()
	bundle, env := hookBundle(t, `case "$1" in
  version) echo 20.10 ;;
  info) echo /var/lib/docker ;;
  image) exit 1 ;;
  login) cat >/dev/null ;;
  pull) echo "failed to register layer: write /var/lib/docker/overlay2/x: no space left on device" >&2; exit 1 ;;
esac
`)
	res, err := runHook(t, bundle, "scripts/after_install.sh", env)
	if err == nil {
		t.Fatal("a pull onto a full disk succeeded")
	}
	want := "error: cannot pull registry.example/webapp@sha256:" + strings.Repeat("a", 64) +
		": the instance is out of disk space (/var/lib/docker): free some"
	if !strings.Contains(res.Output, want) {
		t.Errorf("output lacks %q:\n%s", want, res.Output)
	}
	if n := strings.Count(res.Output, "pulling "); n != 1 {
		t.Errorf("a full disk was retried (%d pulls): retrying cannot help", n)
	}
}

// Instance settings that cannot work are named at once.
func TestHookBadInstanceSettings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ setting, want string }{
		{"APP_ENV_FILE=/nonexistent/app.env", "APP_ENV_FILE=/nonexistent/app.env does not exist or is not readable: create it, or set APP_ENV_FILE= for none"},
		{"HOST_IP=localhost", "HOST_IP must be an IPv4 address, got 'localhost'"},
	} {
		bundle, env := hookBundle(t, "exit 0\n")
		res, err := runHook(t, bundle, "scripts/after_install.sh", append(env, c.setting))
		if err == nil || !strings.Contains(res.Output, c.want) {
			t.Errorf("%s: want %q, got %v:\n%s", c.setting, c.want, err, res.Output)
		}
	}
}

// HEALTH_PATH must be a path, and a bundle must name it: the pipeline knows no app's path.
func TestHookHealthPathFromImageEnv(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ line, want string }{
		{"HEALTH_PATH=healthz\n", "HEALTH_PATH must start with / and hold no spaces, got 'healthz'"},
		{"HEALTH_PATH=\n", "image.env: HEALTH_PATH is missing or empty"},
	} {
		bundle, env := hookBundle(t, "exit 0\n")
		f, err := os.OpenFile(filepath.Join(bundle, "image.env"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString(c.line)
		f.Close()
		res, err := runHook(t, bundle, "scripts/validate_service.sh", env)
		if err == nil || !strings.Contains(res.Output, c.want) {
			t.Errorf("%q: want %q, got %v:\n%s", c.line, c.want, err, res.Output)
		}
	}
}

// Issue 18: an ECR bundle names no SSM parameters (the instance role's token logs in), and the
// hooks must not ask for them; a Parameter Store bundle must name both.
func TestHookRegistryLoginNeedsParametersOnlyForSSM(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ login, want string }{
		{"REGISTRY_LOGIN=ecr\n", ""},
		{"REGISTRY_LOGIN=ssm\n", "image.env: REGISTRY_USERNAME_PARAM is missing or empty"},
		{"", "image.env: REGISTRY_USERNAME_PARAM is missing or empty"}, // ssm is the default
		{"REGISTRY_LOGIN=basic\n", "image.env: REGISTRY_LOGIN must be ecr or ssm, got 'basic'"},
	} {
		// the image is present: AfterInstall reads image.env, logs in to nothing, verifies (off)
		bundle, env := hookBundle(t, "exit 0\n")
		b, err := os.ReadFile(filepath.Join(bundle, "image.env"))
		if err != nil {
			t.Fatal(err)
		}
		ie := strings.NewReplacer("REGISTRY_USERNAME_PARAM=/u\n", "", "REGISTRY_PASSWORD_PARAM=/p\n", "").Replace(string(b)) + c.login
		if err := os.WriteFile(filepath.Join(bundle, "image.env"), []byte(ie), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := runHook(t, bundle, "scripts/after_install.sh", append(env, "VERIFY_IMAGE=off"))
		if c.want == "" && err != nil {
			t.Errorf("%q: AfterInstall failed: %v:\n%s", c.login, err, res.Output)
		}
		if c.want != "" && (err == nil || !strings.Contains(res.Output, c.want)) {
			t.Errorf("%q: want %q, got %v:\n%s", c.login, c.want, err, res.Output)
		}
	}
}

// testLog writes the agent's output to the test log.
func testLog(t *testing.T) *tLogWriter { return &tLogWriter{t: t} }

type tLogWriter struct{ t *testing.T }

func (w *tLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
