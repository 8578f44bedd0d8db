package ci_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
	"github.com/acme/webapp-pipeline/internal/contract"
)

// manifestLayers builds the hello app's layout with these times and returns
// the layout and its manifest's layer digests (base, venv, app).
func manifestLayers(ctx context.Context, t *testing.T, c *dagger.Client, appDir string, epoch, depsEpoch int64) (*dagger.Directory, []string) {
	t.Helper()
	app := contract.App{
		Dir: "app", Name: "webapp", Build: contract.BuildNative, BaseImage: "python:3.13-slim",
		Deps: contract.DepsRequirements, Requirements: []string{"requirements.txt"}, PythonPath: ".",
		Command: []string{"gunicorn", "--bind", "0.0.0.0:8080", "webapp:create_app()"}, Port: 8080,
	}
	layout := ci.ImageLayout(c, ci.Source(c, appDir), ci.ImageOpts{
		App: app, Revision: "layers", SourceDateEpoch: epoch, DepsEpoch: depsEpoch,
	})
	d, err := layout.File("digest").Contents(ctx)
	if err != nil {
		t.Fatalf("build image layout: %v", err)
	}
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	raw, err := layout.File("blobs/sha256/" + strings.TrimPrefix(strings.TrimSpace(d), "sha256:")).Contents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &m); err != nil || len(m.Layers) != 3 {
		t.Fatalf("manifest %s: %v (%d layers, want 3)", raw, err, len(m.Layers))
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return layout, out
}

// layerTimes are the mtimes of a layer blob's entries, by path.
func layerTimes(ctx context.Context, t *testing.T, layout *dagger.Directory, digest string) map[string]int64 {
	t.Helper()
	times := map[string]int64{}
	for name, h := range layerHeaders(ctx, t, layout, digest) {
		times[name] = h.ModTime.Unix()
	}
	return times
}

// layerHeaders are a layer blob's tar headers, by path.
func layerHeaders(ctx context.Context, t *testing.T, layout *dagger.Directory, digest string) map[string]*tar.Header {
	t.Helper()
	p := filepath.Join(t.TempDir(), "layer.tar.gz")
	if _, err := layout.File("blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")).Export(ctx, p); err != nil {
		t.Fatal(err)
	}
	raw, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	z, err := gzip.NewReader(raw)
	if err != nil {
		t.Fatal(err)
	}
	f := tar.NewReader(z)
	headers := map[string]*tar.Header{}
	for {
		h, err := f.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		headers[strings.TrimSuffix(h.Name, "/")] = h
	}
	return headers
}

// TestAppLayerModesAreGits: git records a file as 644 or 755, nothing else; a checkout's other
// permission bits come from the umask of whoever made it (002 on many laptops, and under
// `git archive | tar -x`). The app layer writes what git records, so the same commit gives the
// same layer from any checkout. The engine does not help: its cache of host directories ignores
// those bits, so a layer once had the modes of the first checkout of that content the engine saw
// (2026-12-04: one commit's amd64 image was 22bb… from a `git archive` copy, 47ce… from a
// clone on a pruned engine).
func TestAppLayerModesAreGits(t *testing.T) {
	devEngine(t)
	ctx, c := connect(t)
	dir := checkout(t, time.Unix(commitTime, 0))
	// content of its own, so that no earlier checkout of it is in the engine's cache
	own := fmt.Sprintf("# %d\n", time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(dir, "webapp", "own.py"), []byte(own), 0o664); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\n"+own), 0o775); err != nil {
		t.Fatal(err)
	}
	// (the umask of this process would take the group bits off WriteFile's modes)
	modes := map[string]os.FileMode{".": 0o775, "webapp": 0o775, "webapp/__init__.py": 0o664, "webapp/own.py": 0o664, "run.sh": 0o775}
	for p, mode := range modes {
		if err := os.Chmod(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	layout, layers := manifestLayers(ctx, t, c, dir, commitTime, commitTime)
	want := map[string]int64{"app": 0o755, "app/webapp": 0o755, "app/webapp/__init__.py": 0o644,
		"app/webapp/own.py": 0o644, "app/run.sh": 0o755}
	got := layerHeaders(ctx, t, layout, layers[2])
	for name, mode := range want {
		h, ok := got[name]
		if !ok {
			t.Errorf("the app layer has no %s", name)
		} else if h.Mode&0o7777 != mode {
			t.Errorf("%s: mode %o in the app layer, want %o (what git records)", name, h.Mode&0o7777, mode)
		}
	}
}

// TestImageLayersFollowTheirInputs: a new commit time changes the app layer
// only; a new dependency time changes the venv layer too; the base layer
// never follows either: it keeps the base image's own file times, those of
// the directories slim.py removed files from included.
func TestImageLayersFollowTheirInputs(t *testing.T) {
	devEngine(t)
	ctx, c := connect(t)
	dir := checkout(t, time.Now())
	layout, first := manifestLayers(ctx, t, c, dir, commitTime, commitTime-1000)
	_, codeOnly := manifestLayers(ctx, t, c, dir, commitTime+60, commitTime-1000)
	_, newDeps := manifestLayers(ctx, t, c, dir, commitTime+120, commitTime+120)
	t.Logf("layers (base, venv, app): %v\n then %v (code-only commit)\n then %v (dependency commit)", first, codeOnly, newDeps)
	if first[0] != codeOnly[0] || first[0] != newDeps[0] {
		t.Errorf("the base layer followed a commit: %s, %s, %s", first[0], codeOnly[0], newDeps[0])
	}
	if first[1] != codeOnly[1] {
		t.Errorf("a code-only commit changed the venv layer: %s then %s", first[1], codeOnly[1])
	}
	if first[2] == codeOnly[2] {
		t.Errorf("a new commit time left the app layer as it was: %s", first[2])
	}
	if newDeps[1] == codeOnly[1] {
		t.Errorf("a new dependency time left the venv layer as it was: %s", newDeps[1])
	}

	// The base layer's times are the base image's: /usr/bin lost bash and
	// friends, /var/lib/dpkg was rewritten, and both keep the base's mtime.
	base := layerTimes(ctx, t, layout, first[0])
	want, err := c.Container().From("python:3.13-slim").
		WithExec([]string{"stat", "-c", "%Y", "/usr/bin", "/var/lib/dpkg", "/var/lib/dpkg/status", "/etc"}).Stdout(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{"usr/bin", "var/lib/dpkg", "var/lib/dpkg/status", "etc"} {
		w, _ := strconv.ParseInt(strings.Fields(want)[i], 10, 64)
		if got, ok := base[p]; !ok || got != w {
			t.Errorf("base layer: /%s mtime %d (present %v), the base image's is %d", p, got, ok, w)
		}
	}
	for p, mt := range base {
		if mt == commitTime || mt == commitTime-1000 {
			t.Errorf("base layer: /%s has a build time %d, not the base image's", p, mt)
			break
		}
	}
	if _, ok := base["usr/bin/bash"]; ok {
		t.Errorf("base layer still has /usr/bin/bash: slim.py did not run")
	}
}
