package build

import (
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// engineEvents is what the build learns from the engine's events: from its
// spans (spans.go), which of each step's commands the engine ran or served
// from its cache; from the session's plain progress output (what --verbose
// shows), what the smoke test's container printed and what each Dockerfile
// instruction printed. The steps read the logs, the report the cache counts.
type engineEvents struct {
	mu                 sync.Mutex
	spans              bool                  // the engine's spans came (spans.go)
	execs              map[string]*execCount // step → its commands' cache status
	lintCall, testCall string                // the contract's commands, as the engine names them: "flake8 ."
	devFiles           []string              // the contract's dev requirements files (execSteps)

	service     lineRing // what the smoke test's container printed
	dockerSteps stepLogs // what each Dockerfile instruction printed
}

// execCount counts a step's own commands that the engine ran vs served from cache.
type execCount struct{ ran, cached int }

// newEngineEvents is the record of one session of a build whose contract
// runs lint and test, and names devFiles (requirements files of lint/test tools).
func newEngineEvents(lint, test, devFiles []string) *engineEvents {
	return &engineEvents{execs: map[string]*execCount{}, lintCall: strings.Join(lint, " "), testCall: strings.Join(test, " "), devFiles: devFiles}
}

// commandSteps are the steps that run commands of their own (execSteps).
var commandSteps = map[string]bool{"deps": true, "lint": true, "test": true, "image": true}

// cacheStatus is "ran" when the engine ran at least one of the step's own
// commands, "cached" when it ran none (it loaded them from its cache), ""
// when unknown: a step without commands of its own, no spans (the user's
// OTEL endpoint, `dagger run`), or e is nil (no session).
func (e *engineEvents) cacheStatus(step string) string {
	if e == nil || !commandSteps[step] {
		return ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch c := e.execs[step]; {
	case !e.spans:
		return ""
	case c != nil && c.ran > 0:
		return "ran"
	default:
		return "cached" // a command deep in a cached chain has no span at all
	}
}

// progressParser reads the engine session's plain progress output (what
// --verbose shows) for the smoke test's and the Dockerfile steps' logs.
// Lines look like `24  : Container.asService: Service!` then
// `24  : [0.3s] | listening`; a call may span lines.
type progressParser struct {
	mu   sync.Mutex // the SDK writes from more than one goroutine (the CLI session's and its own)
	ev   *engineEvents
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
)

// parser is the writer the engine session's progress output goes to; tee,
// when not nil, gets it too (--verbose).
func (e *engineEvents) parser(tee io.Writer) *progressParser {
	return &progressParser{ev: e, tee: tee, span: map[string]string{}, dockerStep: map[string]string{}}
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
			p.ev.dockerSteps.end(p.dockerStep[id])
		}
	} else if l := logLineRe.FindStringSubmatch(nested); l != nil && nested != text && p.dockerStep[id] != "" {
		p.ev.dockerSteps.add(p.dockerStep[id], l[1])
	}
	// The smoke test's container (the only service a build runs); its call
	// may be nested under another (`┆ Container.asService`).
	if strings.Contains(p.span[id], "asService") {
		if l := logLineRe.FindStringSubmatch(nested); l != nil {
			p.ev.service.add(l[1])
		} else if serviceEndRe.MatchString(nested) {
			p.ev.service.end()
		}
	}
	if s := p.span[id]; len(s) < 4096 {
		p.span[id] = s + text + "\n"
	}
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
