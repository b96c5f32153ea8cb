package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Group commit.
//
// Append encodes its chunk in the caller's goroutine (the chunk does not
// depend on the offset, which lives in the key), reserves its size in the
// byte budget (MaxQueuedBytes) and queues it. Two goroutines then form a
// pipeline:
//
//   - the committer takes the first queued append and starts a Pebble batch
//     with it; until a commit slot (MaxInflightCommits of them) is free, it
//     adds every append that arrives (awaitSlot), then what else is queued
//     (and, with CommitLinger, what arrives shortly: see gather). Each
//     append gets its offsets, in queue order per stream, as it is added.
//     The appends of each stream share chunks, each encoded into the
//     batch with its index entry once it is full enough or the batch is
//     complete (addToChunk). The committer applies the batch with pebble.Sync
//     without waiting for the fsync (DB.ApplyNoSyncWait) and hands it to
//     the syncer;
//   - the syncer waits for each batch's fsync (Batch.SyncWait) in commit
//     order, then publishes the new high watermarks, acknowledges the
//     appends of that batch and frees the slot.
//
// With one slot (the default) this is the classic loop (gather, commit,
// fsync, acknowledge) with the gathering and encoding of the next batch
// overlapping the fsync of the current one. With more slots, the next batch
// is written while the previous one syncs and Pebble's WAL writer covers it
// with its next fsync.
//
// Visibility: readers and HighWatermark see only published high watermarks,
// and Read never iterates past them, so an event becomes visible only after
// the fsync of its batch, even though Pebble applies it to the memtable
// before.
//
// Failure: if Pebble refuses a batch before writing it, its offsets are
// handed back (the next batch reuses them, so there is no gap) and its appends
// fail. If a batch's WAL write or fsync fails, Pebble's WAL writer keeps the
// error for every later sync, so the store cannot make anything durable any
// more: that batch and every batch written after it fail (ErrWriteFailed),
// and the store refuses new writes (ErrWritesRefused) until it is reopened.
// No offset of a failed batch is ever published, so nothing of it is
// visible in this process. After a restart, the chunks of a batch whose
// fsync failed may or may not be on disk (the kernel may have written them
// anyway): they are whole chunks at the end of their streams, so offsets
// stay dense, but the appends that got an error may then be visible. No
// storage engine can do better after a failed fsync.

// appendReq is one queued Append.
type appendReq struct {
	st     Stream
	events [][]byte // the caller's events, encoded by the committer
	size   int64    // encoded chunk size, reserved in the budget
	count  int64
	bytes  int64 // event payload bytes
	// state moves from reqQueued to reqTaken (committer) or reqCancelled
	// (Append, on context cancellation) exactly once.
	state     atomic.Int32
	unixNanos int64
	queued    time.Time

	// Set by the committer.
	ss    *streamState
	first int64
	// Set before done is closed.
	err  error
	done chan struct{}
}

const (
	reqQueued int32 = iota
	reqTaken
	reqCancelled
)

// commitGroup is one Pebble batch and the appends it holds.
type commitGroup struct {
	batch *pebble.Batch
	reqs  []*appendReq
	// streams holds, per stream, the appends that wait to be encoded as
	// one chunk, in the order of the streams' first append (addToChunk).
	streams []streamAppends
	bytes   int64 // encoded bytes of the appends as reserved (budget)
	// chunks and chunkBytes are what was encoded: fewer chunks than
	// appends when several appends to a stream share one.
	chunks, chunkBytes int64
	applied            time.Time
	sync               bool
	// deferred is how many deferred offset writes (offsetsync.go) were
	// applied before the batch: its fsync covers them.
	deferred uint64
}

