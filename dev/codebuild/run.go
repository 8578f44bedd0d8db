package codebuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ParamReader resolves env.parameter-store entries (decrypted SSM values).
type ParamReader interface {
	Get(ctx context.Context, name string) (string, error)
}

// Options for one local build.
type Options struct {
	Spec   *Spec
	SrcDir string // CODEBUILD_SRC_DIR: where the source was unpacked
	// Env is the build environment before the buildspec: the image's variables, the project's
	// settings and CODEBUILD_* values. Overrides win over env.variables, like a start-build
	// call's environment-variables override.
	Env       []string
	Overrides map[string]string
	Params    ParamReader
	Log       io.Writer
}

// Status of a phase, as CodeBuild names them.
const (
	Succeeded = "SUCCEEDED"
	Failed    = "FAILED"
	Skipped   = "SKIPPED"
)

// PhaseResult is how one phase went.
type PhaseResult struct {
	Name          string
	Status        string
	Duration      time.Duration
	FailedCommand string
	ExitCode      int
}

// Result is how the whole build went.
type Result struct {
	Phases    []PhaseResult
	Succeeded bool
}

// Failed returns the first failed phase, or nil.
func (r *Result) Failed() *PhaseResult {
	for i := range r.Phases {
		if r.Phases[i].Status == Failed {
			return &r.Phases[i]
		}
	}
	return nil
}

// Run runs the buildspec's phases. The error is for the runner itself failing (a parameter
// that cannot be resolved, a shell that cannot start); a failing build is a Result with
// Succeeded false.
func Run(ctx context.Context, o Options) (*Result, error) {
	env, secrets, err := buildEnv(ctx, o)
	if err != nil {
		return nil, err
	}
	log := &maskWriter{w: o.Log, secrets: secrets}
	defer log.Flush()
	state, err := os.MkdirTemp("", "codebuild-state")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(state)
	sh := &shell{path: shellPath(o.Spec.Env.Shell), env: env, cwd: o.SrcDir, state: state, log: log}

	res := &Result{Succeeded: true}
	sh.env["CODEBUILD_BUILD_SUCCEEDING"] = "1"
	stop := false
	for _, name := range Phases {
		phase, ok := o.Spec.Phases[name]
		if stop || !ok {
			if ok {
				res.Phases = append(res.Phases, PhaseResult{Name: name, Status: Skipped})
				logf(log, "Phase %s skipped: the build was aborted", strings.ToUpper(name))
			}
			continue
		}
		for k, v := range phase.RuntimeVersions {
			logf(log, "Phase %s: runtime-versions %s %s: using this machine's own", strings.ToUpper(name), k, v)
		}
		pr := sh.runPhase(ctx, name, phase)
		res.Phases = append(res.Phases, pr)
		if pr.Status != Failed {
			continue
		}
		res.Succeeded = false
		sh.env["CODEBUILD_BUILD_SUCCEEDING"] = "0"
		switch {
		case strings.EqualFold(phase.OnFailure, "CONTINUE"):
		case strings.EqualFold(phase.OnFailure, "ABORT"), name == "install", name == "pre_build":
			stop = true // install/pre_build failures end the build; so does ABORT
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	return res, nil
}

// buildEnv layers the environment: base, env.variables, parameter-store, overrides.
func buildEnv(ctx context.Context, o Options) (map[string]string, []string, error) {
	env := map[string]string{}
	for _, kv := range o.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	for k, v := range o.Spec.Env.Variables {
		env[k] = v
	}
	var secrets []string
	for _, k := range sortedKeys(o.Spec.Env.ParameterStore) {
		name := o.Spec.Env.ParameterStore[k]
		if o.Params == nil {
			return nil, nil, fmt.Errorf("env.parameter-store %s: no SSM reader configured", k)
		}
		v, err := o.Params.Get(ctx, name)
		if err != nil {
			return nil, nil, fmt.Errorf("env.parameter-store %s: %w", k, err)
		}
		env[k] = v
		if v != "" {
			secrets = append(secrets, v)
		}
	}
	for k, v := range o.Overrides {
		env[k] = v
	}
	env["CODEBUILD_SRC_DIR"] = o.SrcDir
	return env, secrets, nil
}

func shellPath(s string) string {
	if s == "sh" || s == "/bin/sh" {
		return "/bin/sh"
	}
	return "/bin/bash"
}

// shell runs commands one at a time, carrying exported variables and the working directory
// from each command to the next, as CodeBuild 0.2 does within a build.
type shell struct {
	path  string
	env   map[string]string
	cwd   string
	state string
	log   io.Writer
}

func (s *shell) runPhase(ctx context.Context, name string, p Phase) PhaseResult {
	start := time.Now()
	pr := PhaseResult{Name: name, Status: Succeeded}
	logf(s.log, "Entering phase %s", strings.ToUpper(name))
	for _, c := range p.Commands {
		if code := s.run(ctx, c); code != 0 {
			pr.Status, pr.FailedCommand, pr.ExitCode = Failed, c, code
			logf(s.log, "Command did not exit successfully %s exit status %d", c, code)
			break
		}
	}
	for _, c := range p.Finally {
		if code := s.run(ctx, c); code != 0 && pr.Status != Failed {
			pr.Status, pr.FailedCommand, pr.ExitCode = Failed, c, code
			logf(s.log, "Command did not exit successfully %s exit status %d", c, code)
		}
	}
	pr.Duration = time.Since(start)
	logf(s.log, "Phase complete: %s State: %s (%.1f s)", strings.ToUpper(name), pr.Status, pr.Duration.Seconds())
	return pr
}

// run runs one command and returns its exit status; the shell's state afterwards is saved by
// an EXIT trap, so even `exit 1` keeps what was exported before it.
func (s *shell) run(ctx context.Context, command string) int {
	logf(s.log, "Running command %s", command)
	envFile, cwdFile := filepath.Join(s.state, "env"), filepath.Join(s.state, "cwd")
	script := fmt.Sprintf("trap '__rc=$?; env -0 > %q; pwd > %q; exit $__rc' EXIT\n%s\n", envFile, cwdFile, command)
	cmd := exec.CommandContext(ctx, s.path, "-c", script)
	cmd.Dir = s.cwd
	cmd.Env = envList(s.env)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err := cmd.Run()
	s.load(envFile, cwdFile)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exitErr) && exitErr.ExitCode() > 0:
		return exitErr.ExitCode()
	default:
		fmt.Fprintf(s.log, "%v\n", err)
		return 1
	}
}

