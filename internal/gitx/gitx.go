// Package gitx holds the few git queries the build makes: all of them run
// the git CLI in a directory (the checkout being built) and never change it.
package gitx

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Out runs `git -C dir args...` and returns its trimmed stdout; the error
// carries git's stderr on one line.
func Out(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.Join(strings.Fields(stderr.String()), " "))
	}
	return strings.TrimSpace(string(b)), nil
}

// Head is the commit checked out in dir, or "" when dir is not a git checkout.
func Head(ctx context.Context, dir string) string {
	out, err := Out(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return ""
	}
	return out
}

// CommitTime is the committer time of rev (HEAD when empty) in dir; ok is
// false when dir is not a checkout or rev is unknown.
func CommitTime(ctx context.Context, dir, rev string) (t time.Time, ok bool) {
	args := []string{"log", "-1", "--format=%ct"}
	if rev != "" {
		args = append(args, rev)
	}
	out, err := Out(ctx, dir, args...)
	if err != nil {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0).UTC(), true
}

// Show is the content of path at rev (`git show rev:path`); ok is false when
// the commit has no such file.
func Show(ctx context.Context, dir, rev, path string) (content []byte, ok bool) {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "show", "--end-of-options", rev+":"+path).Output()
	if err != nil {
		return nil, false
	}
	return out, true
}

// LastChange is the committer time of the last commit up to HEAD that
// changed a file matching one of patterns (git pathspecs, relative to dir:
// "requirements*.txt" matches in dir only); ok is false when dir is not a
// checkout or no commit touched them (the files are not committed).
func LastChange(ctx context.Context, dir string, patterns ...string) (t time.Time, ok bool) {
	args := []string{"log", "-1", "--format=%ct", "HEAD", "--"}
	for _, p := range patterns {
		// glob magic: "*" does not cross "/" (a requirements.txt in a
		// subdirectory is not the app's)
		args = append(args, ":(glob)"+p)
	}
	out, err := Out(ctx, dir, args...)
	if err != nil || out == "" {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0).UTC(), true
}
