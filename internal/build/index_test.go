package build

import (
	"archive/tar"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/webapp-pipeline/internal/ocipush"
)

// platformLayouts writes one random image's layout per platform under dir/platforms.
func platformLayouts(t *testing.T, dir string, platforms ...string) []*builtImage {
	t.Helper()
	var imgs []*builtImage
	for _, plat := range platforms {
		img, err := random.Image(256, 2)
		if err != nil {
			t.Fatal(err)
		}
		d := platformDir(dir, plat)
		p, err := layout.Write(d, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img); err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, &builtImage{host: d, platform: plat})
	}
	return imgs
}

// The index over the platforms' layouts: written the same way twice (the
// same digest), listing each platform's manifest with its platform, in the
// contract's order; pushed, the registry serves it under that digest with
// every platform's image.
func TestWriteIndex(t *testing.T) {
	dir := t.TempDir()
	imgs := platformLayouts(t, dir, "linux/amd64", "linux/arm64")
	if err := writeIndex(dir, imgs); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(filepath.Join(dir, "digest"))
	if err := writeIndex(dir, imgs); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "digest"))
	if string(first) != string(again) || !strings.HasPrefix(string(first), "sha256:") {
		t.Fatalf("the same layouts gave index %q, then %q", first, again)
	}
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := ii.IndexManifest()
	if err != nil || len(top.Manifests) != 1 || top.Manifests[0].Digest.String() != strings.TrimSpace(string(first)) {
		t.Fatalf("index.json: %+v %v", top, err)
	}
	idx, err := ii.ImageIndex(top.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 2 {
		t.Fatalf("the index: %+v %v", m, err)
	}
	for i, want := range []string{"amd64", "arm64"} {
		d := m.Manifests[i]
		if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != want {
			t.Errorf("manifest %d: platform %+v, want linux/%s", i, d.Platform, want)
		}
		if _, err := idx.Image(d.Digest); err != nil {
			t.Errorf("manifest %d (%s) is not in the layout: %v", i, want, err)
		}
	}
	if m.Manifests[1].Platform.Variant != "v8" {
		t.Errorf("arm64 should be variant v8 (as the official images say): %+v", m.Manifests[1].Platform)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, err := ocipush.Push(context.Background(), ocipush.Dir(dir), host+"/app:rev", "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(ref, "@"+strings.TrimSpace(string(first))) {
		t.Errorf("pushed %s, want the index %s", ref, first)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	pm, _ := pushed.IndexManifest()
	if len(pm.Manifests) != 2 {
		t.Errorf("the registry's index lists %d manifests", len(pm.Manifests))
	}

	// facts: the index's digest, each platform's image
	f, err := (&builtImage{host: dir, platforms: imgs}).facts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.Digest != strings.TrimSpace(string(first)) || len(f.Platforms) != 2 || f.Platforms[1].Platform != "linux/arm64" ||
		f.Platforms[1].Digest != m.Manifests[1].Digest.String() {
		t.Errorf("facts: %+v", f)
	}
}

// The index's layout as an OCI archive: the layout's own entries (every
// platform's blobs among them), not the platforms' directories or digest.
func TestTarLayout(t *testing.T) {
	dir := t.TempDir()
	imgs := platformLayouts(t, dir, "linux/amd64", "linux/arm64")
	if err := writeIndex(dir, imgs); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	if err := tarLayout(dir, out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
	blobs, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	for _, want := range []string{"index.json", "oci-layout", "blobs/sha256/" + blobs[0].Name()} {
		if !names[want] {
			t.Errorf("the archive lacks %s: %v", want, names)
		}
	}
	for n := range names {
		if strings.HasPrefix(n, "platforms") || n == "digest" {
			t.Errorf("the archive holds %s", n)
		}
	}
	if len(blobs) < 2*4+1 { // each platform's manifest, config, 2 layers; the index
		t.Errorf("%d blobs in the index's layout", len(blobs))
	}
}
