package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
)

// The media types of an OCI image index and image manifest.
const (
	ociIndex    = "application/vnd.oci.image.index.v1+json"
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
)

// exportLayouts puts the image's layout on the host in dir: for one image,
// the native layout exported (a Dockerfile image's is there already); for an
// index, each platform's layout in its own directory, then the index over
// them in dir (writeIndex).
func (p *session) exportLayouts(ctx context.Context, img *builtImage, dir string) error {
	if img.platforms == nil {
		if img.host != dir {
			return p.exportNative(ctx, img, dir)
		}
		return nil
	}
	for _, one := range img.platforms {
		if one.host == "" {
			pdir := platformDir(dir, one.platform)
			if err := p.exportNative(ctx, one, pdir); err != nil {
				return fmt.Errorf("%s: %w", one.platform, err)
			}
			one.host = pdir
		}
	}
	if err := writeIndex(dir, img.platforms); err != nil {
		return fmt.Errorf("write the image index: %w", err)
	}
	img.host = dir
	return nil
}

// platformDir is where a platform's own layout goes: layoutDir/platforms/linux-arm64.
func platformDir(layoutDir, platform string) string {
	return filepath.Join(layoutDir, "platforms", strings.ReplaceAll(platform, "/", "-"))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// writeIndex makes dir the OCI layout of one image index over the platforms'
// layouts (each img.host, one manifest each), in their order, and writes
// its digest into dir/digest. The index is canonical JSON (sorted keys, no
// space), its platform fields the contract's (ci.OCIPlatform): the same
// images give the same index digest. The blobs are hard links (copies where
// links fail) of the platforms' own.
//
// Written here, not with go-containerregistry's mutate.AppendManifests:
// its index serialization is Go's struct order with the descriptor's
// optional fields as they come, and the digest must not move with a library
// upgrade; this is the same canonical form ci/scripts/oci.py writes.
func writeIndex(dir string, imgs []*builtImage) error {
	var manifests []any
	for _, img := range imgs {
		var idx struct {
			Manifests []struct {
				MediaType string `json:"mediaType"`
				Digest    string `json:"digest"`
				Size      int64  `json:"size"`
			} `json:"manifests"`
		}
		b, err := os.ReadFile(filepath.Join(img.host, "index.json"))
		if err == nil {
			err = json.Unmarshal(b, &idx)
		}
		if err != nil || len(idx.Manifests) != 1 {
			return fmt.Errorf("%s: the layout's index.json: want one manifest (%v)", img.platform, err)
		}
		d := idx.Manifests[0]
		if d.MediaType == "" {
			d.MediaType = ociManifest
		}
		manifests = append(manifests, map[string]any{"mediaType": d.MediaType, "digest": d.Digest, "size": d.Size,
			"platform": ci.OCIPlatform(dagger.Platform(img.platform))})
		if err := linkBlobs(filepath.Join(img.host, "blobs", "sha256"), filepath.Join(dir, "blobs", "sha256")); err != nil {
			return err
		}
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndex, "manifests": manifests})
	if err != nil {
		return err
	}
	digest := "sha256:" + sha256Hex(index)
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", sha256Hex(index)), index, 0o644); err != nil {
		return err
	}
	top, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndex,
		"manifests": []any{map[string]any{"mediaType": ociIndex, "digest": digest, "size": len(index)}}})
	for name, b := range map[string][]byte{"index.json": top, "oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "digest": []byte(digest + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// linkBlobs puts every blob of src into dst (a hard link, else a copy), keeping those there.
func linkBlobs(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		to := filepath.Join(dst, e.Name())
		if _, err := os.Stat(to); err == nil {
			continue
		}
		if err := linkOrCopy(filepath.Join(src, e.Name()), to); err != nil {
			return err
		}
	}
	return nil
}

// tarLayout writes the index's layout in dir (not the platforms' own
// directories, nor the digest file) as an OCI archive at out: what `crane
// push`, skopeo and `docker load` (containerd store) read.
func tarLayout(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == "." || rel == "digest" {
			return nil
		}
		if rel == "platforms" {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname = filepath.ToSlash(rel), time.Unix(0, 0), 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil || !d.Type().IsRegular() {
			return err
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// samePlatform fails a Dockerfile image built for one platform whose
// binaries are another's: a FROM image that is one manifest, not an index of
// platforms, is used for any platform asked (the engine even writes the
// platform asked into the config), and its RUN steps then ran natively. The
// first of a few executables every Python image has tells (its ELF header).
func samePlatform(ctx context.Context, img *builtImage) error {
	want := ci.OCIPlatform(dagger.Platform(img.platform))["architecture"]
	tmp, err := os.MkdirTemp("", "build-elf-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for i, path := range []string{"/bin/sh", "/usr/bin/env", "/usr/local/bin/python3", "/usr/bin/python3"} {
		// exported, not read with Contents: that is a string, not binary-safe
		host := filepath.Join(tmp, fmt.Sprint(i))
		if _, err := img.ctr.File(path).Export(ctx, host); err != nil {
			continue // not in this image
		}
		f, err := elf.Open(host)
		if err != nil {
			continue
		}
		f.Close()
		got := map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"}[f.Machine]
		if got == "" || got == want {
			return nil
		}
		return &stepFailure{Step: "image", Exit: -1, Err: fmt.Errorf("the Dockerfile built a linux/%s image for %s (its %s is %s): its FROM image has no %s image (one image manifest, not an index of platforms): remove %s from platforms, or FROM an image published for it (nothing was pushed)",
			got, img.platform, path, f.Machine, img.platform, img.platform)}
	}
	return nil
}
