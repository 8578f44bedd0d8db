package build

import (
	"io"
	"strings"
	"testing"
	"time"
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
			r := NewReport(io.Discard)
			p := newProgressParser(r, nil)
			_, _ = io.WriteString(p, lines[0]+lines[1])
			go func() {
				time.Sleep(endGrace / 4)
				_, _ = io.WriteString(p, lines[2])
			}()
			got := r.serviceLogs.wait(10 * time.Second).tail(15)
			if len(got) != 1 || !strings.Contains(got[0], "fork/exec /srv/venv/bin/gunicorn: no such file") {
				t.Errorf("service lines = %q; want the line that came after the span's end", got)
			}
		})
	}
}

func TestServiceWaitEndsWhenNothingCame(t *testing.T) {
	t.Parallel()
	r := NewReport(io.Discard)
	p := newProgressParser(r, nil)
	_, _ = io.WriteString(p, svcCall+svcDone)
	done := make(chan []string)
	go func() { done <- r.serviceLogs.wait(time.Minute).last(15) }()
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
	r := NewReport(io.Discard)
	p := newProgressParser(r, nil)
	_, _ = io.WriteString(p, nest+"[4/5] "+run+"\n"+nest+"[4/5] "+run+"\x1b[31m ERROR\x1b[0m\x1b[90m [3.8s]\x1b[0m\n")
	go func() {
		time.Sleep(endGrace / 4)
		_, _ = io.WriteString(p, nest+"\x1b[90m[3.5s] \x1b[0m\x1b[90m|\x1b[0m ERROR: No matching distribution found for no-such-package-xyz==9.9\n")
	}()
	got := r.buildLogs.wait(run, 10*time.Second).of(run, 15)
	if len(got) != 1 || !strings.Contains(got[0], "No matching distribution") {
		t.Errorf("RUN lines = %q; want the line that came after the step's ERROR", got)
	}
}
