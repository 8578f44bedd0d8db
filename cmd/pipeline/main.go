// Command pipeline runs the whole CodePipeline locally, with the files that drive it on AWS:
// Source (a fresh clone of a branch tip, as the GitHub connection delivers it), Build
// (buildspec.yml itself, with CodeBuild's semantics, its artifacts zipped as the artifact store
// holds them) and Deploy (that zip, unpacked and deployed in place onto a local "instance" by
// the real CodeDeploy agent's codedeploy-local when it is installed, else replaying CodeDeploy's
// lifecycle, against the dev environment's dockerd). It ends by printing
// the URL where the new version answers.
//
//	sudo dev/env.sh up && source /run/webapp-dev/env
//	go run ./cmd/pipeline --branch main
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/acme/webapp-pipeline/dev/devenv"
	"github.com/acme/webapp-pipeline/internal/codebuild"
	"github.com/acme/webapp-pipeline/internal/codedeploy"
	"github.com/acme/webapp-pipeline/internal/gitx"
	"github.com/acme/webapp-pipeline/internal/ssmparam"
)

// CLI is the one command.
type CLI struct {
	Repo        string        `help:"Git repository to take the source from." default:"." placeholder:"DIR"`
	Branch      string        `help:"Branch whose tip is built and deployed." default:"main" env:"PIPELINE_BRANCH"`
	Work        string        `help:"Working directory: source exports, build logs, the artifact store and the local instance." default:"/var/tmp/webapp-pipeline" env:"PIPELINE_WORK" placeholder:"DIR"`
	Port        int           `help:"Host port the deployed container answers on (the instance's HOST_PORT)." default:"8080" env:"PIPELINE_PORT"`
	Application string        `help:"CodeDeploy application name (APPLICATION_NAME)." default:"webapp"`
	Group       string        `help:"CodeDeploy deployment group name (DEPLOYMENT_GROUP_NAME)." default:"local"`
	Timeout     time.Duration `help:"Limit for the whole run." default:"30m"`
	Deployer    string        `help:"What runs the Deploy stage: the real CodeDeploy agent's codedeploy-local (agent), the local replay (replay), or the agent when installed (auto)." enum:"auto,agent,replay" default:"auto" env:"PIPELINE_DEPLOYER"`
}

func main() {
	var cli CLI
	kctx := kong.Parse(&cli, kong.Name("pipeline"),
		kong.Description("Run Source → Build (buildspec.yml) → Deploy (appspec.yml) locally, against the dev environment."))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cli.Timeout)
	defer cancel()
	if err := cli.run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "pipeline: %v\n", err)
		kctx.Exit(1)
	}
}

// stageError says which stage stopped the run, and why.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return fmt.Sprintf("%s stage failed: %v", e.stage, e.err) }
func (e *stageError) Unwrap() error { return e.err }

