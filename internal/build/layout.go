package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"dagger.io/dagger"
)

// The Dockerfile image's layout is made on the host: the engine exports the
// image as an OCI archive straight to a file, and the build program unpacks
// it into p.hostLayout (index.json, oci-layout, blobs/, plus the file
// "digest" naming its one manifest, as ci.ImageLayout writes it). Making it
// in the engine instead (an untar exec, then an export of the directory)
// moved the whole image three times. The native image's layout is made in
// the engine (builtImage.layout) and leaves it through exportNative.

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
			if err := writeFrom(dst, tr); err != nil {
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

// file reads a file of the image's layout, wherever it is.
func (img *builtImage) file(ctx context.Context, name string) (string, error) {
	if img.host != "" {
		b, err := os.ReadFile(filepath.Join(img.host, name))
		return string(b), err
	}
	s, err := img.layout.File(name).Contents(ctx)
	if err != nil {
		return "", explain(err)
	}
	return s, nil
}

// exportNative writes the native image's layout (img.layout, in the engine)
// into dir on the host. Its blobs are kept in the memo (memo dir/blobs,
// by digest), so only what an earlier build did not export leaves the
// engine: the manifest, the config and a code change's app layer (a few
// KB), not the base and venv layers (~20 MB, 0.15 s of export). A kept blob
// is checked against its digest before it is used; without a memo, or when
// anything about the store fails, the whole layout is exported.
func (p *session) exportNative(ctx context.Context, img *builtImage, dir string) error {
	if p.memo.dir == "" {
		_, err := img.layout.Export(ctx, dir)
		return err
	}
	store := filepath.Join(p.memo.dir, "blobs", "sha256")
	blobs, err := img.blobs(ctx)
	if err != nil {
		return err
	}
	include := []string{"oci-layout", "index.json", "digest"}
	var kept []ociBlob
	for _, b := range blobs {
		if b.manifest || !sameSize(filepath.Join(store, b.hex), b.size) {
			include = append(include, "blobs/sha256/"+b.hex)
		} else {
			kept = append(kept, b)
		}
	}
	part := p.c.Directory().WithDirectory(".", img.layout, dagger.DirectoryWithDirectoryOpts{Include: include})
	if _, err := part.Export(ctx, dir); err != nil {
		return err
	}
	for _, b := range kept {
		if err := useBlob(filepath.Join(store, b.hex), filepath.Join(dir, "blobs", "sha256", b.hex), b.hex); err != nil {
			// a damaged store: this blob from the engine after all, and
			// kept anew by keepBlobs (it skips a blob of the right size)
			p.log.Warn("a kept layer is unusable; exported again", "blob", b.hex, "err", err)
			os.Remove(filepath.Join(store, b.hex))
			if _, err := img.layout.File("blobs/sha256/"+b.hex).Export(ctx, filepath.Join(dir, "blobs", "sha256", b.hex)); err != nil {
				return err
			}
		}
	}
	keepBlobs(store, dir, blobs)
	return nil
}

// ociBlob is a blob the layout's manifest names (or the manifest itself).
type ociBlob struct {
	hex      string
	size     int64
	manifest bool
}

// blobs reads the manifest's blob list from the layout.
func (img *builtImage) blobs(ctx context.Context) ([]ociBlob, error) {
	digest, err := img.file(ctx, "digest")
	if err != nil {
		return nil, err
	}
	mhex, ok := strings.CutPrefix(strings.TrimSpace(digest), "sha256:")
	if !ok {
		return nil, fmt.Errorf("the layout's digest file says %q, not sha256:...", digest)
	}
	raw, err := img.file(ctx, "blobs/sha256/"+mhex)
	if err != nil {
		return nil, err
	}
	var m struct {
		Config ocidesc   `json:"config"`
		Layers []ocidesc `json:"layers"`
	}
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("the layout's manifest: %w", err)
	}
	blobs := []ociBlob{{hex: mhex, size: int64(len(raw)), manifest: true}}
	for _, d := range append([]ocidesc{m.Config}, m.Layers...) {
		h, ok := strings.CutPrefix(d.Digest, "sha256:")
		if !ok || len(h) != 64 || strings.ContainsAny(h, "/.") {
			return nil, fmt.Errorf("the layout's manifest names blob %q", d.Digest)
		}
		blobs = append(blobs, ociBlob{hex: h, size: d.Size})
	}
	return blobs, nil
}

