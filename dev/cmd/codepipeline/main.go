// Command codepipeline runs the whole CodePipeline locally, with the files that drive it on AWS:
// Source (a fresh clone of a branch tip, as the GitHub connection delivers it), Build
// (buildspec.yml itself, with CodeBuild's semantics, its artifacts zipped as the artifact store
// holds them) and Deploy (that zip, unpacked and deployed in place onto a local "instance" by
// the real CodeDeploy agent's codedeploy-local, against the dev environment's dockerd). It ends
// by printing
// the URL where the new version answers.
//
// With --params SET it runs as a stack created from infra/template.yml with that parameter set
// would (dev/localstack): the build project's environment, the roles, the stages and the load
// balancer's health check resolved from the branch tip's template, a registry accepting the set's
// logins only, every AWS call of the build and the hooks recorded and checked against the role's
// grants (a call not granted fails the run).
//
//	sudo dev/env.sh up && source /run/webapp-dev/env
//	go run ./dev/cmd/codepipeline --branch main --params ecr
package main

import (
	"archive/zip"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/acme/webapp-pipeline/dev/awsrec"
	"github.com/acme/webapp-pipeline/dev/cfn"
	"github.com/acme/webapp-pipeline/dev/codebuild"
	"github.com/acme/webapp-pipeline/dev/codedeploy"
	"github.com/acme/webapp-pipeline/dev/devenv"
	"github.com/acme/webapp-pipeline/dev/fleet"
	"github.com/acme/webapp-pipeline/dev/localstack"
	"github.com/acme/webapp-pipeline/internal/gitx"
	"github.com/acme/webapp-pipeline/internal/ssmparam"
)

