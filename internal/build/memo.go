package build

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// memo keeps what a build found out about an image, by the image's digest,
// for the next build on the same machine: a passed smoke test. The same
// digest is the same bytes, so the same answer; a rebuild of an unchanged
// commit (--force, a retried CodeBuild build with the cache restored) then
// skips a container start. (The SBOMs live beside it, in sbom-layers:
// attest.SBOMCache, which also serves an image sharing lower layers; the
// native layouts' blobs, in blobs/sha256: exportNative in layout.go; and
// which of them is a base image's runtime base layer, in base-layer:
// baselayer.go.)
// Failures are never kept. Best effort: an unwritable cache only costs time.
type memo struct{ dir string }

// memoTTL: entries older than this go when the same kind is written again.
const memoTTL = 14 * 24 * time.Hour

// openMemo is $BUILD_CACHE_DIR, else the user's cache directory
// (~/.cache/webapp-pipeline): one small file per image and kind.
func openMemo() memo {
	if d := os.Getenv("BUILD_CACHE_DIR"); d != "" {
		return memo{dir: d}
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return memo{}
	}
	return memo{dir: filepath.Join(d, "webapp-pipeline")}
}

// memoKey is a file name for the parts (a digest, and what else decides the answer).
func memoKey(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:16])
}

func (m memo) get(kind, key string) ([]byte, bool) {
	if m.dir == "" {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(m.dir, kind, key))
	return b, err == nil
}

// put writes atomically (a reader never sees half a file) and prunes old entries.
func (m memo) put(kind, key string, b []byte) {
	if m.dir == "" {
		return
	}
	dir := filepath.Join(m.dir, kind)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return
	}
	_, werr := f.Write(b)
	if cerr := f.Close(); werr != nil || cerr != nil || os.Rename(f.Name(), filepath.Join(dir, key)) != nil {
		os.Remove(f.Name())
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > memoTTL {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