// Append stores events at the end of st and returns the offset of the
// first event once the chunk is durable (fsynced under SyncAlways).
//
// Offsets are dense and ordered per stream, starting at 0. Concurrent Appends
// are group-committed. Each event is opaque and must be non-empty
// (ErrEmptyAppend); events must not be modified until Append returns, and are
// not read after it returns. An error means nothing of the call is visible
// in this process; after a crash too, except when the fsync of its batch
// failed (see Failure above). If ctx is done while the append is still
// queued, Append returns ctx.Err() and the events are not stored; once the
// committer took it into a batch, its result is the commit's result. The
// committer takes an append as soon as it arrives, even while the previous
// batch syncs, so an append stays queued only behind a full batch
// (MaxBatchBytes) or while the committer applies a batch.
func (s *Store) Append(ctx context.Context, st Stream, events [][]byte) (first int64, err error) {
	if len(events) == 0 {
		return 0, fmt.Errorf("%w: no events", ErrEmptyAppend)
	}
	var payload int64
	for i, e := range events {
		if len(e) == 0 {
			return 0, fmt.Errorf("%w: event %d is empty", ErrEmptyAppend, i)
		}
		payload += int64(len(e))
	}
	if err := st.validate(); err != nil {
		return 0, err
	}
	size := int64(chunkHeaderLen) + 4*int64(len(events)) + payload
	if size > int64(s.opts.MaxAppendBytes) || len(events) > maxChunkEvents {
		return 0, fmt.Errorf("%w: %d events encode to %d bytes, limit %d",
			ErrAppendTooLarge, len(events), size, s.opts.MaxAppendBytes)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.disk != nil {
		if err := s.disk.refusing(); err != nil {
			return 0, err
		}
	}
	if err := s.budget.acquire(ctx, size); err != nil {
		return 0, err
	}
	req := &appendReq{
		st:        st,
		events:    events,
		size:      size,
		count:     int64(len(events)),
		bytes:     payload,
		unixNanos: s.opts.Now().UnixNano(),
		done:      make(chan struct{}),
	}

	if err := s.acquire(); err != nil {
		s.budget.release(size)
		return 0, err
	}
	if err := s.refusing(); err != nil {
		s.release()
		s.budget.release(size)
		return 0, err
	}
	req.queued = time.Now()
	select {
	case s.queue <- req:
		s.release()
	case <-ctx.Done():
		s.release()
		s.budget.release(size)
		return 0, ctx.Err()
	}

	select {
	case <-req.done:
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqQueued, reqCancelled) {
			s.budget.release(size)
			s.stats.appendErrors.Add(1)
			return 0, ctx.Err()
		}
		<-req.done // in a commit: its result is ours
	}
	return req.first, req.err
}

// WriteErr is nil while the store accepts writes. After a commit failed
// inside Pebble (WAL write or fsync) it is that failure, wrapping
// ErrWriteFailed: every write is refused (ErrWritesRefused) until the store
// is reopened, while reads go on.
func (s *Store) WriteErr() error {
	if f := s.failure.Load(); f != nil {
		return fmt.Errorf("%w: %w", ErrWriteFailed, *f)
	}
	return nil
}

// refusing is nil while the store accepts writes, and after a failed write
// the error of a write refused for it (ErrWritesRefused).
func (s *Store) refusing() error {
	if f := s.failure.Load(); f != nil {
		return fmt.Errorf("%w (%w: %w)", ErrWritesRefused, ErrWriteFailed, *f)
	}
	return nil
}

// writeFailed records the first failed Pebble write (WAL write or fsync):
// from then on the store refuses writes, WriteErr reports it, and
// OnWriteFailure is told once.
func (s *Store) writeFailed(err error) {
	first := err
	if s.failure.CompareAndSwap(nil, &first) {
		s.log.Error("store: commit failed; refusing writes until reopened", "err", err.Error())
		if s.opts.OnWriteFailure != nil {
			s.opts.OnWriteFailure(fmt.Errorf("%w: %w", ErrWriteFailed, err))
		}
	}
}

// applyDurable applies b with opts and, for a synced write, waits for its
// fsync. It never uses Pebble's synchronous path (Apply with Sync), which
// treats a failed WAL write or sync as fatal (Logger.Fatalf, a panic here):
// the error comes back instead, and record says whether it is also recorded
// as the store's write failure (writeFailed).
func (s *Store) applyDurable(b *pebble.Batch, opts *pebble.WriteOptions, record bool) error {
	var err error
	if opts.Sync {
		// Read before b is applied, never after: only writes applied
		// before b are in the WAL ahead of it (offsetsync.go).
		n := s.deferred.written.Load()
		if err = s.db.ApplyNoSyncWait(b, opts); err == nil {
			err = b.SyncWait()
		}
		if err == nil {
			s.deferred.covered(n)
		}
	} else {
		err = s.db.Apply(b, opts)
	}
	if err != nil && record {
		s.writeFailed(err)
	}
	return err
}

