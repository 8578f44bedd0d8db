package pipeline_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/dev/devtest"
)

// TestBringYourOwnApp is what a team adopting the pipeline does: a clone of
// this repository whose app/ and pipeline.yml are replaced by their own app
// (each fixture of testdata/apps: its own Dockerfile or none, framework,
// server, port, health path, layout and dependency files), committed, run
// through the whole pipeline, and served on the instance at its health path.
func TestBringYourOwnApp(t *testing.T) {
	needEnv(t)
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "pipeline")
	run(t, root, "go", "build", "-o", bin, "./dev/cmd/codepipeline")
	for _, c := range []struct{ fixture, name, health string }{
		{"dockerfile-starlette", "hello-api", "/health"},
		{"native-bottle", "shop", "/ping"},
		{"uv-falcon", "notes", "/status"},
	} {
		t.Run(c.fixture, func(t *testing.T) {
			scratch := filepath.Join(t.TempDir(), "repo")
			run(t, root, "git", "clone", "-q", "--no-hardlinks", root, scratch)
			if err := os.RemoveAll(filepath.Join(scratch, "app")); err != nil {
				t.Fatal(err)
			}
			fixture := filepath.Join(root, "testdata", "apps", c.fixture)
			entries, err := os.ReadDir(fixture)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != "README.md" {
					run(t, root, "cp", "-a", filepath.Join(fixture, e.Name()), filepath.Join(scratch, e.Name()))
				}
			}
			if strings.HasPrefix(c.fixture, "uv-") {
				devtest.UVLock(t, filepath.Join(scratch, "app"))
			}
			commitAll(t, scratch, "bring our own app: "+c.fixture)

			work, port := t.TempDir(), freePort(t)
			cleanupInstance(t, work, c.name)
			// a branch of the scratch clone's own at its tip: the checkout the test runs from may be
			// main, a topic branch or a detached commit (then rev-parse would say "HEAD")
			branch := "pipeline-test"
			run(t, scratch, "git", "checkout", "-q", "-B", branch)
			cmd := exec.Command(bin, "--repo", scratch, "--branch", branch, "--work", work, "--port", fmt.Sprint(port))
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("pipeline: %v\n%s", err, out)
			}
			t.Logf("pipeline run in %s:\n%s", time.Since(start).Round(time.Second), lastLines(string(out), 12))
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, c.health))
			if err != nil {
				t.Fatalf("GET %s: %v", c.health, err)
			}
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				t.Errorf("GET %s on the instance = %d", c.health, resp.StatusCode)
			}
		})
	}
}
