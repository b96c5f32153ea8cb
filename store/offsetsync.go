package store

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Deferred offset syncs.
//
// A consumer's poll commits the position its previous poll reached. Waiting
// for an fsync there cost every poll one WAL fsync of its own, and under
// produce load those fsyncs alternated with the appends' (twice as many
// fsyncs as commits of appends in the e2e benchmark). Losing such a commit
// in a machine crash only makes the group read those events again
// (delivery is at-least-once), so CommitGroupOffsetSoon writes the offset
// to the WAL without waiting for its fsync, and the store makes it durable
// later with whichever comes first:
//
//   - the next synced write of anything (an append's commit, a synced
//     offset, retention): the WAL is one sequence, so an fsync covers every
//     write before it;
//   - a timer, OffsetSyncDelay after the first write it must cover;
//   - SyncGroupOffsets, which an explicit commit calls before it answers;
//   - Close (Pebble syncs its WAL when it closes).
//
// The bookkeeping is two counters. written counts deferred writes once
// Pebble applied them; an fsync that starts after reading written = n
// covers the first n of them (each was applied before that read, so before
// the synced write in the WAL), and raises synced to n when it returns.
// A deferred write whose increment returned k is durable once synced >= k.

// deferredSyncs tracks the offsets written without waiting for an fsync.
type deferredSyncs struct {
	written atomic.Uint64 // deferred writes applied
	synced  atomic.Uint64 // deferred writes an fsync is known to cover
	armed   atomic.Bool   // a timer is pending
	syncs   atomic.Int64  // fsyncs made for deferred writes alone (metric)
}

// covered records that an fsync covered the first n deferred writes.
func (d *deferredSyncs) covered(n uint64) {
	for {
		cur := d.synced.Load()
		if cur >= n || d.synced.CompareAndSwap(cur, n) {
			return
		}
	}
}

// CommitGroupOffsetSoon records offset as the position of group in st, as
// CommitGroupOffset does, but returns without waiting for an fsync:
// GroupOffset returns it at once, and it becomes durable with the next
// fsync of the store's WAL, at the latest Options.OffsetSyncDelay later
// (see offsetsync.go); SyncGroupOffsets waits for it. A crash of the
// machine before then loses it, and the group's position is the one
// committed before: its consumers read events again, never skip any. Under
// SyncNever it is CommitGroupOffset.
func (s *Store) CommitGroupOffsetSoon(group string, st Stream, offset int64) error {
	if s.opts.Sync == SyncNever {
		return s.CommitGroupOffset(group, st, offset)
	}
	if err := s.commitGroupOffset(group, st, offset, pebble.NoSync); err != nil {
		return err
	}
	s.deferred.written.Add(1)
	if s.deferred.armed.CompareAndSwap(false, true) {
		time.AfterFunc(s.opts.OffsetSyncDelay, s.syncDeferred)
	}
	return nil
}

// syncDeferred is the timer of deferred offsets. A write that finds the
// timer armed counts on it, so it clears armed before it reads written (in
// SyncGroupOffsets): a write after that arms a new timer.
func (s *Store) syncDeferred() {
	s.deferred.armed.Store(false)
	if err := s.SyncGroupOffsets(); err != nil && !errors.Is(err, ErrClosed) {
		s.log.Error("store: sync of committed group offsets failed", "err", err.Error())
	}
}

// SyncGroupOffsets makes every offset that CommitGroupOffsetSoon wrote
// before the call durable. It returns at once when an fsync already covered
// them, and otherwise waits for one.
func (s *Store) SyncGroupOffsets() error {
	n := s.deferred.written.Load()
	if s.deferred.synced.Load() >= n {
		return nil
	}
	// An empty batch is not written at all: a WAL-only record is the
	// smallest write that waits for an fsync. Its fsync raises synced
	// (applyDurable).
	err := s.writeMeta(func() string { return "sync committed group offsets" }, func(b *pebble.Batch) {
		_ = b.LogData(nil, nil) // fails only for indexed batches
	})
	if err != nil {
		return err
	}
	s.deferred.syncs.Add(1)
	return nil
}
