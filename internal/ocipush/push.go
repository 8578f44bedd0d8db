// Package ocipush pushes an OCI image layout (as ci.ImageLayout writes it) to
// a registry, byte for byte: the pushed manifest digest is the layout's, so a
// reproducible layout gives a reproducible published digest. (Dagger v0.18's
// Container.Publish re-exports the image and stamps the engine's cache-record
// times into the config, which changes the digest from one engine to another.)
package ocipush

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Source reads one file of an OCI image layout by its path in the layout
// ("index.json", "blobs/sha256/<hex>"). Push opens only the index, the
// manifest, the config and the layers the registry lacks, so a source that
// fetches files on demand (cmd/build reads them out of the engine) moves
// only what changed.
type Source interface {
	Open(ctx context.Context, path string) (io.ReadCloser, error)
}

// Dir is a layout on disk.
type Dir string

// Open opens path in the layout directory.
func (d Dir) Open(_ context.Context, path string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), filepath.FromSlash(path)))
}

// Push uploads the single image (or image index) of the layout to ref (repo:tag) with basic
// credentials (the password is never logged or wrapped into errors),
// skipping blobs the registry already has, and returns repo@sha256:....
// Registries on loopback addresses are spoken to over plain http.
func Push(ctx context.Context, src Source, ref, user, password string) (string, error) {
	var opts []name.Option
	if loopback(ref) {
		opts = append(opts, name.Insecure)
	}
	tag, err := name.NewTag(ref, opts...)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	var idx v1.IndexManifest
	if err := readJSON(ctx, src, "index.json", &idx); err != nil {
		return "", fmt.Errorf("read image layout: %w", err)
	}
	if len(idx.Manifests) != 1 {
		return "", fmt.Errorf("read image layout: the layout holds %d images, want 1", len(idx.Manifests))
	}
	desc := idx.Manifests[0]
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	if desc.MediaType.IsIndex() {
		// Several platforms' images: each image first, then the index naming them.
		ii, err := readIndex(ctx, src, desc)
		if err != nil {
			return "", fmt.Errorf("read image layout: %w", err)
		}
		if err := remote.WriteIndex(tag, ii, remote.WithContext(ctx), remote.WithAuth(auth)); err != nil {
			return "", err
		}
	} else {
		img, err := readImage(ctx, src, desc)
		if err != nil {
			return "", fmt.Errorf("read image layout: %w", err)
		}
		if err := remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuth(auth)); err != nil {
			return "", err
		}
	}
	// What the registry now serves under the tag must be the layout's manifest, byte for byte:
	// image.env names the image by this digest.
	got, err := remote.Head(tag, remote.WithContext(ctx), remote.WithAuth(auth))
	if err != nil {
		return "", fmt.Errorf("check the pushed tag %s: %w", tag, err)
	}
	if got.Digest != desc.Digest {
		return "", fmt.Errorf("the registry serves %s as %s, not the pushed manifest %s", tag, got.Digest, desc.Digest)
	}
	return tag.Context().Name() + "@" + got.Digest.String(), nil
}

// readImage reads the manifest desc names and its config; the layers stay
// unread until remote.Write asks for one it must upload.
func readImage(ctx context.Context, src Source, desc v1.Descriptor) (v1.Image, error) {
	core := &lazyImage{ctx: ctx, src: src, mediaType: desc.MediaType}
	var err error
	if core.manifest, err = readBlob(ctx, src, desc.Digest); err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(core.manifest))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	if core.config, err = readBlob(ctx, src, m.Config.Digest); err != nil {
		return nil, err
	}
	core.layers = map[v1.Hash]v1.Descriptor{}
	for _, l := range m.Layers {
		core.layers[l.Digest] = l
	}
	return partial.CompressedToImage(core)
}

// readIndex reads the image index desc names and each image it lists (one
// per platform; an index of indexes is not something the build writes).
func readIndex(ctx context.Context, src Source, desc v1.Descriptor) (v1.ImageIndex, error) {
	raw, err := readBlob(ctx, src, desc.Digest)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
	}
	ii := &index{raw: raw, manifest: m, desc: desc, images: map[v1.Hash]v1.Image{}}
	for _, d := range m.Manifests {
		if !d.MediaType.IsImage() {
			return nil, fmt.Errorf("index %s lists %s, not an image manifest", desc.Digest, d.MediaType)
		}
		if ii.images[d.Digest], err = readImage(ctx, src, d); err != nil {
			return nil, err
		}
	}
	return ii, nil
}

// index is a v1.ImageIndex over a layout's index blob, pushed as its bytes.
type index struct {
	raw      []byte
	manifest *v1.IndexManifest
	desc     v1.Descriptor
	images   map[v1.Hash]v1.Image
}

func (i *index) MediaType() (types.MediaType, error)       { return i.desc.MediaType, nil }
func (i *index) Digest() (v1.Hash, error)                  { return i.desc.Digest, nil }
func (i *index) Size() (int64, error)                      { return int64(len(i.raw)), nil }
func (i *index) IndexManifest() (*v1.IndexManifest, error) { return i.manifest, nil }
func (i *index) RawManifest() ([]byte, error)              { return i.raw, nil }
func (i *index) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("%s: not an image index", h)
}
func (i *index) Image(h v1.Hash) (v1.Image, error) {
	if img, ok := i.images[h]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("%s is not an image of index %s", h, i.desc.Digest)
}

func readJSON(ctx context.Context, src Source, path string, v any) error {
	rc, err := src.Open(ctx, path)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// readBlob reads a small blob whole and checks its digest.
func readBlob(ctx context.Context, src Source, h v1.Hash) ([]byte, error) {
	rc, err := src.Open(ctx, blobPath(h))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if got := sha256.Sum256(b); h.Algorithm != "sha256" || hex.EncodeToString(got[:]) != h.Hex {
		return nil, fmt.Errorf("blob %s does not match its digest", h)
	}
	return b, nil
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// lazyImage is a partial.CompressedImageCore over a layout Source.
type lazyImage struct {
	ctx              context.Context
	src              Source
	mediaType        types.MediaType
	manifest, config []byte
	layers           map[v1.Hash]v1.Descriptor
}

func (i *lazyImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *lazyImage) MediaType() (types.MediaType, error) { return i.mediaType, nil }
func (i *lazyImage) RawManifest() ([]byte, error)        { return i.manifest, nil }
func (i *lazyImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	d, ok := i.layers[h]
	if !ok {
		return nil, fmt.Errorf("blob %s is not a layer of the manifest", h)
	}
	return &lazyLayer{img: i, desc: d}, nil
}

// lazyLayer opens its blob only when remote.Write uploads it.
type lazyLayer struct {
	img  *lazyImage
	desc v1.Descriptor
}

func (l *lazyLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *lazyLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *lazyLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *lazyLayer) Compressed() (io.ReadCloser, error) {
	return l.img.src.Open(l.img.ctx, blobPath(l.desc.Digest))
}

func loopback(ref string) bool {
	host, _, _ := strings.Cut(ref, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
