package floe

import (
	"net"

	"golang.org/x/net/netutil"
)

// reservedFiles are the file descriptors kept for the store: Pebble's table
// cache keeps up to 1,000 files open (its default MaxOpenFiles), and the
// WAL, the manifest, blob files being written and the lock take more.
const reservedFiles = 2048

// minConnsPerListener bounds connsPerListener from below, whatever the
// file limit: a broker that serves nobody is no safer.
const minConnsPerListener = 64

// connsPerListener is how many connections each of n listeners accepts at
// once: the process's file limit (RLIMIT_NOFILE; 0 when unknown, which
// means no limit) less reservedFiles, shared. A client that opens
// connections without end then makes the next ones wait in the kernel's
// backlog, instead of taking the descriptors the store needs: Pebble
// panics when it cannot open its next file.
func connsPerListener(n int, fileLimit uint64) int {
	if fileLimit == 0 || n == 0 {
		return 0
	}
	if fileLimit <= reservedFiles+uint64(n*minConnsPerListener) {
		return minConnsPerListener
	}
	return int((fileLimit - reservedFiles) / uint64(n))
}

// limitConns wraps each listener that is not nil so that it accepts at
// most limit connections at once (no limit when limit is 0).
func limitConns(limit int, ls ...*net.Listener) {
	if limit == 0 {
		return
	}
	for _, l := range ls {
		if *l != nil {
			*l = netutil.LimitListener(*l, limit)
		}
	}
}
