package ci_test

// Reproducibility of the runtime image (ci.ImageLayout): the same commit gives
// the same manifest digest. Integration tests against the dev environment's
// engine (dev/env.sh up); -short skips them.
//
//   - warm engine, same sources with different file mtimes (and a different
//     checkout directory): same digest; another commit time: another digest.
//   - from EMPTY engine state, twice: the engine's local cache is pruned
//     before each build, so the base image is pulled, pip downloads, every
//     layer is written again; both equal the warm digest. It prunes the whole
//     cache of the engine it uses, so it runs in CI (CI=true, as .ci/run) and
//     on request (WEBAPP_REPRO_COLD=1), not in a developer's `make test`,
//     whose next build would start cold.

import (
	"context"
	"github.com/acme/webapp-pipeline/dev/devtest"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
	"github.com/acme/webapp-pipeline/internal/contract"
)

const commitTime = 1764158400 // 2025-11-26T12:00:00Z, stands for `git log -1 --format=%ct`

func devEngine(t *testing.T) {
	t.Helper()
	devtest.Require(t)
}

// checkout copies testdata/apps/hello/app to a new dir and sets every mtime to mtime.
func checkout(t *testing.T, mtime time.Time) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "app")
	if out, err := exec.Command("cp", "-a", filepath.Join("..", "testdata", "apps", "hello", "app"), dst).CombinedOutput(); err != nil {
		t.Fatalf("copy fixture: %v\n%s", err, out)
	}
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func layoutDigest(ctx context.Context, t *testing.T, c *dagger.Client, appDir string, epoch int64) string {
	t.Helper()
	app := contract.App{
		Dir: "app", Name: "webapp", Build: contract.BuildNative, BaseImage: "python:3.13-slim",
		Deps: contract.DepsRequirements, Requirements: []string{"requirements.txt"}, PythonPath: ".",
		Command: []string{"gunicorn", "--bind", "0.0.0.0:8080", "webapp:create_app()"}, Port: 8080,
	}
	d, err := ci.ImageLayout(c, ci.Source(c, appDir), ci.ImageOpts{
		App: app, Revision: "repro", SourceDateEpoch: epoch,
	}).File("digest").Contents(ctx)
	if err != nil {
		t.Fatalf("build image layout: %v", err)
	}
	return strings.TrimSpace(d)
}

func connect(t *testing.T) (context.Context, *dagger.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	t.Cleanup(cancel)
	c, err := dagger.Connect(ctx)
	if err != nil {
		t.Fatalf("connect to the engine: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return ctx, c
}

func TestImageReproducibleWarm(t *testing.T) {
	devEngine(t)
	ctx, c := connect(t)
	a := layoutDigest(ctx, t, c, checkout(t, time.Unix(1_600_000_000, 0)), commitTime)
	b := layoutDigest(ctx, t, c, checkout(t, time.Now()), commitTime)
	if a != b {
		t.Errorf("same sources with other mtimes: digest %s, then %s", a, b)
	}
	other := layoutDigest(ctx, t, c, checkout(t, time.Now()), commitTime+1)
	if other == a {
		t.Errorf("another commit time should give another digest, both %s", a)
	}
	t.Logf("digest %s (commit time %d), %s (commit time %d)", a, commitTime, other, commitTime+1)
}

func TestImageReproducibleFromEmptyEngine(t *testing.T) {
	devEngine(t)
	if os.Getenv("WEBAPP_REPRO_COLD") != "1" && os.Getenv("CI") != "true" {
		t.Skip("prunes the engine's whole cache: runs in CI, or with WEBAPP_REPRO_COLD=1")
	}
	wctx, wc := connect(t)
	warm := layoutDigest(wctx, t, wc, checkout(t, time.Now()), commitTime)
	wc.Close()
	digests := []string{warm}
	for i := range 2 {
		// Prune in a session of its own: building in the session that pruned
		// can leave cache records pointing at that session once it is gone
		// (seen with v0.18.10: "no active session for ...").
		pctx, pc := connect(t)
		if err := pc.Engine().LocalCache().Prune(pctx); err != nil {
			t.Fatalf("prune the engine cache: %v", err)
		}
		size, _ := pc.Engine().LocalCache().EntrySet().DiskSpaceBytes(pctx)
		pc.Close()
		ctx, c := connect(t)
		start := time.Now()
		d := layoutDigest(ctx, t, c, checkout(t, time.Now()), commitTime)
		t.Logf("build %d from a pruned engine (cache after the prune: %d bytes): %s in %s",
			i+1, size, d, time.Since(start).Round(time.Second))
		digests = append(digests, d)
		c.Close()
	}
	if digests[1] != warm || digests[2] != warm {
		t.Errorf("the same commit: %s on a warm engine, then %s and %s from empty engine state", warm, digests[1], digests[2])
	}
}