type ocidesc struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

func sameSize(path string, size int64) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Size() == size
}

// useBlob puts the kept blob src at dst (a hard link, else a copy), after
// checking its sha256 is want (~15 ms for 20 MB).
func useBlob(src, dst, want string) error {
	if err := checkBlob(src, want); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	markUsed(src)
	return linkOrCopy(src, dst)
}

// linkOrCopy puts the file src at dst: a hard link, else (another file
// system, a store that refuses links) a copy.
func linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	return copyFile(src, dst)
}

// checkBlob: the file src's sha256 is want (hex).
func checkBlob(src, want string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("its content hashes to sha256:%s", got)
	}
	return nil
}

// markUsed records that the kept blob is in use now, so keepBlobs does
// not prune it. Not by the blob's own mtime: a kept blob may be in the
// engine's hands for another build at that moment (Host().File in
// keptBaseLayer, a hard link in a layout), and the engine's file sync fails
// with "mod time changed during sync" when the mtime moves under it (CI
// saw that between two parallel builds sharing one memo). So a kept blob's
// inode is never changed once it is in the store; its use is the mtime of
// an empty marker beside the store (blobs/used/<hex>).
func markUsed(blob string) {
	m := usedMarker(blob)
	now := time.Now()
	if os.Chtimes(m, now, now) == nil {
		return
	}
	if os.MkdirAll(filepath.Dir(m), 0o755) == nil {
		if f, err := os.Create(m); err == nil {
			f.Close()
		}
	}
}

// usedMarker is the marker of the store's blob: <memo>/blobs/used/<hex>.
func usedMarker(blob string) string {
	return filepath.Join(filepath.Dir(filepath.Dir(blob)), "used", filepath.Base(blob))
}

// lastUsed is when the blob was kept or last used, whichever is later.
func lastUsed(blob string, kept time.Time) time.Time {
	if st, err := os.Stat(usedMarker(blob)); err == nil && st.ModTime().After(kept) {
		return st.ModTime()
	}
	return kept
}

// keepBlobs adds the layout's blobs to the store (best effort: the store is
// a cache) and prunes those unused for memoTTL.
func keepBlobs(store, dir string, blobs []ociBlob) {
	if err := os.MkdirAll(store, 0o755); err != nil {
		return
	}
	for _, b := range blobs {
		dst := filepath.Join(store, b.hex)
		if b.manifest || sameSize(dst, b.size) {
			continue
		}
		src := filepath.Join(dir, "blobs", "sha256", b.hex)
		// This process's own name: another build keeping the same blob
		// (the store is per user, not per build) must not remove it, nor
		// truncate it through copyFile while it is a link to our layout.
		tmp := fmt.Sprintf("%s.%d.tmp", dst, os.Getpid())
		os.Remove(tmp)
		if linkOrCopy(src, tmp) != nil {
			os.Remove(tmp)
			continue
		}
		// A link, not a rename: a blob another build kept meanwhile is
		// not replaced under a reader (see markUsed).
		os.Link(tmp, dst)
		os.Remove(tmp)
	}
	entries, _ := os.ReadDir(store)
	for _, e := range entries {
		blob := filepath.Join(store, e.Name())
		if info, err := e.Info(); err == nil && time.Since(lastUsed(blob, info.ModTime())) > memoTTL {
			os.Remove(blob)
			os.Remove(usedMarker(blob))
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeFrom(dst, in)
}

// writeFrom writes what r holds to the file dst (0644, created or truncated).
func writeFrom(dst string, r io.Reader) error {
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
