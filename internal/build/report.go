package build

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/acme/webapp-pipeline/internal/contract"
)

// Report collects what one run did — the steps, how long each took, whether
// the engine served it from its cache, the failure, the pushed image — and
// prints it LAST, so the end of the log says what happened without scrolling.
// On a terminal it also draws the running step live; elsewhere (CodeBuild) it
// prints stable plain text: no clock times, no colour, no redrawn lines.
type Report struct {
	mu      sync.Mutex
	w       io.Writer // stderr
	tty     bool      // live progress and colour
	steps   []stepRecord
	failure *stepFailure
	image   *imageFacts
	fresh   string // the out dir, when it was already up to date
	inv     invocation
	running []liveStep // steps in progress (terminal only)
	// what the engine's event stream said of each step's commands (cached
	// or ran); nil until a session is open
	events   *engineEvents
	spinning bool // the live-line goroutine is running
}

type stepRecord struct {
	name string
	d    time.Duration
	ok   bool
}

// imageFacts describe the pushed (or reproduced) image.
type imageFacts struct {
	Ref    string // repo@sha256:... (pushed) or "" when only built
	Digest string // manifest digest
	Size   int64  // config + compressed layers: what a pull downloads
	Layers int

	Build        string      // dockerfile or native ("" when not known: up to date)
	Reproducible bool        // the same commit gives the same digest
	Smoke        *smokeFacts // what the smoke test saw

	// Platforms: an image index's images (none for one image manifest).
	Platforms []platformFacts

	SBOM    map[string]int // the SBOM's components by package URL type
	SBOMHow string         // how it was made: syft on the whole image, memo, incremental
	Signed  string         // the key the instances verify it with; "" = unsigned
}

// platformFacts describe one platform's image of an index.
type platformFacts struct {
	Platform string `json:"platform"` // linux/arm64
	Digest   string `json:"digest"`   // its manifest digest
	Size     int64  `json:"size"`
	Emulated bool   `json:"emulated"` // built and smoke-tested under emulation
}

// invocation is how this run was started: what the re-run commands need.
type invocation struct {
	source    string   // --source ("." by default)
	baseImage string   // --base-image
	platforms []string // --platforms (the resolved contract's)
	revision  string   // the commit, when known
	reports   string   // where the JUnit reports of a failed run went
	reproduce bool     // the run was `reproduce <commit>`: re-runs are reproduce commands
}

// stepRank orders steps as a run does, whichever finished first.
func stepRank(name string) int {
	for i, s := range []string{"deps", "lint", "test", "image", "smoke", "sbom", "check", "publish", "attest"} {
		if s == name {
			return i
		}
	}
	return 99
}

// stepFailure is an error that knows which step failed and how. Its Error()
// is the one-line cause (the final `build: error:` line); the report shows
// the rest above it.
type stepFailure struct {
	Step   string   // deps, lint, test, image, check, publish
	Cmd    string   // the command, as run in the step's container
	Exit   int      // the command's exit code; -1 when no process failed
	Output []string // the tool's relevant lines
	Err    error
}

func (f *stepFailure) Error() string { return f.Err.Error() }
func (f *stepFailure) Unwrap() error { return f.Err }

const defaultBaseImage = contract.DefaultBaseImage

// NewReport is a report printed to w (stderr).
func NewReport(w io.Writer) *Report {
	return &Report{w: w, tty: isTerminal(w)}
}

// Live says whether the report draws live step lines (a terminal): log lines
// at Info would repeat them.
func (r *Report) Live() bool { return r.tty }

// isTerminal is true for a character device that is not told to be plain.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" || os.Getenv("CODEBUILD_BUILD_ID") != "" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (r *Report) colour(code, s string) string {
	if !r.tty || os.Getenv("NO_COLOR") != "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// stepStart draws the running steps on a terminal (a spinner and each
