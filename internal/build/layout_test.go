package build

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeTar(t *testing.T, files map[string]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

// An OCI archive unpacks into the layout's own entries plus "digest"; what
// else it holds (docker's manifest.json, paths leaving the directory) does not land.
func TestUntarLayout(t *testing.T) {
	archive := writeTar(t, map[string]string{
		"oci-layout":          `{"imageLayoutVersion":"1.0.0"}`,
		"index.json":          `{"manifests":[{"digest":"sha256:abc"}]}`,
		"blobs/sha256/abc":    "manifest",
		"manifest.json":       "[]",
		"blobs/../../escaped": "x",
		"../escaped":          "x",
	})
	dir := filepath.Join(t.TempDir(), "layout")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := untarLayout(archive, dir); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(filepath.Dir(dir), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(filepath.Dir(dir), p)
			got = append(got, rel)
		}
		return nil
	})
	if strings.Join(got, " ") != "layout/blobs/sha256/abc layout/digest layout/index.json layout/oci-layout" {
		t.Fatalf("unpacked %v", got)
	}
	if d, _ := os.ReadFile(filepath.Join(dir, "digest")); string(d) != "sha256:abc" {
		t.Fatalf("digest file %q", d)
	}
	two := writeTar(t, map[string]string{"index.json": `{"manifests":[{"digest":"sha256:a"},{"digest":"sha256:b"}]}`})
	if err := untarLayout(two, t.TempDir()); err == nil || !strings.Contains(err.Error(), "want one manifest") {
		t.Fatalf("two manifests: err = %v", err)
	}
}

// A kept blob is used only when its content still has its digest: a
// damaged store is not pushed or scanned (exportNative exports it again).
func TestKeptBlobs(t *testing.T) {
	dir, store := t.TempDir(), filepath.Join(t.TempDir(), "blobs", "sha256")
	content := []byte("a layer's bytes")
	sum := sha256.Sum256(content)
	h := hex.EncodeToString(sum[:])
	blob := filepath.Join(dir, "blobs", "sha256", h)
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, content, 0o644); err != nil {
		t.Fatal(err)
	}
	blobs := []ociBlob{{hex: h, size: int64(len(content))}, {hex: strings.Repeat("0", 64), size: 3, manifest: true}}
	keepBlobs(store, dir, blobs)
	if !sameSize(filepath.Join(store, h), int64(len(content))) {
		t.Fatal("keepBlobs did not keep the layer")
	}
	if _, err := os.Stat(filepath.Join(store, strings.Repeat("0", 64))); err == nil {
		t.Error("keepBlobs kept the manifest (it is always exported)")
	}
	out := filepath.Join(t.TempDir(), "blobs", "sha256", h)
	if err := useBlob(filepath.Join(store, h), out, h); err != nil {
		t.Fatalf("useBlob of an intact blob: %v", err)
	}
	if got, _ := os.ReadFile(out); string(got) != string(content) {
		t.Errorf("useBlob wrote %q", got)
	}
	// The same size, other bytes: refused.
	if err := os.Remove(filepath.Join(store, h)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, h), []byte("A layer's bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := useBlob(filepath.Join(store, h), filepath.Join(t.TempDir(), h), h); err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Errorf("useBlob of a damaged blob: err = %v, want a digest mismatch", err)
	}
}

// The memo's runtime base layer is handed to the engine only when its entry
// is sound and its blob still has its digest; anything else makes the
// engine build the layer (keptBaseLayer is nil before it needs a session).
func TestKeptBaseLayerRefusesADamagedMemo(t *testing.T) {
	m := memo{dir: t.TempDir()}
	p := &session{memo: m}
	content := []byte("a base layer's bytes")
	sum := sha256.Sum256(content)
	h := hex.EncodeToString(sum[:])
	store := filepath.Join(m.dir, "blobs", "sha256")
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, h), []byte("A base layer's bytes"), 0o644); err != nil { // same size, other bytes
		t.Fatal(err)
	}
	entry := func(s string) { m.put("base-layer", "k", []byte(s)) }
	for _, tc := range []struct{ what, entry string }{
		{"no entry", ""},
		{"not JSON", "{"},
		{"a digest that is a path", `{"digest":"sha256:../../etc","size":20,"diff_id":"sha256:x"}`},
		{"the blob's size differs", fmt.Sprintf(`{"digest":"sha256:%s","size":3,"diff_id":"sha256:x"}`, h)},
		{"the blob's bytes differ", fmt.Sprintf(`{"digest":"sha256:%s","size":%d,"diff_id":"sha256:x"}`, h, len(content))},
	} {
		if tc.entry != "" {
			entry(tc.entry)
		}
		if d := p.keptBaseLayer("k"); d != nil {
			t.Errorf("%s: a layer was handed to the engine", tc.what)
		}
	}
	if d := p.keptBaseLayer(""); d != nil {
		t.Error("no key: a layer was handed to the engine")
	}
}

// Using a kept blob never changes it: the engine may be syncing that very
// file for another build, and its sync fails when the mtime moves ("mod
// time changed during sync", seen in CI). Its use is recorded beside the
// store, and pruning goes by the later of the two.
func TestUsingAKeptBlobLeavesItsFileAlone(t *testing.T) {
	dir, store := t.TempDir(), filepath.Join(t.TempDir(), "blobs", "sha256")
	content := []byte("a base layer's bytes")
	sum := sha256.Sum256(content)
	h := hex.EncodeToString(sum[:])
	blob := filepath.Join(store, h)
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, content, 0o644); err != nil {
		t.Fatal(err)
	}
	longAgo := time.Now().Add(-memoTTL - 24*time.Hour)
	if err := os.Chtimes(blob, longAgo, longAgo); err != nil {
		t.Fatal(err)
	}
	if err := useBlob(blob, filepath.Join(dir, h), h); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(blob); err != nil || !st.ModTime().Equal(longAgo) {
		t.Fatalf("useBlob changed the kept blob's mtime to %v (err %v), want %v", st.ModTime(), err, longAgo)
	}
	keepBlobs(store, dir, nil)
	if _, err := os.Stat(blob); err != nil {
		t.Fatalf("keepBlobs pruned a blob used just now: %v", err)
	}
	if err := os.Chtimes(usedMarker(blob), longAgo, longAgo); err != nil {
		t.Fatal(err)
	}
	keepBlobs(store, dir, nil)
	for _, p := range []string{blob, usedMarker(blob)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("keepBlobs left %s, unused for longer than memoTTL", p)
		}
	}
}
