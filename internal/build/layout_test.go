package build

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
