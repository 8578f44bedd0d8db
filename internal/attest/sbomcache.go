package attest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/uuid"
)

// SBOMCache makes an image's SBOM from an earlier SBOM of an image that
// shares its lower layers, when syft would list the same packages; else it
// runs syft on the whole image. It is written here because syft has no layer
// cache: every scan unpacks and indexes the whole squashed image, although a
// code change only replaces the image's top layer (the app's code), which
// holds no packages.
//
// Why the SBOM made so equals syft's (TestSBOMCacheMatchesSyft checks it
// against syft itself, for each rule below): syft's CycloneDX document is a
// function of the image's squashed file tree, plus a few fields about the
// image itself. An earlier entry E (same syft binary) lends its document to
// this image when they share their first p ≥ 1 layers (by diff ID) and
//
//  1. none of E's packages has evidence above layer p (syft records the layer
//     of each location in `syft:location:N:layerID`), and E's layers above p
//     change nothing syft reads about the packages below (rule 3), checked
//     when E was stored (sbomEntry.MinPrefix);
//  2. this image's layers above p are small (≤ 32 MB compressed) and syft finds
//     no package in them: they are unpacked into a directory and syft scans it
//     with its image catalogers only (`--override-default-catalogers image`:
//     an image scan does not run the declared ones, e.g. requirements.txt),
//     unless that directory holds nothing those catalogers read (syftReads:
//     a code change's layer, usually), when syft's answer is known;
//  3. neither's layers above p hold a whiteout or an opaque directory (they
//     would hide lower files), a link (syft follows it into lower layers), a
//     file at a path where syft found package evidence, a file or a new
//     directory inside a directory holding such evidence (a dpkg database, a
//     .dist-info: syft reads its siblings), under /usr/share/doc (the Debian
//     copyright files syft reads for licenses) or a distribution's identity
//     (/etc/os-release and the like: the one component with no location, the
//     operating system, comes from it; any other component without a
//     location makes E unusable).
//
// Then both images have the packages of the shared first p layers, found at
// the same places, and the SBOM is E's document with what syft writes about
// the image itself rewritten (metadata.component: the layout's path, the
// manifest digest, the config digest's hash as bom-ref; the image labels
// `syft:image:labels:*`; metadata.timestamp; serialNumber), edited as JSON
// text so that every other byte syft wrote is kept.
//
// Dir "" is no cache: always syft. Entries are one small description and
// the SBOM per image (by manifest digest and syft binary), written
// atomically; entries unused for 14 days go. Best effort: an unreadable or
// unwritable cache only costs a full scan.
type SBOMCache struct{ Dir string }

const (
	sbomCacheFormat = 1
	sbomCacheTTL    = 14 * 24 * time.Hour
	maxUpperBytes   = 32 << 20  // compressed: above it, syft on the whole image
	maxUnpacked     = 256 << 20 // what the layers above p may unpack to
	entrySuffix     = ".entry.json"
	sbomSuffix      = ".cdx.json"
)

// sbomEntry describes a stored SBOM (beside it: <key>.cdx.json).
type sbomEntry struct {
	Format   int      `json:"format"`
	Manifest string   `json:"manifest"` // the image's manifest digest
	Syft     string   `json:"syft"`     // syftIdentity
	Layers   []string `json:"layers"`   // diff IDs, the lowest first
	// MinPrefix: the SBOM is that of the image's first MinPrefix layers (the
	// layers above hold no package evidence and change nothing of the
	// packages below), so another image sharing at least these layers may
	// have it.
	MinPrefix int `json:"minPrefix"`

	key string
	mod time.Time
}

