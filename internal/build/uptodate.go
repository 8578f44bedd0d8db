package build

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/acme/webapp-pipeline/ci"
	"github.com/acme/webapp-pipeline/internal/contract"
)

// The up-to-date check: `publish` and `all` record in out/build.json a key
// of everything the build reads — the build program, the flags, the commit
// time, and the bytes of app/ (as uploaded), appspec.yml, scripts/ and
// buildspec.yml — and a key of the artifacts they wrote. A rerun whose
// inputs key equals the recorded one, on an out dir that still matches its
// outputs key, has nothing to redo: the engine would serve every step from its cache and push nothing
// new. So it connects to no engine, reads no credentials, touches nothing,
// and says so. --force (BUILD_FORCE) rebuilds anyway.
//
// Like `docker build` without --pull, it does not ask the registries again:
// a base-image tag that moved upstream, or an image deleted from the push
// registry, needs --force. CodeBuild always starts without an out dir, so it
// always builds.

// appIgnored mirrors ci.Source's exclusions (Dagger's dockerignore-style
// patterns: "**/x" at any depth, the others at the top of the app directory).
func appIgnored(rel string) bool {
	base := path.Base(rel)
	for _, p := range ci.SourceExclude() {
		if anyDepth, ok := strings.CutPrefix(p, "**/"); ok {
			if m, _ := path.Match(anyDepth, base); m {
				return true
			}
		} else if m, _ := path.Match(p, rel); m && !strings.Contains(rel, "/") {
			return true
		}
	}
	return false
}

// dockerContextIgnored is what the Dockerfile way leaves out of the build
// context itself (the app's .dockerignore is the engine's to apply).
func dockerContextIgnored(rel string) bool { return rel == ".git" }

// ContractFile is the app contract's file at the repository root (its
// values are in the resolved contract; its bytes are hashed too).
const ContractFile = "pipeline.yml"

// inputsKey hashes what a release reads; settings are the flags and derived
// values (revision, commit time) in a fixed order.
func inputsKey(source string, app contract.App, settings ...string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "webapp-build inputs v3\n")
	contractJSON, err := json.Marshal(app) // the resolved contract: pipeline.yml, flags and env as they apply
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "contract %s\n", contractJSON)
	prog, err := programID()
	if err != nil {
		return "", fmt.Errorf("identify the build program: %w", err)
	}
	// The program itself: a rebuilt binary (new ci/ graph) is a new key.
	fmt.Fprintf(h, "program %s\n", prog)
	for _, s := range settings {
		fmt.Fprintf(h, "setting %q\n", s)
	}
	skip := appIgnored
	if app.Build == contract.BuildDockerfile {
		skip = dockerContextIgnored // the build context is more than the lint/test upload
	}
	if err := hashTree(h, filepath.Join(source, app.Dir), app.Dir+"/", skip); err != nil {
		return "", err
	}
	if err := hashTree(h, filepath.Join(source, "scripts"), "scripts/", nil); err != nil {
		return "", err
	}
	for _, f := range []string{"appspec.yml", "buildspec.yml", ContractFile} {
		p := filepath.Join(source, f)
		st, err := os.Stat(p) // followed, as the upload follows it
		if os.IsNotExist(err) {
			fmt.Fprintf(h, "absent %s\n", f)
			continue
		} else if err != nil {
			return "", err
		}
		if err := hashEntry(h, p, f, fs.FileInfoToDirEntry(st)); err != nil {
			return "", err
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// outputsKey hashes the artifacts in out (bundle/, reports/), not build.json
// that records it: a bundle edited by hand, or reports replaced by a later
// failed run, no longer match.
func outputsKey(out string) (string, error) {
	h := sha256.New()
	err := hashTree(h, out, "", func(rel string) bool { return rel == "build.json" })
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), err
}

// hashTree adds every entry under root (in lexical order, whatever the disk
// gives) to h, except those skip names. A root that is a symlink is
// followed, as Dagger's upload follows it.
func hashTree(h io.Writer, root, prefix string, skip func(rel string) bool) error {
	root, err := filepath.EvalSymlinks(root)
	if os.IsNotExist(err) {
		_, err = fmt.Fprintf(h, "absent %s\n", prefix)
		return err
	} else if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		return hashEntry(h, p, prefix+rel, d)
	})
}

// programID names this binary by content: its Go build ID (whose last part
// hashes the linked binary), read from the ELF note; a binary without one
// (not ELF, or linked with -buildid=) is hashed whole (~0.1 s).
func programID() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if f, err := elf.Open(exe); err == nil {
		defer f.Close()
		if sec := f.Section(".note.go.buildid"); sec != nil {
			if b, err := sec.Data(); err == nil && len(b) > 16 {
				// note: namesz, descsz, type (4 bytes each), "Go\x00\x00", desc
				if n := binary.LittleEndian.Uint32(b[4:8]); 16+int(n) <= len(b) && n > 0 {
					return "go-buildid " + string(b[16:16+n]), nil
				}
			}
		}
	}
	sum, err := fileSHA256(exe)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("sha256 %x", sum), nil
}

// fileSHA256 is the sha256 of the file at p.
func fileSHA256(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// hashEntry adds one tree entry (name, type, mode, content) to h. WalkDir
// visits entries in lexical order, so the key does not depend on the disk.
func hashEntry(h io.Writer, p, name string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	switch {
	case d.IsDir():
		fmt.Fprintf(h, "dir %q %o\n", name, info.Mode().Perm())
	case d.Type()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "link %q %q\n", name, target)
	case d.Type().IsRegular():
		sum, err := fileSHA256(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "file %q %o %x\n", name, info.Mode().Perm(), sum)
	default:
		fmt.Fprintf(h, "other %q %v\n", name, info.Mode())
	}
	return nil
}

// upToDate returns the recorded build in out when it was made from inputs
// key and its artifacts are still exactly what that build wrote.
func upToDate(out, key string) (*buildInfo, bool) {
	b, err := os.ReadFile(filepath.Join(out, "build.json"))
	if err != nil {
		return nil, false
	}
	var info buildInfo
	if json.Unmarshal(b, &info) != nil || info.Inputs != key || info.Image == "" || info.Outputs == "" {
		return nil, false
	}
	if got, err := outputsKey(out); err != nil || got != info.Outputs {
		return nil, false
	}
	return &info, true
}
