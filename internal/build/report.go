package build

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
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
	execs   map[string]*execCount // step → its commands' cache status, from the engine's progress
	failure *stepFailure
	image   *imageFacts
	fresh   string // the out dir, when it was already up to date
	inv     invocation
	running []liveStep // steps in progress (terminal only)

	lintCall, testCall string // the contract's commands, as the progress output shows them

	serviceLogs lineRing // what the smoke test's container printed (from the engine's progress)
	buildLogs   stepLogs // what each Dockerfile instruction printed
	spinning    bool     // the live-line goroutine is running
}

type stepRecord struct {
	name string
	d    time.Duration
	ok   bool
}

// execCount counts a step's own commands that the engine ran vs served from cache.
type execCount struct{ ran, cached int }

// imageFacts describe the pushed (or reproduced) image.
type imageFacts struct {
	Ref    string // repo@sha256:... (pushed) or "" when only built
	Digest string // manifest digest
	Size   int64  // config + compressed layers: what a pull downloads
	Layers int

	Build        string      // dockerfile or native ("" when not known: up to date)
	Reproducible bool        // the same commit gives the same digest
	Smoke        *smokeFacts // what the smoke test saw

	SBOM    map[string]int // the SBOM's components by package URL type
	SBOMHow string         // how it was made: syft on the whole image, memo, incremental
	Signed  string         // the key the instances verify it with; "" = unsigned
}

// invocation is how this run was started: what the re-run commands need.
type invocation struct {
	source    string // --source ("." by default)
	baseImage string // --base-image
	revision  string // the commit, when known
	reports   string // where the JUnit reports of a failed run went
	reproduce bool   // the run was `reproduce <commit>`: re-runs are reproduce commands
}

// stepRank orders steps as the pipeline does, whichever finished first.
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
	return &Report{w: w, tty: isTerminal(w), execs: map[string]*execCount{}}
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

