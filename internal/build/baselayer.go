package build

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
)

// The runtime base layer (the base image slimmed, as one gzip layer) is the
// same bytes for every build on the same base image, platform and tools,
// but an engine makes it anew whenever its cache is empty: the slimming and
// a gzip of ~56 MB, seconds of CPU. CodeBuild's engine is empty on every
// build (buildspec.yml keeps no engine state); its S3 cache keeps the
// build's memo directory. So the memo keeps the layer: its blob is in the
// blob store already (exportNative), and "base-layer" maps the key to the
// layer's digest, size and diff_id; a later build hands the engine that
// blob instead of making it. The image's bytes are the same either way (the
// layer is the same; oci.py checks its digest).

// baseLayerInfo is oci.py's layer.json.
type baseLayerInfo struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	DiffID string `json:"diff_id"`
}

// baseLayerKey is the memo key of plat's runtime base layer: the base
// image's resolved reference (its digest), the platform and the tools. ""
// when there is no memo or the reference does not resolve (the build's own
// From then says why).
func (p *session) baseLayerKey(ctx context.Context, plat string, engine dagger.Platform) string {
	if p.memo.dir == "" {
		return ""
	}
	ref, err := p.c.Container(dagger.ContainerOpts{Platform: engine}).From(p.app.BaseImage).ImageRef(ctx)
	if err != nil || !strings.Contains(ref, "@sha256:") {
		return ""
	}
	return memoKey("base-layer", ref, plat, ci.BaseLayerTools())
}

// keptBaseLayer is the layer the memo keeps under key, as a directory for
// ci.ImageOpts.BaseLayer; nil when it keeps none (or its blob is gone or
// damaged: the engine then makes it).
func (p *session) keptBaseLayer(key string) *dagger.Directory {
	if key == "" {
		return nil
	}
	b, ok := p.memo.get("base-layer", key)
	if !ok {
		return nil
	}
	var l baseLayerInfo
	if json.Unmarshal(b, &l) != nil {
		return nil
	}
	hex, ok := strings.CutPrefix(l.Digest, "sha256:")
	if !ok || len(hex) != 64 || strings.ContainsAny(hex, "/.") || !strings.HasPrefix(l.DiffID, "sha256:") {
		return nil
	}
	blob := filepath.Join(p.memo.dir, "blobs", "sha256", hex)
	if !sameSize(blob, l.Size) || checkBlob(blob, hex) != nil {
		return nil
	}
	markUsed(blob)
	info, _ := json.Marshal(l)
	return p.c.Directory().
		WithFile("layer.tar.gz", p.c.Host().File(blob)).
		WithNewFile("layer.json", string(info))
}

// keepBaseLayer records, under key, the runtime base layer of the native
// image just built (its first layer); its blob reaches the blob store when
// the layout is exported. Best effort, as all of the memo.
func (p *session) keepBaseLayer(ctx context.Context, img *builtImage, key string) {
	if key == "" {
		return
	}
	l, err := firstLayer(ctx, img)
	if err != nil {
		p.log.Debug("base layer not kept", "err", err)
		return
	}
	b, _ := json.Marshal(l)
	p.memo.put("base-layer", key, b)
}

// firstLayer is the layout's first layer, with its diff_id from the config
// (img.blobs lists the manifest, the config, then the layers).
func firstLayer(ctx context.Context, img *builtImage) (baseLayerInfo, error) {
	blobs, err := img.blobs(ctx)
	if err != nil {
		return baseLayerInfo{}, err
	}
	if len(blobs) < 3 {
		return baseLayerInfo{}, fmt.Errorf("the layout's manifest names no layer")
	}
	var c struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	raw, err := img.file(ctx, "blobs/sha256/"+blobs[1].hex)
	if err == nil {
		err = json.Unmarshal([]byte(raw), &c)
	}
	if err != nil {
		return baseLayerInfo{}, err
	}
	if len(c.RootFS.DiffIDs) != len(blobs)-2 {
		return baseLayerInfo{}, fmt.Errorf("the layout's manifest has %d layers, its config %d diff_ids", len(blobs)-2, len(c.RootFS.DiffIDs))
	}
	return baseLayerInfo{Digest: "sha256:" + blobs[2].hex, Size: blobs[2].size, DiffID: c.RootFS.DiffIDs[0]}, nil
}
