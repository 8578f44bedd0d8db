package ocipush

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// recording is a Dir that remembers which files Push opened.
type recording struct {
	Dir
	mu     sync.Mutex
	opened []string
}

func (r *recording) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	r.mu.Lock()
	r.opened = append(r.opened, path)
	r.mu.Unlock()
	return r.Dir.Open(ctx, path)
}

func (r *recording) blobsOpened(img v1.Image, t *testing.T) (layers int) {
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		d, _ := l.Digest()
		if slices.Contains(r.opened, blobPath(d)) {
			layers++
		}
	}
	return layers
}

func writeLayout(t *testing.T, img v1.Image) Dir {
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return Dir(dir)
}

// Push moves only the layers the registry lacks, and the registry then
// serves the layout's manifest byte for byte under the tag.
func TestPushUploadsOnlyMissingLayers(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	base, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	first := &recording{Dir: writeLayout(t, base)}
	ref, err := Push(ctx, first, host+"/app:one", "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := base.Digest()
	if ref != host+"/app@"+want.String() {
		t.Fatalf("Push returned %s, want %s/app@%s", ref, host, want)
	}
	if n := first.blobsOpened(base, t); n != 3 {
		t.Fatalf("first push opened %d of 3 layers, want all: %v", n, first.opened)
	}

	// One new layer on top: only it is read.
	extra, _ := random.Layer(512, "application/vnd.oci.image.layer.v1.tar+gzip")
	next, err := mutate.AppendLayers(base, extra)
	if err != nil {
		t.Fatal(err)
	}
	second := &recording{Dir: writeLayout(t, next)}
	if _, err := Push(ctx, second, host+"/app:two", "u", "p"); err != nil {
		t.Fatal(err)
	}
	if n := second.blobsOpened(next, t); n != 1 {
		t.Fatalf("second push opened %d layers, want only the new one: %v", n, second.opened)
	}
	tag, err := name.NewTag(host+"/app:two", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	gd, _ := got.Digest()
	nd, _ := next.Digest()
	if gd != nd {
		t.Fatalf("registry serves %s for :two, want %s", gd, nd)
	}
	if err := validateLayers(got); err != nil {
		t.Fatal(err)
	}
}

func validateLayers(img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc) // the remote layer verifies its digest at EOF
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func TestPushRejectsAMismatchedBlob(t *testing.T) {
	img, _ := random.Image(64, 1)
	dir := writeLayout(t, img)
	m, _ := img.Manifest()
	// Corrupt the config: Push must refuse rather than push something else.
	if err := writeFile(string(dir)+"/"+blobPath(m.Config.Digest), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_, err := Push(context.Background(), dir, "127.0.0.1:1/app:x", "u", "p")
	if err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("err = %v, want a digest mismatch", err)
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

// A layout whose one entry is an image index (several platforms) is pushed as
// that index, byte for byte, with every image it lists.
func TestPushIndex(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(512, 2)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	ii := mutate.AppendManifests(empty.Index, adds...)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(ii); err != nil {
		t.Fatal(err)
	}
	want, _ := ii.Digest()
	ref, err := Push(ctx, Dir(dir), host+"/multi:rev", "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	if ref != host+"/multi@"+want.String() {
		t.Errorf("pushed %s, want the index %s", ref, want)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := got.IndexManifest()
	if err != nil || len(m.Manifests) != 2 {
		t.Fatalf("the registry's index: %v, %v", m, err)
	}
	for _, d := range m.Manifests {
		if _, err := remote.Image(r.Context().Digest(d.Digest.String())); err != nil {
			t.Errorf("%s (%s) not in the registry: %v", d.Digest, d.Platform.Architecture, err)
		}
	}
}