// CLI is the one command.
type CLI struct {
	Repo        string            `help:"Git repository to take the source from." default:"." placeholder:"DIR"`
	Branch      string            `help:"Branch whose tip is built and deployed." default:"main" env:"PIPELINE_BRANCH"`
	Work        string            `help:"Working directory: source exports, build logs, the artifact store and the local instance." default:"/var/tmp/webapp-pipeline" env:"PIPELINE_WORK" placeholder:"DIR"`
	Port        int               `help:"Host port the deployed container answers on (the instance's HOST_PORT)." default:"8080" env:"PIPELINE_PORT"`
	Application string            `help:"CodeDeploy application name (APPLICATION_NAME)." default:"webapp"`
	Group       string            `help:"CodeDeploy deployment group name (DEPLOYMENT_GROUP_NAME)." default:"local"`
	Timeout     time.Duration     `help:"Limit for the whole run." default:"30m"`
	Params      string            `help:"Parameter set of infra/template.yml the run stands for: a name in the branch tip's dev/params (ssm-pull, ecr, approval, lb, ...) or a file of NAME=VALUE lines. The build's environment, the instance role and the registry logins are then resolved from the template, and every AWS call is checked against the role's grants. Empty: the dev environment's own settings." env:"PIPELINE_PARAMS" placeholder:"SET"`
	Param       map[string]string `help:"A template parameter over the set's (repeatable)." placeholder:"NAME=VALUE"`
	Instances   int               `help:"With a load balancer set (lb): how many instances behind the HAProxy load balancer, each a dockerd of its own (dev/fleet)." default:"2"`
	Summary     string            `help:"Write the run's results (stages, prober, IAM check) as JSON to this file." placeholder:"FILE"`
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

func (c *CLI) run(ctx context.Context, out, logw io.Writer) (err error) {
	env, err := devenv.FromEnviron()
	if err != nil {
		return err
	}
	for _, d := range []string{"source", "artifacts", "instance", "logs"} {
		if err := os.MkdirAll(filepath.Join(c.Work, d), 0o755); err != nil {
			return err
		}
	}
	sum := &summary{Set: c.Params}
	if c.Summary != "" {
		defer func() {
			if err != nil && sum.Error == "" {
				sum.Error = err.Error()
			}
			if werr := sum.write(c.Summary); werr != nil && err == nil {
				err = werr
			}
		}()
	}

	// Source
	start := time.Now()
	commit, subject, srcDir, err := c.source(ctx)
	if err != nil {
		return &stageError{"Source", err}
	}
	fmt.Fprintf(out, "Source  %s @ %.12s %q (%.1f s)\n", c.Branch, commit, subject, time.Since(start).Seconds())
	execID := fmt.Sprintf("%s-%.8s", time.Now().UTC().Format("20060102T150405"), commit)

	// The stack the run stands for: the branch tip's template, resolved for the parameter set.
	var stack *localstack.Stack
	if c.Params != "" {
		set := c.Params
		if strings.ContainsAny(set, "/.") {
			if set, err = filepath.Abs(set); err != nil {
				return err
			}
		}
		stack, err = localstack.Start(ctx, localstack.Options{Template: filepath.Join(srcDir, "infra", "template.yml"),
			ParamsDir: filepath.Join(srcDir, "dev", "params"), Set: set, Extra: c.Param, Work: c.Work, Env: env})
		if err != nil {
			sum.Stack = "refused: " + err.Error()
			return &stageError{"Stack", err}
		}
		defer stack.Stop()
		r := stack.Resolved
		logins := "the ECR token moto hands out"
		if !r.Conditions["UseEcr"] {
			logins = "the push login"
			if stack.PullOnly != "" {
				logins += ", the pull-only login " + stack.PullOnly
			}
		}
		sum.Stack = "ok"
		fmt.Fprintf(out, "Stack   %s: stages %s; registry %s accepting %s; build environment (%d variables) and roles from infra/template.yml\n",
			c.Params, strings.Join(r.Stages, " -> "), stack.Registry.Host, logins, len(r.BuildEnv))
	}

	// Build
	start = time.Now()
	zipPath := filepath.Join(c.Work, "artifacts", execID+"-BuildArtifact.zip")
	logPath := filepath.Join(c.Work, "logs", execID+"-build.log")
	if err := c.build(ctx, stack, commit, execID, srcDir, zipPath, logPath, logw, out); err != nil {
		sum.Build = "failed: " + err.Error()
		c.checkIAM(stack, out, sum)
		return &stageError{"Build", fmt.Errorf("%w (full log: %s); the running version was not touched", err, logPath)}
	}
	sum.Build = "ok"
	fmt.Fprintf(out, "Build   ok, artifact %s (%.1f s)\n", zipPath, time.Since(start).Seconds())

	if stack != nil && strings.Contains(strings.Join(stack.Resolved.Stages, " "), "Approve") {
		fmt.Fprintf(out, "Approve manual approval (RequireApproval): approved by this local run\n")
	}

	// Deploy
	start = time.Now()
	dockerConfig := filepath.Join(c.Work, "instance", "docker-config")
	if err := os.MkdirAll(dockerConfig, 0o700); err != nil {
		return err
	}
	agent, err := codedeploy.FindAgent()
	if err != nil {
		return &stageError{"Deploy", err}
	}
	fmt.Fprintf(out, "Deploy  with the CodeDeploy agent (%s)\n", agent.Launcher)
	// the published port on 127.0.0.1 only: the local instance shares this machine's ports
	// with the fleet's instances (127.X.Y.N) and everything else
	instance := verifyEnv(env) // instance settings over devenv's HookEnv
	if stack != nil {
		stack.Recorder.SetRegistryRole("instance")
		instance = append(instance, stack.HookEnv()...)
	}
	// STATE_DIR: the local instance's proxy and journal (scripts/proxy.sh) live in the work dir
	hookEnv := append(env.HookEnv(c.Port, dockerConfig, "AWS_REGION="+env.Region, "HOST_IP=127.0.0.1",
		"STATE_DIR="+c.stateDir()), instance...)
	if stack == nil || stack.Resolved.HealthCheck == nil {
		if err := c.portOurs(ctx, env, dockerConfig, imageEnvValue(zipPath, "CONTAINER_NAME")); err != nil {
			return &stageError{"Deploy", err}
		}
	}
	healthURL := fmt.Sprintf("http://127.0.0.1:%d%s", c.Port, healthPathOf(zipPath))
	prober := devenv.StartProber(healthURL, 100*time.Millisecond, 1<<20)
	var res codedeploy.Result
	if stack != nil && stack.Resolved.HealthCheck != nil {
		var fl *fleet.Fleet
		fl, err = c.deployFleet(ctx, stack, env, zipPath, instance, out, logw)
		if fl != nil {
			defer fl.Stop() // after the prober and the last health check
		}
	} else {
		res, err = agent.Deploy(ctx, codedeploy.Options{
			Bundle: zipPath, InstanceDir: filepath.Join(c.Work, "instance"),
			Application: c.Application, Group: c.Group,
			Env: hookEnv,
			Log: prefixed(logw, "deploy | "),
		})
	}
	pr := prober.Stop()
	sum.Prober = proberSummary(pr)
	for _, ev := range res.Events { // the agent's scripts.log gives no durations
		fmt.Fprintf(out, "Deploy  %-18s %-9s  %s\n", ev.Name, ev.Status, ev.Reason)
	}
	fmt.Fprintf(out, "Deploy  prober on %s every 100 ms: %s\n", healthURL, sum.Prober)
	c.checkIAM(stack, out, sum)
	if err != nil {
		sum.Deploy = "failed: " + err.Error()
		return &stageError{"Deploy", err}
	}
	sum.Deploy = "ok"
	url := fmt.Sprintf("http://127.0.0.1:%d/", c.Port)
	fmt.Fprintf(out, "Deploy  ok, deployment %s (%.1f s)\n", cmp.Or(res.DeploymentID, "to the fleet"), time.Since(start).Seconds())
	fmt.Fprintf(out, "%s is serving %.12s at %s (%s: %s)\n", c.Application, commit, url, healthURL, health(ctx, healthURL))
	if sum.IAM != nil && sum.IAM.Denied > 0 {
		return fmt.Errorf("IAM check: %d calls the template does not grant their role (above): the stack would refuse them", sum.IAM.Denied)
	}
	return nil
}

// checkIAM checks the calls recorded so far against the template's grants and prints the report.
func (c *CLI) checkIAM(stack *localstack.Stack, out io.Writer, sum *summary) {
	if stack == nil {
		return
	}
	rep := stack.Check()
	fmt.Fprint(out, rep.Text())
	sum.IAM = &iamSummary{Calls: len(rep.Calls), Denied: len(rep.Denied), Unused: len(rep.Unused), Text: rep.Text()}
	sum.Calls, sum.Roles = rep.Calls, stack.Resolved.Roles
}

// summary is --summary's JSON.
type summary struct {
	Set    string      `json:"set"`
	Stack  string      `json:"stack,omitempty"`
	Build  string      `json:"build,omitempty"`
	Deploy string      `json:"deploy,omitempty"`
	Prober string      `json:"prober,omitempty"`
	IAM    *iamSummary `json:"iam,omitempty"`
	Error  string      `json:"error,omitempty"`
	// the recorded calls and the roles they were checked against (a test may re-check them)
	Calls []awsrec.Call              `json:"calls,omitempty"`
	Roles map[string][]cfn.Statement `json:"roles,omitempty"`
}

type iamSummary struct {
	Calls  int    `json:"calls"`
	Denied int    `json:"denied"`
	Unused int    `json:"unused"`
	Text   string `json:"text"`
}

func (s *summary) write(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// proberSummary: requests, failures and the longest gap; when nothing answered before the
// deployment (a first deployment), the failures until the first answer are counted apart.
func proberSummary(r devenv.Report) string {
	s := fmt.Sprintf("%d requests, %d failed, longest gap %s", r.Requests, r.Failures, r.LongestGap.Round(time.Millisecond))
	if r.BeforeFirstOK > 0 {
		s += fmt.Sprintf(" (first deployment: %d before it first answered)", r.BeforeFirstOK)
	}
	if !r.Recovered {
		s += ", not answering at the end"
	}
	return s
}

// healthPathOf is the HEALTH_PATH of the bundle's image.env (see healthPath).
func healthPathOf(zipPath string) string {
	return pathIn([]byte("HEALTH_PATH=" + imageEnvValue(zipPath, "HEALTH_PATH")))
}

// imageEnvValue is one value of the bundle's image.env ("" when it has none).
func imageEnvValue(zipPath, key string) string {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return ""
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.Name != "image.env" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return ""
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, key+"="); ok {
				return strings.Trim(strings.TrimSpace(v), `"'`)
			}
		}
	}
	return ""
}