// OfLayout is the SBOM of the OCI layout in dir (one image, as
// SBOMOfLayout), and how it was made: "syft" (no cache), "syft (whole
// image: why not incremental)", "memo" (this image's SBOM from an earlier
// build) or "incremental (...)".
func (c SBOMCache) OfLayout(ctx context.Context, syft, dir string) (sb *SBOM, how string, err error) {
	defer func() {
		if sb != nil {
			sb.How = how
		}
	}()
	if c.Dir == "" {
		sb, err := SBOMOfLayout(ctx, syft, dir)
		return sb, "syft", err
	}
	bin, err := FindSyft(syft)
	if err != nil {
		return nil, "", err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	img, err := readLayout(abs)
	if err != nil { // syft says what is wrong with it
		sb, serr := sbomOf(ctx, bin, "oci-dir:"+abs)
		return sb, "syft (whole image: " + err.Error() + ")", serr
	}
	id := syftIdentity(bin)
	key := entryKey(img.manifest, id)
	if b, err := os.ReadFile(filepath.Join(c.Dir, key+sbomSuffix)); err == nil {
		if _, err := os.Stat(filepath.Join(c.Dir, key+entrySuffix)); err == nil {
			if sb, err := ParseSBOM(b); err == nil {
				c.touch(key)
				return sb, "memo", nil
			}
		}
	}
	entry := sbomEntry{Format: sbomCacheFormat, Manifest: img.manifest, Syft: id, Layers: img.diffIDs}
	sb, min, how, why := c.incremental(ctx, bin, id, img)
	if sb == nil {
		if sb, err = sbomOf(ctx, bin, "oci-dir:"+abs); err != nil {
			return nil, "", err
		}
		how = "syft (whole image: " + why + ")"
		min = len(img.layers)
		if ev, err := evidenceOf(sb.JSON, img.diffIDs); err == nil {
			min = img.minPrefix(ev)
		}
	}
	entry.MinPrefix = min
	c.put(key, entry, sb.JSON)
	return sb, how, nil
}

// incremental makes the SBOM from an earlier entry, or says why not (sb nil).
func (c SBOMCache) incremental(ctx context.Context, bin, id string, img *ociImage) (sb *SBOM, minPrefix int, how, why string) {
	e, p, why := c.donor(id, img)
	if e == nil {
		return nil, 0, "", why
	}
	doc, err := os.ReadFile(filepath.Join(c.Dir, e.key+sbomSuffix))
	if err != nil {
		return nil, 0, "", "the earlier scan's SBOM is gone"
	}
	ev, err := evidenceOf(doc, e.Layers)
	if err != nil {
		return nil, 0, "", err.Error()
	}
	upper := img.layers[p:]
	var size int64
	for _, l := range upper {
		n, err := l.Size()
		if err != nil {
			return nil, 0, "", err.Error()
		}
		size += n
	}
	if size > maxUpperBytes {
		return nil, 0, "", fmt.Sprintf("its top %d layer(s) are %d MB compressed, more than %d MB", len(upper), size>>20, maxUpperBytes>>20)
	}
	tmp, err := os.MkdirTemp("", "attest-upper-")
	if err != nil {
		return nil, 0, "", err.Error()
	}
	defer os.RemoveAll(tmp)
	files, unpacked := 0, int64(0)
	for i, l := range upper {
		n, u, why, err := walkLayer(l, ev, tmp, maxUnpacked-unpacked)
		if err != nil {
			why = "reading it: " + err.Error()
		}
		if why != "" {
			return nil, 0, "", fmt.Sprintf("layer %d of %d %s", p+i+1, len(img.layers), why)
		}
		files, unpacked = files+n, unpacked+u
	}
	switch {
	case len(upper) == 0:
		how = fmt.Sprintf("incremental (%d layers from an earlier scan: only the image's configuration differs)", p)
	case files == 0:
		how = fmt.Sprintf("incremental (%d lower layers from an earlier scan; the top %d layer(s) hold no files)", p, len(upper))
	default:
		// syft's answer for the top layers is known without running it when
		// they hold nothing its catalogers read (syftReads); else syft says.
		reads, unknown := syftReadsOf(ctx, bin, id, c.Dir)
		hit := ""
		if unknown == nil {
			hit, unknown = reads.firstIn(tmp)
		}
		if unknown == nil && hit == "" {
			how = fmt.Sprintf("incremental (%d lower layers from an earlier scan; the top %d layer(s) hold nothing syft's catalogers read)", p, len(upper))
			break
		}
		found, err := sbomOf(ctx, bin, "dir:"+tmp, "--override-default-catalogers", "image")
		if err != nil {
			return nil, 0, "", "syft on its top layers: " + err.Error()
		}
		if n := componentCount(found.JSON); n != 0 {
			return nil, 0, "", fmt.Sprintf("syft finds %d package(s) in its top %d layer(s)", n, len(upper))
		}
		why := ", for " + hit // what syft reads there, or why that is not known
		if unknown != nil {
			why = " (what syft reads is not known: " + unknown.Error() + ")"
		}
		how = fmt.Sprintf("incremental (%d lower layers from an earlier scan; syft on the top %d layer(s)%s: no packages)", p, len(upper), why)
	}
	out, err := rewriteImageFields(doc, img)
	if err != nil {
		return nil, 0, "", err.Error()
	}
	if sb, err = ParseSBOM(out); err != nil {
		return nil, 0, "", err.Error()
	}
	c.touch(e.key)
	// The layers between E's MinPrefix and p are E's, checked against the
	// same evidence; those above p were checked now.
	return sb, e.MinPrefix, how, ""
}

// donor is the entry (same syft) sharing the longest prefix p of layers
// with img that may lend its SBOM (p ≥ its MinPrefix, p ≥ 1), the newest
// of those; or nil and why none.
func (c SBOMCache) donor(id string, img *ociImage) (*sbomEntry, int, string) {
	des, err := os.ReadDir(c.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, 0, "the cache is unreadable: " + err.Error()
	}
	var best *sbomEntry
	bestP, shared := 0, 0
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), entrySuffix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(c.Dir, de.Name()))
		var e sbomEntry
		if err != nil || json.Unmarshal(b, &e) != nil || e.Format != sbomCacheFormat || e.Syft != id {
			continue
		}
		e.key = strings.TrimSuffix(de.Name(), entrySuffix)
		if info, err := de.Info(); err == nil {
			e.mod = info.ModTime()
		}
		p := 0
		for p < len(e.Layers) && p < len(img.diffIDs) && e.Layers[p] == img.diffIDs[p] {
			p++
		}
		shared = max(shared, p)
		if p == 0 || p < e.MinPrefix {
			continue
		}
		if p > bestP || (p == bestP && e.mod.After(best.mod)) {
			best, bestP = &e, p
		}
	}
	switch {
	case best != nil:
		return best, bestP, ""
	case shared == 0:
		return nil, 0, "no earlier scan shares its lowest layer"
	default:
		return nil, 0, fmt.Sprintf("the earlier scans sharing its lower %d layer(s) found packages, or changes to them, above those", shared)
	}
}

