package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// SyncPolicy says when an Append is made durable.
type SyncPolicy int

const (
	// SyncAlways (the zero value, the default) fsyncs the WAL before any
	// Append is acknowledged. Group commit shares one fsync among all the
	// appends of a commit.
	SyncAlways SyncPolicy = iota
	// SyncNever writes without fsync: an acknowledged Append survives a
	// process crash but not a machine crash. For tests and benchmarks only.
	SyncNever
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "SyncAlways"
	case SyncNever:
		return "SyncNever"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Compression selects the block compression of Pebble files. Chunk values are
// compressed by Pebble when they are flushed, never by the store.
type Compression int

const (
	// CompressionNone (the default) stores blocks as they are. Events are
	// often incompressible (already compressed or random), and compression
	// costs CPU on the flush path for nothing.
	CompressionNone Compression = iota
	// CompressionFastest uses Pebble's fastest profile (MinLZ on amd64);
	// a block that shrinks by less than 12% is stored uncompressed.
	CompressionFastest
)

// Defaults applied by Open (and by Options.withDefaults) to zero fields.
const (
	DefaultCacheSize          = 64 << 20
	DefaultRetentionMaxAge    = 7 * 24 * time.Hour
	DefaultRetentionInterval  = time.Minute
	DefaultMemTableSize       = 16 << 20
	DefaultMaxBatchBytes      = 4 << 20
	DefaultMaxQueuedBytes     = 64 << 20
	DefaultMaxAppendBytes     = 8 << 20
	DefaultMaxInflightCommits = 1
	DefaultValueSeparationMin = 64
	DefaultCommitLinger       = 200 * time.Microsecond
	DefaultPageCacheWindow    = 1 << 30
	DefaultMinFreeDisk        = 256 << 20
	DefaultOffsetSyncDelay    = 100 * time.Millisecond
	DefaultMaxTopics          = 10000
)

// Options configures a Store. The zero value is valid: Open fills every zero
// field with its default.
type Options struct {
	// FS is the filesystem Pebble runs on. Default vfs.Default; tests use
	// vfs.NewMem or vfs.NewCrashableMem.
	FS vfs.FS
	// Logger receives the store's and Pebble's logs. Default: discards.
	Logger *slog.Logger
	// OnWriteFailure, if set, is called once, when a commit fails inside
	// Pebble (WAL write or fsync) and the store starts refusing writes (see
	// WriteErr). It runs on the store's commit pipeline: it must not block
	// or call Append.
	OnWriteFailure func(err error)
	// Sync is the durability of Append and CommitGroupOffset. Default
	// SyncAlways.
	Sync SyncPolicy
	// OffsetSyncDelay bounds how long a group offset written by
	// CommitGroupOffsetSoon may wait for an fsync when no other write syncs
	// the WAL before (see offsetsync.go). Default 100ms; at most 10s.
	OffsetSyncDelay time.Duration
	// PageCacheWindow is how many bytes of the newest blob files (the
	// events flushed from the WAL) the store leaves in the OS page cache;
	// older ones are dropped from it (see pagecache.go). Default 1 GiB;
	// negative: the kernel alone manages the page cache. Linux only.
	PageCacheWindow int64
	// MinFreeDiskBytes is the free space the store keeps on the volume of
	// its directory: below it, Append refuses events (ErrDiskFull) until
	// space comes back (see diskguard.go). Default 256 MiB; never less than
	// twice what the memtables may hold (8 × MemTableSize), which Pebble
	// needs to flush them; negative: no guard. Only on the OS's file system
	// (FS vfs.Default) on Unix.
	MinFreeDiskBytes int64
	// CacheSize is the Pebble block cache size in bytes. Default 64 MiB.
	CacheSize int64
	// MaxTopics is how many topics the store holds: an Append that would
	// create one more fails with ErrTooManyTopics, and nothing of it is
	// stored. Topics are never removed (retention deletes their events, not
	// their offsets), and each costs memory for as long as the store is
	// open, so a producer writing to ever new names cannot grow it without
	// bound. A store that already holds more, opened with a lower limit,
	// keeps them. Default 10,000; negative: no limit.
	MaxTopics int

	// RetentionMaxAge deletes whole chunks appended longer ago than this.
	// Default 7 days; negative keeps data forever.
	RetentionMaxAge time.Duration
	// RetentionMaxBytes bounds the encoded bytes kept per topic; the oldest
	// chunks of the topic beyond it are deleted. Default 0: unlimited.
	RetentionMaxBytes int64
	// RetentionInterval is the period of the background retention run.
	// Default 1 minute; negative disables the background run (ApplyRetention
	// still works).
	RetentionInterval time.Duration
	// Now is the clock used for chunk timestamps and retention. Default
	// time.Now.
	Now func() time.Time

	// MemTableSize is the size of one Pebble memtable. At most
	// memTableStopWritesThreshold memtables exist at once, so this bounds
	// most of the store's memory. Default 16 MiB (32 MiB measured the same
	// throughput and write amplification with 213 MB peak RSS instead of
	// 120 MB; see tuning.md).
	MemTableSize int64
	// MaxBatchBytes is how many encoded bytes the committer coalesces into
	// one Pebble batch before committing it (a batch holds at least one
	// append). Default 4 MiB (at most MemTableSize/4).
	MaxBatchBytes int
	// MaxQueuedBytes bounds the encoded bytes of appends that are queued or
	// committing; Append waits (honoring its context) beyond it. Default
	// 64 MiB. Must be at least MaxAppendBytes.
	MaxQueuedBytes int64
	// MaxAppendBytes is the largest encoded chunk one Append may produce
	// (24 bytes + 4 per event + payload). Default min(8 MiB, MemTableSize/4),
	// so that batches stay ordinary Pebble batches. It may be raised up to
	// MemTableSize: a batch holding an append over MemTableSize/2 becomes a
	// Pebble large batch (written to the WAL and synced like any other,
	// then flushed as its own memtable): slower, as correct.
	MaxAppendBytes int
	// MaxInflightCommits is how many batches may be written to the WAL and
	// waiting for their fsync at once. With more than one, the next batch is
	// written while the previous one syncs and Pebble's WAL writer covers it
	// with the next fsync; but then the appenders split into groups that
	// alternate fsyncs, each carrying half as much. Default 1: one batch, as
	// large as CommitLinger gathers, per fsync (see tuning.md).
	MaxInflightCommits int
	// CommitLinger is how long the committer may wait for more appends
	// before committing a batch smaller than the recent peak batch (see
	// gather in commit.go). Default 200µs; negative disables.
	CommitLinger time.Duration
	// DisableValueSeparation keeps chunk values inside sstables instead of
	// Pebble blob files, so compactions rewrite them. For comparisons only.
	DisableValueSeparation bool
	// ValueSeparationMinSize is the smallest chunk value moved to a blob
	// file. Default 64 bytes: every chunk of an event of 36 bytes or more,
	// so that compactions move keys, not events (tuning.md).
	ValueSeparationMinSize int
	// Compression of Pebble blocks. Default CompressionNone.
	Compression Compression
	// PebbleTuning, if set, is called with the Pebble options the store
	// built, just before opening Pebble. It exists for experiments and
	// benchmarks (write-amplification comparisons); it must not change FS,
	// the comparer or anything the store relies on.
	PebbleTuning func(*pebble.Options)
}

// memTableStopWritesThreshold is how many memtables (one mutable, the others
// flushing) may exist before Pebble stalls writes. It bounds memtable memory
// at this times MemTableSize.
const memTableStopWritesThreshold = 4

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.RetentionMaxAge == 0 {
		o.RetentionMaxAge = DefaultRetentionMaxAge
	}
	if o.RetentionInterval == 0 {
		o.RetentionInterval = DefaultRetentionInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = int(min(DefaultMaxBatchBytes, o.MemTableSize/4))
	}
	if o.MaxQueuedBytes == 0 {
		o.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if o.MaxAppendBytes == 0 {
		o.MaxAppendBytes = int(min(DefaultMaxAppendBytes, o.MemTableSize/4))
	}
	if o.MaxInflightCommits == 0 {
		o.MaxInflightCommits = DefaultMaxInflightCommits
	}
	if o.CommitLinger == 0 {
		o.CommitLinger = DefaultCommitLinger
	}
	if o.OffsetSyncDelay == 0 {
		o.OffsetSyncDelay = DefaultOffsetSyncDelay
	}
	if o.ValueSeparationMinSize == 0 {
		o.ValueSeparationMinSize = DefaultValueSeparationMin
	}
	if o.PageCacheWindow == 0 {
		o.PageCacheWindow = DefaultPageCacheWindow
	}
	if o.MaxTopics == 0 {
		o.MaxTopics = DefaultMaxTopics
	}
	if o.MinFreeDiskBytes == 0 {
		o.MinFreeDiskBytes = DefaultMinFreeDisk
	}
	if o.MinFreeDiskBytes > 0 {
		o.MinFreeDiskBytes = max(o.MinFreeDiskBytes, 2*memTableStopWritesThreshold*o.MemTableSize)
	}
	return o
}

// EffectiveMinFreeDisk is the free space a store opened with o keeps:
// MinFreeDiskBytes with its default and its floor of twice what the
// memtables may hold; negative when the guard is off.
func (o Options) EffectiveMinFreeDisk() int64 { return o.withDefaults().MinFreeDiskBytes }

// Validate reports the first invalid field, by name. Zero fields are valid
// (they get defaults); Validate checks the values that were set.
func (o Options) Validate() error {
	o = o.withDefaults()
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("store: invalid Options.%s = %v: %s", field, v, why)
	}
	switch {
	case o.Sync != SyncAlways && o.Sync != SyncNever:
		return bad("Sync", o.Sync, "must be SyncAlways or SyncNever")
	case o.CacheSize < 0:
		return bad("CacheSize", o.CacheSize, "must be positive")
	case o.RetentionMaxBytes < 0:
		return bad("RetentionMaxBytes", o.RetentionMaxBytes, "must be >= 0 (0 = unlimited)")
	case o.MemTableSize < 1<<20 || o.MemTableSize > 1<<30:
		return bad("MemTableSize", o.MemTableSize, "must be in [1 MiB, 1 GiB]")
	case o.MaxBatchBytes < 0:
		return bad("MaxBatchBytes", o.MaxBatchBytes, "must be positive")
	case int64(o.MaxBatchBytes) > o.MemTableSize/4:
		return bad("MaxBatchBytes", o.MaxBatchBytes, "must be at most MemTableSize/4 so a batch never becomes a Pebble large batch")
	case o.MaxAppendBytes < chunkHeaderLen+5:
		return bad("MaxAppendBytes", o.MaxAppendBytes, fmt.Sprintf("must be at least %d", chunkHeaderLen+5))
	case int64(o.MaxAppendBytes) > o.MemTableSize:
		return bad("MaxAppendBytes", o.MaxAppendBytes, "must be at most MemTableSize")
	case o.MaxQueuedBytes < int64(o.MaxAppendBytes):
		return bad("MaxQueuedBytes", o.MaxQueuedBytes, "must be at least MaxAppendBytes")
	case o.MaxInflightCommits < 1 || o.MaxInflightCommits > 64:
		return bad("MaxInflightCommits", o.MaxInflightCommits, "must be in [1, 64]")
	case o.OffsetSyncDelay < 0 || o.OffsetSyncDelay > 10*time.Second:
		return bad("OffsetSyncDelay", o.OffsetSyncDelay, "must be in (0, 10s]")
	case o.CommitLinger > 10*time.Millisecond:
		return bad("CommitLinger", o.CommitLinger, "must be at most 10ms")
	case o.ValueSeparationMinSize < 1:
		return bad("ValueSeparationMinSize", o.ValueSeparationMinSize, "must be positive")
	case o.Compression != CompressionNone && o.Compression != CompressionFastest:
		return bad("Compression", o.Compression, "must be CompressionNone or CompressionFastest")
	}
	return nil
}