func (c *CLI) run(ctx context.Context, out, logw io.Writer) error {
	env, err := devenv.FromEnviron()
	if err != nil {
		return err
	}
	for _, d := range []string{"source", "artifacts", "instance", "logs"} {
		if err := os.MkdirAll(filepath.Join(c.Work, d), 0o755); err != nil {
			return err
		}
	}

	// Source
	start := time.Now()
	commit, subject, srcDir, err := c.source(ctx)
	if err != nil {
		return &stageError{"Source", err}
	}
	fmt.Fprintf(out, "Source  %s @ %.12s %q (%.1f s)\n", c.Branch, commit, subject, time.Since(start).Seconds())
	execID := fmt.Sprintf("%s-%.8s", time.Now().UTC().Format("20060102T150405"), commit)

	// Build
	start = time.Now()
	zipPath := filepath.Join(c.Work, "artifacts", execID+"-BuildArtifact.zip")
	logPath := filepath.Join(c.Work, "logs", execID+"-build.log")
	if err := c.build(ctx, commit, execID, srcDir, zipPath, logPath, logw, out); err != nil {
		return &stageError{"Build", fmt.Errorf("%w (full log: %s); the running version was not touched", err, logPath)}
	}
	fmt.Fprintf(out, "Build   ok, artifact %s (%.1f s)\n", zipPath, time.Since(start).Seconds())

	// Deploy
	start = time.Now()
	dockerConfig := filepath.Join(c.Work, "instance", "docker-config")
	if err := os.MkdirAll(dockerConfig, 0o700); err != nil {
		return err
	}
	deploy, how, err := c.deployer()
	if err != nil {
		return &stageError{"Deploy", err}
	}
	fmt.Fprintf(out, "Deploy  with %s\n", how)
	res, err := deploy(ctx, codedeploy.Options{
		Bundle: zipPath, InstanceDir: filepath.Join(c.Work, "instance"),
		Application: c.Application, Group: c.Group,
		Env: append(env.HookEnv(c.Port, dockerConfig, "AWS_REGION="+env.Region), verifyEnv(env)...),
		Log: prefixed(logw, "deploy | "),
	})
	for _, ev := range res.Events {
		took := fmt.Sprintf("%.1f s", ev.Duration.Seconds())
		if ev.Duration == 0 {
			took = "" // the agent's scripts.log gives no durations
		}
		fmt.Fprintf(out, "Deploy  %-18s %-9s %s %s\n", ev.Name, ev.Status, took, ev.Reason)
	}
	if err != nil {
		return &stageError{"Deploy", err}
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", c.Port)
	fmt.Fprintf(out, "Deploy  ok, deployment %s (%.1f s)\n", res.DeploymentID, time.Since(start).Seconds())
	healthURL := fmt.Sprintf("http://127.0.0.1:%d%s", c.Port, healthPath(res.ArchiveDir))
	fmt.Fprintf(out, "%s is serving %.12s at %s (%s: %s)\n", c.Application, commit, url, healthURL, health(ctx, healthURL))
	return nil
}

type deployFunc func(context.Context, codedeploy.Options) (codedeploy.Result, error)

// deployer: the real agent when it is installed (or asked for), else the replay.
func (c *CLI) deployer() (deployFunc, string, error) {
	if c.Deployer == "replay" {
		return codedeploy.Deploy, "the local replay (internal/codedeploy)", nil
	}
	agent, err := codedeploy.FindAgent()
	if err != nil {
		if c.Deployer == "agent" {
			return nil, "", err
		}
		return codedeploy.Deploy, "the local replay (internal/codedeploy; codedeploy-local is not installed)", nil
	}
	return agent.Deploy, "the CodeDeploy agent (" + agent.Launcher + ")", nil
}

// healthPath is the HEALTH_PATH the deployed revision's image.env names (else the contract's
// default, /: the sample app's path is no default of the pipeline's).
func healthPath(archive string) string {
	b, err := os.ReadFile(filepath.Join(archive, "image.env"))
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if p, ok := strings.CutPrefix(line, "HEALTH_PATH="); ok && strings.HasPrefix(p, "/") {
				return strings.TrimSpace(p)
			}
		}
	}
	return "/"
}