// ociImage is what the SBOM depends on of the image in a layout.
type ociImage struct {
	dir      string // absolute: syft's metadata.component.name
	manifest string // the manifest digest: metadata.component.version
	config   string // the config digest: syft's image ID
	labels   map[string]string
	layers   []v1.Layer
	diffIDs  []string
}

func readLayout(dir string) (*ociImage, error) {
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("not an OCI layout: %v", err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(im.Manifests) != 1 || !im.Manifests[0].MediaType.IsImage() {
		return nil, fmt.Errorf("the layout holds %d manifests, not one image", len(im.Manifests))
	}
	img, err := ii.Image(im.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	o := &ociImage{dir: dir, manifest: im.Manifests[0].Digest.String(), config: cfgName.String(), labels: cf.Config.Labels, layers: ls}
	// The diff IDs as the config names them: a layout layer's DiffID()
	// gunzips the whole layer to hash it (0.35 s of CPU for this 20 MB
	// image on every build, a memo hit included). The config is what the
	// image is pulled by (its digest is in the manifest), so its diff_ids
	// are the layers' identities anyway.
	if len(cf.RootFS.DiffIDs) != len(ls) {
		return nil, fmt.Errorf("the config names %d layers (rootfs.diff_ids), the manifest %d", len(cf.RootFS.DiffIDs), len(ls))
	}
	for _, d := range cf.RootFS.DiffIDs {
		o.diffIDs = append(o.diffIDs, d.String())
	}
	return o, nil
}

// minPrefix is the sbomEntry.MinPrefix of img's own SBOM (evidence ev): the
// layers above the highest one holding evidence, from the top down, while
// they change nothing of it (and stay within maxUpperBytes in all).
func (img *ociImage) minPrefix(ev *evidence) int {
	if ev.unplaced != "" {
		return len(img.layers)
	}
	var size int64
	for i := len(img.layers) - 1; i > ev.top; i-- {
		n, err := img.layers[i].Size()
		if size += n; err != nil || size > maxUpperBytes {
			return i + 1
		}
		if _, _, why, err := walkLayer(img.layers[i], ev, "", maxUnpacked); why != "" || err != nil {
			return i + 1
		}
	}
	return ev.top + 1
}

// evidence is where an SBOM's packages were found.
type evidence struct {
	top      int             // the highest layer (index) holding a location; -1: none
	unplaced string          // a component that cannot be placed in a layer
	paths    map[string]bool // the locations (no leading /)
	dirs     map[string]bool // their directories, and the ones syft reads anyway
	above    map[string]bool // dirs and their ancestors
}

// Always watched: Debian copyright files (licenses) and what syft identifies
// the distribution by (the operating-system component has no location).
var (
	watchedDirs  = []string{"usr/share/doc"}
	watchedPaths = []string{"etc/os-release", "usr/lib/os-release", "etc/system-release-cpe", "etc/redhat-release",
		"etc/debian_version", "etc/lsb-release", "etc/alpine-release", "bin/busybox"}
)

type cdxComponent struct {
	Type       string `json:"type"`
	BOMRef     string `json:"bom-ref"`
	Properties []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"properties"`
	Components []cdxComponent `json:"components"`
}

// evidenceOf reads the locations of doc's components (layers: the diff IDs
// of the image it describes).
func evidenceOf(doc []byte, layers []string) (*evidence, error) {
	var d struct {
		Components []cdxComponent `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("the earlier SBOM: %v", err)
	}
	index := map[string]int{}
	for i, l := range layers {
		index[l] = i
	}
	ev := &evidence{top: -1, paths: map[string]bool{}, dirs: map[string]bool{}, above: map[string]bool{}}
	var walk func([]cdxComponent)
	walk = func(cs []cdxComponent) {
		for _, c := range cs {
			located := false
			for _, p := range c.Properties {
				if !strings.HasPrefix(p.Name, "syft:location:") {
					continue
				}
				switch {
				case strings.HasSuffix(p.Name, ":layerID"):
					i, ok := index[p.Value]
					if !ok {
						ev.unplaced = c.BOMRef + " (in no layer of the image)"
					}
					ev.top, located = max(ev.top, i), true
				case strings.HasSuffix(p.Name, ":path"):
					rel := strings.TrimPrefix(path.Clean("/"+p.Value), "/")
					ev.paths[rel], ev.dirs[path.Dir(rel)] = true, true
				}
			}
			if !located && c.Type != "operating-system" {
				ev.unplaced = c.BOMRef + " (no location)"
			}
			walk(c.Components)
		}
	}
	walk(d.Components)
	for _, p := range watchedPaths {
		ev.paths[p] = true
	}
	for _, d := range watchedDirs {
		ev.dirs[d] = true
	}
	for d := range ev.dirs {
		for a := d; ; a = path.Dir(a) {
			ev.above[a] = true
			if a == "." {
				break
			}
		}
	}
	return ev, nil
}

// touches says how a layer's entry name (cleaned, no leading /) could change
// what syft lists about the packages of ev, "" if it cannot.
func (ev *evidence) touches(name string, isDir bool) string {
	if ev.paths[name] || (path.Dir(name) == "etc" && strings.Contains(path.Base(name), "release")) {
		return "replaces /" + name + ", which syft reads for packages or the distribution"
	}
	if isDir && ev.above[name] {
		return "" // a directory's own entry: it changes no file in it
	}
	for d := path.Dir(name); ; d = path.Dir(d) {
		if ev.dirs[d] {
			return fmt.Sprintf("adds /%s where syft reads package metadata (/%s)", name, d)
		}
		if d == "." {
			return ""
		}
	}
}

// walkLayer reads a layer's tar: why it could change the packages of ev
// ("" if it cannot), and, with dst, its directories and regular files
// unpacked into dst (devices and FIFOs skipped; nothing can land outside
// dst: a path leaving the root, a link stop the walk). Files and bytes count
// the regular files; more than limit bytes stops it too.
func walkLayer(l v1.Layer, ev *evidence, dst string, limit int64) (files int, bytes int64, why string, err error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return 0, 0, "", err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, bytes, "", nil
		}
		if err != nil {
			return files, bytes, "", err
		}
		name := path.Clean("/" + h.Name)[1:]
		if strings.HasPrefix(path.Clean(h.Name), "../") || path.Clean(h.Name) == ".." {
			return files, bytes, fmt.Sprintf("holds a path outside the image's root (%q)", h.Name), nil
		}
		if name == "" {
			continue
		}
		if base := path.Base(name); base == ".wh..wh..opq" {
			return files, bytes, "hides /" + path.Dir(name) + " of the lower layers (an opaque directory)", nil
		} else if strings.HasPrefix(base, ".wh.") {
			return files, bytes, "deletes /" + path.Join(path.Dir(name), strings.TrimPrefix(base, ".wh.")) + " (a whiteout)", nil
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if why := ev.touches(name, true); why != "" {
				return files, bytes, why, nil
			}
			if dst != "" {
				if err := os.MkdirAll(filepath.Join(dst, filepath.FromSlash(name)), 0o755); err != nil {
					return files, bytes, "", err
				}
			}
		case tar.TypeReg:
			if why := ev.touches(name, false); why != "" {
				return files, bytes, why, nil
			}
			if files, bytes = files+1, bytes+h.Size; bytes > limit {
				return files, bytes, fmt.Sprintf("unpacks to more than %d MB", limit>>20), nil
			}
			if dst != "" {
				if err := writeFile(filepath.Join(dst, filepath.FromSlash(name)), tr, os.FileMode(h.Mode)&0o777|0o600); err != nil {
					return files, bytes, "", err
				}
			}
		case tar.TypeSymlink, tar.TypeLink:
			return files, bytes, "holds a link (/" + name + "): syft would follow it into the lower layers", nil
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			if why := ev.touches(name, false); why != "" {
				return files, bytes, why, nil
			}
		default:
			return files, bytes, fmt.Sprintf("holds a tar entry of type %q (/%s)", h.Typeflag, name), nil
		}
	}
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	return errors.Join(err, f.Close())
}

