//go:build linux

package store

import (
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const pageCacheDropSupported = true

// dropPageCache asks the kernel to drop the clean cached pages of a file.
func dropPageCache(fd uintptr) error {
	return unix.Fadvise(int(fd), 0, 0, unix.FADV_DONTNEED)
}

// allocatedBytes returns what the files under dir occupy on the disk, as du
// counts it (allocated blocks: a recycled WAL file holds more than its
// size). ok is false when it cannot tell.
func allocatedBytes(dir string) (n uint64, ok bool) {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file deleted meanwhile
		}
		var st unix.Stat_t
		if unix.Lstat(path, &st) == nil {
			n += uint64(st.Blocks) * 512
		}
		return nil
	})
	return n, err == nil
}
