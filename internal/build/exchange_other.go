//go:build !linux

package build

import "errors"

// exchange is Linux-only; elsewhere writeDirAtomic falls back to two renames.
func exchange(a, b string) error { return errors.ErrUnsupported }
