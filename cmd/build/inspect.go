package main

import (
	"context"
	"fmt"

	"dagger.io/dagger"
)

// inspectPy reads an OCI tarball (as Container.asTarball writes it, the same
// manifest a push sends) and prints: manifest digest, config + layer bytes,
// layer count.
const inspectPy = `import json, tarfile
t = tarfile.open("/image.tar")
d = json.load(t.extractfile("index.json"))["manifests"][0]["digest"]
m = json.load(t.extractfile("blobs/sha256/" + d.split(":", 1)[1]))
print(d, m["config"]["size"] + sum(l["size"] for l in m["layers"]), len(m["layers"]))
`

// imageFacts computes the image's manifest digest and download size inside
// the engine (the tarball never leaves it), with the base image's python3.
func (p *pipeline) imageFacts(ctx context.Context, img *dagger.Container) (*imageFacts, error) {
	out, err := p.c.Container().From(p.flags.BaseImage).
		WithMountedFile("/image.tar", img.AsTarball()).
		WithExec([]string{"python3", "-c", inspectPy}).
		Stdout(ctx)
	if err != nil {
		return nil, fmt.Errorf("inspect image: %w", explain(err))
	}
	var f imageFacts
	if _, err := fmt.Sscan(out, &f.Digest, &f.Size, &f.Layers); err != nil {
		return nil, fmt.Errorf("inspect image: parse %q: %w", out, err)
	}
	return &f, nil
}
