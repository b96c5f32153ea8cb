package store

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Free-space guard.
//
// Pebble needs room on the disk to flush its memtables and to compact. On a
// full disk it retries the failed flush forever, leaving an empty file at
// each try; once its memtables are full it stalls every write, so produce
// requests hang without an answer; and when it cannot close a WAL file it
// panics (Pebble v2.1.7). The store therefore takes no more events while
// the volume of its directory has less than MinFreeDiskBytes free, and
// takes them again as soon as space comes back: retention deleted events,
// or an operator freed space. Group offsets and retention still write:
// their writes are small, consumers need them to go on reading, and
// retention frees space.

// diskGuardInterval is how often the guard measures the free space. At
// the store's fastest (about 200 MB/s of events), that is 20 MB between
// two measures, well within the default margin.
const diskGuardInterval = 100 * time.Millisecond

// diskGuard refuses appends while the store's volume is short of space.
type diskGuard struct {
	dir  string
	min  atomic.Int64          // the free space to keep
	free atomic.Int64          // bytes free at the last measure; -1: unknown
	low  atomic.Pointer[error] // the error of a refused append, while short of space
}

func newDiskGuard(dir string, min int64) *diskGuard {
	g := &diskGuard{dir: dir}
	g.min.Store(min)
	g.free.Store(-1)
	return g
}

// check measures the free space, and reports whether the store went short
// of space (entered) or has space again (left).
func (g *diskGuard) check() (entered, left bool) {
	free, ok := freeDiskBytes(g.dir)
	if !ok {
		return false, false
	}
	g.free.Store(free)
	if min := g.min.Load(); free < min {
		err := fmt.Errorf("%w: %s free on the volume of %s, less than the %s kept free", ErrDiskFull,
			formatBytes(free), g.dir, formatBytes(min))
		return g.low.Swap(&err) == nil, false
	}
	return false, g.low.Swap(nil) != nil
}

// refusing is the error of an append refused for want of space, or nil.
func (g *diskGuard) refusing() error {
	if e := g.low.Load(); e != nil {
		return *e
	}
	return nil
}

// runDiskGuard measures the free space every diskGuardInterval until the
// store closes, and logs when appends stop and start again.
func (s *Store) runDiskGuard() {
	defer s.wg.Done()
	t := time.NewTicker(diskGuardInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		switch entered, left := s.disk.check(); {
		case entered:
			s.log.Warn("store: refusing events until the disk has space again", "err", s.disk.refusing().Error())
		case left:
			s.log.Info("store: the disk has space again; taking events", "free", formatBytes(s.disk.free.Load()))
		}
	}
}

// formatBytes renders n in the largest binary unit that keeps one decimal:
// 1.5 GiB, 200.0 MiB, 512 B.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
