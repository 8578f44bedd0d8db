// Package ocipush pushes an OCI image layout (as ci.ImageLayout writes it) to
// a registry, byte for byte: the pushed manifest digest is the layout's, so a
// reproducible layout gives a reproducible published digest. (Dagger v0.18's
// Container.Publish re-exports the image and stamps the engine's cache-record
// times into the config, which changes the digest from one engine to another.)
package ocipush

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push uploads the single image of the layout in dir to ref (repo:tag) with
// basic credentials (the password is never logged or wrapped into errors),
// skipping blobs the registry already has, and returns repo@sha256:....
// Registries on loopback addresses are spoken to over plain http.
func Push(ctx context.Context, dir, ref, user, password string) (string, error) {
	var opts []name.Option
	if loopback(ref) {
		opts = append(opts, name.Insecure)
	}
	tag, err := name.NewTag(ref, opts...)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return "", fmt.Errorf("read image layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return "", fmt.Errorf("read image layout %s: %w", dir, err)
	}
	if len(im.Manifests) != 1 {
		return "", fmt.Errorf("image layout %s holds %d images, want 1", dir, len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return "", fmt.Errorf("read image %s from layout: %w", im.Manifests[0].Digest, err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	if err := remote.Write(tag, img, remote.WithContext(ctx), remote.WithAuth(auth)); err != nil {
		return "", err
	}
	// What the registry now serves under the tag must be the layout's manifest, byte for byte:
	// image.env names the image by this digest.
	got, err := remote.Head(tag, remote.WithContext(ctx), remote.WithAuth(auth))
	if err != nil {
		return "", fmt.Errorf("check the pushed tag %s: %w", tag, err)
	}
	if want := im.Manifests[0].Digest; got.Digest != want {
		return "", fmt.Errorf("the registry serves %s as %s, not the pushed manifest %s", tag, got.Digest, want)
	}
	return tag.Context().Name() + "@" + got.Digest.String(), nil
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