// pebbleOptions builds the Pebble configuration for a log workload. The
// choices, and the write-amplification measurements behind them, are
// described in tuning.md.
func (o Options) pebbleOptions() *pebble.Options {
	po := &pebble.Options{
		FS:        o.FS,
		CacheSize: o.CacheSize,
		Logger:    pebbleLogger{o.Logger},
		// Blob files (value separation) need the newest format.
		FormatMajorVersion: pebble.FormatValueSeparation,

		MemTableSize:                uint64(o.MemTableSize),
		MemTableStopWritesThreshold: memTableStopWritesThreshold,
		// With values in blob files, sstables hold only keys and blob
		// handles: L0 stays small, so let it grow a bit before compacting
		// and stall late.
		L0CompactionThreshold: 4,
		L0StopWritesThreshold: 24,
		// Sstables hold little (keys, handles); bigger files mean fewer.
		TargetFileSizes: [7]int64{8 << 20},
		// Keys are stream-major, so every flush spans the key range of
		// every stream, and every compaction out of L0 rewrites all of the
		// base level. Pebble sizes levels by the values their keys
		// reference in blob files, so with the default (64 MiB) the base
		// level held megabytes of keys, rewritten several times a second,
		// and compactions grew with the data: gRPC produce fell from 1.1 M
		// to 730 k events/s over two minutes. A small base level keeps that
		// rewrite small (tuning.md).
		LBaseMaxBytes: 1 << 20,
		// Write data to disk in the background as flushes produce it,
		// instead of in one burst when the file is synced.
		BytesPerSync: 1 << 20,
		// A range deletion (retention) reclaims space only once flushed.
		FlushDelayDeleteRange: 10 * time.Second,
	}
	compression := func() *sstable.CompressionProfile { return sstable.NoCompression }
	if o.Compression == CompressionFastest {
		compression = func() *sstable.CompressionProfile { return sstable.FastestCompression }
	}
	for i := range po.Levels {
		po.Levels[i].Compression = compression
		// Blob files use the level's block size. 128 KiB blocks mean
		// fewer write syscalls and checksums per flushed byte than 32 KiB:
		// 6-27% less CPU per GB in four interleaved pairs of runs, and more
		// throughput in three of them (tuning.md). Sstables hold only keys,
		// so their bigger blocks cost little.
		po.Levels[i].BlockSize = 128 << 10
	}
	if !o.DisableValueSeparation {
		policy := pebble.ValueSeparationPolicy{
			Enabled:     true,
			MinimumSize: o.ValueSeparationMinSize,
			// Every flush writes one blob file holding a time slice of all
			// streams, so a compaction merging N flushes' sstables yields
			// sstables referencing N blob files. Pebble rewrites the values
			// into new blob files when that depth exceeds this limit; a log
			// gains nothing from it (a stream is read in time order, blob
			// file after blob file), so the limit is high: with 10 (the
			// CockroachDB value) 1 GB of appends rewrote 0.86 GB of values.
			MaxBlobReferenceDepth: 1000,
			// Blob files hold a time slice of every stream; they empty out
			// together when retention is uniform. When it is not (size
			// retention trims one topic and not the others), a file stays
			// until Pebble rewrites its live values, which it does once the
			// garbage is over half of all blob bytes, for files at least
			// this old: the disk holds that much of the produce rate beyond
			// what retention keeps (a minute, as often as retention runs;
			// at 10 minutes, 750 MB at 2.5 MB/s against a 10 MB limit).
			RewriteMinimumAge:  time.Minute,
			TargetGarbageRatio: 0.5,
		}
		po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy { return policy }
	}
	po.EventListener = &pebble.EventListener{
		// Open sets BackgroundError (backgroundErrors).
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			o.Logger.Error("pebble data corruption", "path", info.Path, "err", info.Details)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			o.Logger.Warn("pebble write stall", "reason", info.Reason)
		},
		WriteStallEnd: func() { o.Logger.Info("pebble write stall ended") },
	}
	if o.PebbleTuning != nil {
		o.PebbleTuning(po)
	}
	return po
}

// pebbleLogger routes Pebble's logs to the injected slog logger.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "engine", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "engine", "pebble")
}

// Fatalf is called by Pebble when its state is no longer consistent (for
// example a commit pipeline error). Pebble's default logger exits the
// process; a library must not, so it logs and panics with the message.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "engine", "pebble", "fatal", true)
	panic(errors.New("pebble fatal: " + msg))
}
