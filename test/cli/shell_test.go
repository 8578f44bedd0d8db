package cli_test

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tmuxSession is a terminal the test types into: its own tmux server (-L), so
// it starts with this test's environment.
type tmuxSession struct {
	t      *testing.T
	socket string
}

func newTmux(t *testing.T, dir string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is needed for the terminal tests: %v", err)
	}
	s := &tmuxSession{t: t, socket: "cli-test-" + randomSuffix()}
	s.tmux("new-session", "-d", "-s", "main", "-x", "200", "-y", "50", "-c", dir, "bash --norc --noprofile")
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	return s
}

func (s *tmuxSession) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (s *tmuxSession) send(line string) {
	s.tmux("send-keys", "-t", "main", "-l", line)
	s.tmux("send-keys", "-t", "main", "Enter")
}

// screen is the pane with its scrollback.
func (s *tmuxSession) screen() string {
	return s.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "main")
}

// waitFor polls the screen until re matches it.
func (s *tmuxSession) waitFor(re string, timeout time.Duration) string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		scr := s.screen()
		if rx.MatchString(scr) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("after %s the terminal shows no %q:\n%s", timeout, re, scr)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestShellOpensInTheFailedStep types `build shell --step test` into a real
// terminal after a test failure, and checks the shell is inside the test
// step's container: the source with the failing test, the installed tools and
// the report pytest wrote.
func TestShellOpensInTheFailedStep(t *testing.T) {
	needEnv(t)
	t.Parallel()
	src := checkout(t)
	breakTest(t, src)
	term := newTmux(t, src)
	term.send("PS1='outer$ '")
	term.send(buildBin + " shell --step test")
	term.waitFor(`(?m)^root@[^ ]*:/src# *$`, 3*time.Minute)

	term.send(`echo "MARK venv=$(ls /opt/venv/bin | grep -cE '^(flake8|pytest)$') test=$(ls tests | grep -c deliberately) report=$(grep -c test_deliberately_broken /tmp/reports/pytest.xml)"`)
	scr := term.waitFor(`MARK venv=\d+ test=\d+ report=\d+`, 30*time.Second)
	m := regexp.MustCompile(`MARK venv=(\d+) test=(\d+) report=(\d+)`).FindStringSubmatch(scr)
	if m[1] != "2" || m[2] != "1" || m[3] == "0" {
		t.Errorf("inside the test container: flake8+pytest=%s (want 2), failing test file=%s (want 1), in report=%s (want >0)\n%s", m[1], m[2], m[3], scr)
	}
	term.send("exit")
	scr = term.waitFor(`(?m)^outer\$ *$`, time.Minute)
	if !strings.Contains(scr, "build: shell in the test container") {
		t.Errorf("no note saying which container the shell was in:\n%s", scr)
	}
	t.Log(fmt.Sprintf("terminal at the end:\n%s", scr))
}
