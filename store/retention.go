package store

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// RetentionStats reports what one ApplyRetention run deleted.
type RetentionStats struct {
	ChunksDeleted int64
	EventsDeleted int64
	// BytesDeleted counts encoded chunk bytes (payload, 4 bytes per event and
	// a 24-byte header per chunk), the unit of RetentionMaxBytes.
	BytesDeleted   int64
	StreamsTrimmed int
	Duration       time.Duration
}

// ApplyRetention deletes, for every topic, the whole chunks appended longer
// ago than RetentionMaxAge and then, oldest first across the topic's
// streams, the chunks beyond RetentionMaxBytes. The deletion of a stream's
// chunks is one range deletion (chunks and index) plus a record of the new
// earliest offset, all streams in one synced batch. A compaction of the
// deleted span follows: it rewrites only keys (the values are in blob files)
// and Pebble deletes the blob files no key references any more, so the disk
// space comes back at once. Reads that started before see their snapshot;
// later ones start at the new earliest offset. It also runs in the
// background every RetentionInterval. A chunk whose index entry cannot be
// read stops the retention of its stream there (and by size, of its topic):
// the rest is trimmed all the same, and the stats of what was deleted come
// with the error.
func (s *Store) ApplyRetention() (RetentionStats, error) {
	s.retentionMu.Lock()
	defer s.retentionMu.Unlock()
	if err := s.acquire(); err != nil {
		return RetentionStats{}, err
	}
	defer s.release()
	start := time.Now()
	s.stats.retentionRuns.Add(1)
	var stats RetentionStats
	var planErrs []error
	cuts := make(map[*streamState]int64)
	// One pass over the streams groups them by topic: asking the store for
	// each topic's streams in turn (Streams) scans every stream once per
	// topic, which with tens of thousands of topics made a pass last
	// longer than its interval.
	for _, states := range s.streamsByTopic() {
		// Close interrupts a long pass between topics: it waits for it.
		// Nothing was deleted.
		if err := s.ctx.Err(); err != nil {
			return RetentionStats{}, errors.Join(planErrs...)
		}
		// What cannot be planned (an unreadable index entry) is left as it
		// is, with what comes after it in its stream: the rest is still
		// trimmed, and the error returned.
		topicCuts := make(map[*streamState]int64)
		var topicStats RetentionStats
		if err := s.planTopic(states, topicCuts, &topicStats); err != nil {
			planErrs = append(planErrs, err)
		}
		for ss, cut := range topicCuts {
			cuts[ss] = cut
		}
		stats.ChunksDeleted += topicStats.ChunksDeleted
		stats.EventsDeleted += topicStats.EventsDeleted
		stats.BytesDeleted += topicStats.BytesDeleted
	}
	planErr := errors.Join(planErrs...)
	if len(cuts) == 0 {
		s.considerBlobRewrites()
		stats.Duration = time.Since(start)
		return stats, planErr
	}

	if err := s.refusing(); err != nil {
		return RetentionStats{}, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for ss, cut := range cuts {
		for _, prefix := range []byte{prefixChunk, prefixChunkIndex} {
			if err := b.DeleteRange(offsetKey(prefix, ss.st, 0), offsetKey(prefix, ss.st, cut), nil); err != nil {
				return RetentionStats{}, fmt.Errorf("store: retention %s: %w", ss.st, err)
			}
		}
		if err := b.Set(streamMetaKey(ss.st), encodeInt64Value(cut), nil); err != nil {
			return RetentionStats{}, fmt.Errorf("store: retention %s: %w", ss.st, err)
		}
	}
	// The earliest offsets move before the deletion is visible: a read
	// that finds chunks missing below the first one left checks them
	// against low, loaded after its iterator was made (read).
	for ss, cut := range cuts {
		ss.low.Store(cut)
	}
	// On failure low stays at cut: the batch may have been applied (a
	// failed fsync), and its deletions are then visible to reads.
	if err := s.applyDurable(b, s.writeOpts, true); err != nil {
		return RetentionStats{}, fmt.Errorf("%w: retention commit: %w", ErrWriteFailed, err)
	}
	s.stats.chunksDeleted.Add(stats.ChunksDeleted)
	s.stats.bytesDeleted.Add(stats.BytesDeleted)
	// Reclaim the space now. The range deletions alone let Pebble drop only
	// files that one stream's deletion covers entirely; a compaction of the
	// deleted spans drops the rest. With values in blob files it rewrites
	// only keys and blob references, and a blob file is deleted when no key
	// references it any more.
	if err := s.compactDeleted(cuts); err != nil {
		if errors.Is(err, context.Canceled) {
			return stats, nil // closing
		}
		return stats, fmt.Errorf("store: retention compaction: %w", err)
	}
	s.considerBlobRewrites()
	stats.StreamsTrimmed = len(cuts)
	stats.Duration = time.Since(start)
	s.log.Info("store: retention", "chunks", stats.ChunksDeleted, "events", stats.EventsDeleted,
		"bytes", stats.BytesDeleted, "streams", stats.StreamsTrimmed, "took", stats.Duration.Round(time.Microsecond).String())
	return stats, planErr
}

// considerBlobRewrites makes Pebble look for compactions now, so that it
// rewrites the blob files that retention left mostly garbage (values of one
// topic trimmed while another's of the same time stay) even on a broker that
// writes nothing. Pebble rewrites a blob file only once it is
// RewriteMinimumAge old, and only picks such rewrites when it looks for a
// compaction: when a flush or a compaction ends, or when the earliest open
// snapshot closes. On an idle broker, files too young at the end of the
// retention compaction were never looked at again. Closing a snapshot no
// one else holds makes Pebble look (it costs no I/O), once per retention
// pass. TestRetentionRewritesBlobGarbageWhenIdle checks that it still does.
func (s *Store) considerBlobRewrites() {
	if s.opts.DisableValueSeparation {
		return
	}
	s.db.NewSnapshot().Close()
}

// compactDeleted compacts, in the chunk and chunk-index families, the span
// from the first to the last key deleted by a retention run.
func (s *Store) compactDeleted(cuts map[*streamState]int64) error {
	for _, prefix := range []byte{prefixChunk, prefixChunkIndex} {
		var start, end []byte
		for ss, cut := range cuts {
			if k := offsetKey(prefix, ss.st, 0); start == nil || bytes.Compare(k, start) < 0 {
				start = k
			}
			if k := offsetKey(prefix, ss.st, cut); end == nil || bytes.Compare(k, end) > 0 {
				end = k
			}
		}
		if err := s.db.Compact(s.ctx, start, end, false); err != nil {
			return err
		}
	}
	return nil
}

// cursor walks the chunk index of one stream from its (planned) earliest
// offset up to the high watermark seen when retention started.
type cursor struct {
	ss    *streamState
	it    *pebble.Iterator
	first int64
	e     indexEntry
}

func (s *Store) newCursor(ss *streamState, from int64) (*cursor, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: offsetKey(prefixChunkIndex, ss.st, from),
		UpperBound: offsetKey(prefixChunkIndex, ss.st, ss.hwm.Load()),
	})
	if err != nil {
		return nil, fmt.Errorf("store: retention %s: %w", ss.st, err)
	}
	return &cursor{ss: ss, it: it}, nil
}

