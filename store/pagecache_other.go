//go:build !linux

package store

import "errors"

// Elsewhere the kernel manages the page cache alone: Open does not install
// the window.
const pageCacheDropSupported = false

func dropPageCache(uintptr) error { return errors.ErrUnsupported }

// allocatedBytes is supported on Linux only.
func allocatedBytes(string) (uint64, bool) { return 0, false }
