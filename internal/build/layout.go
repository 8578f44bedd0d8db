package build

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"dagger.io/dagger"
)

// The Dockerfile image's layout is made on the host: the engine exports the
// image as an OCI archive straight to a file, and the build program unpacks
// it into p.hostLayout (index.json, oci-layout, blobs/, plus the file
// "digest" naming its one manifest, as ci.ImageLayout writes it). Making it
// in the engine instead (an untar exec, then an export of the directory)
// moved the whole image three times. The native image's layout stays in the
// engine (p.layout): only what the registry lacks has to leave it.

// exportLayout exports img into dir as an OCI image layout.
func exportLayout(ctx context.Context, img *dagger.Container, dir string) error {
	f, err := os.CreateTemp("", "build-image-*.tar")
	if err != nil {
		return err
	}
	f.Close()
	defer os.Remove(f.Name())
	if err := exportArchive(ctx, img, f.Name()); err != nil {
		return fmt.Errorf("export the image: %w", err)
	}
	return untarLayout(f.Name(), dir)
}

// exportArchive writes img as an OCI archive (gzip layers) to path on the host.
func exportArchive(ctx context.Context, img *dagger.Container, path string) error {
	_, err := img.Export(ctx, path, dagger.ContainerExportOpts{
		MediaTypes:        dagger.ImageMediaTypesOcimediaTypes,
		ForcedCompression: dagger.ImageLayerCompressionGzip,
	})
	return explain(err)
}

// untarLayout unpacks the OCI archive at archive into dir: only the layout's
// own entries (oci-layout, index.json, blobs/), regular files and
// directories, none outside dir.
func untarLayout(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read the image archive: %w", err)
		}
		name := filepath.Clean(h.Name)
		if name != "oci-layout" && name != "index.json" && !strings.HasPrefix(name, "blobs"+string(filepath.Separator)) && name != "blobs" {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("the image archive names %q, outside the layout", h.Name)
		}
		dst := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
	index, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return fmt.Errorf("the image archive has no index.json: %w", err)
	}
	var idx struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(index, &idx); err != nil || len(idx.Manifests) != 1 {
		return fmt.Errorf("the image archive's index.json: want one manifest (%v)", err)
	}
	return os.WriteFile(filepath.Join(dir, "digest"), []byte(idx.Manifests[0].Digest), 0o644)
}

// layoutFile reads a file of the image's layout, wherever it is.
func (p *pipeline) layoutFile(ctx context.Context, name string) (string, error) {
	if p.hostLayout != "" {
		b, err := os.ReadFile(filepath.Join(p.hostLayout, name))
		return string(b), err
	}
	s, err := p.layout.File(name).Contents(ctx)
	if err != nil {
		return "", explain(err)
	}
	return s, nil
}
