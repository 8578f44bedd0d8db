package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
	"github.com/acme/webapp-pipeline/internal/checkout"
	"github.com/acme/webapp-pipeline/internal/contract"
	"github.com/acme/webapp-pipeline/internal/junit"
)

// Build is what every command of the build program needs, resolved once at the
// edge (cmd/build) and never changed after: the repository checkout and what
// git says of it, the app's resolved contract, where logs and the report go.
type Build struct {
	Source   string         // the repository root (appspec.yml, scripts/, the app directory)
	Checkout checkout.Facts // HEAD, its time, the epoch: read once (checkout.Read)
	App      contract.App   // resolved (contract.App.Resolve)
	Log      *slog.Logger
	Report   *Report
	Verbose  bool // the engine's progress output goes to the report too
}

// appDir is the app's directory on this host: the one place the checkout and
// the contract's app-dir are joined.
func (b Build) appDir() string { return filepath.Join(b.Source, b.App.Dir) }

// session is one engine session over one source checkout. It runs the
// graphs that ci/ describes and records how long each step took. What a step
// makes is its result (the image step's is a builtImage), not a field here.
type session struct {
	c     *dagger.Client
	spans *spanReceiver // the engine's spans: which commands ran (spans.go)
	log   *slog.Logger
	errw  io.Writer // tool output (lint, tests) goes here
	b     Build
	app   contract.App // b.App
	src   *dagger.Directory
	rep   *Report
	// what the engine's event stream says: the smoke test's and the
	// Dockerfile's log lines (the report reads its cache counts)
	events *engineEvents

	mu    sync.Mutex // guards steps: lint, test and image run at once
	steps []step

	deps    *dagger.Container // built once, shared by lint and test
	depsErr error             // ... and so is its failure
	memo    memo              // facts of images built before, by digest (memo.go)
}

// builtImage is what the image step returns, and what smoke, sbom, publish
// and attest take: the image as a container (to run) and as an OCI layout
// (to inspect, export and push), and the port it listens on.
//
// With more than one platform (the contract's platforms), it is the image
// index: platforms holds each platform's image (as above, its layout in its
// own directory), and host is the index's layout, written once they are all
// exported (writeIndex); ctr is the first platform's image.
type builtImage struct {
	ctr    *dagger.Container // the image as a container (smoke test, shell)
	layout *dagger.Directory // native: the OCI layout in the engine
	host   string            // dockerfile: the OCI layout on the host, exported by the image step
	port   int               // the container port: the contract's, else the image's EXPOSE

	platform  string        // the contract's platform this image is for ("" in an index)
	emulated  bool          // it is not the engine's platform: its execs run under emulation
	platforms []*builtImage // an index: each platform's image, in the contract's order
}

type step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

const engineHelp = "start one with `sudo dev/env.sh up` and `source /run/webapp-dev/env`, " +
	"or on a machine with Docker unset _EXPERIMENTAL_DAGGER_CLI_BIN and _EXPERIMENTAL_DAGGER_RUNNER_HOST so the SDK provisions its own engine"

// connect opens the engine session. An unreachable engine is one line
// saying how to get one.
func connect(ctx context.Context, b Build) (*session, error) {
	appDir := b.appDir()
	host := os.Getenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST")
	if sock, ok := strings.CutPrefix(host, "unix://"); ok {
		if _, err := os.Stat(sock); err != nil {
			return nil, fmt.Errorf("no Dagger engine at %s: %s", host, engineHelp)
		}
	}
	if err := checkMirror(ctx, b.App, appDir); err != nil {
		return nil, err
	}
	rep := b.Report
	events := newEngineEvents(b.App.Lint, b.App.Test, b.App.DevRequirements)
	rep.session(b.Source, b.App, events)
	// The engine's progress output is always read (it says which commands
	// were served from the cache, and what the smoke test's container
	// printed); --verbose also shows it.
	var tee io.Writer
	if b.Verbose {
		tee = rep
	}
	spans, opts := events.receiveSpans()
	opts = append(opts, dagger.WithLogOutput(events.parser(tee)))
	start := time.Now()
	c, err := dagger.Connect(ctx, opts...)
	if err != nil {
		spans.stop()
		if host == "" {
			host = "(SDK-provisioned)"
		}
		return nil, fmt.Errorf("cannot connect to the Dagger engine %s: %s: %v", host, engineHelp, err)
	}
	b.Log.Info("engine connected", "seconds", secs(time.Since(start)))
	return &session{c: c, spans: spans, log: b.Log, errw: rep, rep: rep, events: events, b: b, app: b.App, src: ci.Source(c, appDir), memo: openMemo()}, nil
}

// close ends the session; its spans are flushed by then.
func (p *session) close() {
	_ = p.c.Close()
	p.spans.stop()
}

