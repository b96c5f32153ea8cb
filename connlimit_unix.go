//go:build unix

package floe

import "golang.org/x/sys/unix"

// fileLimit is the process's soft limit of open files (Go raises it to the
// hard limit at startup); 0 when unknown or unlimited.
func fileLimit() uint64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil || r.Cur == unix.RLIM_INFINITY {
		return 0
	}
	return uint64(r.Cur)
}
