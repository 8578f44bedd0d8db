package build

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestPytestError(t *testing.T) {
	t.Parallel()
	report := []byte(`<testsuites><testsuite name="pytest"><testcase classname="tests.test_app" name="test_a"><failure message="x"/></testcase><testcase classname="tests.test_app" name="test_b"/></testsuite></testsuites>`)
	err := pytestError(1, report, "app")
	if err == nil || !strings.Contains(err.Error(), "tests.test_app::test_a") || strings.Contains(err.Error(), "test_b") {
		t.Errorf("pytestError = %v", err)
	}
	if err := pytestError(5, nil, "app"); !strings.Contains(err.Error(), "no tests") {
		t.Errorf("exit 5: %v", err)
	}
	if err := pytestError(1, nil, "app"); !strings.Contains(err.Error(), "exited 1") {
		t.Errorf("no report: %v", err)
	}
}

func TestPublishError(t *testing.T) {
	t.Parallel()
	pf := Publish{ImageRepo: "127.0.0.1:5001/webapp", RegistryUsernameParam: "/u", RegistryPasswordParam: "/p"}
	err := publishError("127.0.0.1:5001", pf, errors.New("failed to push: 401 Unauthorized\nmore"))
	if !strings.Contains(err.Error(), "rejected the credentials") || strings.Contains(err.Error(), "\n") {
		t.Errorf("auth error: %q", err)
	}
	if err := publishError("r", pf, errors.New("connection refused")); !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("other error: %v", err)
	}
}

func TestOneLine(t *testing.T) {
	t.Parallel()
	if got := oneLine("a\n\n  b  \nc\n"); got != "a | b | c" {
		t.Errorf("oneLine = %q", got)
	}
}

func TestWriteDirAtomic(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "dist")
	write := func(content string, fail bool) error {
		return writeDirAtomic(out, func(tmp string) error {
			if err := os.WriteFile(filepath.Join(tmp, "f"), []byte(content), 0o644); err != nil {
				return err
			}
			if fail {
				return errors.New("boom")
			}
			return nil
		})
	}
	read := func() string {
		b, _ := os.ReadFile(filepath.Join(out, "f"))
		return string(b)
	}
	if err := write("one", true); err == nil {
		t.Fatal("failing fill reported success")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("failed first write left %s behind", out)
	}
	if err := write("one", false); err != nil || read() != "one" {
		t.Fatalf("first write: %v, content %q", err, read())
	}
	if err := write("two", true); err == nil || read() != "one" {
		t.Fatalf("failed second write changed the dir: %v, content %q", err, read())
	}
	if err := write("three", false); err != nil || read() != "three" {
		t.Fatalf("third write: %v, content %q", err, read())
	}
	left, _ := filepath.Glob(out + ".*")
	if len(left) != 0 {
		t.Errorf("temp dirs left behind: %v", left)
	}
}

// On Linux the out dir is swapped in one step: a reader polling it while it
// is replaced again and again never finds it missing.
func TestWriteDirAtomicNeverMissing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the one-step swap is renameat2, Linux only; elsewhere two renames")
	}
	out := filepath.Join(t.TempDir(), "dist")
	fill := func(tmp string) error { return os.WriteFile(filepath.Join(tmp, "build.json"), []byte("{}"), 0o644) }
	if err := writeDirAtomic(out, fill); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	missing := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				missing <- n
				return
			default:
			}
			if _, err := os.Stat(filepath.Join(out, "build.json")); err != nil {
				n++
			}
		}
	}()
	for range 300 {
		if err := writeDirAtomic(out, fill); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if n := <-missing; n > 0 {
		t.Errorf("%s/build.json was missing %d times while the dir was replaced", out, n)
	}
	if left, _ := filepath.Glob(out + ".*"); len(left) != 0 {
		t.Errorf("temp dirs left behind: %v", left)
	}
}

// A step stopped because another failed is not a failure of its own.
func TestFailures(t *testing.T) {
	lint, test := errors.New("lint failed"), errors.New("tests failed")
	stopped := fmt.Errorf("image: %w", errOtherFailed)
	cases := []struct {
		errs []error
		want []error // errors.Is targets; nil: no error
		not  error
	}{
		{errs: []error{nil, nil}},
		{errs: []error{lint, stopped}, want: []error{lint}, not: errOtherFailed},
		{errs: []error{lint, test}, want: []error{lint, test}},
		{errs: []error{stopped, nil}, want: []error{errOtherFailed}},
	}
	for i, c := range cases {
		err := failures(c.errs...)
		if (err == nil) != (c.want == nil) {
			t.Errorf("case %d: failures = %v", i, err)
			continue
		}
		for _, w := range c.want {
			if !errors.Is(err, w) {
				t.Errorf("case %d: %v is not %v", i, err, w)
			}
		}
		if c.not != nil && errors.Is(err, c.not) {
			t.Errorf("case %d: %v still carries %v", i, err, c.not)
		}
	}
}
