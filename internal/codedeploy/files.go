package codedeploy

import (
	"archive/zip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// unpackBundle lays the revision (a directory or a .zip) out in dst, keeping file modes.
func unpackBundle(bundle, dst string) error {
	info, err := os.Stat(bundle)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if info.IsDir() {
		return copyTree(bundle, dst, Overwrite)
	}
	return unzip(bundle, dst)
}

func unzip(name, dst string) error {
	zr, err := zip.OpenReader(name)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", name, err)
	}
	defer zr.Close()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, f := range zr.File {
		rel, err := relPath(f.Name)
		if err != nil {
			return fmt.Errorf("bundle %s: %w", name, err)
		}
		target := filepath.Join(dst, rel)
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		mode := f.Mode().Perm()
		if mode == 0 {
			mode = 0o644
		}
		if err := extract(f, target, mode); err != nil {
			return fmt.Errorf("bundle %s: %s: %w", name, f.Name, err)
		}
	}
	return nil
}

func extract(f *zip.File, target string, mode fs.FileMode) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return writeFile(target, rc, mode)
}

func writeFile(target string, r io.Reader, mode fs.FileMode) error {
	out, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(target, mode)
}

// installFiles is the Install event: each files entry copied from the revision to its
// destination under root (the instance's filesystem), honouring file_exists_behavior.
func installFiles(spec *AppSpec, archive, root string) error {
	for _, m := range spec.Files {
		rel, err := relPath(m.Source)
		if err != nil {
			return err
		}
		src := filepath.Join(archive, rel)
		dst := filepath.Join(root, filepath.FromSlash(m.Destination))
		info, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("files source %s: %w", m.Source, err)
		}
		if !info.IsDir() {
			dst = filepath.Join(dst, filepath.Base(src))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			err = copyFile(src, dst, info.Mode().Perm(), spec.FileExistsBehavior)
		} else {
			err = copyTree(src, dst, spec.FileExistsBehavior)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// copyTree copies the contents of src into dst (symlinks as symlinks).
func copyTree(src, dst, behavior string) error {
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := e.Info()
		if err != nil {
			return err
		}
		switch {
		case e.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if exists(target) {
				switch behavior {
				case Retain:
					return nil
				case Overwrite:
					if err := os.Remove(target); err != nil {
						return err
					}
				default:
					return existsError(target, behavior)
				}
			}
			return os.Symlink(link, target)
		default:
			return copyFile(p, target, info.Mode().Perm(), behavior)
		}
	})
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func existsError(target, behavior string) error {
	return fmt.Errorf("%s already exists (file_exists_behavior %s)", target, behavior)
}

func copyFile(src, dst string, mode fs.FileMode, behavior string) error {
	if exists(dst) {
		switch behavior {
		case Retain:
			return nil
		case Overwrite:
		default:
			return existsError(dst, behavior)
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := writeFile(dst, in, mode); err != nil {
		return fmt.Errorf("copy %s: %w", strings.TrimPrefix(src, "/"), err)
	}
	return nil
}
