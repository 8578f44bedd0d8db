package build

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// facts reads the manifest digest and download size of the image from its
// OCI layout (what publish pushes byte for byte, so this is the digest a push
// gets). Only index.json and the manifest leave the engine. For an image
// index: the index's digest, and each platform's image (the size is what one
// instance pulls: the first platform's).
func (img *builtImage) facts(ctx context.Context) (*imageFacts, error) {
	raw, err := img.file(ctx, "index.json")
	if err != nil {
		return nil, fmt.Errorf("read the image's index.json: %w", err)
	}
	var index struct {
		Manifests []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
			Platform  struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
			} `json:"platform"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(raw), &index); err != nil || len(index.Manifests) != 1 {
		return nil, fmt.Errorf("index.json: want one manifest (%v): %.200s", err, raw)
	}
	digest := index.Manifests[0].Digest
	if index.Manifests[0].MediaType != ociIndex {
		return img.manifestFacts(ctx, digest)
	}
	if raw, err = img.file(ctx, "blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")); err != nil {
		return nil, fmt.Errorf("read the image index: %w", err)
	}
	if err := json.Unmarshal([]byte(raw), &index); err != nil || len(index.Manifests) == 0 {
		return nil, fmt.Errorf("the image index: want manifests (%v): %.200s", err, raw)
	}
	var f *imageFacts
	for i, m := range index.Manifests {
		one, err := img.manifestFacts(ctx, m.Digest)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			f = &imageFacts{Digest: digest, Size: one.Size, Layers: one.Layers}
		}
		plat := m.Platform.OS + "/" + m.Platform.Architecture
		f.Platforms = append(f.Platforms, platformFacts{Platform: plat, Digest: m.Digest, Size: one.Size,
			Emulated: img.platforms != nil && i < len(img.platforms) && img.platforms[i].emulated})
	}
	return f, nil
}

// manifestFacts are the digest, size and layer count of one image manifest of the layout.
func (img *builtImage) manifestFacts(ctx context.Context, digest string) (*imageFacts, error) {
	raw, err := img.file(ctx, "blobs/sha256/"+strings.TrimPrefix(digest, "sha256:"))
	if err != nil {
		return nil, fmt.Errorf("read the image manifest: %w", err)
	}
	var m struct {
		Config struct{ Size int64 }   `json:"config"`
		Layers []struct{ Size int64 } `json:"layers"`
	}
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	f := &imageFacts{Digest: digest, Size: m.Config.Size, Layers: len(m.Layers)}
	for _, l := range m.Layers {
		f.Size += l.Size
	}
	return f, nil
}