// componentCount counts the components of a CycloneDX document, nested ones too.
func componentCount(doc []byte) int {
	var d struct {
		Components []cdxComponent `json:"components"`
	}
	if json.Unmarshal(doc, &d) != nil {
		return -1
	}
	var count func([]cdxComponent) int
	count = func(cs []cdxComponent) int {
		n := len(cs)
		for _, c := range cs {
			n += count(c.Components)
		}
		return n
	}
	return count(d.Components)
}

// rewriteImageFields is doc (syft's CycloneDX JSON of another image with
// the same packages) with what syft writes about the image itself set for
// img: as syft (SyftVersion) writes them for `oci-dir:` (metadata.component: name
// = the path scanned, version = the manifest digest, bom-ref = the FNV-1 64
// hash of the config digest, syft's image ID, as its artifact.IDByHash;
// metadata.properties `syft:image:labels:<key>` sorted by key), a new
// serialNumber and timestamp. The JSON is edited as text, field by field:
// every other byte stays as syft wrote it.
func rewriteImageFields(doc []byte, img *ociImage) ([]byte, error) {
	top, err := objectFields(doc)
	if err != nil {
		return nil, err
	}
	meta, err := objectFields(top.get("metadata"))
	if err != nil {
		return nil, fmt.Errorf("the earlier SBOM's metadata: %v", err)
	}
	comp, err := objectFields(meta.get("component"))
	if err != nil {
		return nil, fmt.Errorf("the earlier SBOM's metadata.component: %v", err)
	}
	h := fnv.New64()
	h.Write([]byte(img.config))
	if err := errors.Join(
		comp.set("bom-ref", fmt.Sprintf("%016x", h.Sum64())),
		comp.set("name", img.dir),
		comp.set("version", img.manifest),
		meta.set("component", comp.encode()),
		meta.set("timestamp", time.Now().UTC().Format(time.RFC3339)),
		top.set("serialNumber", "urn:uuid:"+uuid.NewString()),
	); err != nil {
		return nil, fmt.Errorf("the earlier SBOM: %v", err)
	}

	// The labels replace the old ones where they were (else after the component).
	var props []json.RawMessage
	if raw := meta.get("properties"); raw != nil {
		if err := json.Unmarshal(raw, &props); err != nil {
			return nil, fmt.Errorf("the earlier SBOM's metadata.properties: %v", err)
		}
	}
	const labelPrefix = "syft:image:labels:"
	var kept []json.RawMessage
	at := -1
	for _, p := range props {
		var np struct{ Name string }
		if json.Unmarshal(p, &np) == nil && strings.HasPrefix(np.Name, labelPrefix) {
			if at < 0 {
				at = len(kept)
			}
			continue
		}
		kept = append(kept, p)
	}
	if at < 0 {
		at = len(kept)
	}
	keys := make([]string, 0, len(img.labels))
	for k := range img.labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var labels []json.RawMessage
	for _, k := range keys {
		labels = append(labels, jsonFields{{"name", jsonString(labelPrefix + k)}, {"value", jsonString(img.labels[k])}}.encode())
	}
	props = append(append(append([]json.RawMessage{}, kept[:at]...), labels...), kept[at:]...)
	if len(props) == 0 {
		meta = meta.without("properties")
	} else {
		list := []byte{'['}
		for i, p := range props {
			if i > 0 {
				list = append(list, ',')
			}
			list = append(list, p...)
		}
		list = append(list, ']')
		if meta.get("properties") == nil {
			meta = meta.insertAfter("component", jsonField{"properties", list})
		} else {
			_ = meta.set("properties", json.RawMessage(list))
		}
	}
	_ = top.set("metadata", meta.encode())
	return append(top.encode(), '\n'), nil
}

