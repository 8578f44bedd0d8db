package build

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The progress lines of a crashed smoke-test container, as the engine's
// plain output gave them (colours and all): the service's span ends before
// the line it printed arrives. CI once lost that line (`the container printed
// nothing`), as the ring stopped waiting at the span's end.
const (
	svcCall = "\x1b[95m55  : \x1b[0m\x1b[90;2m\x1b[0mContainer.\x1b[1masService\x1b[0m(\x1b[36museEntrypoint: \x1b[0m\x1b[31mtrue\x1b[0m)\x1b[2m: Service!\x1b[0m\n"
	svcDone = "\x1b[95m55  : \x1b[0m\x1b[90;2m\x1b[0mContainer.\x1b[1masService\x1b[0m\x1b[32m DONE\x1b[0m\x1b[90m [0.4s]\x1b[0m\n"
	svcLine = "\x1b[95m55  : \x1b[0m\x1b[90;2m\x1b[0m\x1b[90m[0.2s] \x1b[0m\x1b[90m|\x1b[0m fork/exec /srv/venv/bin/gunicorn: no such file or directory\n"
)

func TestServiceLinesTrailTheSpanEnd(t *testing.T) {
	t.Parallel()
	// at the top level, and nested under another call as a later run printed it
	nest := strings.NewReplacer("\x1b[90;2m\x1b[0m", "\x1b[90;2m┆ \x1b[0m")
	for name, lines := range map[string][3]string{
		"top":    {svcCall, svcDone, svcLine},
		"nested": {nest.Replace(svcCall), nest.Replace(svcDone), nest.Replace(svcLine)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ev := newEngineEvents(nil, nil, nil)
			p := ev.parser(nil)
			_, _ = io.WriteString(p, lines[0]+lines[1])
			go func() {
				time.Sleep(endGrace / 4)
				_, _ = io.WriteString(p, lines[2])
			}()
			got := ev.service.wait(10 * time.Second).tail(15)
			if len(got) != 1 || !strings.Contains(got[0], "fork/exec /srv/venv/bin/gunicorn: no such file") {
				t.Errorf("service lines = %q; want the line that came after the span's end", got)
			}
		})
	}
}

func TestServiceWaitEndsWhenNothingCame(t *testing.T) {
	t.Parallel()
	ev := newEngineEvents(nil, nil, nil)
	p := ev.parser(nil)
	_, _ = io.WriteString(p, svcCall+svcDone)
	done := make(chan []string)
	go func() { done <- ev.service.wait(time.Minute).last(15) }()
	select {
	case got := <-done:
		if len(got) != 1 || got[0] != "(the container printed nothing)" {
			t.Errorf("last = %q", got)
		}
	case <-time.After(30 * time.Second): // far beyond endGrace: the wait did not see the span end
		t.Fatal("wait did not return after the service's span ended with no line")
	}
}

// A failed Dockerfile RUN: its ERROR line may come before what it printed.
func TestRunLinesTrailTheStepEnd(t *testing.T) {
	t.Parallel()
	const (
		nest = "\x1b[95m44  : \x1b[0m\x1b[90;2m┆ ┆ \x1b[0m"
		run  = "RUN python3 -m venv /srv/venv && /srv/venv/bin/pip install -r requirements.txt no-such-package-xyz==9.9"
	)
	ev := newEngineEvents(nil, nil, nil)
	p := ev.parser(nil)
	_, _ = io.WriteString(p, nest+"[4/5] "+run+"\n"+nest+"[4/5] "+run+"\x1b[31m ERROR\x1b[0m\x1b[90m [3.8s]\x1b[0m\n")
	go func() {
		time.Sleep(endGrace / 4)
		_, _ = io.WriteString(p, nest+"\x1b[90m[3.5s] \x1b[0m\x1b[90m|\x1b[0m ERROR: No matching distribution found for no-such-package-xyz==9.9\n")
	}()
	got := ev.dockerSteps.wait(run, 10*time.Second).of(run, 15)
	if len(got) != 1 || !strings.Contains(got[0], "No matching distribution") {
		t.Errorf("RUN lines = %q; want the line that came after the step's ERROR", got)
	}
}