// errOtherFailed is the cause with which release stops the steps still
// running once one has failed; such a step neither passed nor failed.
var errOtherFailed = errors.New("stopped: another step failed")

// timed runs fn and records its duration under name, unless it was stopped
// because another step failed (then it returns errOtherFailed).
func (p *session) timed(ctx context.Context, name string, fn func() error) error {
	start := time.Now()
	p.rep.stepStart(name)
	err := fn()
	d := time.Since(start)
	cancelled := err != nil && errors.Is(context.Cause(ctx), errOtherFailed)
	p.rep.stepDone(name, d, err, cancelled)
	if cancelled {
		p.log.Info("step stopped", "step", name, "seconds", secs(d))
		return errOtherFailed
	}
	p.mu.Lock()
	p.steps = append(p.steps, step{Name: name, Seconds: secs(d)})
	p.mu.Unlock()
	p.log.Info("step done", "step", name, "seconds", secs(d), "ok", err == nil)
	return err
}

// checks installs the requirements, then runs lint and test at once (both
// only read the deps container). It returns the JUnit reports there are,
// also when a check failed.
func (p *session) checks(ctx context.Context) (map[string][]byte, error) {
	if _, err := p.depsContainer(ctx); err != nil {
		return nil, err // without the requirements there is nothing to lint or test
	}
	var flake8 []byte
	var lintErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		flake8, lintErr = p.lint(ctx)
	}()
	pytest, testErr := p.test(ctx)
	<-done
	reports := map[string][]byte{}
	if flake8 != nil {
		reports["flake8.xml"] = flake8
	}
	if pytest != nil {
		reports["pytest.xml"] = pytest
	}
	return reports, failures(lintErr, testErr)
}

// failures joins the steps' errors, leaving out those of steps stopped
// because another failed (errOtherFailed alone when that is all there is).
func failures(errs ...error) error {
	var failed []error
	stopped := false
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, errOtherFailed):
			stopped = true
		default:
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 && stopped {
		return errOtherFailed
	}
	return errors.Join(failed...)
}

func (p *session) depsContainer(ctx context.Context) (*dagger.Container, error) {
	if p.deps != nil || p.depsErr != nil {
		return p.deps, p.depsErr
	}
	var deps *dagger.Container
	err := p.timed(ctx, "deps", func() error {
		var err error
		deps, err = ci.Deps(p.c, p.app, p.src).Sync(ctx)
		return err
	})
	if err != nil {
		p.depsErr = newFailure("deps", fmt.Sprintf("install the dependencies (%s: %s, runtime + dev) on %s",
			p.app.Deps, strings.Join(p.app.DepFiles(), " "), p.app.BaseImage), err)
		return nil, p.depsErr
	}
	p.deps = deps
	return deps, nil
}

// lint runs flake8 and returns its JUnit report (also when it fails).
func (p *session) lint(ctx context.Context) ([]byte, error) {
	deps, err := p.depsContainer(ctx)
	if err != nil {
		return nil, err
	}
	var report []byte
	err = p.timed(ctx, "lint", func() error {
		ctr := ci.Lint(deps, p.app)
		code, err := ctr.ExitCode(ctx)
		if err != nil {
			return newFailure("lint", "run flake8", err)
		}
		stdout, err := ctr.Stdout(ctx)
		if err != nil {
			return newFailure("lint", "read flake8 output", err)
		}
		stderr, _ := ctr.Stderr(ctx)
		var problems int
		report, problems = junit.FromFlake8(stdout, code)
		if code == 0 {
			return nil
		}
		fmt.Fprint(p.errw, stdout, stderr)
		return &stepFailure{Step: "lint", Cmd: shellJoin(p.app.Lint), Exit: code, Output: firstLines(stdout+stderr, 20),
			Err: fmt.Errorf("lint failed: %s exited %d with %d problem(s) (listed above): fix them, or adjust the linter's config in %s", p.app.Lint[0], code, problems, p.app.Dir)}
	})
	return report, err
}

// test runs pytest and returns its JUnit report (also when tests fail).
func (p *session) test(ctx context.Context) ([]byte, error) {
	deps, err := p.depsContainer(ctx)
	if err != nil {
		return nil, err
	}
	var report []byte
	err = p.timed(ctx, "test", func() error {
		ctr := ci.Test(deps, p.app)
		code, err := ctr.ExitCode(ctx)
		if err != nil {
			return newFailure("test", "run pytest", err)
		}
		xml, xerr := ctr.File(ci.PytestReport).Contents(ctx)
		if xerr == nil {
			report = []byte(xml)
		}
		if code == 0 {
			return nil
		}
		stdout, _ := ctr.Stdout(ctx)
		stderr, _ := ctr.Stderr(ctx)
		fmt.Fprint(p.errw, stdout, stderr)
		return &stepFailure{Step: "test", Cmd: shellJoin(p.app.Test), Exit: code, Output: pytestRelevant(stdout, stderr),
			Err: pytestError(code, report, p.app.Dir)}
	})
	return report, err
}

