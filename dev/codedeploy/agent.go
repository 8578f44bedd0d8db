package codedeploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/acme/webapp-pipeline/internal/appspec"
)

// Agent runs deployments through the real CodeDeploy agent's `codedeploy-local` (the agent's own
// Ruby code, unmodified: dev/install-codedeploy-local.sh installs it, dev/env.sh up always does).
// InstanceDir/deployment-root is the agent's root_dir.
type Agent struct {
	Launcher string // the codedeploy-local launcher
}

// AgentEnv names the launcher explicitly; otherwise FindAgent looks in the dev cache.
const AgentEnv = "WEBAPP_CODEDEPLOY_LOCAL"

// FindAgent returns the installed codedeploy-local: $WEBAPP_CODEDEPLOY_LOCAL, else
// $WEBAPP_DEV_CACHE/bin/codedeploy-local (default cache /var/cache/webapp-dev).
func FindAgent() (Agent, error) {
	path := os.Getenv(AgentEnv)
	if path == "" {
		cache := os.Getenv("WEBAPP_DEV_CACHE")
		if cache == "" {
			cache = "/var/cache/webapp-dev"
		}
		path = filepath.Join(cache, "bin", "codedeploy-local")
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm()&0o111 == 0 {
		return Agent{}, fmt.Errorf("the CodeDeploy agent's codedeploy-local is not installed at %s: run `bash dev/install-codedeploy-local.sh` (dev/env.sh up does) or set %s", path, AgentEnv)
	}
	return Agent{Launcher: path}, nil
}

// agentEnv is the environment codedeploy-local runs with, which it hands on to the hooks: a
// minimal one (what the EC2 agent's service gives its hooks), not this process's.
func agentEnv(opts Options) []string {
	return append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, opts.Env...)
}

var agentDeploymentDir = regexp.MustCompile(`Starting to execute deployment from within folder (\S+)`)