func (s *shell) load(envFile, cwdFile string) {
	if b, err := os.ReadFile(envFile); err == nil {
		env := map[string]string{}
		for _, kv := range bytes.Split(b, []byte{0}) {
			if k, v, ok := strings.Cut(string(kv), "="); ok && k != "SHLVL" && k != "_" && k != "OLDPWD" {
				env[k] = v
			}
		}
		s.env = env
	}
	if b, err := os.ReadFile(cwdFile); err == nil {
		if d := strings.TrimSpace(string(b)); d != "" {
			s.cwd = d
		}
	}
	os.Remove(envFile)
	os.Remove(cwdFile)
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, k+"="+m[k])
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "[Container] %s "+format+"\n", append([]any{time.Now().UTC().Format("2006/01/02 15:04:05.000")}, args...)...)
}

// maskWriter replaces parameter-store values with *** line by line, as CodeBuild masks them.
type maskWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
	buf     []byte
}

func (m *maskWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf = append(m.buf, p...)
	for {
		i := bytes.IndexByte(m.buf, '\n')
		if i < 0 {
			break
		}
		if err := m.emit(m.buf[:i+1]); err != nil {
			return 0, err
		}
		m.buf = m.buf[i+1:]
	}
	return len(p), nil
}

func (m *maskWriter) emit(line []byte) error {
	s := string(line)
	for _, secret := range m.secrets {
		s = strings.ReplaceAll(s, secret, "***")
	}
	_, err := io.WriteString(m.w, s)
	return err
}

// Flush writes a trailing partial line.
func (m *maskWriter) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.buf) == 0 {
		return nil
	}
	err := m.emit(m.buf)
	m.buf = nil
	return err
}
