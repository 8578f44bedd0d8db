// Package codedeploy replays CodeDeploy's EC2 in-place lifecycle locally, against a directory
// that stands for the instance. It lays the revision out as the agent does
// (<instance>/deployment-root/<group-id>/<deployment-id>/deployment-archive), runs the hooks of
// appspec.yml in the agent's order with its environment variables and timeouts, and remembers
// the last successful revision so the next deployment's ApplicationStop runs the previous
// revision's scripts, as on EC2.
package codedeploy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Options of one deployment.
type Options struct {
	Bundle       string    // revision: a directory or a .zip with appspec.yml at its root
	InstanceDir  string    // stands for the instance: deployment-root/ and fs/ (files' destinations) go here
	Application  string    // APPLICATION_NAME
	Group        string    // DEPLOYMENT_GROUP_NAME
	GroupID      string    // DEPLOYMENT_GROUP_ID; default: a stable UUID derived from Application and Group
	DeploymentID string    // DEPLOYMENT_ID; default: a fresh d-XXXXXXXXX
	Env          []string  // KEY=value added to the hooks' environment (instance settings, credentials)
	Log          io.Writer // hook output and progress, line by line; nil discards
}

// Status of a lifecycle event.
const (
	Succeeded = "Succeeded"
	Failed    = "Failed"
	Skipped   = "Skipped"
)

// Result of a deployment; filled as far as the deployment got, also when it failed.
type Result struct {
	DeploymentID string
	GroupID      string
	ArchiveDir   string // this revision's deployment-archive
	PreviousDir  string // the last successful revision's deployment-archive ("" on the first deployment)
	Events       []Event
	Duration     time.Duration
}

// Event is one lifecycle event.
type Event struct {
	Name     string
	Status   string
	Reason   string // why it was skipped or failed
	Scripts  []ScriptResult
	Duration time.Duration
}

// ScriptResult is one hook script run.
type ScriptResult struct {
	Location string
	Dir      string // the deployment-archive it ran from
	ExitCode int    // -1 when killed
	TimedOut bool
	Output   string // stdout and stderr, interleaved
	Duration time.Duration
}

// Event returns the named event of the result, or nil.
func (r *Result) Event(name string) *Event {
	for i := range r.Events {
		if r.Events[i].Name == name {
			return &r.Events[i]
		}
	}
	return nil
}

// HookError is a failed hook script: non-zero exit or timeout.
type HookError struct {
	Event    string
	Location string
	ExitCode int
	TimedOut bool
	Timeout  time.Duration
	Detail   string // e.g. a background process held stdout/stderr
	Tail     string // last lines of the script's output
}

func (e *HookError) Error() string {
	what := fmt.Sprintf("exited %d", e.ExitCode)
	if e.TimedOut {
		what = fmt.Sprintf("timed out after %s (process group killed)", e.Timeout)
	}
	if e.Detail != "" {
		what += " (" + e.Detail + ")"
	}
	return fmt.Sprintf("%s: %s %s: %s", e.Event, e.Location, what, e.Tail)
}

// keepRevisions is how many deployment directories per group the agent keeps (:max_revisions:).
const keepRevisions = 5

// Deploy runs one in-place deployment of opts.Bundle onto opts.InstanceDir.
func Deploy(ctx context.Context, opts Options) (Result, error) {
	start := time.Now()
	d, err := newDeployment(opts)
	if err != nil {
		return Result{}, err
	}
	err = d.run(ctx)
	d.res.Duration = time.Since(start)
	if err != nil {
		d.logf("deployment %s failed: %v", d.res.DeploymentID, err)
		return d.res, fmt.Errorf("deployment %s: %w", d.res.DeploymentID, err)
	}
	d.logf("deployment %s succeeded in %s", d.res.DeploymentID, d.res.Duration.Round(time.Millisecond))
	return d.res, nil
}

type deployment struct {
	opts     Options
	res      Result
	root     string // <instance>/deployment-root
	groupDir string
	depDir   string
	log      io.Writer
}

