//go:build unix

package store

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// freeDiskBytes is what an unprivileged writer may still write on the
// volume of dir.
func freeDiskBytes(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true //nolint:unconvert // field types differ between platforms
}

// usableBytes is the most an unprivileged writer could ever have free on the
// volume of dir (or of its nearest existing parent when dir does not exist
// yet): its size less the blocks reserved for root, which freeDiskBytes
// never counts.
func usableBytes(dir string) (int64, bool) {
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err == nil {
			// Signed, each field converted: Bavail is an int64 on FreeBSD (and
			// negative once root's reserve is in use), a uint64 elsewhere.
			blocks, bfree, bavail := int64(st.Blocks), int64(st.Bfree), int64(st.Bavail) //nolint:unconvert // field types differ between platforms
			return (blocks - (bfree - bavail)) * int64(st.Bsize), true                   //nolint:unconvert // field types differ between platforms
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return 0, false
		}
		dir = parent
	}
}