// portOurs: the instance's port is free, or held by the app's own container on the dev dockerd
// (the hooks swap it); anything else would fail ApplicationStart with "address already in use"
// deep in a hook's log, so it is named here.
func (c *CLI) portOurs(ctx context.Context, env devenv.Env, dockerConfig, container string) error {
	err := fleet.PortFree(fmt.Sprintf("127.0.0.1:%d", c.Port))
	if err == nil {
		return nil
	}
	// the instance's proxy (scripts/proxy.sh), started by the last run's hooks, holds the port
	if b, rerr := os.ReadFile(filepath.Join(c.stateDir(), container, "proxy.pid")); rerr == nil {
		if pid, aerr := strconv.Atoi(strings.TrimSpace(string(b))); aerr == nil && syscall.Kill(pid, 0) == nil {
			return nil
		}
	}
	names, _ := env.Docker(ctx, dockerConfig, nil, "ps", "--filter", fmt.Sprintf("publish=%d", c.Port), "--format", "{{.Names}}")
	for _, n := range strings.Fields(names) {
		if container != "" && (n == container || n == container+"-previous") {
			return nil
		}
	}
	return fmt.Errorf("the instance's port (--port): %w", err)
}

// deployFleet deploys through the template's load balancer: --instances instances (a dockerd
// each) behind HAProxy at 127.0.0.1:--port, checked as the target group checks them (path,
// matcher, thresholds; its 10 s interval a tenth here), in the deployment group's configuration
// with traffic control (dev/fleet). extra is the instance settings on top of the fleet's own.
func (c *CLI) deployFleet(ctx context.Context, stack *localstack.Stack, env devenv.Env, zipPath string, extra []string, out, logw io.Writer) (*fleet.Fleet, error) {
	agent, err := codedeploy.FindAgent()
	if err != nil {
		return nil, err
	}
	hc := stack.Resolved.HealthCheck
	num := func(s string) int { n, _ := strconv.Atoi(s); return n }
	check := &fleet.HTTPCheck{Path: hc.Path, Matcher: hc.Matcher, Rise: num(hc.HealthyThreshold), Fall: num(hc.UnhealthyThreshold),
		Interval: time.Duration(num(hc.IntervalSeconds)) * 100 * time.Millisecond, Timeout: time.Duration(num(hc.TimeoutSeconds)) * 100 * time.Millisecond}
	cfgName := strings.TrimPrefix(stack.Resolved.DeploymentConfig, "CodeDeployDefault.")
	cfg, ok := fleet.Configs[cfgName]
	if !ok {
		return nil, fmt.Errorf("deployment config %s: dev/fleet has no such configuration", stack.Resolved.DeploymentConfig)
	}
	hostPort := num(stack.Resolved.DeployEnv["HOST_PORT"])
	fmt.Fprintf(out, "Deploy  through HAProxy on 127.0.0.1:%d to %d instances (HOST_PORT %d, TrafficPort), %s, health check GET %s expecting %s, %d/%d in a row every %s\n",
		c.Port, c.Instances, hostPort, cfg.Name, hc.Path, hc.Matcher, check.Rise, check.Fall, check.Interval)
	fl, err := fleet.StartWith(ctx, filepath.Join(c.Work, "fleet"), c.Instances, c.Port, env, agent, prefixed(logw, "deploy | "),
		fleet.Options{HostPort: hostPort, Check: check})
	if err != nil {
		return nil, err
	}
	r := fl.Deploy(ctx, zipPath, cfg, func(*fleet.Instance) []string { return extra })
	for _, in := range r.Instances {
		fmt.Fprintf(out, "Deploy  %-18s %-9s %.1f s\n", in.Instance, in.Status, in.Took.Seconds())
	}
	if r.Err == nil {
		fmt.Fprintf(out, "Deploy  the fleet stops with this run: the load balancer set checks the deployment through HAProxy\n")
	}
	return fl, r.Err
}

