// Package devenv drives the CodeDeploy hooks against the dev environment (dev/env.sh up): it
// builds small test images, pushes them to the htpasswd registry, lays out deploy bundles from
// the repository's appspec.yml and scripts/, and probes the health endpoint. Used by the
// integration tests of dev/codedeploy and by dev/cmd/downtime.
package devenv

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Env is what the hooks need from the dev environment (the variables of /run/webapp-dev/env).
type Env struct {
	DockerHost   string // a dockerd of its own: the "instance"
	SSMEndpoint  string // moto_server
	Region       string
	AccessKey    string
	SecretKey    string
	ToolsBin     string // holds the aws CLI
	PasswordFile string // the registry password (the canary that must never leak)
	Registry     string // host:port of the htpasswd registry
	Username     string
}

// FromEnviron reads Env from the process environment, naming every missing variable.
func FromEnviron() (Env, error) {
	e := Env{
		DockerHost:   os.Getenv("DOCKER_HOST"),
		SSMEndpoint:  os.Getenv("AWS_ENDPOINT_URL_SSM"),
		Region:       os.Getenv("AWS_REGION"),
		AccessKey:    os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey:    os.Getenv("AWS_SECRET_ACCESS_KEY"),
		ToolsBin:     os.Getenv("WEBAPP_DEV_TOOLS"),
		PasswordFile: os.Getenv("WEBAPP_DEV_REGISTRY_PASSWORD_FILE"),
		Registry:     "127.0.0.1:5001",
		Username:     "ci-pusher",
	}
	if repo := os.Getenv("BUILD_IMAGE_REPO"); repo != "" {
		e.Registry, _, _ = strings.Cut(repo, "/")
	}
	var missing []string
	for name, v := range map[string]string{
		"DOCKER_HOST": e.DockerHost, "AWS_ENDPOINT_URL_SSM": e.SSMEndpoint, "AWS_REGION": e.Region,
		"AWS_ACCESS_KEY_ID": e.AccessKey, "AWS_SECRET_ACCESS_KEY": e.SecretKey,
		"WEBAPP_DEV_TOOLS": e.ToolsBin, "WEBAPP_DEV_REGISTRY_PASSWORD_FILE": e.PasswordFile,
	} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing) // a stable message
	if len(missing) > 0 {
		return e, fmt.Errorf("dev environment not loaded (missing %s): run `bash dev/env.sh up` and `source /run/webapp-dev/env`",
			strings.Join(missing, ", "))
	}
	return e, nil
}

