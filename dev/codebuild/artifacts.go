package codebuild

import (
	"archive/zip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// CollectArtifacts zips what the artifacts section names, as CodeBuild uploads it to the
// artifact store: files matched relative to base-directory (under srcDir), directory
// structure kept unless discard-paths is yes. The zip is written atomically.
func CollectArtifacts(spec *Spec, srcDir, zipPath string) ([]string, error) {
	a := spec.Artifacts
	if len(a.Files) == 0 {
		return nil, fmt.Errorf("buildspec artifacts: files is required")
	}
	base := filepath.Join(srcDir, a.BaseDirectory)
	if st, err := os.Stat(base); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("artifacts base-directory %q does not exist: the build did not produce it", a.BaseDirectory)
	}
	var names []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		rel = filepath.ToSlash(rel)
		for _, pattern := range a.Files {
			if matchGlob(pattern, rel) {
				names = append(names, rel)
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("artifacts: no files under %q match %v", a.BaseDirectory, a.Files)
	}
	sort.Strings(names)
	if err := writeZip(zipPath, base, names, a.discardPaths()); err != nil {
		return nil, err
	}
	return names, nil
}

func writeZip(zipPath, base string, names []string, discard bool) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(zipPath), ".artifact-*.zip")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	zw := zip.NewWriter(tmp)
	seen := map[string]string{}
	for _, n := range names {
		name := n
		if discard {
			name = path.Base(n)
			if prev, dup := seen[name]; dup {
				return fmt.Errorf("artifacts: discard-paths makes %s and %s collide as %s", prev, n, name)
			}
			seen[name] = n
		}
		if err := addFile(zw, filepath.Join(base, filepath.FromSlash(n)), name); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), zipPath)
}

func addFile(zw *zip.Writer, src, name string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	h, err := zip.FileInfoHeader(st)
	if err != nil {
		return err
	}
	h.Name, h.Method = name, zip.Deflate
	w, err := zw.CreateHeader(h) // keeps the mode: hook scripts stay executable
	if err != nil {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// matchGlob matches CodeBuild's file patterns: path.Match per segment, and ** for any number
// of directories ("**/*" is everything).
func matchGlob(pattern, name string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchSegs(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
