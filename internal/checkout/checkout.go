// Package checkout reads the facts of the checkout being built, once, at the edge of the run:
// the commit, its time (which dates the image: the reproducible build time) and the origin
// remote. Everything after works on these values; nothing downstream asks git again.
package checkout

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/acme/webapp-pipeline/internal/gitx"
)

// Facts are what the build knows of its checkout.
type Facts struct {
	Commit string    // HEAD; "" when Dir is not a git checkout (or has no commit)
	Time   time.Time // HEAD's committer time; zero when there is no commit
	// Epoch is the reproducible build time, in Unix seconds: SOURCE_DATE_EPOCH when set (and
	// positive), else Time, else 0 (not a checkout, e.g. a CODE_ZIP without SOURCE_DATE_EPOCH:
	// still reproducible, just undated; the pipeline's source action delivers a clone).
	Epoch int64
}

// Read asks git once, for HEAD and its committer time (`git log -1 --format=%H %ct`).
func Read(ctx context.Context, dir string) Facts {
	var f Facts
	if out, err := gitx.Out(ctx, dir, "log", "-1", "--format=%H %ct", "HEAD"); err == nil {
		commit, ct, _ := strings.Cut(out, " ")
		if sec, err := strconv.ParseInt(ct, 10, 64); err == nil {
			f.Commit, f.Time = commit, time.Unix(sec, 0).UTC()
		}
	}
	f.Epoch = epoch(f.Time)
	return f
}

// At is Read for a commit of the repository at dir (reproduce: the commit CodeBuild built).
func At(ctx context.Context, dir, commit string) Facts {
	f := Facts{Commit: commit}
	if t, ok := gitx.CommitTime(ctx, dir, commit); ok {
		f.Time = t
	}
	f.Epoch = epoch(f.Time)
	return f
}

func epoch(commitTime time.Time) int64 {
	if v, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil && v > 0 {
		return v
	}
	if !commitTime.IsZero() {
		return commitTime.Unix()
	}
	return 0
}

// Created is the build's creation time as build.json and the image's label give it: the epoch,
// so rebuilding a commit gives the same value, else now (not a checkout).
func (f Facts) Created() time.Time {
	if f.Epoch > 0 {
		return time.Unix(f.Epoch, 0).UTC()
	}
	return time.Now().UTC()
}

// Origin is the checkout's origin remote URL (`git remote get-url origin`), or "" when it has
// none. Only the provenance needs it, and only when no repository was given: asked then, once.
func Origin(ctx context.Context, dir string) string {
	u, err := gitx.Out(ctx, dir, "remote", "get-url", "origin")
	if err != nil {
		return ""
	}
	return u
}