// healthPath is the HEALTH_PATH the deployed revision's image.env names (else the contract's
// default, /: the sample app's path is no default of the pipeline's).
func healthPath(archive string) string {
	b, _ := os.ReadFile(filepath.Join(archive, "image.env"))
	return pathIn(b)
}

func pathIn(imageEnv []byte) string {
	for _, line := range strings.Split(string(imageEnv), "\n") {
		if p, ok := strings.CutPrefix(line, "HEALTH_PATH="); ok && strings.HasPrefix(p, "/") {
			return strings.TrimSpace(p)
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

func (c *CLI) build(ctx context.Context, stack *localstack.Stack, commit, execID, srcDir, zipPath, logPath string, logw, out io.Writer) error {
	spec, err := codebuild.Load(filepath.Join(srcDir, "buildspec.yml"))
	if err != nil {
		return err
	}
	var params codebuild.ParamReader
	buildenv := buildEnv()
	if stack != nil {
		// CodeBuild reads the buildspec's parameter-store entries with the project's role
		params = stack.ParamReader()
		if buildenv, err = stack.BuildEnv(ctx, buildenv); err != nil {
			return err
		}
	} else if params, err = ssmparam.New(ctx, ""); err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	res, err := codebuild.Run(ctx, codebuild.Options{
		Spec: spec, SrcDir: srcDir, Env: buildenv, Params: params,
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

// stateDir is the local instance's STATE_DIR (scripts/proxy.sh: its proxy and journal);
// devenv.StopProxies(stateDir) ends its proxy.
func (c *CLI) stateDir() string { return filepath.Join(c.Work, "instance", "state") }