// runCommitter is the committer goroutine.
func (s *Store) runCommitter() {
	defer s.wg.Done()
	defer close(s.inflight)
	keyBuf := make([]byte, 0, 512)
	for {
		var first *appendReq
		select {
		case first = <-s.queue:
		case <-s.stop:
			s.drainQueue()
			return
		}
		keyBuf = s.commit(first, keyBuf)
	}
}

// drainQueue fails every queued append with ErrClosed. It runs after Close
// set closed, so nothing is enqueued any more.
func (s *Store) drainQueue() {
	for {
		select {
		case r := <-s.queue:
			if r.state.CompareAndSwap(reqQueued, reqTaken) {
				s.finish(r, fmt.Errorf("%w: append was queued", ErrClosed))
			}
		default:
			return
		}
	}
}

// commit builds one batch starting with first and hands it to the syncer. It
// holds a commit slot, which the syncer (or a failure here) releases.
func (s *Store) commit(first *appendReq, keyBuf []byte) []byte {
	g := &commitGroup{sync: s.opts.Sync == SyncAlways}
	g.batch = s.db.NewBatch(
		pebble.WithInitialSizeBytes(int(min(int64(s.opts.MaxBatchBytes), 2*first.size+4096))),
		// Let Pebble's batch pool keep buffers of a full batch.
		pebble.WithMaxRetainedSizeBytes(s.opts.MaxBatchBytes+s.opts.MaxAppendBytes))
	clear(s.batchStreams)
	add := func(r *appendReq) {
		if !r.state.CompareAndSwap(reqQueued, reqTaken) {
			return // cancelled while queued
		}
		ss, err := s.stateOrNew(r.st)
		if err != nil {
			s.finish(r, err)
			return
		}
		r.ss = ss
		r.first = ss.next
		ss.next += r.count
		i, ok := s.batchStreams[ss]
		if !ok {
			i = len(g.streams)
			s.batchStreams[ss] = i
			g.streams = append(g.streams, streamAppends{})
		}
		g.streams[i].ss, g.streams[i].end = ss, ss.next
		keyBuf = s.addToChunk(g, &g.streams[i], r, keyBuf)
		g.reqs = append(g.reqs, r)
		g.bytes += r.size
	}
	add(first)
	count, bytes := func() int { return len(g.reqs) }, func() int64 { return g.bytes }
	s.awaitSlot(add, bytes)
	s.gather(add, count, bytes)
	if len(g.reqs) == 0 {
		_ = g.batch.Close()
		<-s.slots
		return keyBuf
	}
	for i := range g.streams {
		keyBuf = s.encodeChunk(g, &g.streams[i], keyBuf)
	}

	err := s.refusing()
	if err == nil {
		if g.sync {
			// Read before the batch is applied, never after (see
			// applyDurable).
			g.deferred = s.deferred.written.Load()
			err = s.db.ApplyNoSyncWait(g.batch, s.writeOpts)
		} else {
			err = s.db.Apply(g.batch, s.writeOpts)
		}
		if err != nil {
			err = fmt.Errorf("store: commit: %w", err)
		}
	}
	if err != nil {
		// Nothing of the batch was written: hand the offsets back, newest
		// first, so every stream's next offset returns to its first use.
		for i := len(g.reqs) - 1; i >= 0; i-- {
			r := g.reqs[i]
			r.ss.next = r.first
		}
		for _, r := range g.reqs {
			s.finish(r, err)
		}
		_ = g.batch.Close()
		<-s.slots
		return keyBuf
	}
	g.applied = time.Now()
	s.inflight <- g // never blocks: capacity is the number of slots
	return keyBuf
}

// streamAppends is the appends of one stream in a batch that wait to be
// encoded as one chunk, in offset order, and that chunk's size, event
// count and time.
type streamAppends struct {
	reqs             []*appendReq
	size, count, now int64
	// ss is the stream and end its next offset after the batch: the high
	// watermark the syncer publishes for it.
	ss  *streamState
	end int64
}

