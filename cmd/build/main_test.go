package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/help/*.txt")

// TestHelp golden-tests the --help output of the root and every command.
func TestHelp(t *testing.T) {
	t.Setenv("COLUMNS", "80") // kong wraps help to the terminal width
	for _, cmd := range []string{"", "lint", "test", "image", "publish", "check", "all", "shell", "reproduce"} {
		name := cmd
		if name == "" {
			name = "root"
		}
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			var cli CLI
			parser, err := newParser(&cli, &buf, func(int) {})
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"--help"}
			if cmd != "" {
				args = []string{cmd, "--help"}
			}
			_, _ = parser.Parse(args) // help printed; the rest of the parse does not matter
			golden := filepath.Join("..", "..", "testdata", "help", name+".txt")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/build -run TestHelp -update)", err)
			}
			if buf.String() != string(want) {
				t.Errorf("help differs from %s (run with -update if intended):\n%s", golden, buf.String())
			}
		})
	}
}

func TestPublishFlagsValidate(t *testing.T) {
	t.Parallel()
	ok := PublishFlags{ImageRepo: "127.0.0.1:5001/webapp", RegistryUsernameParam: "/u", RegistryPasswordParam: "/p"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		mod  func(*PublishFlags)
		want string
	}{
		"no repo":     {func(f *PublishFlags) { f.ImageRepo = "" }, "--image-repo"},
		"tagged repo": {func(f *PublishFlags) { f.ImageRepo = "127.0.0.1:5001/webapp:v1" }, "without tag"},
		"digest repo": {func(f *PublishFlags) { f.ImageRepo = "r/webapp@sha256:00" }, "without tag"},
		"no user":     {func(f *PublishFlags) { f.RegistryUsernameParam = "" }, "BUILD_REGISTRY_USERNAME_PARAM"},
		"no password": {func(f *PublishFlags) { f.RegistryPasswordParam = "" }, "BUILD_REGISTRY_PASSWORD_PARAM"},
	} {
		f := ok
		tt.mod(&f)
		if err := f.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want mention of %s", name, err, tt.want)
		}
	}
}

func TestRevisionResolve(t *testing.T) {
	t.Parallel()
	f := RevisionFlags{}
	if err := f.resolve(t.Context(), t.TempDir()); err != nil || f.Revision != "dev" {
		t.Errorf("no git: revision %q, %v", f.Revision, err)
	}
	f = RevisionFlags{Revision: "feature/x"}
	if err := f.resolve(t.Context(), "."); err == nil {
		t.Error("revision with / accepted as a tag")
	}
}

func TestPytestError(t *testing.T) {
	t.Parallel()
	report := []byte(`<testsuites><testsuite name="pytest"><testcase classname="tests.test_app" name="test_a"><failure message="x"/></testcase><testcase classname="tests.test_app" name="test_b"/></testsuite></testsuites>`)
	err := pytestError(1, report)
	if err == nil || !strings.Contains(err.Error(), "tests.test_app::test_a") || strings.Contains(err.Error(), "test_b") {
		t.Errorf("pytestError = %v", err)
	}
	if err := pytestError(5, nil); !strings.Contains(err.Error(), "no tests") {
		t.Errorf("exit 5: %v", err)
	}
	if err := pytestError(1, nil); !strings.Contains(err.Error(), "exited 1") {
		t.Errorf("no report: %v", err)
	}
}

func TestPublishError(t *testing.T) {
	t.Parallel()
	pf := PublishFlags{ImageRepo: "127.0.0.1:5001/webapp", RegistryUsernameParam: "/u", RegistryPasswordParam: "/p"}
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

func TestEngineUnreachable(t *testing.T) {
	t.Setenv("_EXPERIMENTAL_DAGGER_RUNNER_HOST", "unix:///nonexistent/engine.sock")
	var out, errb bytes.Buffer
	err := run([]string{"lint", "--source", filepath.Join("..", "..", "testdata", "apps", "hello")}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "sudo dev/env.sh up") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line saying how to start an engine", err)
	}
}

func TestNoAppDir(t *testing.T) {
	var out, errb bytes.Buffer
	err := run([]string{"lint", "--source", t.TempDir()}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "no app/ directory") {
		t.Fatalf("err = %v", err)
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