// Deploy runs one deployment of opts.Bundle (a directory or a .zip) with codedeploy-local, and
// reads what happened back from the agent's scripts.log. Events holds the events whose scripts
// ran (the agent logs nothing for the others); a failed run's last event is Failed.
func (a Agent) Deploy(ctx context.Context, opts Options) (Result, error) {
	start := time.Now()
	if opts.Bundle == "" || opts.InstanceDir == "" || opts.Application == "" || opts.Group == "" {
		return Result{}, errors.New("codedeploy: Bundle, InstanceDir, Application and Group are required")
	}
	var err error
	if opts.Bundle, err = filepath.Abs(opts.Bundle); err != nil {
		return Result{}, err
	}
	if opts.InstanceDir, err = filepath.Abs(opts.InstanceDir); err != nil {
		return Result{}, err
	}
	if opts.GroupID == "" {
		opts.GroupID = groupID(opts.Application, opts.Group)
	}
	root := filepath.Join(opts.InstanceDir, "deployment-root")
	conf := filepath.Join(opts.InstanceDir, "codedeployagent.yml")
	if err := os.MkdirAll(filepath.Join(opts.InstanceDir, "agent-log"), 0o755); err != nil {
		return Result{}, err
	}
	// The agent's own configuration, its directories on this instance.
	cfg := fmt.Sprintf(`---
:log_aws_wire: false
:log_dir: '%[1]s/agent-log'
:pid_dir: '%[1]s/agent-log/'
:program_name: codedeploy-agent
:root_dir: '%[2]s'
:verbose: false
:wait_between_runs: 1
:proxy_uri:
:max_revisions: %[3]d
:disable_imds_v1: false
`, opts.InstanceDir, root, keepRevisions)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		return Result{}, err
	}
	bundleType := "directory"
	if strings.HasSuffix(opts.Bundle, ".zip") {
		bundleType = "zip"
	}
	res := Result{GroupID: opts.GroupID}
	if prev, err := os.ReadFile(filepath.Join(root, "deployment-instructions", opts.GroupID+"_last_successful_install")); err == nil {
		res.PreviousDir = filepath.Join(strings.TrimSpace(string(prev)), "deployment-archive")
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	agentLog := filepath.Join(opts.InstanceDir, "agent-log", "codedeploy-local.log")
	var logStart int64
	if info, err := os.Stat(agentLog); err == nil {
		logStart = info.Size()
	}
	var console bytes.Buffer
	cmd := exec.CommandContext(ctx, a.Launcher, "-c", conf, "--bundle-location", opts.Bundle, "--type", bundleType,
		"-a", opts.Application, "-d", opts.Group, "-g", opts.GroupID)
	cmd.Dir = "/"
	cmd.Env = agentEnv(opts)
	cmd.Stdout = io.MultiWriter(&console, prefixed(log, "codedeploy-local: "))
	cmd.Stderr = cmd.Stdout
	runErr := cmd.Run()
	res.Duration = time.Since(start)
	if m := agentDeploymentDir.FindStringSubmatch(console.String()); m != nil {
		res.DeploymentID = filepath.Base(m[1])
		res.ArchiveDir = filepath.Join(m[1], "deployment-archive")
		res.Events = parseScriptsLog(filepath.Join(m[1], "logs", "scripts.log"), res.ArchiveDir, res.PreviousDir)
	}
	if runErr == nil {
		return res, nil
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if len(res.Events) == 0 { // refused before any hook ran (appspec, bundle)
		return res, fmt.Errorf("codedeploy-local failed before any hook ran: %s", tail(console.String()))
	}
	herr := &HookError{Tail: tail(console.String())}
	last := &res.Events[len(res.Events)-1]
	last.Status = Failed
	herr.Event = last.Name
	if s := len(last.Scripts); s > 0 {
		sr := &last.Scripts[s-1]
		herr.Location, sr.ExitCode = sr.Location, -1
		herr.Tail = tail(sr.Output) + "\n" + tail(console.String())
		// the console does not say why; the agent's own log says "... timed out"
		if b, err := os.ReadFile(agentLog); err == nil && int64(len(b)) >= logStart {
			herr.TimedOut = strings.Contains(string(b[logStart:]), "Script at specified location: "+herr.Location+" timed out")
		}
		sr.TimedOut = herr.TimedOut
	}
	last.Reason = "scripts.log: " + filepath.Join(filepath.Dir(res.ArchiveDir), "logs", "scripts.log")
	return res, fmt.Errorf("deployment %s (codedeploy-local): %w", res.DeploymentID, herr)
}

var scriptsLogLine = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (.*)$`)

// parseScriptsLog reads the agent's logs/scripts.log: "LifecycleEvent - NAME", "Script - LOC",
// then "[stdout]LINE" / "[stderr]LINE". The scripts of ApplicationStop and the BlockTraffic events
// ran from the previous revision.
func parseScriptsLog(path, archive, previous string) []Event {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var events []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := scriptsLogLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue // a line continued without its own stamp: part of the previous output line
		}
		line := m[1]
		switch {
		case strings.HasPrefix(line, "LifecycleEvent - "):
			events = append(events, Event{Name: strings.TrimPrefix(line, "LifecycleEvent - "), Status: Succeeded})
		case strings.HasPrefix(line, "Script - ") && len(events) > 0:
			ev := &events[len(events)-1]
			dir := archive
			if e, _ := appspec.Lookup(ev.Name); e.Previous {
				dir = previous
			}
			ev.Scripts = append(ev.Scripts, ScriptResult{Location: strings.TrimPrefix(line, "Script - "), Dir: dir})
		case (strings.HasPrefix(line, "[stdout]") || strings.HasPrefix(line, "[stderr]")) && len(events) > 0:
			ev := &events[len(events)-1]
			if n := len(ev.Scripts); n > 0 {
				ev.Scripts[n-1].Output += line[len("[stdout]"):] + "\n"
			}
		}
	}
	return events
}

// tailLines is how many output lines a HookError quotes.
const tailLines = 8

func tail(output string) string {
	lines := strings.Split(strings.TrimRight(output, "\n"), "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	if t := strings.Join(lines, "\n"); t != "" {
		return t
	}
	return "(no output)"
}

// prefixed writes each complete line to w with a prefix.
func prefixed(w io.Writer, prefix string) io.Writer { return &lineWriter{prefix: prefix, w: w} }

// lineWriter writes each complete line to w with a prefix (the rest when the line ends).
type lineWriter struct {
	mu      sync.Mutex
	partial []byte
	prefix  string
	w       io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.partial[:i])
		l.partial = l.partial[i+1:]
	}
}
