package codedeploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hookBundle lays out the repository's appspec.yml and scripts/ with an image.env, and a bin/
// of small fakes (docker, aws) for the hooks' unit tests: no daemon, no registry.
func hookBundle(t *testing.T, fakeDocker string) (bundle string, env []string) {
	t.Helper()
	bundle = t.TempDir()
	root := filepath.Join("..", "..")
	if err := copyTree(filepath.Join(root, "scripts"), filepath.Join(bundle, "scripts"), Overwrite); err != nil {
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
		"WEBAPP_DEPLOY_ENV=/nonexistent", "APP_ENV_FILE=", "TMPDIR=" + t.TempDir()}
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
	res, err := runScript(context.Background(), scriptRun{Event: AfterInstall,
		Hook: Hook{Location: "scripts/after_install.sh", Timeout: 60}, ArchiveDir: bundle, Env: env, Log: testLog(t)})
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
		res, err := runScript(context.Background(), scriptRun{Event: AfterInstall,
			Hook: Hook{Location: "scripts/after_install.sh", Timeout: 60}, ArchiveDir: bundle, Env: append(env, c.setting), Log: testLog(t)})
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
		res, err := runScript(context.Background(), scriptRun{Event: ValidateService,
			Hook: Hook{Location: "scripts/validate_service.sh", Timeout: 60}, ArchiveDir: bundle, Env: env, Log: testLog(t)})
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
		res, err := runScript(context.Background(), scriptRun{Event: AfterInstall,
			Hook: Hook{Location: "scripts/after_install.sh", Timeout: 60}, ArchiveDir: bundle, Env: append(env, "VERIFY_IMAGE=off"), Log: testLog(t)})
		if c.want == "" && err != nil {
			t.Errorf("%q: AfterInstall failed: %v:\n%s", c.login, err, res.Output)
		}
		if c.want != "" && (err == nil || !strings.Contains(res.Output, c.want)) {
			t.Errorf("%q: want %q, got %v:\n%s", c.login, c.want, err, res.Output)
		}
	}
}
