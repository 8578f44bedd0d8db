package codedeploy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/acme/webapp-pipeline/dev/devenv"
)

// The watch's retries (scripts/proxy.sh's config, the real haproxy): with prev pointed at the
// previous version, a GET the new version answers 500 is answered by the previous one and counted
// for the new one (errors_of, so the watch still sees it); a POST reaches the new version once
// and is never retried; once prev is in maint, nothing is retried.
func TestProxyRetriesOnlyGETOnPrevDuringTheWatch(t *testing.T) {
	for _, bin := range []string{"haproxy", "socat"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not on PATH: run the tests in the dev environment (bash dev/with-env.sh)", bin)
		}
	}
	root, err := devenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var newGets, newPosts, oldGets, oldPosts atomic.Int32
	newer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			newPosts.Add(1)
		} else {
			newGets.Add(1)
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer newer.Close()
	older := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			oldPosts.Add(1)
		} else {
			oldGets.Add(1)
		}
		fmt.Fprint(w, "old")
	}))
	defer older.Close()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	portOf := func(s *httptest.Server) string { _, p, _ := net.SplitHostPort(s.Listener.Addr().String()); return p }
	dir := t.TempDir()
	sh := func(cmds string) string {
		t.Helper()
		cmd := exec.Command("bash", "-c", `set -euo pipefail
log() { echo "$*" >&2; }; die() { echo "die: $*" >&2; exit 1; }; is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
source "$ROOT/scripts/proxy.sh"
proxy_settings
`+cmds)
		cmd.Env = append(cmd.Environ(), "ROOT="+root, "STATE_DIR="+dir, "CONTAINER_NAME=app", "HOST_PORT="+fmt.Sprint(port), "BACKEND_IP=127.0.0.1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", cmds, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// s1 serves the old version; the switch as proxy_validate does it: prev = old, s2 = new, s1 drains
	sh("write_proxy_config s1 " + portOf(older) + `; haproxy -D -f "$SD/proxy.cfg"`)
	t.Cleanup(func() { sh(`kill "$(cat "$SD/proxy.pid")"`) })
	sh(fmt.Sprintf("api 'set server app/prev addr 127.0.0.1 port %s; set server app/prev state ready' >/dev/null; "+
		"api 'set server app/s2 addr 127.0.0.1 port %s; set server app/s2 state ready; set server app/s1 state drain' >/dev/null",
		portOf(older), portOf(newer)))
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	do := func(method string) int {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := 0; i < 3; i++ {
		if code := do(http.MethodGet); code != 200 {
			t.Errorf("GET during the watch: %d, want 200 (retried on prev)", code)
		}
	}
	if code := do(http.MethodPost); code != 500 {
		t.Errorf("POST during the watch: %d, want the new version's 500 (never retried)", code)
	}
	if n, o := newPosts.Load(), oldPosts.Load(); n != 1 || o != 0 {
		t.Errorf("the POST reached the new version %d times and the old %d times, want 1 and 0", n, o)
	}
	if n, o := newGets.Load(), oldGets.Load(); n != 3 || o != 3 {
		t.Errorf("GETs: new %d, old %d, want 3 and 3 (each failed once, then answered by prev)", n, o)
	}
	if got := sh("errors_of s2"); got != "4" {
		t.Errorf("errors_of s2 = %s, want 4 (3 retried GETs + 1 POST answered 500): the watch must see them", got)
	}
	// the watch passed: prev leaves; a GET the new version fails reaches the client
	sh("api 'set server app/prev state maint' >/dev/null")
	if code := do(http.MethodGet); code != 500 {
		t.Errorf("GET after the watch: %d, want 500 (no retry onto a version about to stop)", code)
	}
}
