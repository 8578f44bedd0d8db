// Package cli_test runs the build program as CodeBuild and developers do — the compiled binary,
// flags and env variables, exit codes and what it prints — against the real Dagger engine, the
// htpasswd registry, moto_server's SSM and dockerd from the dev environment (dev/env.sh up).
// Each bad input of the "real build" issue is one test here.
package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/acme/webapp-pipeline/dev/devtest"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

var (
	repoRoot string // the checkout this test runs in
	buildBin string // cmd/build compiled once for all tests
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	tmp, err := os.MkdirTemp("", "cli-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	buildBin = filepath.Join(tmp, "build")
	cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/build")
	cmd.Dir = repoRoot
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build ./cmd/build:", err)
		return 1
	}
	return m.Run()
}

// needEnv fails (not skips) when the dev environment is missing: these tests are the proof.
func needEnv(t *testing.T) {
	t.Helper()
	devtest.Require(t, "AWS_ENDPOINT_URL_SSM", "BUILD_IMAGE_REPO", "WEBAPP_DEV_REGISTRY_PASSWORD_FILE")
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s\n--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// lastLines are the final n non-empty lines of stderr: where a user looks first.
func (r result) lastLines(n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runBuild runs the binary in dir with env overrides (KEY=VALUE; KEY= unsets).
func runBuild(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildBin, args...)
	cmd.Dir = dir
	cmd.Env = mergeEnv(os.Environ(), env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	return r
}

func mergeEnv(base, overrides []string) []string {
	out := make([]string, 0, len(base)+len(overrides))
	drop := map[string]bool{}
	for _, kv := range overrides {
		drop[kv[:strings.IndexByte(kv, '=')]] = true
	}
	for _, kv := range base {
		if !drop[kv[:strings.IndexByte(kv, '=')]] {
			out = append(out, kv)
		}
	}
	for _, kv := range overrides {
		if !strings.HasSuffix(kv, "=") {
			out = append(out, kv)
		}
	}
	return out
}

// checkout copies what the build reads (app/, appspec.yml, scripts/, buildspec.yml) into a
// scratch source directory, so a test can break it without touching the repository.
func checkout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{"app", "pipeline.yml", "appspec.yml", "scripts", "buildspec.yml"} {
		cmd := exec.Command("cp", "-a", filepath.Join(repoRoot, p), filepath.Join(dir, p))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v\n%s", p, err, out)
		}
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// uniqueRepo gives each test its own repository in the push registry.
func uniqueRepo(name string) string {
	return fmt.Sprintf("%s-%s-%s", os.Getenv("BUILD_IMAGE_REPO"), name, randomSuffix())
}

func registryPassword(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(os.Getenv("WEBAPP_DEV_REGISTRY_PASSWORD_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// putParam stores a SecureString in moto's SSM.
func putParam(t *testing.T, name, value string) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("put parameter %s: %v", name, err)
	}
}

// tagExists asks the push registry (with the right credentials) whether repo:tag exists.
func tagExists(t *testing.T, repo, tag string) bool {
	t.Helper()
	host, path, _ := strings.Cut(repo, "/")
	req, _ := http.NewRequest(http.MethodHead, fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, path, tag), nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	req.SetBasicAuth("ci-pusher", registryPassword(t))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func assertExists(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("%s should exist: %v", path, err)
	}
}

func assertNotExists(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s should not exist (err=%v)", path, err)
	}
}