// maxMergedChunkBytes bounds the chunk that several appends to one stream
// share. A read that starts inside a chunk verifies all of it (its checksum
// covers every event), so a chunk should stay small next to a poll (2 MiB
// by default); and the appends of a chunk still open when the batch is
// complete are encoded after the fsync of the previous batch instead of
// during it (see addToChunk).
const maxMergedChunkBytes = 128 << 10

// addToChunk adds r to the chunk that the appends of its stream in g share.
//
// The appends of one stream in one batch have consecutive offsets, so they
// can be stored as one chunk (and one index entry) instead of one each.
// Pebble's work on keys (memtable inserts, sstables built by flushes, and
// the rewriting of keys in every compaction, while the values stay in
// their blob files) follows the number of keys, not of bytes: under gRPC
// produce, a batch held about 60 appends of 4 streams (tuning.md, "Chunks
// shared by appends").
//
// A chunk is encoded straight into the batch (one copy of the events), and
// for that its size must be known. It is encoded as soon as it holds half
// of maxMergedChunkBytes (or of MaxAppendBytes, when smaller), or when the
// next append would take it over the whole: so most of the encoding happens
// while the previous batch syncs, as it did with one chunk per append, an
// append of half the limit or more is encoded as it arrives (with the
// smaller appends of its stream before it, when they fit), and the chunks
// still open when the batch is complete (commit) hold less than half the
// limit each.
func (s *Store) addToChunk(g *commitGroup, sa *streamAppends, r *appendReq, keyBuf []byte) []byte {
	limit := int64(min(maxMergedChunkBytes, s.opts.MaxAppendBytes))
	if len(sa.reqs) > 0 && (sa.size+r.size-chunkHeaderLen > limit || sa.count+r.count > maxChunkEvents) {
		keyBuf = s.encodeChunk(g, sa, keyBuf)
	}
	if len(sa.reqs) == 0 {
		sa.size, sa.count, sa.now = r.size, r.count, r.unixNanos
	} else {
		sa.size += r.size - chunkHeaderLen
		sa.count += r.count
		sa.now = max(sa.now, r.unixNanos)
	}
	sa.reqs = append(sa.reqs, r)
	if sa.size >= limit/2 {
		keyBuf = s.encodeChunk(g, sa, keyBuf)
	}
	return keyBuf
}

// encodeChunk writes the appends waiting in sa into g's batch as one chunk
// and its index entry.
func (s *Store) encodeChunk(g *commitGroup, sa *streamAppends, keyBuf []byte) []byte {
	if len(sa.reqs) == 0 {
		return keyBuf
	}
	s.parts = s.parts[:0]
	for _, r := range sa.reqs {
		s.parts = append(s.parts, r.events)
	}
	st, first := sa.reqs[0].st, sa.reqs[0].first
	keyBuf = appendOffsetKey(keyBuf[:0], prefixChunk, st, first)
	op := g.batch.SetDeferred(len(keyBuf), int(sa.size))
	copy(op.Key, keyBuf)
	putChunkParts(op.Value, s.parts, int(sa.count), int(sa.size-chunkHeaderLen-4*sa.count), sa.now)
	_ = op.Finish() // errors only for indexed batches
	keyBuf = appendOffsetKey(keyBuf[:0], prefixChunkIndex, st, first)
	var idx [indexValueLen]byte
	putIndexEntry(idx[:], indexEntry{count: uint32(sa.count), size: uint32(sa.size), unixNanos: sa.now})
	_ = g.batch.Set(keyBuf, idx[:], nil)
	for _, r := range sa.reqs {
		r.events = nil // the caller's; not referenced past this point
	}
	clear(s.parts)
	clear(sa.reqs)
	sa.reqs = sa.reqs[:0]
	g.chunks++
	g.chunkBytes += sa.size
	return keyBuf
}

