package build

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeDirAtomic makes dst hold exactly what fill writes into a fresh temp
// directory beside it (same filesystem, named dst.tmp-*), or leaves dst as it
// was. On Linux the swap is one renameat2(RENAME_EXCHANGE), so dst is never
// missing; where that is not available (other systems, some filesystems) it
// is two renames, dst → dst.tmp-*.old then tmp → dst, the first undone if
// the second fails.
func writeDirAtomic(dst string, fill func(tmp string) error) (err error) {
	dst = filepath.Clean(dst)
	parent, base := filepath.Split(dst)
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, base+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		return err
	}
	if _, err := os.Lstat(dst); os.IsNotExist(err) {
		return os.Rename(tmp, dst)
	}
	if err := exchange(tmp, dst); err == nil {
		return os.RemoveAll(tmp) // it holds the old dst now
	}
	old := tmp + ".old"
	if err := os.Rename(dst, old); err != nil {
		return fmt.Errorf("move old %s aside: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		if rerr := os.Rename(old, dst); rerr != nil {
			return fmt.Errorf("replace %s: %w (and restoring it failed: %v; it is at %s)", dst, err, rerr, old)
		}
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	return os.RemoveAll(old)
}

// writeFiles writes name → content into dir (created if needed).
func writeFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// oneLine folds a multi-line error into a single line.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " | ")
}

// OneLine is oneLine for the CLI's final `build: error:` line.
func OneLine(s string) string { return oneLine(s) }