type jsonField struct {
	key string
	val json.RawMessage
}

// jsonFields is a JSON object's fields in their order, each value as written.
type jsonFields []jsonField

func objectFields(b []byte) (jsonFields, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var fs jsonFields
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		fs = append(fs, jsonField{t.(string), v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return fs, nil
}

func (fs jsonFields) get(key string) json.RawMessage {
	for _, f := range fs {
		if f.key == key {
			return f.val
		}
	}
	return nil
}

// set replaces a field's value (a string, or raw JSON); a missing field is an error.
func (fs jsonFields) set(key string, v any) error {
	raw, ok := v.(json.RawMessage)
	if !ok {
		raw = jsonString(v.(string))
	}
	for i := range fs {
		if fs[i].key == key {
			fs[i].val = raw
			return nil
		}
	}
	return fmt.Errorf("no field %q", key)
}

func (fs jsonFields) without(key string) jsonFields {
	var out jsonFields
	for _, f := range fs {
		if f.key != key {
			out = append(out, f)
		}
	}
	return out
}

func (fs jsonFields) insertAfter(key string, f jsonField) jsonFields {
	for i := range fs {
		if fs[i].key == key {
			return append(append(append(jsonFields{}, fs[:i+1]...), f), fs[i+1:]...)
		}
	}
	return append(fs, f)
}

func (fs jsonFields) encode() json.RawMessage {
	b := []byte{'{'}
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, jsonString(f.key)...), ':'), f.val...)
	}
	return append(b, '}')
}

