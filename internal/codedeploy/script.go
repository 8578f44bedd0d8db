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

// waitDelay bounds how long a script's leftover children may keep its output open, and how long
// a script may run on after the timeout's SIGTERM before the replay kills its process group.
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
// process group, cwd "/", with the given environment only, under the hook's timeout. When it
// expires the process group gets SIGTERM, as from the agent, which never escalates; the replay
// (unlike the agent, which would wait forever) kills what is left termGrace later, so a test
// cannot hang. Non-zero exit, timeout, or output left open by a background child fail it.
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

	slog := openScriptsLog(r)
	defer slog.close()
	var all syncBuffer // stdout and stderr in the order they arrive
	prefix := fmt.Sprintf("[%s] %s: ", r.Event, r.Hook.Location)
	stdout := &outputWriter{prefix: prefix, log: r.Log, line: slog.line("[stdout]"), all: &all}
	stderr := &outputWriter{prefix: prefix, log: r.Log, line: slog.line("[stderr]"), all: &all}
	cmd := exec.CommandContext(hookCtx, script)
	cmd.Dir = "/"
	cmd.Env = r.Env
	cmd.Stdin = nil
	// two pipes, as the agent reads them (its scripts.log marks each line [stdout] or [stderr])
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = waitDelay

	began := time.Now()
	runErr := cmd.Run()
	res.Duration = time.Since(began)
	stdout.flush()
	stderr.flush()
	res.Output = all.String()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}

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
		// whatever ignored the SIGTERM for waitDelay: the agent would wait for it forever
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
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

// scriptsLog appends to the deployment's logs/scripts.log in the agent's format:
// "STAMP LifecycleEvent - EVENT", "STAMP Script - LOCATION", "STAMP [stdout]LINE" / "[stderr]LINE".
type scriptsLog struct {
	mu sync.Mutex
	f  *os.File
}

func openScriptsLog(r scriptRun) *scriptsLog {
	l := &scriptsLog{}
	if r.ScriptsLog == "" {
		return l
	}
	f, err := os.OpenFile(r.ScriptsLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return l
	}
	l.f = f
	l.write("LifecycleEvent - " + r.Event)
	l.write("Script - " + r.Hook.Location)
	return l
}

func (l *scriptsLog) write(s string) {
	if l.f == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.f, "%s %s\n", time.Now().UTC().Format("2006-01-02 15:04:05"), s)
}

func (l *scriptsLog) line(label string) func(string) { return func(s string) { l.write(label + s) } }

func (l *scriptsLog) close() {
	if l.f != nil {
		l.f.Close()
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// outputWriter keeps a script's output and streams it line by line: prefixed to log, and to
// line (the scripts.log) when set.
type outputWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	prefix  string
	log     io.Writer
	line    func(string)
	all     *syncBuffer
}

func (w *outputWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.all != nil {
		w.all.Write(p)
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.emit(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *outputWriter) emit(s string) {
	if w.log != nil {
		fmt.Fprintf(w.log, "%s%s\n", w.prefix, s)
	}
	if w.line != nil {
		w.line(s)
	}
}

func (w *outputWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.emit(string(w.partial))
		w.partial = nil
	}
}
