package store

import (
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	dto "github.com/prometheus/client_model/go"
)

// counters are the store's own cumulative counters.
type counters struct {
	appends       atomic.Int64
	appendErrors  atomic.Int64
	events        atomic.Int64
	eventBytes    atomic.Int64
	chunks        atomic.Int64
	chunkBytes    atomic.Int64
	commits       atomic.Int64
	commitNanos   atomic.Int64
	ackNanos      atomic.Int64
	groupCommits  atomic.Int64
	retentionRuns atomic.Int64
	chunksDeleted atomic.Int64
	bytesDeleted  atomic.Int64
}

// Metrics is a snapshot of the store's counters and of the Pebble metrics
// that matter for a log. Counters are cumulative since Open. Nothing is
// registered anywhere: the caller exports what it wants.
type Metrics struct {
	// Appends, Events and EventBytes count acknowledged appends, their events
	// and their payload bytes; Chunks and ChunkBytes the chunks committed
	// and their encoded bytes (the appends of one stream in one commit
	// share a chunk).
	Appends, Events, EventBytes, Chunks, ChunkBytes int64
	// AppendErrors counts appends that returned an error after validation
	// (cancelled, closed, failed commits).
	AppendErrors int64
	// WriteFailed is true once a commit failed inside Pebble: the store
	// refuses writes until reopened (see WriteErr).
	WriteFailed bool
	// DiskFull is true while the store refuses events for want of space
	// (Options.MinFreeDiskBytes); DiskFreeBytes is the free space of its
	// volume at the last measure, -1 when the guard is off.
	DiskFull      bool
	DiskFreeBytes int64
	// Commits counts group commits (Pebble batches made durable); Appends /
	// Commits is the average coalescing.
	Commits int64
	// CommitLatency is the sum over commits of the time from the batch's
	// write to its durability (the fsync wait); AckLatency the sum over
	// appends of the time from enqueue to acknowledgement.
	CommitLatency, AckLatency time.Duration
	// WALSyncs counts the fsyncs of the WAL, and WALSyncLatency their total
	// duration. Pebble may cover several commits with one fsync.
	WALSyncs       int64
	WALSyncLatency time.Duration
	// GroupOffsetCommits counts CommitGroupOffset and CommitGroupOffsetSoon
	// calls that succeeded; GroupOffsetSyncs the fsyncs SyncGroupOffsets
	// made for the latter, when no other write's fsync had covered them:
	// the timer's, and those of explicit commits (offsetsync.go).
	GroupOffsetCommits, GroupOffsetSyncs int64

	// Streams and Topics count what the store holds; MaxTopics is the
	// limit of Topics (Options.MaxTopics), -1 when there is none.
	Streams, Topics, MaxTopics int

	// Retention.
	RetentionRuns, ChunksDeleted, BytesDeleted int64

	// Pebble.
	DiskBytes       uint64 // what all files of the store occupy (allocated blocks on the OS file system; else their sizes)
	WALBytesWritten uint64 // physical bytes written to the WAL
	FlushBytes      uint64 // sstable + blob bytes written by flushes
	CompactionBytes uint64 // sstable + blob bytes written by compactions
	// WriteAmp is (WAL + flush + compaction bytes written) / WAL bytes. It
	// is computed here, not taken from Pebble: Pebble v2.1.7's
	// LevelMetrics.WriteAmp counts the blob bytes of a flush twice (as
	// BlobBytesFlushed and BlobBytesCompacted); PebbleWriteAmp is its value.
	WriteAmp         float64
	PebbleWriteAmp   float64
	BlobFiles        uint64
	BlobBytes        uint64
	Sstables         int64
	SstableBytes     int64
	L0Sublevels      int32
	ReadAmp          int
	CompactionDebt   uint64
	Flushes          int64
	Compactions      int64
	MemTableBytes    uint64
	BlockCacheBytes  int64
	BlockCacheHits   int64
	BlockCacheMisses int64

	// PageCacheDropped counts the bytes of blob files dropped from the OS
	// page cache (PageCacheWindow), PageCacheDropFailures the files the
	// kernel refused to drop.
	PageCacheDropped      int64
	PageCacheDropFailures int64
}