func newDeployment(opts Options) (*deployment, error) {
	if opts.Bundle == "" || opts.InstanceDir == "" || opts.Application == "" || opts.Group == "" {
		return nil, errors.New("codedeploy: Bundle, InstanceDir, Application and Group are required")
	}
	for _, kv := range opts.Env {
		if !strings.Contains(kv, "=") {
			return nil, fmt.Errorf("codedeploy: Env entry %q is not KEY=value", kv)
		}
	}
	var err error
	if opts.Bundle, err = filepath.Abs(opts.Bundle); err != nil {
		return nil, err
	}
	if opts.InstanceDir, err = filepath.Abs(opts.InstanceDir); err != nil {
		return nil, err
	}
	if opts.GroupID == "" {
		opts.GroupID = groupID(opts.Application, opts.Group)
	}
	if opts.DeploymentID == "" {
		opts.DeploymentID = newDeploymentID()
	}
	d := &deployment{opts: opts, log: opts.Log}
	if d.log == nil {
		d.log = io.Discard
	}
	d.root = filepath.Join(opts.InstanceDir, "deployment-root")
	d.groupDir = filepath.Join(d.root, opts.GroupID)
	d.depDir = filepath.Join(d.groupDir, opts.DeploymentID)
	d.res = Result{
		DeploymentID: opts.DeploymentID,
		GroupID:      opts.GroupID,
		ArchiveDir:   filepath.Join(d.depDir, "deployment-archive"),
	}
	if _, err := os.Stat(d.depDir); err == nil {
		return nil, fmt.Errorf("codedeploy: deployment %s already exists in %s", opts.DeploymentID, d.groupDir)
	}
	return d, nil
}

func (d *deployment) logf(format string, args ...any) {
	fmt.Fprintf(d.log, "codedeploy: "+format+"\n", args...)
}

// instructions is the agent's record of the last successful and most recent installs.
func (d *deployment) instructions(kind string) string {
	return filepath.Join(d.root, "deployment-instructions", d.opts.GroupID+"_"+kind)
}

func (d *deployment) run(ctx context.Context) error {
	if prev, err := os.ReadFile(d.instructions("last_successful_install")); err == nil {
		d.res.PreviousDir = filepath.Join(strings.TrimSpace(string(prev)), "deployment-archive")
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read last successful install: %w", err)
	}
	d.logf("deployment %s of %s to %s/%s (group id %s)", d.res.DeploymentID, d.opts.Bundle,
		d.opts.Application, d.opts.Group, d.res.GroupID)
	if err := os.MkdirAll(filepath.Join(d.depDir, "logs"), 0o755); err != nil {
		return err
	}

	// BeforeBlockTraffic, AfterBlockTraffic, ApplicationStop: the previous revision's scripts
	// (the last successful install), none on the first deployment.
	var prevSpec *AppSpec
	for _, event := range []string{BeforeBlockTraffic, AfterBlockTraffic, ApplicationStop} {
		if d.res.PreviousDir == "" {
			d.skip(event, "first deployment to this instance: no previous revision")
			continue
		}
		if prevSpec == nil {
			var err error
			if prevSpec, err = LoadAppSpec(d.res.PreviousDir); err != nil {
				d.fail(event, err)
				return fmt.Errorf("%s: previous revision: %w", event, err)
			}
		}
		if err := d.hooks(ctx, event, prevSpec, d.res.PreviousDir); err != nil {
			return err
		}
	}

	began := time.Now()
	d.prune()
	if err := unpackBundle(d.opts.Bundle, d.res.ArchiveDir); err != nil {
		d.fail(DownloadBundle, err)
		return fmt.Errorf("%s: %w", DownloadBundle, err)
	}
	spec, err := LoadAppSpec(d.res.ArchiveDir)
	if err != nil {
		d.fail(DownloadBundle, err)
		return fmt.Errorf("%s: %w", DownloadBundle, err)
	}
	d.record("most_recent_install")
	d.res.Events = append(d.res.Events, Event{Name: DownloadBundle, Status: Succeeded, Duration: time.Since(began)})

	if err := d.hooks(ctx, BeforeInstall, spec, d.res.ArchiveDir); err != nil {
		return err
	}
	began = time.Now()
	if err := installFiles(spec, d.res.ArchiveDir, filepath.Join(d.opts.InstanceDir, "fs")); err != nil {
		d.fail(Install, err)
		return fmt.Errorf("%s: %w", Install, err)
	}
	// As the agent: the revision becomes the "last successful install" right here, so a
	// deployment that fails later (AfterInstall .. ValidateService) still has ITS ApplicationStop
	// run by the next deployment (measured with codedeploy-local).
	d.record("last_successful_install")
	d.res.Events = append(d.res.Events, Event{Name: Install, Status: Succeeded, Duration: time.Since(began)})

	for _, event := range []string{AfterInstall, ApplicationStart, ValidateService, BeforeAllowTraffic, AfterAllowTraffic} {
		if err := d.hooks(ctx, event, spec, d.res.ArchiveDir); err != nil {
			return err
		}
	}
	return nil
}