// jsonString encodes s as syft does (Go's encoder, no HTML escaping).
func jsonString(s string) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

// syftIdentity names the syft binary (path, size, mtime): another syft may list other packages.
func syftIdentity(bin string) string {
	st, err := os.Stat(bin)
	if err != nil {
		return bin
	}
	return fmt.Sprint(bin, " ", st.Size(), " ", st.ModTime().UnixNano())
}

func entryKey(manifest, syft string) string {
	h := sha256.Sum256([]byte(fmt.Sprint(sbomCacheFormat, "\x00", manifest, "\x00", syft)))
	return hex.EncodeToString(h[:16])
}

// put stores an entry (the SBOM first: an entry names a complete one) and
// prunes the entries unused for sbomCacheTTL.
func (c SBOMCache) put(key string, e sbomEntry, doc []byte) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return
	}
	desc, err := json.Marshal(e)
	if err != nil || writeAtomic(c.Dir, key+sbomSuffix, doc) != nil || writeAtomic(c.Dir, key+entrySuffix, desc) != nil {
		return
	}
	des, _ := os.ReadDir(c.Dir)
	for _, de := range des {
		if info, err := de.Info(); err == nil && time.Since(info.ModTime()) > sbomCacheTTL {
			os.Remove(filepath.Join(c.Dir, de.Name()))
		}
	}
}

// touch marks an entry used (pruning goes by the files' mtime).
func (c SBOMCache) touch(key string) {
	now := time.Now()
	for _, s := range []string{sbomSuffix, entrySuffix} {
		_ = os.Chtimes(filepath.Join(c.Dir, key+s), now, now)
	}
}

// writeAtomic writes dir/name through a temporary file and a rename: a
// reader never sees half a file.
func writeAtomic(dir, name string, b []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