// cacheStatus is "cached" when the engine served every one of the step's own
// commands from its cache, "ran" when it ran at least one, "" when unknown.
func (r *Report) cacheStatus(step string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.execs[step]
	switch {
	case c == nil:
		return ""
	case c.ran > 0:
		return "ran"
	default:
		return "cached"
	}
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
		if im.Size > 0 {
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

// hints are the commands that re-run only the failed step here, open a shell
// in its container, and rebuild it from the commit anywhere.
func (inv invocation) hints(step string) []string {
	var flags string
	if inv.source != "" && inv.source != "." {
		flags += " --source " + shellQuote(inv.source)
	}
	if inv.baseImage != "" && inv.baseImage != defaultBaseImage {
		flags += " --base-image " + shellQuote(inv.baseImage)
	}
	const prog = "go run ./cmd/build "
	var h []string
	if inv.reproduce {
		switch step {
		case "deps", "lint", "test", "image":
			h = append(h, "re-run   "+prog+"reproduce "+inv.revision+" --step "+reproStep(step)+baseFlag(inv.baseImage))
			h = append(h, "shell    git worktree add /tmp/"+inv.revision[:12]+" "+inv.revision+" && "+prog+"shell --step "+step+" --source /tmp/"+inv.revision[:12]+baseFlag(inv.baseImage))
		}
		return h
	}
	switch step {
	case "deps":
		h = append(h, "re-run   "+prog+"lint"+flags+"   (installs the requirements, then flake8)")
	case "lint", "test":
		h = append(h, "re-run   "+prog+step+flags)
	case "image":
		h = append(h, "re-run   "+prog+"image"+flags+revFlag(inv.revision))
	case "check":
		h = append(h, "re-run   "+prog+"all"+flags+"   (check runs on the bundle that all builds)")
	case "publish":
		h = append(h, "re-run   "+prog+"publish"+flags+revFlag(inv.revision)+"   (lint, test and image are cached: only the push runs)")
	}
	switch step {
	case "deps", "lint", "test", "image":
		h = append(h, "shell    "+prog+"shell --step "+step+flags+revFlagIf(step == "image", inv.revision))
		if isCommit(inv.revision) {
			h = append(h, "commit   "+prog+"reproduce "+inv.revision+" --step "+reproStep(step)+baseFlag(inv.baseImage)+"   (from any clone, working tree untouched)")
		}
	}
	return h
}

func reproStep(step string) string {
	if step == "deps" {
		return "lint"
	}
	return step
}

func revFlag(rev string) string {
	if rev == "" || rev == "dev" {
		return ""
	}
	return " --revision " + rev
}

func revFlagIf(ok bool, rev string) string {
	if !ok {
		return ""
	}
	return revFlag(rev)
}

func baseFlag(img string) string {
	if img == "" || img == defaultBaseImage {
		return ""
	}
	return " --base-image " + shellQuote(img)
}

var commitRe = regexp.MustCompile(`^[0-9a-f]{40}$`)

func isCommit(s string) bool { return commitRe.MatchString(s) }

func shellQuote(s string) string {
	if regexp.MustCompile(`^[A-Za-z0-9_./:@=+-]+$`).MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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

// progressParser reads the engine session's plain progress output (what
// --verbose shows) and counts, per step, the commands that ran vs were
// CACHED. Lines look like `24  : Container.withExec(args: [...]): Container!`
// then `24  : Container.withExec CACHED [0.0s]`; a call may span lines.
type progressParser struct {
	mu   sync.Mutex // the SDK writes from more than one goroutine (the CLI session's and its own)
	r    *Report
	tee  io.Writer // --verbose: the raw output also goes here
	buf  []byte
	span map[string]string // span id → the call's text so far

	dockerStep map[string]string // span id → the Dockerfile instruction it is running ("RUN pip install ...")
}

var (
	ansiRe       = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	nestRe       = regexp.MustCompile(`^(┆ )+`)
	dockerStepRe = regexp.MustCompile(`^(\[(?:[\w-]+ )?\d+/\d+\]) (.+?)(?: (DONE|ERROR|CACHED)\b.*)?$`)
	serviceEndRe = regexp.MustCompile(`^Container\.asService (DONE|ERROR)\b`)
	logLineRe    = regexp.MustCompile(`^\[[0-9.]+m?s\] \| ?(.*)$`)
	spanLineRe   = regexp.MustCompile(`^(\d+)\s*: (.*)$`)
	execEndRe    = regexp.MustCompile(`withExec (DONE|CACHED|ERROR)\b`)
)

func newProgressParser(r *Report, tee io.Writer) *progressParser {
	return &progressParser{r: r, tee: tee, span: map[string]string{}, dockerStep: map[string]string{}}
}

func (p *progressParser) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tee != nil {
		_, _ = p.tee.Write(b)
	}
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		p.line(string(p.buf[:i]))
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *progressParser) line(l string) {
	m := spanLineRe.FindStringSubmatch(ansiRe.ReplaceAllString(l, ""))
	if m == nil {
		return
	}
	id, text := m[1], m[2]
	nested := nestRe.ReplaceAllString(text, "")
	if d := dockerStepRe.FindStringSubmatch(nested); d != nil {
		p.dockerStep[id] = d[1] + " " + d[2] // the stage and step number too: the same RUN in two stages is two steps
		if d[3] != "" {
			p.r.buildLogs.end(p.dockerStep[id])
		}
	} else if l := logLineRe.FindStringSubmatch(nested); l != nil && nested != text && p.dockerStep[id] != "" {
		p.r.buildLogs.add(p.dockerStep[id], l[1])
	}
	// The smoke test's container (the only service a build runs); its call
	// may be nested under another (`┆ Container.asService`).
	if strings.Contains(p.span[id], "asService") {
		if l := logLineRe.FindStringSubmatch(nested); l != nil {
			p.r.serviceLogs.add(l[1])
		} else if serviceEndRe.MatchString(nested) {
			p.r.serviceLogs.end()
		}
	}
	if e := execEndRe.FindStringSubmatch(text); e != nil {
		step := p.r.execStep(p.span[id])
		delete(p.span, id)
		if step == "" {
			return
		}
		p.r.mu.Lock()
		c := p.r.execs[step]
		if c == nil {
			c = &execCount{}
			p.r.execs[step] = c
		}
		if e[1] == "CACHED" {
			c.cached++
		} else {
			c.ran++
		}
		p.r.mu.Unlock()
		return
	}
	if s := p.span[id]; len(s) < 4096 {
		p.span[id] = s + text + "\n"
	}
}

// execStep says which step a withExec call belongs to, from its arguments:
// the contract's lint and test commands as the engine prints them, the
// dependency installs (the runtime one, for the image, carries --no-compile,
// --no-dev or runtime-requirements), ci/'s image tools.
func (r *Report) execStep(call string) string {
	r.mu.Lock()
	lint, test := r.lintCall, r.testCall
	r.mu.Unlock()
	runtime := strings.Contains(call, `"--no-compile"`) || strings.Contains(call, `"--no-dev"`) || strings.Contains(call, "runtime-requirements")
	install := strings.Contains(call, `"pip", "install"`) || strings.Contains(call, `/uv", "sync"`) || strings.Contains(call, "pydeps.py")
	switch {
	case !strings.Contains(call, "withExec"):
		return ""
	case lint != "" && strings.Contains(call, lint):
		return "lint"
	case test != "" && strings.Contains(call, test):
		return "test"
	case install && !runtime:
		return "deps"
	case install, strings.Contains(call, `"/ci/`), strings.Contains(call, `pip uninstall -q -y pip && python -m compileall`):
		return "image" // the runtime venv and ci/'s image tools (slim.py, oci.py)
	}
	return ""
}

// setCommands tells the progress parser the contract's lint and test
// commands, as the engine prints a withExec's args: ["flake8", "."].
func (r *Report) setCommands(lint, test []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lintCall, r.testCall = quotedArgs(lint), quotedArgs(test)
}

func quotedArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// lineRing keeps the last lines written to it.
type lineRing struct {
	mu      sync.Mutex
	lines   []string
	endedAt time.Time // when the service's span ended (DONE or ERROR); zero while it runs
	lastAt  time.Time // when the last line came
}

const ringSize = 200

func (r *lineRing) add(l string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines, r.lastAt = append(r.lines, strings.TrimRight(l, " \r")), time.Now()
	if len(r.lines) > ringSize {
		r.lines = r.lines[len(r.lines)-ringSize:]
	}
}

func (r *lineRing) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines, r.endedAt = nil, time.Time{}
}

// endGrace is how long lines may trail the end of their span: the engine
// exports spans and logs as separate streams, so a crashed container's
// `Container.asService DONE` can come before what it printed. Only failures
// wait for it.
const endGrace = 2 * time.Second

// settled: no line for half a second (or none at all), and endGrace past the
// span's end if it ended (endedAt not zero).
func settled(endedAt time.Time, lines int, lastAt time.Time) bool {
	ended := !endedAt.IsZero()
	quiet := lines == 0 && ended || lines > 0 && time.Since(lastAt) > 500*time.Millisecond
	return quiet && (!ended || time.Since(endedAt) > endGrace)
}

// wait gives the service's lines up to d to arrive: the engine's progress
// output (its telemetry, exported in batches) trails the results, more so on
// a loaded machine. It returns once they settled: half a second after the
// last line of a service that runs on, or endGrace after the span's end.
func (r *lineRing) wait(d time.Duration) *lineRing {
	pollUntil(d, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return settled(r.endedAt, len(r.lines), r.lastAt)
	})
	return r
}

