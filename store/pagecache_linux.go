//go:build linux

package store

import "golang.org/x/sys/unix"

const pageCacheDropSupported = true

// dropPageCache asks the kernel to drop the clean cached pages of a file.
func dropPageCache(fd uintptr) error {
	return unix.Fadvise(int(fd), 0, 0, unix.FADV_DONTNEED)
}