// Password is the registry password (for leak checks; never log it).
func (e Env) Password() (string, error) {
	b, err := os.ReadFile(e.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("read registry password: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// HookEnv is the instance settings the hooks get (Options.Env): the dev dockerd, moto, the aws
// CLI's directory, HOST_PORT, a docker config dir of the caller's (logins stay out of ~/.docker),
// and no /etc/webapp/deploy.env or app.env (extra entries, later, win: e.g. APP_ENV_FILE=PATH).
func (e Env) HookEnv(hostPort int, dockerConfig string, extra ...string) []string {
	return append([]string{
		"DOCKER_HOST=" + e.DockerHost,
		"DOCKER_CONFIG=" + dockerConfig,
		"AWS_ENDPOINT_URL_SSM=" + e.SSMEndpoint,
		"AWS_ACCESS_KEY_ID=" + e.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + e.SecretKey,
		"EXTRA_PATH=" + e.ToolsBin,
		"WEBAPP_DEPLOY_ENV=/nonexistent/deploy.env",
		"VERIFY_IMAGE=off", // issue 13: these images are unsigned until the build signs them; an extra VERIFY_IMAGE=on wins
		"APP_ENV_FILE=",    // not this machine's /etc/webapp/app.env
		fmt.Sprintf("HOST_PORT=%d", hostPort),
	}, extra...)
}

// Docker runs the docker CLI against the dev dockerd with the given config dir and returns
// its stdout; the error carries stderr.
func (e Env) Docker(ctx context.Context, dockerConfig string, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.DockerHost, "DOCKER_CONFIG="+dockerConfig)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// TestImageHealthPath is the path testdata/deploy/image answers (its server's default
// HEALTH_PATH): the stand-in image's, not a default of the pipeline's.
const TestImageHealthPath = "/healthz"

// BuildImage builds testdata/deploy/image with VERSION and HEALTH_STATUS, pushes it to the
// registry as repo:tag, removes the local copy (so the hooks must log in and pull), and returns
// the reference by digest. healthStatus 0 (CannotStart) builds an image whose container cannot
// start at all (its user does not exist).
func (e Env) BuildImage(ctx context.Context, repoRoot, repo, tag string, healthStatus int) (string, error) {
	return e.BuildImageArgs(ctx, repoRoot, repo, tag, healthStatus)
}

// BuildImageArgs is BuildImage with more build arguments of the image's Dockerfile
// ("FAIL_AFTER=10": a version that answers 500 from 10 s after its start on).
func (e Env) BuildImageArgs(ctx context.Context, repoRoot, repo, tag string, healthStatus int, buildArgs ...string) (string, error) {
	return e.buildImage(ctx, repoRoot, repo, tag, healthStatus, "", buildArgs...)
}

// buildImage: platform "" is dockerd's own.
func (e Env) buildImage(ctx context.Context, repoRoot, repo, tag string, healthStatus int, platform string, buildArgs ...string) (string, error) {
	cfg, err := os.MkdirTemp("", "devenv-docker-config-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(cfg)
	password, err := e.Password()
	if err != nil {
		return "", err
	}
	if _, err := e.Docker(ctx, cfg, []byte(password), "login", "--username", e.Username, "--password-stdin", e.Registry); err != nil {
		return "", err
	}
	ref := e.Registry + "/" + repo + ":" + tag
	args := []string{"build", "--quiet", "--tag", ref,
		"--build-arg", "VERSION=" + tag, "--build-arg", fmt.Sprintf("HEALTH_STATUS=%d", healthStatus)}
	if healthStatus == CannotStart {
		args = append(args, "--build-arg", "RUNAS=nosuchuser")
	}
	if platform == "" { // dockerd's own, said: the base's tag in dockerd may name another platform's image
		if platform, err = e.Docker(ctx, cfg, nil, "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"); err != nil {
			return "", err
		}
	}
	// --pull: FROM takes the base's image for platform from the mirror. Without it the
	// builder takes whatever the tag names in dockerd, and a `docker run --platform
	// linux/arm64` of the base (by hand, or a test) leaves the tag naming the arm64 image:
	// every later "amd64" test image was then arm64, and the hooks refused it.
	args = append(args, "--pull", "--platform", strings.TrimSpace(platform))
	for _, a := range buildArgs {
		args = append(args, "--build-arg", a)
	}
	if _, err := e.Docker(ctx, cfg, nil, append(args, filepath.Join(repoRoot, "testdata", "deploy", "image"))...); err != nil {
		return "", err
	}
	if _, err := e.Docker(ctx, cfg, nil, "push", "--quiet", ref); err != nil {
		return "", err
	}
	digest, err := e.Docker(ctx, cfg, nil, "image", "inspect", "--format", "{{index .RepoDigests 0}}", ref)
	if err != nil {
		return "", err
	}
	if _, err := e.Docker(ctx, cfg, nil, "image", "rm", ref); err != nil {
		return "", err
	}
	return digest, nil
}

// CannotStart as BuildImage's healthStatus: an image whose container cannot start.
const CannotStart = 0

// CopyImage copies an image already in the registry (by digest) to another repository of it,
// with crane ($WEBAPP_DEV_CRANE): the same digest under a name of the caller's, so tests that
// prune their app's images do not touch each other's. Returns repo@digest.
func (e Env) CopyImage(ctx context.Context, ref, repo string) (string, error) {
	crane := os.Getenv("WEBAPP_DEV_CRANE")
	if crane == "" {
		return "", errors.New("WEBAPP_DEV_CRANE is not set: source /run/webapp-dev/env")
	}
	cfg, err := os.MkdirTemp("", "devenv-crane-config-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(cfg)
	password, err := e.Password()
	if err != nil {
		return "", err
	}
	auth := base64.StdEncoding.EncodeToString([]byte(e.Username + ":" + password))
	if err := os.WriteFile(filepath.Join(cfg, "config.json"),
		[]byte(`{"auths":{"`+e.Registry+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		return "", err
	}
	_, digest, ok := strings.Cut(ref, "@")
	if !ok {
		return "", fmt.Errorf("CopyImage: %s is not by digest", ref)
	}
	dst := e.Registry + "/" + repo
	cmd := exec.CommandContext(ctx, crane, "copy", "--insecure", ref, dst+":copy")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("crane copy %s %s: %w: %s", ref, dst, err, out)
	}
	return dst + "@" + digest, nil
}

// ImageEnv is what a test bundle's image.env names (the rest comes from Env).
type ImageEnv struct {
	Image         string // by digest
	Revision      string
	ContainerName string
	HealthPath    string // "": TestImageHealthPath, the stand-in image's
}

// WriteBundle lays out a deploy bundle in dir as the build does: the repository's appspec.yml
// and scripts/ (modes kept), plus image.env.
func (e Env) WriteBundle(repoRoot, dir string, img ImageEnv) error {
	if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(repoRoot, "appspec.yml"), filepath.Join(dir, "appspec.yml")); err != nil {
		return err
	}
	scripts, err := filepath.Glob(filepath.Join(repoRoot, "scripts", "*.sh"))
	if err != nil || len(scripts) == 0 {
		return fmt.Errorf("no scripts in %s/scripts (%v)", repoRoot, err)
	}
	for _, s := range scripts {
		if err := copyFile(s, filepath.Join(dir, "scripts", filepath.Base(s))); err != nil {
			return err
		}
	}
	repo, _, _ := strings.Cut(img.Image, "@")
	env := fmt.Sprintf(`IMAGE=%s
IMAGE_TAG=%s:%s
REVISION=%s
REGISTRY=%s
REGISTRY_USERNAME_PARAM=/webapp/registry/username
REGISTRY_PASSWORD_PARAM=/webapp/registry/password
AWS_REGION=%s
CONTAINER_NAME=%s
CONTAINER_PORT=8080
HEALTH_PATH=%s
`, img.Image, repo, img.Revision, img.Revision, e.Registry, e.Region, img.ContainerName, cmp.Or(img.HealthPath, TestImageHealthPath))
	return os.WriteFile(filepath.Join(dir, "image.env"), []byte(env), 0o644)
}

func copyFile(src, dst string) error {
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, info.Mode().Perm())
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// FreePort returns a TCP port free on 127.0.0.1 right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StopProxies ends the instance proxies the hooks started under stateDir (their STATE_DIR,
// scripts/proxy.sh: haproxy daemons, as there is no systemd unit here), one per app directory
// holding a proxy.pid; names, if given, limit it to those apps. What a test or a dev tool that
// deployed with the real hooks calls when it is done with its "instance".
func StopProxies(stateDir string, names ...string) {
	pids, _ := filepath.Glob(filepath.Join(stateDir, "*", "proxy.pid"))
	for _, p := range pids {
		if len(names) > 0 && !slices.Contains(names, filepath.Base(filepath.Dir(p))) {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
		_ = os.Remove(p)
	}
}