// pollUntil checks done every 50 ms until it holds, for at most d.
func pollUntil(d time.Duration, done func() bool) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline) && !done(); {
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *lineRing) end() {
	r.mu.Lock()
	r.endedAt = time.Now()
	r.mu.Unlock()
}

// tail are the last n lines, none if nothing was printed.
func (r *lineRing) tail(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), lastN(r.lines, n)...)
}

// last are the last n lines, or one line saying there were none.
func (r *lineRing) last(n int) []string {
	if t := r.tail(n); len(t) > 0 {
		return t
	}
	return []string{"(the container printed nothing)"}
}

// stepLogs keeps the last lines each Dockerfile step printed, keyed by
// "[stage n/m] INSTRUCTION".
type stepLogs struct {
	mu      sync.Mutex
	lines   map[string][]string
	endedAt map[string]time.Time // the steps that ended (DONE, ERROR or CACHED), and when
	lastAt  map[string]time.Time // when the step's last line came
}

func (s *stepLogs) add(step, l string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lines == nil {
		s.lines, s.lastAt = map[string][]string{}, map[string]time.Time{}
	}
	s.lines[step] = lastN(append(s.lines[step], strings.TrimRight(l, " \r")), ringSize)
	s.lastAt[step] = time.Now()
}

func (s *stepLogs) end(step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endedAt == nil {
		s.endedAt = map[string]time.Time{}
	}
	s.endedAt[step] = time.Now()
}

// match is the key of the step running exactly instruction, preferring one
// that has ended (the failed one); "" when none.
func (s *stepLogs) match(instruction string) string {
	var found string
	for k := range s.lines {
		if _, instr, _ := strings.Cut(k, "] "); instr == instruction {
			if _, ended := s.endedAt[k]; found == "" || ended {
				found = k
			}
		}
	}
	for k := range s.endedAt {
		if _, instr, _ := strings.Cut(k, "] "); instr == instruction && found == "" {
			found = k
		}
	}
	return found
}

// wait gives the step's lines up to d to arrive: until the engine's
// progress output says the step ended and its lines settled (they may trail
// the end: see endGrace).
func (s *stepLogs) wait(instruction string, d time.Duration) *stepLogs {
	pollUntil(d, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		k := s.match(instruction)
		ended, ok := s.endedAt[k]
		return ok && settled(ended, len(s.lines[k]), s.lastAt[k])
	})
	return s
}

// of are the last n lines of the step running exactly instruction.
func (s *stepLogs) of(instruction string, n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), lastN(s.lines[s.match(instruction)], n)...)
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