func (d *deployment) skip(event, reason string) {
	d.logf("%s: skipped: %s", event, reason)
	d.res.Events = append(d.res.Events, Event{Name: event, Status: Skipped, Reason: reason})
}

func (d *deployment) fail(event string, err error) {
	d.res.Events = append(d.res.Events, Event{Name: event, Status: Failed, Reason: err.Error()})
}

// hooks runs the scripts of one event in order; the first failure fails the event.
func (d *deployment) hooks(ctx context.Context, event string, spec *AppSpec, archive string) error {
	scripts := spec.Hooks[event]
	if len(scripts) == 0 {
		d.skip(event, "no scripts in appspec")
		return nil
	}
	ev := Event{Name: event, Status: Succeeded}
	began := time.Now()
	defer func() {
		ev.Duration = time.Since(began)
		d.res.Events = append(d.res.Events, ev)
	}()
	for _, h := range scripts {
		sr, err := runScript(ctx, scriptRun{
			Event: event, Hook: h, ArchiveDir: archive, Env: d.env(event), Log: d.log,
			ScriptsLog: filepath.Join(d.depDir, "logs", "scripts.log"),
		})
		ev.Scripts = append(ev.Scripts, sr)
		if err != nil {
			ev.Status, ev.Reason = Failed, err.Error()
			return err
		}
	}
	return nil
}

// env is what the agent gives a hook: a minimal environment (no login shell), the lifecycle
// variables, then the caller's instance settings.
func (d *deployment) env(event string) []string {
	env := []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"APPLICATION_NAME=" + d.opts.Application,
		"DEPLOYMENT_ID=" + d.res.DeploymentID,
		"DEPLOYMENT_GROUP_NAME=" + d.opts.Group,
		"DEPLOYMENT_GROUP_ID=" + d.res.GroupID,
		"LIFECYCLE_EVENT=" + event,
	}
	return append(env, d.opts.Env...)
}

// record writes one of the agent's instructions files (<group-id>_KIND: this deployment's dir).
func (d *deployment) record(kind string) {
	dir := filepath.Join(d.root, "deployment-instructions")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.logf("warning: %v", err)
		return
	}
	if err := writeFileAtomic(d.instructions(kind), []byte(d.depDir)); err != nil {
		d.logf("warning: record %s: %v", kind, err)
	}
}

// prune removes old deployment directories of the group as the agent does at DownloadBundle
// (cleanup_old_archives): with this one, keepRevisions remain; the oldest go first, never the
// last successful one (the next ApplicationStop needs it).
func (d *deployment) prune() {
	entries, err := os.ReadDir(d.groupDir)
	if err != nil {
		return
	}
	last, _ := os.ReadFile(d.instructions("last_successful_install"))
	type dir struct {
		path string
		mod  time.Time
	}
	var others []dir
	for _, e := range entries {
		p := filepath.Join(d.groupDir, e.Name())
		if info, err := e.Info(); err == nil && p != d.depDir {
			others = append(others, dir{p, info.ModTime()})
		}
	}
	extra := len(others) - keepRevisions + 1
	if extra <= 0 {
		return
	}
	sort.Slice(others, func(i, j int) bool { return others[i].mod.Before(others[j].mod) })
	for _, dd := range others {
		if extra == 0 {
			break
		}
		if dd.path == strings.TrimSpace(string(last)) {
			continue
		}
		if err := os.RemoveAll(dd.path); err != nil {
			d.logf("warning: prune %s: %v", dd.path, err)
		}
		extra--
	}
}

// groupID derives a stable UUID-shaped id, so the same application/group maps to the same
// directory across runs (the agent gets it from the service).
func groupID(app, group string) string {
	s := sha256.Sum256([]byte(app + "\x00" + group))
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

func newDeploymentID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "d-" + string(b)
}

func writeFileAtomic(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