// awaitSlot takes a commit slot for the batch being built. While every slot
// is taken (batches waiting for their fsync), it goes on adding queued
// appends to the batch, up to MaxBatchBytes, so that their encoding overlaps
// the fsync instead of delaying the next commit. The batch being built is
// always committed: the syncer frees a slot once an fsync returns, even
// after Close. Close fails the appends still queued at once, without
// waiting for that fsync.
func (s *Store) awaitSlot(add func(*appendReq), bytes func() int64) {
	maxBytes := int64(s.opts.MaxBatchBytes)
	queue, stop := s.queue, s.stop
	for {
		if bytes() >= maxBytes {
			queue = nil // full: only wait for the slot
		}
		select {
		case s.slots <- struct{}{}:
			return
		case r := <-queue:
			add(r)
		case <-stop:
			// Close set closed before closing stop, so nothing is
			// enqueued any more.
			s.drainQueue()
			queue, stop = nil, nil
		}
	}
}

// gather adds queued appends to the batch being built: everything already
// queued, then, while fewer appends than in the recent peak group are in
// the batch, those that arrive within CommitLinger. Without the wait, the
// appenders acknowledged by the previous commit are still re-submitting when
// the committer looks at the queue, and a commit would carry only the first
// few of them while the rest pay for another fsync. An fsync costs about the
// same for 20 KB or 320 KB, so waiting a fraction of it for a full group
// pays: see tuning.md.
func (s *Store) gather(add func(*appendReq), count func() int, bytes func() int64) {
	maxBytes := int64(s.opts.MaxBatchBytes)
	for bytes() < maxBytes {
		select {
		case r := <-s.queue:
			add(r)
			continue
		default:
		}
		break
	}
	if s.opts.CommitLinger > 0 && count() < s.peakGroup && bytes() < maxBytes {
		if s.lingerTimer == nil {
			s.lingerTimer = time.NewTimer(s.opts.CommitLinger)
		} else {
			s.lingerTimer.Reset(s.opts.CommitLinger)
		}
	wait:
		for count() < s.peakGroup && bytes() < maxBytes {
			select {
			case r := <-s.queue:
				add(r)
			case <-s.lingerTimer.C:
				break wait
			case <-s.stop:
				break wait
			}
		}
		s.lingerTimer.Stop()
	}
	// The peak follows growth at once and decays by one per smaller group,
	// so a drop in load costs at most a few lingers.
	if n := count(); n >= s.peakGroup {
		s.peakGroup = n
	} else {
		s.peakGroup--
	}
}

// runSyncer is the syncer goroutine: it waits for each batch's fsync, in
// commit order, then publishes and acknowledges.
func (s *Store) runSyncer() {
	defer s.wg.Done()
	for g := range s.inflight {
		var err error
		if g.sync {
			err = g.batch.SyncWait()
		}
		if err != nil {
			// Recorded before the slot is freed, so the batch the committer
			// built meanwhile is refused (nothing of it written) rather than
			// applied to the broken WAL.
			s.writeFailed(err)
		} else if f := s.failure.Load(); f != nil {
			// An earlier batch failed; this one was written after it in the
			// same broken WAL and must not become visible.
			err = *f
		}
		<-s.slots
		now := time.Now()
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrWriteFailed, err)
			for _, r := range g.reqs {
				s.finish(r, err)
			}
			_ = g.batch.Close()
			continue
		}
		if g.sync {
			s.deferred.covered(g.deferred)
		}
		s.stats.commits.Add(1)
		s.stats.commitNanos.Add(int64(now.Sub(g.applied)))
		s.stats.chunks.Add(g.chunks)
		s.stats.chunkBytes.Add(g.chunkBytes)
		for _, sa := range g.streams {
			// Batches are published in commit order, and offsets were
			// assigned in that order, so hwm only grows. Once per stream:
			// its appends share chunks, and a high watermark inside a
			// chunk would make readers find a chunk that ends beyond it.
			sa.ss.hwm.Store(sa.end)
		}
		for _, r := range g.reqs {
			s.stats.appends.Add(1)
			s.stats.events.Add(r.count)
			s.stats.eventBytes.Add(r.bytes)
			s.stats.ackNanos.Add(int64(now.Sub(r.queued)))
			s.finish(r, nil)
		}
		_ = g.batch.Close()
	}
}

// finish completes r with err and returns its budget.
func (s *Store) finish(r *appendReq, err error) {
	if err != nil {
		s.stats.appendErrors.Add(1)
	}
	s.budget.release(r.size)
	r.events = nil
	r.err = err
	close(r.done)
}