// Metrics returns a snapshot. It is cheap enough to call every few seconds.
func (s *Store) Metrics() Metrics {
	c := &s.stats
	m := Metrics{
		Appends:            c.appends.Load(),
		Events:             c.events.Load(),
		EventBytes:         c.eventBytes.Load(),
		Chunks:             c.chunks.Load(),
		ChunkBytes:         c.chunkBytes.Load(),
		AppendErrors:       c.appendErrors.Load(),
		WriteFailed:        s.failure.Load() != nil,
		DiskFreeBytes:      -1,
		Commits:            c.commits.Load(),
		CommitLatency:      time.Duration(c.commitNanos.Load()),
		AckLatency:         time.Duration(c.ackNanos.Load()),
		GroupOffsetCommits: c.groupCommits.Load(),
		GroupOffsetSyncs:   s.deferred.syncs.Load(),
		RetentionRuns:      c.retentionRuns.Load(),
		ChunksDeleted:      c.chunksDeleted.Load(),
		BytesDeleted:       c.bytesDeleted.Load(),
	}
	if s.disk != nil {
		m.DiskFull = s.disk.refusing() != nil
		m.DiskFreeBytes = s.disk.free.Load()
	}
	if s.window != nil {
		m.PageCacheDropped = s.window.dropped.Load()
		m.PageCacheDropFailures = s.window.dropFailures.Load()
	}
	s.mu.RLock()
	m.Streams, m.Topics, m.MaxTopics = len(s.streams), len(s.byTopic), max(s.opts.MaxTopics, -1)
	s.mu.RUnlock()
	if s.acquire() != nil {
		return m
	}
	defer s.release()
	pm := s.db.Metrics()
	total := pm.Total()
	// Not pm.DiskSpaceUsage(): in Pebble v2.1.7 it counts only the blob
	// files created since Open (BlobFiles.Local.LiveSize), and that counter
	// wraps below zero when older blob files are deleted. Everything is
	// local here, so sum the non-"Local" sizes (the manifest is left out).
	m.DiskBytes = pm.WAL.PhysicalSize + pm.WAL.ObsoletePhysicalSize +
		pm.Table.ObsoleteSize + pm.Table.ZombieSize +
		pm.BlobFiles.LiveSize + pm.BlobFiles.ObsoleteSize + pm.BlobFiles.ZombieSize
	m.WALBytesWritten = pm.WAL.BytesWritten
	for i := range pm.Levels {
		l := &pm.Levels[i]
		m.DiskBytes += uint64(l.TablesSize)
		m.FlushBytes += l.TableBytesFlushed + l.BlobBytesFlushed
		// Pebble also adds a flush's blob bytes to BlobBytesCompacted.
		m.CompactionBytes += l.TableBytesCompacted + l.BlobBytesCompacted - min(l.BlobBytesFlushed, l.BlobBytesCompacted)
		m.Sstables += l.TablesCount
		m.SstableBytes += l.TablesSize
	}
	// On the OS's file system, what the files occupy, as du counts it:
	// Pebble preallocates WAL files beyond their size and keeps them for
	// reuse, so their sizes fall short (by about 100 MB on a broker).
	if s.opts.FS == vfs.Default {
		if n, ok := allocatedBytes(s.dir); ok {
			m.DiskBytes = n
		}
	}
	m.PebbleWriteAmp = total.WriteAmp()
	if m.WALBytesWritten > 0 {
		m.WriteAmp = float64(m.WALBytesWritten+m.FlushBytes+m.CompactionBytes) / float64(m.WALBytesWritten)
	}
	m.BlobFiles = pm.BlobFiles.LiveCount
	m.BlobBytes = pm.BlobFiles.LiveSize
	m.L0Sublevels = pm.Levels[0].Sublevels
	m.ReadAmp = pm.ReadAmp()
	m.CompactionDebt = pm.Compact.EstimatedDebt
	m.Flushes = pm.Flush.Count
	m.Compactions = pm.Compact.Count
	m.MemTableBytes = pm.MemTable.Size
	m.BlockCacheBytes = pm.BlockCache.Size
	m.BlockCacheHits = pm.BlockCache.Hits
	m.BlockCacheMisses = pm.BlockCache.Misses
	if h := pm.LogWriter.FsyncLatency; h != nil {
		var d dto.Metric
		if h.Write(&d) == nil && d.Histogram != nil {
			m.WALSyncs = int64(d.Histogram.GetSampleCount())
			m.WALSyncLatency = time.Duration(d.Histogram.GetSampleSum())
		}
	}
	return m
}
