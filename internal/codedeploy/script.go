package codedeploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// waitDelay bounds how long a killed script's leftover children may keep its output open.
const waitDelay = 5 * time.Second

// tailLines is how many output lines a HookError quotes.
const tailLines = 8

type scriptRun struct {
	Event      string
	Hook       Hook
	ArchiveDir string
	Env        []string
	Log        io.Writer // streamed output, each line prefixed with the event
	ScriptsLog string    // the deployment's logs/scripts.log ("" for none)
}

// runScript runs one hook script as the agent does: from its path in the archive, in its own
// process group, cwd "/", with the given environment only, under the hook's timeout (the
// process group is killed when it expires). Non-zero exit, timeout, or output left open by a
// background child fail it.
func runScript(ctx context.Context, r scriptRun) (ScriptResult, error) {
	if r.Log == nil {
		r.Log = io.Discard
	}
	rel, err := relPath(r.Hook.Location)
	if err != nil {
		return ScriptResult{Location: r.Hook.Location}, fmt.Errorf("%s: %w", r.Event, err)
	}
	script := filepath.Join(r.ArchiveDir, rel)
	res := ScriptResult{Location: r.Hook.Location, Dir: r.ArchiveDir, ExitCode: -1}
	if err := checkRunas(r.Hook.Runas); err != nil {
		return res, fmt.Errorf("%s: %s: %w", r.Event, r.Hook.Location, err)
	}
	info, err := os.Stat(script)
	if err != nil {
		return res, fmt.Errorf("%s: script %s not found in the revision: %w", r.Event, r.Hook.Location, err)
	}
	if info.Mode().Perm()&0o111 == 0 {
		// The agent does the same, with a warning: zips do not always keep modes.
		fmt.Fprintf(r.Log, "[%s] warning: %s is not executable; making it executable\n", r.Event, r.Hook.Location)
		if err := os.Chmod(script, info.Mode().Perm()|0o755); err != nil {
			return res, fmt.Errorf("%s: %w", r.Event, err)
		}
	}

	timeout := time.Duration(r.Hook.Timeout) * time.Second
	if r.Hook.Timeout <= 0 {
		timeout = MaxTimeout * time.Second
	}
	hookCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	out := &outputWriter{prefix: fmt.Sprintf("[%s] %s: ", r.Event, r.Hook.Location), log: r.Log}
	cmd := exec.CommandContext(hookCtx, script)
	cmd.Dir = "/"
	cmd.Env = r.Env
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = out, out // one writer: one pipe, lines keep their order
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay

	began := time.Now()
	runErr := cmd.Run()
	res.Duration = time.Since(began)
	out.flush()
	res.Output = out.buf.String()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	appendScriptsLog(r, res)

	timedOut := errors.Is(hookCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	switch {
	case runErr == nil && !timedOut:
		return res, nil
	case ctx.Err() != nil:
		return res, fmt.Errorf("%s: %s: %w", r.Event, r.Hook.Location, ctx.Err())
	}
	herr := &HookError{Event: r.Event, Location: r.Hook.Location, ExitCode: res.ExitCode, Tail: tail(res.Output)}
	switch {
	case timedOut:
		res.TimedOut, herr.TimedOut, herr.Timeout = true, true, timeout
	case errors.Is(runErr, exec.ErrWaitDelay):
		// The agent waits for EOF on the script's output until the timeout, then fails the
		// event; we fail it after waitDelay, and clean up the leftovers of the process group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		herr.Detail = fmt.Sprintf("a background process kept its stdout/stderr open %s after it exited; redirect it and detach it", waitDelay)
	}
	return res, herr
}

// checkRunas: the replay runs scripts as the current user; another runas is an error, not a lie.
func checkRunas(runas string) error {
	if runas == "" {
		return nil
	}
	u, err := user.Current()
	if err != nil {
		return fmt.Errorf("runas %s: %w", runas, err)
	}
	if u.Username != runas {
		return fmt.Errorf("runas %s: the local replay runs hooks as the current user (%s)", runas, u.Username)
	}
	return nil
}

func tail(output string) string {
	lines := strings.Split(strings.TrimRight(output, "\n"), "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	t := strings.Join(lines, "\n")
	if t == "" {
		return "(no output)"
	}
	return t
}

func appendScriptsLog(r scriptRun, res ScriptResult) {
	if r.ScriptsLog == "" {
		return
	}
	f, err := os.OpenFile(r.ScriptsLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	stamp := time.Now().UTC().Format("2006-01-02 15:04:05")
	fmt.Fprintf(f, "%s LifecycleEvent - %s\n%s Script - %s (exit %d, %s)\n", stamp, r.Event, stamp,
		r.Hook.Location, res.ExitCode, res.Duration.Round(time.Millisecond))
	for _, line := range strings.Split(strings.TrimRight(res.Output, "\n"), "\n") {
		fmt.Fprintf(f, "%s [output] %s\n", stamp, line)
	}
}

// outputWriter keeps a script's output and streams it to the log line by line, prefixed.
type outputWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	prefix  string
	log     io.Writer
}

func (w *outputWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.log == nil {
		return len(p), nil
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(w.log, "%s%s\n", w.prefix, w.partial[:i])
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *outputWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.log != nil && len(w.partial) > 0 {
		fmt.Fprintf(w.log, "%s%s\n", w.prefix, w.partial)
		w.partial = nil
	}
}
