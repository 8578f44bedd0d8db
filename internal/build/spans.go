package build

import (
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"

	"dagger.io/dagger"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Whether a step's commands ran or were served from the engine's cache is
// known for sure only from the engine's own spans: each command the engine
// runs is a span named after its arguments, and one it loads from its cache
// carries dagger.io/dag.cached (a command deeper in a cached chain has no
// span at all). The session's progress output cannot say it: a call's
// CACHED/DONE there is the API call's, printed before its commands run, and
// a cached command is often shown DONE (measured: 1 run in 5 of a code-only
// change showed pip "DONE [0.0s]").
//
// The `dagger session` process the SDK starts exports its spans to an OTLP
// endpoint when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (the OpenTelemetry
// convention Dagger follows), so the build serves one on loopback for the
// session's life. The OTLP types are the OpenTelemetry project's own
// (go.opentelemetry.io/proto/otlp); the receiver is this small because it
// needs one field and one attribute of each span, which is why it is not
// an OpenTelemetry Collector.

// dockerRunRe is a Dockerfile RUN instruction as BuildKit names its command
// ("[2/5] RUN pip install ...", "[build 3/6] RUN ...").
var dockerRunRe = regexp.MustCompile(`^\[(?:[\w.-]+ )?\d+/\d+\] RUN `)

// cachedAttr is the attribute the engine sets on a command it loaded from its cache.
const cachedAttr = "dagger.io/dag.cached"

// spanReceiver is the loopback OTLP/HTTP endpoint the session's spans go to.
type spanReceiver struct {
	ln  net.Listener
	srv *http.Server
}

// receiveSpans starts the endpoint and returns the options that point the
// session at it. When the user's environment already sends traces somewhere
// (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT), it is left alone and the summary
// says nothing about the cache.
func (e *engineEvents) receiveSpans() (*spanReceiver, []dagger.ClientOpt) {
	if os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil // the summary then says nothing about the cache; the build does not depend on it
	}
	r := &spanReceiver{ln: ln, srv: &http.Server{Handler: http.HandlerFunc(e.serveTraces)}}
	go func() { _ = r.srv.Serve(ln) }()
	return r, []dagger.ClientOpt{
		dagger.WithEnvironmentVariable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+ln.Addr().String()+"/v1/traces"),
		dagger.WithEnvironmentVariable("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
	}
}

// stop closes the endpoint; the session has flushed its spans when it closed.
func (r *spanReceiver) stop() {
	if r != nil {
		_ = r.srv.Close()
	}
}

// serveTraces takes one OTLP/HTTP export request (binary protobuf, maybe gzip).
func (e *engineEvents) serveTraces(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	var export coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &export)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, rs := range export.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				cached := false
				for _, a := range s.Attributes {
					if a.Key == cachedAttr && a.Value.GetBoolValue() {
						cached = true
					}
				}
				e.command(s.Name, cached)
			}
		}
	}
	resp, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(resp)
}

// command records one span: if it is one of a step's commands, whether the
// engine ran it or loaded it from its cache.
func (e *engineEvents) command(name string, cached bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.spans = true
	for _, step := range e.execSteps(name) {
		c := e.execs[step]
		if c == nil {
			c = &execCount{}
			e.execs[step] = c
		}
		if cached {
			c.cached++
		} else {
			c.ran++
		}
	}
}

// execSteps says which steps a command belongs to (execStep): one, or both
// deps and image for the runtime pip install of an app with no dev
// requirements files, whose lint/test install is that same command.
func (e *engineEvents) execSteps(name string) []string {
	step := e.execStep(name)
	switch {
	case step == "":
		return nil
	case step == "image" && len(e.devFiles) == 0 && strings.HasPrefix(name, "pip install ") && !strings.Contains(name, "runtime-requirements"):
		return []string{"deps", "image"}
	}
	return []string{step}
}

// execStep says which step a command (a span named after the command's
// arguments, joined by spaces) belongs to: the contract's lint and test
// commands, the dependency installs, ci/'s image tools, a Dockerfile's RUN
// instructions. The runtime install (the image) names no dev file: no dev
// requirements file (the contract's), no dev-requirements (pyproject), no
// dev groups (uv: --no-dev).
func (e *engineEvents) execStep(name string) string {
	pydeps := strings.Contains(name, "/ci/pydeps.py ")
	pip := strings.HasPrefix(name, "pip install ")
	devFile := strings.Contains(name, "dev-requirements")
	fields := strings.Fields(name)
	for i := 1; i < len(fields); i++ {
		if fields[i-1] == "-r" && slices.Contains(e.devFiles, fields[i]) {
			devFile = true
		}
	}
	runtime := pip && !devFile || strings.Contains(name, " --no-dev") || pydeps && !strings.Contains(name, " --dev")
	install := pip || strings.Contains(name, "/uv sync ") || pydeps
	switch {
	case name == "":
		return ""
	case name == e.lintCall:
		return "lint"
	case name == e.testCall:
		return "test"
	case install && !runtime:
		return "deps"
	case install, strings.Contains(name, "/ci/"), strings.Contains(name, " && python -m compileall "),
		dockerRunRe.MatchString(name):
		return "image" // the runtime venv, ci/'s image tools (slim.py, oci.py), a Dockerfile's RUN
	}
	return ""
}