// step's time so far). Steps may run at once (lint, test and image do).
func (r *Report) stepStart(name string) {
	if !r.tty {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = append(r.running, liveStep{name: name, start: time.Now()})
	if !r.spinning {
		r.spinning = true
		go r.spin()
	}
}

type liveStep struct {
	name  string
	start time.Time
}

// spin redraws the live line every 100 ms until no step is running.
func (r *Report) spin() {
	frames := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	for i := 0; ; i++ {
		r.mu.Lock()
		if len(r.running) == 0 {
			r.spinning = false
			r.mu.Unlock()
			return
		}
		var b strings.Builder
		for _, ls := range r.running {
			fmt.Fprintf(&b, "  %-8s %5.1fs", ls.name, time.Since(ls.start).Seconds())
		}
		fmt.Fprintf(r.w, "\r\x1b[K  %s%s", r.colour("36", frames[i%len(frames)]), b.String())
		r.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

// stepDone records a finished step; on a terminal it prints its final line
// above the live one. A step whose context was cancelled (the image, when
// lint or tests failed first) is dropped: it neither passed nor failed.
func (r *Report) stepDone(name string, d time.Duration, err error, cancelled bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ls := range r.running {
		if ls.name == name {
			r.running = append(r.running[:i:i], r.running[i+1:]...)
			break
		}
	}
	if cancelled {
		if r.tty && len(r.running) == 0 {
			fmt.Fprint(r.w, "\r\x1b[K") // the live line would stay otherwise
		}
		return
	}
	r.steps = append(r.steps, stepRecord{name: name, d: d, ok: err == nil})
	if r.tty {
		mark := r.colour("32", "✓")
		if err != nil {
			mark = r.colour("31", "✗")
		}
		fmt.Fprintf(r.w, "\r\x1b[K  %s %-8s %5.2fs\n", mark, name, d.Seconds())
	}
}

// Write lets tool output and log lines go through the report, so they do not
// collide with the live line on a terminal.
func (r *Report) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tty && len(r.running) > 0 {
		fmt.Fprint(r.w, "\r\x1b[K")
	}
	return r.w.Write(p)
}

// cacheStatus is what the engine's event stream said of the step's commands
// (engineEvents.cacheStatus).
func (r *Report) cacheStatus(step string) string {
	r.mu.Lock()
	ev := r.events
	r.mu.Unlock()
	return ev.cacheStatus(step)
}

// Finish prints the closing block: the failure report when err != nil (the
// step failure it wraps, if any, is what it describes), else the summary.
// The caller prints the one-line cause after it.
func (r *Report) Finish(err error) {
	var sf *stepFailure
	if errors.As(err, &sf) {
		r.failure = sf
	}
	sort.SliceStable(r.steps, func(i, j int) bool { return stepRank(r.steps[i].name) < stepRank(r.steps[j].name) })
	if len(r.steps) == 0 && r.failure == nil && r.fresh == "" {
		return // nothing ran (bad flags, no engine, check): the one line says it all
	}
	if err != nil {
		r.printFailure(err)
		return
	}
	r.printSummary()
}

func (r *Report) printSteps(w io.Writer) {
	for _, s := range r.steps {
		status := r.cacheStatus(s.name)
		if !s.ok {
			status = r.colour("31", "FAILED")
		}
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-8s %7.2fs  %s", s.name, s.d.Seconds(), status), " "))
	}
}

// What the steps record for the report to render.

// session: an engine session opened on source, with base image baseImage; its
// event stream says which commands ran.
func (r *Report) session(source string, app contract.App, events *engineEvents) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inv.source, r.inv.baseImage, r.inv.platforms, r.events = source, app.BaseImage, app.Platforms, events
}

// building: the revision being built (the re-run commands name it).
func (r *Report) building(revision string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inv.revision = revision
}

// reproducing: the run is `reproduce <commit>`; re-runs are reproduce commands.
func (r *Report) reproducing(baseImage, commit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inv = invocation{baseImage: baseImage, revision: commit, reproduce: true, platforms: r.inv.platforms}
}

// wroteReports: the JUnit reports of a failed run are in dir.
func (r *Report) wroteReports(dir string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inv.reports = dir
}

// built: the image the run made (and pushed, when facts.Ref is set).
func (r *Report) built(facts *imageFacts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.image = facts
}

// upToDate is the summary of a run that found nothing to do.
func (r *Report) upToDate(ref, digest, out string) {
	r.mu.Lock()
	r.image = &imageFacts{Ref: ref, Digest: digest}
	r.fresh = out
	r.mu.Unlock()
}

func (r *Report) printSummary() {
	var b strings.Builder
	if r.fresh != "" {
		fmt.Fprintf(&b, "%s\n", r.colour("1;32", "---- up to date "+strings.Repeat("-", 55)))
		fmt.Fprintf(&b, "nothing changed since the build in %s (same program, flags, commit and files): nothing ran; --force rebuilds\n", r.fresh)
	} else {
		fmt.Fprintf(&b, "%s\n", r.colour("1;32", "---- build succeeded "+strings.Repeat("-", 50)))
	}
	r.printSteps(&b)
	if im := r.image; im != nil {
		if im.Ref != "" {
			fmt.Fprintf(&b, "image    %s\n", im.Ref)
		} else {
			fmt.Fprintf(&b, "digest   %s\n", im.Digest)
		}
		if len(im.Platforms) > 0 {
			fmt.Fprintf(&b, "index    %d platforms (an OCI image index: each instance pulls its own)\n", len(im.Platforms))
			for _, pl := range im.Platforms {
				how := "native"
				if pl.Emulated {
					how = "built and smoke-tested under emulation"
				}
				fmt.Fprintf(&b, "  %-12s %s  %s (%s)\n", pl.Platform, pl.Digest, humanBytes(pl.Size), how)
			}
		} else if im.Size > 0 {
			fmt.Fprintf(&b, "size     %s (%d layers, compressed: what a pull downloads)\n", humanBytes(im.Size), im.Layers)
		}
		if im.Build != "" {
			repro := "not reproducible: the engine stamps its own times"
			if im.Reproducible {
				repro = "reproducible: the same commit gives the same digest"
			}
			fmt.Fprintf(&b, "built    %s (%s)\n", im.Build, repro)
		}
		if s := im.Smoke; s != nil {
			fmt.Fprintf(&b, "smoke    %s\n", s.Answer)
			user := "user " + s.User
			if s.Root {
				user = r.colour("33", "runs as root (warning: add USER to the Dockerfile; require-non-root makes it fail)")
			}
			fmt.Fprintf(&b, "runs as  %s\n", strings.TrimPrefix(user, "user "))
		}
		if im.SBOM != nil {
			how := "syft" // how it was made: "syft (whole image: why)", "syft, incremental (...)", "syft, memo"
			if im.SBOMHow != "" {
				how = im.SBOMHow
				if !strings.HasPrefix(how, "syft") {
					how = "syft, " + how
				}
			}
			fmt.Fprintf(&b, "sbom     %s (CycloneDX, %s)\n", packageCounts(im.SBOM), how)
			if im.Signed != "" {
				fmt.Fprintf(&b, "signed   %s (signature, SLSA provenance and SBOM attached)\n", im.Signed)
			} else {
				fmt.Fprintf(&b, "signed   %s\n", r.colour("33", "NO: no signing key; instances refuse this image unless VERIFY_IMAGE=off"))
			}
		}
	}
	_, _ = r.Write([]byte(b.String()))
}

func (r *Report) printFailure(err error) {
	f := r.failure
	var b strings.Builder
	title := "---- build failed "
	if f != nil {
		title += "in " + f.Step + " "
	}
	fmt.Fprintf(&b, "%s\n", r.colour("1;31", title+strings.Repeat("-", max(10, 68-len(title)))))
	if f != nil {
		if f.Cmd != "" {
			fmt.Fprintf(&b, "command  %s\n", f.Cmd)
		}
		if f.Exit >= 0 {
			fmt.Fprintf(&b, "exit     %d\n", f.Exit)
		}
		if len(f.Output) > 0 {
			fmt.Fprintf(&b, "output\n")
			for _, l := range clip(f.Output, 160) {
				fmt.Fprintf(&b, "  | %s\n", l)
			}
		}
	}
	if len(r.steps) > 0 {
		fmt.Fprintf(&b, "steps\n")
		r.printSteps(&b)
	}
	if r.inv.reports != "" {
		fmt.Fprintf(&b, "reports  %s (JUnit XML: flake8.xml, pytest.xml)\n", r.inv.reports)
	}
	if f != nil {
		for _, l := range r.inv.hints(f.Step) {
			fmt.Fprintln(&b, l)
		}
	}
	_, _ = r.Write([]byte(b.String()))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// packageCounts is "8 pypi, 41 deb" (by count, then name).
func packageCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] < m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	if len(parts) == 0 {
		return "no packages found"
	}
	return strings.Join(parts, ", ")
}
