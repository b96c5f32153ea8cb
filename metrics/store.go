package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/floe-streams/floe/store"
)

// storeCollector exports a store.Metrics snapshot taken at scrape time.
// Cumulative fields are counters (since the store was opened: they restart
// at zero with the process, which rate() handles); latency sums are
// summaries without quantiles (a _count and a _sum: their rates give the
// mean, not percentiles).
type storeCollector struct {
	src     StoreSource
	values  []storeValue
	commit  *prometheus.Desc
	ack     *prometheus.Desc
	walSync *prometheus.Desc
}

type storeValue struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	get  func(*store.Metrics) float64
}

func newStoreCollector(src StoreSource) *storeCollector {
	c := &storeCollector{src: src}
	add := func(name, help string, typ prometheus.ValueType, get func(*store.Metrics) float64) {
		c.values = append(c.values, storeValue{
			desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "store", name), help, nil, nil),
			typ:  typ, get: get,
		})
	}
	counter, gauge := prometheus.CounterValue, prometheus.GaugeValue
	add("appends_total", "Acknowledged appends (produce requests made durable).", counter,
		func(m *store.Metrics) float64 { return float64(m.Appends) })
	add("append_errors_total", "Appends that failed after validation (cancelled, store closed, failed commit, new topic beyond max-topics).", counter,
		func(m *store.Metrics) float64 { return float64(m.AppendErrors) })
	add("write_failed", "1 once a WAL write or fsync failed: the broker refuses writes until it restarts.", gauge,
		func(m *store.Metrics) float64 {
			if m.WriteFailed {
				return 1
			}
			return 0
		})
	add("disk_full", "1 while the broker refuses events because the volume of its data directory has less free space than --min-free-disk.", gauge,
		func(m *store.Metrics) float64 {
			if m.DiskFull {
				return 1
			}
			return 0
		})
	add("disk_free_bytes", "Free space of the volume of the data directory at the last measure (every 100 ms); -1 when unknown.", gauge,
		func(m *store.Metrics) float64 { return float64(m.DiskFreeBytes) })
	add("events_total", "Events in acknowledged appends.", counter,
		func(m *store.Metrics) float64 { return float64(m.Events) })
	add("event_bytes_total", "Payload bytes of the events in acknowledged appends.", counter,
		func(m *store.Metrics) float64 { return float64(m.EventBytes) })
	add("chunks_total", "Chunks committed: the appends to one stream in one commit share chunks (one key each) of up to 128 KiB (a larger append is a chunk of its own).", counter,
		func(m *store.Metrics) float64 { return float64(m.Chunks) })
	add("chunk_bytes_total", "Encoded chunk bytes committed (payload and chunk headers).", counter,
		func(m *store.Metrics) float64 { return float64(m.ChunkBytes) })
	add("group_offset_commits_total", "Consumer-group offsets committed to the store.", counter,
		func(m *store.Metrics) float64 { return float64(m.GroupOffsetCommits) })
	add("group_offset_syncs_total", "WAL fsyncs made for offsets that polls committed when no other fsync had covered them: by the timer, at most one per offset sync delay (100 ms), and by each commit or goodbye that found them uncovered.", counter,
		func(m *store.Metrics) float64 { return float64(m.GroupOffsetSyncs) })
	add("streams", "Streams (topic sub-ranges) the store holds.", gauge,
		func(m *store.Metrics) float64 { return float64(m.Streams) })
	add("topics", "Topics the store holds: producing to a new one fails (409 TOO_MANY_TOPICS) once there are floe_store_max_topics.", gauge,
		func(m *store.Metrics) float64 { return float64(m.Topics) })
	add("max_topics", "The most topics the store holds (--max-topics); -1 when unlimited.", gauge,
		func(m *store.Metrics) float64 { return float64(m.MaxTopics) })
	add("retention_runs_total", "Retention passes run.", counter,
		func(m *store.Metrics) float64 { return float64(m.RetentionRuns) })
	add("retention_chunks_deleted_total", "Chunks deleted by retention.", counter,
		func(m *store.Metrics) float64 { return float64(m.ChunksDeleted) })
	add("retention_bytes_deleted_total", "Chunk bytes deleted by retention.", counter,
		func(m *store.Metrics) float64 { return float64(m.BytesDeleted) })
	add("disk_bytes", "What the store's files occupy on the disk, as du counts it (allocated blocks, on Linux).", gauge,
		func(m *store.Metrics) float64 { return float64(m.DiskBytes) })
	add("wal_written_bytes_total", "Physical bytes written to the WAL.", counter,
		func(m *store.Metrics) float64 { return float64(m.WALBytesWritten) })
	add("flush_written_bytes_total", "Sstable and blob bytes written by flushes.", counter,
		func(m *store.Metrics) float64 { return float64(m.FlushBytes) })
	add("compaction_written_bytes_total", "Sstable and blob bytes written by compactions.", counter,
		func(m *store.Metrics) float64 { return float64(m.CompactionBytes) })
	add("write_amplification", "(WAL + flush + compaction bytes) / WAL bytes, since open.", gauge,
		func(m *store.Metrics) float64 { return m.WriteAmp })
	add("blob_files", "Live blob files (value separation).", gauge,
		func(m *store.Metrics) float64 { return float64(m.BlobFiles) })
	add("blob_bytes", "Size of the live blob files.", gauge,
		func(m *store.Metrics) float64 { return float64(m.BlobBytes) })
	add("sstables", "Live sstables.", gauge,
		func(m *store.Metrics) float64 { return float64(m.Sstables) })
	add("sstable_bytes", "Size of the live sstables.", gauge,
		func(m *store.Metrics) float64 { return float64(m.SstableBytes) })
	add("l0_sublevels", "Sublevels in L0 (high values mean compactions lag).", gauge,
		func(m *store.Metrics) float64 { return float64(m.L0Sublevels) })
	add("read_amplification", "Pebble read amplification.", gauge,
		func(m *store.Metrics) float64 { return float64(m.ReadAmp) })
	add("compaction_debt_bytes", "Estimated bytes compactions still have to write.", gauge,
		func(m *store.Metrics) float64 { return float64(m.CompactionDebt) })
	add("flushes_total", "Memtable flushes.", counter,
		func(m *store.Metrics) float64 { return float64(m.Flushes) })
	add("compactions_total", "Compactions.", counter,
		func(m *store.Metrics) float64 { return float64(m.Compactions) })
	add("memtable_bytes", "Size of the memtables.", gauge,
		func(m *store.Metrics) float64 { return float64(m.MemTableBytes) })
	add("block_cache_bytes", "Size of the block cache's contents.", gauge,
		func(m *store.Metrics) float64 { return float64(m.BlockCacheBytes) })
	add("block_cache_hits_total", "Block cache hits.", counter,
		func(m *store.Metrics) float64 { return float64(m.BlockCacheHits) })
	add("block_cache_misses_total", "Block cache misses.", counter,
		func(m *store.Metrics) float64 { return float64(m.BlockCacheMisses) })
	add("page_cache_dropped_bytes_total", "Bytes of blob files dropped from the OS page cache (page-cache-window).", counter,
		func(m *store.Metrics) float64 { return float64(m.PageCacheDropped) })
	add("page_cache_drop_failures_total", "Blob files the kernel refused to drop from the page cache.", counter,
		func(m *store.Metrics) float64 { return float64(m.PageCacheDropFailures) })

	summary := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "store", name), help, nil, nil)
	}
	c.commit = summary("commit_duration_seconds",
		"Group commits: time from a batch's write to its durability (the fsync wait). Count and sum only, no quantiles.")
	c.ack = summary("append_duration_seconds",
		"Acknowledged appends: time from enqueue to acknowledgement. Count and sum only, no quantiles.")
	c.walSync = summary("wal_fsync_duration_seconds",
		"Fsyncs of the WAL (one may cover several commits). Count and sum only, no quantiles.")
	return c
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range c.values {
		ch <- v.desc
	}
	ch <- c.commit
	ch <- c.ack
	ch <- c.walSync
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.src.Metrics()
	for _, v := range c.values {
		ch <- prometheus.MustNewConstMetric(v.desc, v.typ, v.get(&m))
	}
	ch <- prometheus.MustNewConstSummary(c.commit, uint64(max(m.Commits, 0)), m.CommitLatency.Seconds(), nil)
	ch <- prometheus.MustNewConstSummary(c.ack, uint64(max(m.Appends, 0)), m.AckLatency.Seconds(), nil)
	ch <- prometheus.MustNewConstSummary(c.walSync, uint64(max(m.WALSyncs, 0)), m.WALSyncLatency.Seconds(), nil)
}