// A step is "ran" when the engine ran one of its commands, "cached" when it
// loaded them all from its cache or has no span at all (deep in a cached
// chain); the spans come over OTLP/HTTP as the session exports them, and
// commands are told apart by the contract's lint and test commands.
func TestCacheStatusFromTheEngineSpans(t *testing.T) {
	t.Parallel()
	ev := newEngineEvents([]string{"flake8", "."}, []string{"python", "-m", "pytest"}, []string{"requirements-dev.txt"})
	if got := ev.cacheStatus("lint"); got != "" {
		t.Errorf("before any span: %q, want unknown", got)
	}
	r, opts := ev.receiveSpans()
	defer r.stop()
	if r == nil || len(opts) != 2 {
		t.Fatalf("no receiver (OTEL_EXPORTER_OTLP_ENDPOINT set here?)")
	}
	span := func(name string, cached bool) *tracev1.Span {
		s := &tracev1.Span{Name: name}
		if cached {
			s.Attributes = []*commonv1.KeyValue{{Key: cachedAttr, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: true}}}}
		}
		return s
	}
	body, err := proto.Marshal(&coltrace.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{
		span("Container.withExec", false), // an API call, not a command
		span("flake8 .", true),
		span("python -m pytest", false),
		span("pip install --no-compile -r requirements.txt -r requirements-dev.txt", true),
		span("pip install --no-compile -r requirements.txt", false),
	}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+r.ln.Addr().String()+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %s", resp.Status)
	}
	for step, want := range map[string]string{"lint": "cached", "test": "ran", "deps": "cached", "image": "ran", "smoke": ""} {
		if got := ev.cacheStatus(step); got != want {
			t.Errorf("%s: %q, want %q", step, got, want)
		}
	}
	var none *engineEvents
	if got := none.cacheStatus("lint"); got != "" {
		t.Errorf("no session: %q", got)
	}
}

// The engine names a command after its arguments; each kind goes to its step.
func TestExecStep(t *testing.T) {
	t.Parallel()
	ev := newEngineEvents([]string{"ruff", "check"}, []string{"tox"}, []string{"requirements-dev.txt", "test-requirements.txt"})
	for name, want := range map[string]string{
		"ruff check": "lint",
		"tox":        "test",
		"pip install --no-compile -r requirements.txt -r requirements-dev.txt":            "deps",
		"pip install --no-compile -r test-requirements.txt":                               "deps", // hash-pinned: a pip per file
		"pip install --no-compile -r requirements.txt":                                    "image",
		"python3 /ci/pydeps.py pyproject.toml --dev":                                      "deps",
		"python3 /ci/pydeps.py pyproject.toml":                                            "image",
		"pip install --no-compile -r /tmp/dev-requirements.txt":                           "deps",
		"pip install --no-compile -r /tmp/runtime-requirements.txt":                       "image",
		"/opt/tools/bin/uv sync --frozen --no-install-project --all-groups --all-extras":  "deps",
		"/opt/tools/bin/uv sync --frozen --no-install-project --no-dev":                   "image",
		"python3 /ci/oci.py layer /opt/venv":                                              "image",
		`sh -c rm -rf "$0"/bin/pip && python -m compileall -f -q /opt/venv/lib /opt/venv`: "image",
		"[builder 2/5] RUN pip install -r requirements.txt":                               "image",
		"[3/4] RUN apt-get update":                                                        "image",
		"python3 -m venv /opt/venv":                                                       "",
		"/opt/tools/bin/pip install uv==0.9.0":                                            "",
		"Container.withExec":                                                              "",
	} {
		if got := strings.Join(ev.execSteps(name), ","); got != want {
			t.Errorf("execSteps(%q) = %q, want %q", name, got, want)
		}
	}
	// No dev files: lint/test tools come with the runtime ones, and the two
	// installs are the same command.
	none := newEngineEvents([]string{"ruff", "check"}, []string{"tox"}, nil)
	if got := strings.Join(none.execSteps("pip install --no-compile -r requirements.txt"), ","); got != "deps,image" {
		t.Errorf("no dev files: %q, want deps,image", got)
	}
	if got := strings.Join(none.execSteps("pip install --no-compile -r /tmp/runtime-requirements.txt"), ","); got != "image" {
		t.Errorf("pyproject's runtime install: %q, want image", got)
	}
}