// source checks out the branch tip as the source action's CODEBUILD_CLONE_REF delivers it (the
// format infra/template.yml uses): a fresh clone of the repository at that commit — the committed
// tree with its git metadata, never the working tree or its uncommitted changes.
func (c *CLI) source(ctx context.Context) (commit, subject, dir string, err error) {
	if _, err = gitx.Out(ctx, c.Repo, "rev-parse", "--git-dir"); err != nil {
		return "", "", "", fmt.Errorf("--repo %q is not a git repository: %w", c.Repo, err)
	}
	if commit, err = gitx.Out(ctx, c.Repo, "rev-parse", "--verify", "--quiet", "refs/heads/"+c.Branch+"^{commit}"); err != nil || commit == "" {
		branches, _ := gitx.Out(ctx, c.Repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/")
		return "", "", "", fmt.Errorf("no branch %q in %s (branches: %s): commit to it or pass --branch", c.Branch, c.Repo, strings.ReplaceAll(branches, "\n", ", "))
	}
	subject, _ = gitx.Out(ctx, c.Repo, "log", "-1", "--format=%s", commit)
	dir = filepath.Join(c.Work, "source", commit)
	if err := os.RemoveAll(dir); err != nil {
		return "", "", "", err
	}
	repo, err := filepath.Abs(c.Repo)
	if err != nil {
		return "", "", "", err
	}
	if _, err := gitx.Out(ctx, ".", "clone", "--quiet", "--no-local", "--single-branch", "--branch", c.Branch, repo, dir); err != nil {
		return "", "", "", err
	}
	// the branch may have moved since rev-parse: build exactly the commit recorded
	if _, err := gitx.Out(ctx, dir, "checkout", "--quiet", "--detach", commit); err != nil {
		return "", "", "", err
	}
	return commit, subject, dir, nil
}

func (c *CLI) build(ctx context.Context, commit, execID, srcDir, zipPath, logPath string, logw, out io.Writer) error {
	spec, err := codebuild.Load(filepath.Join(srcDir, "buildspec.yml"))
	if err != nil {
		return err
	}
	params, err := ssmparam.New(ctx, "")
	if err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	res, err := codebuild.Run(ctx, codebuild.Options{
		Spec: spec, SrcDir: srcDir, Env: buildEnv(), Params: params,
		// What a start-build call would override: where the pinned Dagger CLI already is (so
		// the install phase skips its download), and the build's identity.
		Overrides: map[string]string{
			"DAGGER_BIN_DIR":                    filepath.Dir(os.Getenv("_EXPERIMENTAL_DAGGER_CLI_BIN")),
			"SYFT_BIN_DIR":                      filepath.Dir(os.Getenv("WEBAPP_DEV_SYFT")), // issue 13: the dev env's syft, so install skips its build
			"_EXPERIMENTAL_DAGGER_CLI_BIN":      os.Getenv("_EXPERIMENTAL_DAGGER_CLI_BIN"),
			"CODEBUILD_RESOLVED_SOURCE_VERSION": commit,
			"CODEBUILD_SOURCE_VERSION":          commit,
			"CODEBUILD_BUILD_ID":                "webapp-build:" + execID,
			"CODEBUILD_INITIATOR":               "codepipeline/webapp-local",
		},
		Log: io.MultiWriter(logFile, prefixed(logw, "build | ")),
	})
	if err != nil {
		return err
	}
	for _, p := range res.Phases {
		fmt.Fprintf(out, "Build   %-16s %-9s %.1f s\n", strings.ToUpper(p.Name), p.Status, p.Duration.Seconds())
	}
	if f := res.Failed(); f != nil {
		return fmt.Errorf("phase %s: command %q exited %d", strings.ToUpper(f.Name), f.FailedCommand, f.ExitCode)
	}
	if _, err := codebuild.CollectArtifacts(spec, srcDir, zipPath); err != nil {
		return fmt.Errorf("upload artifacts: %w", err)
	}
	return nil
}

// buildEnv is the build container's environment: this machine's (the dev environment's
// BUILD_IMAGE_REPO and SSM names stand for the project's settings), less any CODEBUILD_*
// values of its own (the runner sets those), plus the project settings infra/template.yml fixes.
func buildEnv() []string {
	env := []string{"BUILD_OUT=dist"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CODEBUILD_") {
			env = append(env, kv)
		}
	}
	return env
}

func health(ctx context.Context, url string) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
}

// prefixed writes each complete line with a prefix, so the build and hook output reads apart
// from the stage lines. (A trailing partial line waits for its newline.)
func prefixed(w io.Writer, prefix string) io.Writer { return &prefixWriter{w: w, prefix: prefix} }

type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		if _, err := fmt.Fprintf(p.w, "%s%s", p.prefix, p.buf[:i+1]); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
}

// verifyEnv (issue 13): the instance verifies what it deploys, as on AWS: cosign (built by
// dev/install-attest.sh) on EXTRA_PATH beside the aws CLI, moto's KMS for the public key,
// VERIFY_IMAGE=on over HookEnv's off. The build signs with the dev env's key (BUILD_SIGNING_KEY).
func verifyEnv(env devenv.Env) []string {
	cosign := os.Getenv("WEBAPP_DEV_COSIGN")
	if cosign == "" || os.Getenv("BUILD_SIGNING_KEY") == "" {
		return nil // an env without dev/install-attest.sh: the hooks keep HookEnv's VERIFY_IMAGE=off
	}
	return []string{"EXTRA_PATH=" + filepath.Dir(cosign) + ":" + env.ToolsBin,
		"AWS_ENDPOINT_URL_KMS=" + os.Getenv("AWS_ENDPOINT_URL_KMS"), "VERIFY_IMAGE=on"}
}