// pytestError names the failing tests from the JUnit report.
func pytestError(code int, report []byte, appDir string) error {
	switch code {
	case 5:
		return fmt.Errorf("tests failed: pytest collected no tests (exit 5): add tests under %s/tests/", appDir)
	case 2, 3, 4:
		return fmt.Errorf("tests failed: pytest stopped with exit %d (usage, internal or collection error; output above): fix the test setup", code)
	}
	failed, err := junit.Failed(report)
	if err != nil || len(failed) == 0 {
		return fmt.Errorf("tests failed: pytest exited %d (output above)", code)
	}
	names := failed
	if len(names) > 5 {
		names = append(names[:5:5], fmt.Sprintf("and %d more", len(failed)-5))
	}
	return fmt.Errorf("tests failed: %d failing: %s (output above; JUnit in reports/pytest.xml)", len(failed), strings.Join(names, ", "))
}

// explain turns a failed command inside the engine into a short description
// with the tool's own output, so the final line says what failed.
func explain(err error) error {
	var ee *dagger.ExecError
	if !errors.As(err, &ee) {
		return err
	}
	out := strings.TrimSpace(lastLines(ee.Stderr, 5))
	if out == "" {
		out = strings.TrimSpace(lastLines(ee.Stdout, 5))
	}
	out = strings.Join(clip(strings.Split(out, "\n"), 200), "\n")
	return fmt.Errorf("%q exited %d: %s", strings.Join(ee.Cmd, " "), ee.ExitCode, out)
}

// newFailure is err, from the engine while running step, as a stepFailure
// whose one-line cause is "what: <the failed command, its exit and output>".
func newFailure(step, what string, err error) error {
	f := &stepFailure{Step: step, Exit: -1, Err: fmt.Errorf("%s: %w", what, explain(err))}
	var ee *dagger.ExecError
	if errors.As(err, &ee) {
		f.Cmd = strings.Join(ee.Cmd, " ")
		f.Exit = ee.ExitCode
		f.Output = toolRelevant(ee.Stdout, ee.Stderr)
	} else {
		f.Output = lastN(strings.Split(strings.TrimSpace(err.Error()), "\n"), 10)
	}
	return f
}

// toolRelevant picks a failed command's own diagnosis: pip's (and most
// tools') "ERROR:" lines, else the last lines of stderr, else of stdout.
func toolRelevant(stdout, stderr string) []string {
	var errs []string
	for _, l := range strings.Split(stderr+"\n"+stdout, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "ERROR:") {
			errs = append(errs, strings.TrimRight(l, " \r"))
		}
	}
	if len(errs) > 0 {
		return lastN(errs, 10)
	}
	if strings.TrimSpace(stderr) != "" {
		return lastN(strings.Split(strings.TrimRight(stderr, "\n"), "\n"), 10)
	}
	return lastN(strings.Split(strings.TrimRight(stdout, "\n"), "\n"), 10)
}

// pytestRelevant keeps what says why tests failed: the assertion lines
// ("E   ..."), the short summary (-rfE: "FAILED path::name - reason") and the
// final count line.
func pytestRelevant(stdout, stderr string) []string {
	var keep []string
	var last string
	for _, l := range strings.Split(stdout, "\n") {
		l = strings.TrimRight(l, " \r")
		switch {
		case strings.HasPrefix(l, "E "), strings.HasPrefix(l, "FAILED "), strings.HasPrefix(l, "ERROR "):
			keep = append(keep, l)
		case strings.HasPrefix(l, "====") && (strings.Contains(l, " failed") || strings.Contains(l, " error")):
			last = l
		}
	}
	keep = lastN(keep, 15)
	if last != "" {
		keep = append(keep, last)
	}
	if len(keep) == 0 {
		return toolRelevant(stdout, stderr)
	}
	return keep
}

// clip shortens lines longer than n in the middle, keeping the start and the
// end where tools put the verdict (pip's "from versions: ..." lists, a
// registry's "401 Unauthorized").
func clip(lines []string, n int) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if r := []rune(l); len(r) > n {
			tail := n / 3
			l = string(r[:n-tail-1]) + "…" + string(r[len(r)-tail:])
		}
		out[i] = l
	}
	return out
}

func firstLines(s string, n int) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, strings.TrimRight(l, " \r"))
		}
	}
	if len(lines) > n {
		lines = append(lines[:n:n], fmt.Sprintf("... and %d more", len(lines)-n))
	}
	return lines
}

func lastN(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func secs(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }
