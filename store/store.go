package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Store is the Pebble-backed event log of one broker. All methods are safe
// for concurrent use.
type Store struct {
	opts Options
	dir  string
	log  *slog.Logger
	db   *pebble.DB
	// writeOpts is pebble.Sync or pebble.NoSync, from Options.Sync.
	writeOpts *pebble.WriteOptions

	// closeMu is read-held by every operation while it uses db (Append only
	// while it enqueues), and write-held by Close to flip closed, so db is
	// never used after it is closed.
	closeMu sync.RWMutex
	closed  bool

	mu      sync.RWMutex
	streams map[Stream]*streamState
	// byTopic holds the same states by topic (addStreamLocked), so that
	// finding a topic's streams does not read every stream of the store.
	byTopic map[string][]*streamState
	// topicsRefused is set by the committer when it first refuses a new
	// topic (Options.MaxTopics), which it logs once.
	topicsRefused bool

	// The group-commit pipeline (commit.go).
	queue    chan *appendReq
	budget   *budget
	slots    chan struct{}
	inflight chan *commitGroup
	failure  atomic.Pointer[error] // first commit error; sticky
	// Owned by the committer goroutine (gather, commit, addToChunk).
	peakGroup    int
	lingerTimer  *time.Timer
	batchStreams map[*streamState]int // index in commitGroup.streams
	parts        [][][]byte           // the events of a chunk's appends
	stop         chan struct{}
	wg           sync.WaitGroup

	retentionMu sync.Mutex
	// ctx is cancelled by Close to interrupt a retention compaction.
	ctx    context.Context
	cancel context.CancelFunc

	stats counters
	// deferred tracks group offsets written without waiting for an fsync
	// (offsetsync.go).
	deferred deferredSyncs
	// window drops old blob files from the page cache; nil when off.
	window *cacheWindowFS
	// disk refuses appends while the volume is short of space; nil when
	// off (MinFreeDiskBytes negative, or not the OS's file system).
	disk *diskGuard
}

// streamState is the in-memory state of one stream.
type streamState struct {
	st Stream
	// hwm is the published high watermark: every offset below it is durable
	// and readable. Written only by the syncer goroutine (and Open).
	hwm atomic.Int64
	// low is the earliest retained offset. Written by retention (and Open).
	low atomic.Int64
	// next is the next offset to assign. Owned by the committer goroutine.
	next int64
}

// Open opens (or creates) the store in dir. It applies defaults, validates
// opts, opens Pebble and rebuilds the next offset of every stream.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if opts.MinFreeDiskBytes > 0 && opts.FS == vfs.Default {
		// Checked before the store opens, which can take long: such a
		// store would start, say it is healthy, and refuse every event.
		if usable, ok := usableBytes(dir); ok && opts.MinFreeDiskBytes >= usable {
			return nil, fmt.Errorf("store: MinFreeDiskBytes (min-free-disk) %s is more than the volume of %s could ever have free (%s, its size less the blocks reserved for root): no event could ever be stored; keep less free",
				formatBytes(opts.MinFreeDiskBytes), dir, formatBytes(usable))
		}
	}
	start := time.Now()
	po := opts.pebbleOptions()
	var window *cacheWindowFS
	if opts.PageCacheWindow >= 0 && pageCacheDropSupported {
		window = newCacheWindowFS(po.FS, opts.PageCacheWindow)
		window.seed(dir)
		po.FS = window
	}
	bg := newBackgroundErrors(opts.Logger)
	po.EventListener.BackgroundError = bg.report
	db, err := openPebble(dir, po, bg)
	if err != nil {
		return nil, err
	}
	s := &Store{
		opts:         opts,
		log:          opts.Logger,
		db:           db,
		writeOpts:    pebble.Sync,
		streams:      make(map[Stream]*streamState),
		byTopic:      make(map[string][]*streamState),
		batchStreams: make(map[*streamState]int),
		queue:        make(chan *appendReq, 4096),
		budget:       newBudget(opts.MaxQueuedBytes),
		slots:        make(chan struct{}, opts.MaxInflightCommits),
		inflight:     make(chan *commitGroup, opts.MaxInflightCommits),
		stop:         make(chan struct{}),
		window:       window,
		dir:          dir,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if opts.Sync == SyncNever {
		s.writeOpts = pebble.NoSync
	}
	if err := s.checkLayout(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	pebbleOpen := time.Since(start)
	if err := s.recover(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	s.log.Info("store opened", "dir", dir, "streams", len(s.streams), "topics", len(s.byTopic),
		"pebble_open", pebbleOpen.Round(time.Microsecond).String(),
		"recovery", (time.Since(start) - pebbleOpen).Round(time.Microsecond).String())
	if opts.MaxTopics > 0 && len(s.byTopic) >= opts.MaxTopics {
		// Say it now rather than at the first refused append: a store
		// upgraded to the default limit, or opened with a lower one,
		// refuses every new topic from the start.
		s.log.Warn("store: holds as many topics as it may: appends to new topics will be refused (ErrTooManyTopics) until it is opened with a higher limit",
			"topics", len(s.byTopic), "max_topics", opts.MaxTopics)
	}

	if opts.MinFreeDiskBytes > 0 && opts.FS == vfs.Default {
		s.disk = newDiskGuard(dir, opts.MinFreeDiskBytes)
		if entered, _ := s.disk.check(); entered {
			s.log.Warn("store: refusing events until the disk has space again", "err", s.disk.refusing().Error())
		}
		s.wg.Add(1)
		go s.runDiskGuard()
	}
	s.wg.Add(2)
	go s.runCommitter()
	go s.runSyncer()
	if opts.RetentionInterval > 0 {
		s.wg.Add(1)
		go s.runRetention()
	}
	return s, nil
}

// openPebble opens Pebble in dir. Pebble's Open waits for the flush of the
// events it replays from its WAL, and retries a flush that fails forever:
// on a full disk it never returned, and the broker hung before listening.
// A flush failing for want of space during the open fails it instead
// (ErrNoSpace). Pebble's Open goes on retrying in the background (the
// process exits, in the broker), and is closed should it complete.
func openPebble(dir string, po *pebble.Options, bg *backgroundErrors) (*pebble.DB, error) {
	type result struct {
		db  *pebble.DB
		err error
	}
	done := make(chan result, 1)
	go func() {
		db, err := pebble.Open(dir, po)
		done <- result{db, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("store: open pebble in %s: %w", dir, r.err)
		}
		return r.db, nil
	case err := <-bg.noSpace:
		select {
		case r := <-done:
			// Open completed after all: a late flush or compaction ran out
			// of space, which the store handles as any write failure.
			if r.err != nil {
				return nil, fmt.Errorf("store: open pebble in %s: %w", dir, r.err)
			}
			return r.db, nil
		default:
		}
		// Should space come back and Pebble's Open complete, close it.
		go func() {
			if r := <-done; r.db != nil {
				_ = r.db.Close()
			}
		}()
		return nil, fmt.Errorf("store: open %s: %w: replaying the write-ahead log needs room to flush it (%v); "+
			"free space on its volume and start again", dir, ErrNoSpace, err.Error())
	}
}

// checkLayout writes the layout version into a new store and refuses a store
// written with another layout.
func (s *Store) checkLayout() error {
	write := func() error {
		b := s.db.NewBatch()
		defer b.Close()
		_ = b.Set(metaLayoutKey(), encodeInt64Value(int64(layoutVersion)), nil)
		if err := s.applyDurable(b, pebble.Sync, false); err != nil {
			return fmt.Errorf("store: write layout version: %w", err)
		}
		return nil
	}
	v, closer, err := s.db.Get(metaLayoutKey())
	if errors.Is(err, pebble.ErrNotFound) {
		return write()
	}
	if err != nil {
		return fmt.Errorf("store: read layout version: %w", err)
	}
	got, err := decodeInt64Value(v)
	closer.Close()
	if err != nil {
		return fmt.Errorf("store: layout version: %w", err)
	}
	switch {
	case got == int64(layoutVersion):
		return nil
	case got >= oldestLayoutVersion && got < int64(layoutVersion):
		s.log.Info("store: upgrading the layout", "from", got, "to", layoutVersion)
		return write()
	}
	return fmt.Errorf("store: layout version %d, this build reads %d to %d", got, oldestLayoutVersion, layoutVersion)
}

// recover rebuilds the state of every stream from the chunk index without
// scanning it: for each stream it reads the first index key and seeks to the
// last one (SeekLT of the stream's prefix end), whose entry gives the next
// offset; then it jumps to the next stream (SeekGE). Cost: three seeks per
// stream, independent of the amount of data.
func (s *Store) recover() error {
	lower, upper := familyBounds(prefixChunkIndex)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("store: recover: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; {
		st, _, err := decodeOffsetKey(prefixChunkIndex, it.Key())
		if err != nil {
			return fmt.Errorf("store: recover: %w", err)
		}
		end := prefixEnd(streamPrefix(prefixChunkIndex, st))
		if !it.SeekLT(end) {
			return fmt.Errorf("store: recover %s: %w", st, errors.Join(ErrCorrupt, it.Error()))
		}
		st2, last, err := decodeOffsetKey(prefixChunkIndex, it.Key())
		if err != nil || st2 != st {
			return fmt.Errorf("store: recover %s: %w", st, errors.Join(ErrCorrupt, err))
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store: recover %s: %w", st, err)
		}
		e, err := decodeIndexEntry(v)
		if err != nil {
			return fmt.Errorf("store: recover %s offset %d: %w", st, last, err)
		}
		// The earliest offset is 0, or where retention cut (the stream's
		// meta record, below): a first chunk above it follows missing
		// chunks, which reads report as corruption.
		ss := &streamState{st: st, next: last + int64(e.count)}
		ss.hwm.Store(ss.next)
		s.addStreamLocked(ss)
		valid = it.SeekGE(end)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("store: recover: %w", err)
	}

	// Streams whose oldest chunks (maybe all of them) were deleted by
	// retention.
	lower, upper = familyBounds(prefixStreamMeta)
	mit, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("store: recover: %w", err)
	}
	defer mit.Close()
	for valid := mit.First(); valid; valid = mit.Next() {
		st, err := decodeStreamMetaKey(mit.Key())
		if err != nil {
			return fmt.Errorf("store: recover: %w", err)
		}
		v, err := mit.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store: recover %s: %w", st, err)
		}
		low, err := decodeInt64Value(v)
		if err != nil {
			return fmt.Errorf("store: recover %s earliest offset: %w", st, err)
		}
		ss, ok := s.streams[st]
		if !ok {
			ss = &streamState{st: st, next: low}
			ss.hwm.Store(low)
			ss.low.Store(low)
			s.addStreamLocked(ss)
			continue
		}
		if low > ss.low.Load() {
			ss.low.Store(low)
		}
		if low > ss.next {
			ss.next = low
			ss.hwm.Store(low)
		}
	}
	return mit.Error()
}

// Close stops the store: appends still queued fail with ErrClosed at once,
// the batch being built and the commits already written finish (Close waits
// for their fsyncs, and they are acknowledged), the background retention
// stops, and Pebble is closed. Close returns ErrClosed when called twice.
func (s *Store) Close() error {
	s.cancel()
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.closeMu.Unlock()
	close(s.stop)
	s.wg.Wait()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close pebble: %w", err)
	}
	return nil
}

// acquire read-locks the store for an operation; it fails after Close.
func (s *Store) acquire() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) release() { s.closeMu.RUnlock() }

// state returns the state of st, or nil if the store has never seen it.
func (s *Store) state(st Stream) *streamState {
	s.mu.RLock()
	ss := s.streams[st]
	s.mu.RUnlock()
	return ss
}

// stateOrNew returns the state of st, creating it, unless st is the first
// stream of a topic beyond Options.MaxTopics (ErrTooManyTopics). Only the
// committer creates states, so the count cannot be overtaken.
func (s *Store) stateOrNew(st Stream) (*streamState, error) {
	if ss := s.state(st); ss != nil {
		return ss, nil
	}
	s.mu.Lock()
	ss := s.streams[st]
	if ss == nil {
		if _, known := s.byTopic[st.Topic]; !known && s.opts.MaxTopics > 0 && len(s.byTopic) >= s.opts.MaxTopics {
			n := len(s.byTopic)
			s.mu.Unlock()
			if !s.topicsRefused {
				// Only the committer refuses, so this is logged once.
				s.topicsRefused = true
				s.log.Warn("store: refusing a new topic: the store holds as many as it may; appends to new topics fail (ErrTooManyTopics) until it is opened with a higher limit",
					"topic", st.Topic, "topics", n, "max_topics", s.opts.MaxTopics)
			}
			return nil, fmt.Errorf("%w: %q would be topic %d, over the limit of %d",
				ErrTooManyTopics, st.Topic, n+1, s.opts.MaxTopics)
		}
		ss = &streamState{st: st}
		s.addStreamLocked(ss)
	}
	s.mu.Unlock()
	return ss, nil
}

// addStreamLocked adds a new stream's state; s.mu is held, or the store is
// not open yet.
func (s *Store) addStreamLocked(ss *streamState) {
	s.streams[ss.st] = ss
	s.byTopic[ss.st.Topic] = append(s.byTopic[ss.st.Topic], ss)
}

// HoldsTopic says whether the store holds topic: whether it has the state
// of any stream of it, even one whose first append is not yet durable.
// Topics are never removed.
func (s *Store) HoldsTopic(topic string) bool {
	s.mu.RLock()
	_, ok := s.byTopic[topic]
	s.mu.RUnlock()
	return ok
}

// HighWatermark returns the next offset to be assigned in st: the number of
// events ever appended to it and acknowledged. It is 0 for unknown streams.
func (s *Store) HighWatermark(st Stream) int64 {
	if ss := s.state(st); ss != nil {
		return ss.hwm.Load()
	}
	return 0
}

// EarliestOffset returns the earliest retained offset of st (equal to the
// high watermark when retention deleted everything; 0 for unknown streams).
func (s *Store) EarliestOffset(st Stream) int64 {
	if ss := s.state(st); ss != nil {
		return ss.low.Load()
	}
	return 0
}

// Streams returns the streams of topic that have received events (a
// positive high watermark, even if retention has since deleted them), in key
// order: token, range index, version.
func (s *Store) Streams(topic string) []Stream {
	s.mu.RLock()
	var out []Stream
	for _, ss := range s.byTopic[topic] {
		if ss.hwm.Load() > 0 {
			out = append(out, ss.st)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, compareStreams)
	return out
}

// streamsByTopic returns the states of the streams with data (those
// Streams returns), grouped by topic, topics sorted and each topic's
// streams in key order, from the by-topic index: a pass does not read
// every stream once per topic.
func (s *Store) streamsByTopic() [][]*streamState {
	s.mu.RLock()
	topics := slices.Sorted(maps.Keys(s.byTopic))
	out := make([][]*streamState, 0, len(topics))
	for _, t := range topics {
		var states []*streamState
		for _, ss := range s.byTopic[t] {
			if ss.hwm.Load() > 0 {
				states = append(states, ss)
			}
		}
		if len(states) > 0 {
			out = append(out, states)
		}
	}
	s.mu.RUnlock()
	for _, states := range out {
		slices.SortFunc(states, func(a, b *streamState) int { return compareStreams(a.st, b.st) })
	}
	return out
}
