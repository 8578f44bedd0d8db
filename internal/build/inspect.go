package build

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// imageFacts reads the manifest digest and download size of the image that
// p.image built, from its OCI layout (what publish pushes
// byte for byte, so this is the digest a push gets). Only index.json and the
// manifest leave the engine.
func (p *pipeline) imageFacts(ctx context.Context) (*imageFacts, error) {
	raw, err := p.layoutFile(ctx, "index.json")
	if err != nil {
		return nil, fmt.Errorf("read the image's index.json: %w", err)
	}
	var index struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(raw), &index); err != nil || len(index.Manifests) != 1 {
		return nil, fmt.Errorf("index.json: want one manifest (%v): %.200s", err, raw)
	}
	digest := index.Manifests[0].Digest
	raw, err = p.layoutFile(ctx, "blobs/sha256/"+strings.TrimPrefix(digest, "sha256:"))
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
