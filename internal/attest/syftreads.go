package attest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/gabriel-vasile/mimetype"
)

// syftReads is what syft's image catalogers open to find packages, as the
// syft binary itself reports it. A tree holding none of it gives syft
// nothing to find, so SBOMCache skips the scan of a code change's top layer
// (~1 CPU-s: syft builds its license scanner on every start, whatever it
// scans) and keeps its answer the same. The facts come from the tool:
//
//   - `syft cataloger list --override-default-catalogers image`: the
//     catalogers the top layers' scan selects (the same selection code);
//   - `syft cataloger info` (SYFT_EXP_CAPABILITIES=true): each one's
//     detectors, the globs and MIME types it asks the file resolver for;
//     conditional ones count as active;
//   - syft resolves a glob with doublestar on each file's path from the
//     scanned root (stereoscope's filetree) and a MIME type with
//     gabriel-vasile/mimetype on the file's first bytes: the same libraries,
//     at syft v1.54.1's versions (go.mod), do it here.
//
// One thing syft reads is not a cataloger's: the distribution's identity
// (syft/linux/identify_release.go), listed in distroIdentity.
//
// Anything unexpected (a syft other than SyftVersion, a cataloger without
// detectors, a detector of another kind) means "we cannot tell", and syft
// scans. TestSyftReadsIsWhatSyftFinds checks the rule against syft.
type syftReads struct {
	Format    int      `json:"format"`
	Globs     []string `json:"globs"`
	MIMETypes []string `json:"mimeTypes"`
	Unknown   string   `json:"unknown,omitempty"` // why this syft cannot say (kept too: asked once per binary)
}

const syftReadsFormat = 1

// distroIdentity are the files syft identifies the distribution by (it
// writes it as a component of its own): syft v1.54.1's identityFiles.
var distroIdentity = []string{"/etc/os-release", "/usr/lib/os-release", "/etc/system-release-cpe", "/etc/redhat-release", "/bin/busybox"}

// syftReadsOf is syftReads for the syft binary bin (identity id), or why it
// cannot say; from the cache dir when an earlier build asked it (three syft
// runs, ~0.25 s).
func syftReadsOf(ctx context.Context, bin, id, dir string) (*syftReads, error) {
	h := sha256.Sum256([]byte(fmt.Sprint(syftReadsFormat, "\x00", id)))
	name := "syft-reads-" + hex.EncodeToString(h[:12]) + ".json"
	r := &syftReads{}
	if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || json.Unmarshal(b, r) != nil || r.Format != syftReadsFormat {
		var err error
		if r, err = askSyftWhatItReads(ctx, bin); err != nil {
			if ctx.Err() != nil {
				return nil, err // stopped: nothing learnt about this syft
			}
			r = &syftReads{Format: syftReadsFormat, Unknown: err.Error()}
		}
		if b, err := json.Marshal(r); err == nil && os.MkdirAll(dir, 0o755) == nil {
			_ = writeAtomic(dir, name, b) // best effort, as the rest of the cache
		}
	}
	if r.Unknown != "" {
		return nil, errors.New(r.Unknown)
	}
	return r, nil
}

func askSyftWhatItReads(ctx context.Context, bin string) (*syftReads, error) {
	var version struct {
		Version string `json:"version"`
	}
	if err := runSyftJSON(ctx, bin, &version, "version", "-o", "json"); err != nil {
		return nil, err
	}
	if strings.TrimPrefix(version.Version, "v") != strings.TrimPrefix(SyftVersion, "v") {
		return nil, fmt.Errorf("syft %s, not %s (the rule is checked against that one)", version.Version, SyftVersion)
	}
	var list struct {
		Catalogers []struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		} `json:"catalogers"`
	}
	if err := runSyftJSON(ctx, bin, &list, "cataloger", "list", "-o", "json", "--override-default-catalogers", "image"); err != nil {
		return nil, err
	}
	var info struct {
		Catalogers []struct {
			Name     string `json:"name"`
			Patterns []struct {
				Method   string   `json:"method"`
				Criteria []string `json:"criteria"`
			} `json:"patterns"`
		} `json:"catalogers"`
	}
	if err := runSyftJSON(ctx, bin, &info, "cataloger", "info", "-o", "json"); err != nil {
		return nil, err
	}
	detectors := map[string]int{}
	for i, c := range info.Catalogers {
		detectors[c.Name] = i
	}
	r := &syftReads{Format: syftReadsFormat}
	seen := map[string]bool{}
	add := func(to *[]string, v string) {
		if !seen[v] {
			seen[v] = true
			*to = append(*to, v)
		}
	}
	for _, c := range list.Catalogers {
		i, ok := detectors[c.Name]
		if !ok || len(info.Catalogers[i].Patterns) == 0 {
			// syft's file catalogers (digests, metadata, content,
			// executables) describe files, never packages; the SBOM leaves
			// files out (sbomOf).
			if len(c.Tags) == 1 && c.Tags[0] == "file" {
				continue
			}
			return nil, fmt.Errorf("syft does not say what its cataloger %s reads", c.Name)
		}
		for _, p := range info.Catalogers[i].Patterns {
			for _, v := range p.Criteria {
				switch p.Method {
				case "glob":
					if !doublestar.ValidatePattern(v) {
						return nil, fmt.Errorf("syft's cataloger %s has a glob doublestar cannot read: %q", c.Name, v)
					}
					add(&r.Globs, v)
				case "mimetype":
					add(&r.MIMETypes, v)
				default:
					return nil, fmt.Errorf("syft's cataloger %s finds files by %q", c.Name, p.Method)
				}
			}
		}
	}
	if len(r.Globs) == 0 {
		return nil, fmt.Errorf("syft names no catalogers for images")
	}
	return r, nil
}

func runSyftJSON(ctx context.Context, bin string, v any, args ...string) error {
	home, err := os.MkdirTemp("", "attest-syft-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(syftEnv(home), "SYFT_EXP_CAPABILITIES=true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("syft %s: %v: %s", strings.Join(args, " "), err, lastLines(stderr.String(), 3))
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("syft %s wrote no JSON: %v", strings.Join(args, " "), err)
	}
	return nil
}

// firstIn is the first path under root (as syft names it scanning root:
// "/" + the path from root) that syft would open to find packages, "" if
// none. Globs are matched as written and lower-cased (more than syft does:
// a false hit only costs a scan).
func (r *syftReads) firstIn(root string) (string, error) {
	hit := ""
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		name := "/" + filepath.ToSlash(rel)
		for _, id := range distroIdentity {
			if name == id {
				hit = name
				return fs.SkipAll
			}
		}
		for _, g := range r.Globs {
			if doublestar.MatchUnvalidated(g, name) || doublestar.MatchUnvalidated(strings.ToLower(g), strings.ToLower(name)) {
				hit = name
				return fs.SkipAll
			}
		}
		if !d.Type().IsRegular() || len(r.MIMETypes) == 0 {
			return nil
		}
		m, err := mimetype.DetectFile(p)
		if err != nil {
			return err
		}
		for ; m != nil; m = m.Parent() { // syft asks for x-elf too: a parent
			for _, t := range r.MIMETypes {
				if m.Is(t) {
					hit = name + " (" + t + ")"
					return fs.SkipAll
				}
			}
		}
		return nil
	})
	return hit, err
}