// load decodes the entry under the iterator; ok is false at the end.
func (c *cursor) load(valid bool) (ok bool, err error) {
	if !valid {
		return false, c.it.Error()
	}
	_, first, err := decodeOffsetKey(prefixChunkIndex, c.it.Key())
	if err != nil {
		return false, fmt.Errorf("store: retention %s: %w", c.ss.st, err)
	}
	v, err := c.it.ValueAndErr()
	if err != nil {
		return false, fmt.Errorf("store: retention %s offset %d: %w", c.ss.st, first, err)
	}
	e, err := decodeIndexEntry(v)
	if err != nil {
		return false, fmt.Errorf("store: retention %s offset %d: %w", c.ss.st, first, err)
	}
	c.first, c.e = first, e
	return true, nil
}

// planTopic adds to cuts the new earliest offset of each stream of one
// topic, states (in key order), that loses chunks. With an error, cuts
// still holds what could be planned: each cut ends before the chunk whose
// entry could not be read.
func (s *Store) planTopic(states []*streamState, cuts map[*streamState]int64, stats *RetentionStats) error {
	drop := func(ss *streamState, c *cursor) {
		cuts[ss] = c.first + int64(c.e.count)
		stats.ChunksDeleted++
		stats.EventsDeleted += int64(c.e.count)
		stats.BytesDeleted += int64(c.e.size)
	}
	from := func(ss *streamState) int64 {
		if cut, ok := cuts[ss]; ok {
			return cut
		}
		return ss.low.Load()
	}

	// By age: each stream's oldest chunks up to the first young one, or up
	// to one that cannot be read: the chunks before it are cut all the
	// same, and the other streams are trimmed.
	var errs []error
	if s.opts.RetentionMaxAge >= 0 {
		cutoff := s.opts.Now().Add(-s.opts.RetentionMaxAge).UnixNano()
		for _, ss := range states {
			c, err := s.newCursor(ss, from(ss))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for valid := c.it.First(); ; valid = c.it.Next() {
				ok, err := c.load(valid)
				if err != nil {
					errs = append(errs, err)
					break
				}
				if !ok || c.e.unixNanos >= cutoff {
					break
				}
				drop(ss, c)
			}
			if err := c.it.Close(); err != nil {
				errs = append(errs, fmt.Errorf("store: retention %s: %w", ss.st, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil || s.opts.RetentionMaxBytes <= 0 {
		// A topic whose size cannot be known is not trimmed by size.
		return err
	}

	// By size: sum what is left, then drop the oldest chunks of the topic,
	// merging its streams by append time, until it fits.
	var total int64
	h := make(cursorHeap, 0, len(states))
	defer func() {
		for _, c := range h {
			c.it.Close()
		}
	}()
	for _, ss := range states {
		c, err := s.newCursor(ss, from(ss))
		if err != nil {
			return err
		}
		for valid := c.it.First(); valid; valid = c.it.Next() {
			ok, err := c.load(valid)
			if err != nil {
				c.it.Close()
				return err
			}
			if ok {
				total += int64(c.e.size)
			}
		}
		if err := c.it.Error(); err != nil {
			c.it.Close()
			return fmt.Errorf("store: retention %s: %w", ss.st, err)
		}
		ok, err := c.load(c.it.First())
		if err != nil {
			c.it.Close()
			return err
		}
		if !ok {
			c.it.Close()
			continue
		}
		h = append(h, c)
	}
	heap.Init(&h)
	for total > s.opts.RetentionMaxBytes && len(h) > 0 {
		c := h[0]
		drop(c.ss, c)
		total -= int64(c.e.size)
		ok, err := c.load(c.it.Next())
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
			c.it.Close()
		}
	}
	return nil
}

// cursorHeap orders cursors by the append time of their current chunk
// (oldest first), ties broken by stream order.
type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	if h[i].e.unixNanos != h[j].e.unixNanos {
		return h[i].e.unixNanos < h[j].e.unixNanos
	}
	return compareStreams(h[i].ss.st, h[j].ss.st) < 0
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// runRetention is the background retention loop.
func (s *Store) runRetention() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.RetentionInterval)
	defer t.Stop()
	// The first pass comes one interval after Open: the broker makes one
	// as it starts serving (ApplyRetention), once it has accepted the data
	// directory and its settings.
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if _, err := s.ApplyRetention(); err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			s.log.Error("store: retention", "err", err)
		}
	}
}
