package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Benchmarks append batches of 100 incompressible events of 200 bytes with
// SyncAlways on a real disk, from 1, 16 and 64 concurrent appenders. One
// benchmark op is one Append (100 events). Reported metrics:
//
//	events/s, MB/s     durable event throughput (payload bytes)
//	syncs/append       WAL fsyncs per Append (group commit shares them)
//	appends/commit     appends coalesced per Pebble batch
//	write-amp          Pebble's (WAL + flush + compaction bytes) / WAL bytes
//	disk-write-amp     all bytes Pebble wrote / event payload bytes
//	peak-RSS-MB        VmHWM of the process during the benchmark
//
// Run: CGO_ENABLED=0 go test -run x -bench Append -benchtime 20000x ./store/
const (
	benchEventSize   = 200
	benchBatchEvents = 100
)

func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			benchAppend(b, n, Options{})
		})
	}
}

// BenchmarkAppendNoValueSeparation is the same load with chunk values kept
// in sstables, for comparison.
func BenchmarkAppendNoValueSeparation(b *testing.B) {
	b.Run("appenders=16", func(b *testing.B) {
		benchAppend(b, 16, Options{DisableValueSeparation: true})
	})
}

func benchAppend(b *testing.B, appenders int, opts Options) {
	dir := benchDir(b)
	opts.RetentionInterval = -1
	s, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()

	// Pre-generate a few distinct batches per appender: the benchmark
	// measures the store, not the random generator.
	const variants = 4
	batches := make([][][][]byte, appenders)
	for a := range batches {
		r := newRand(int64(a))
		for range variants {
			batches[a] = append(batches[a], randomEvents(r, benchBatchEvents, benchEventSize))
		}
	}
	resetPeakRSS()
	before := s.Metrics()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := Stream{Topic: "bench", Token: int64(a), RangeIndex: uint32(a % 4), Version: 1}
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				if _, err := s.Append(context.Background(), st, batches[a][i%variants]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	m := s.Metrics()
	events := float64(m.Events - before.Events)
	payload := float64(m.EventBytes - before.EventBytes)
	appends := float64(m.Appends - before.Appends)
	b.ReportMetric(events/elapsed.Seconds(), "events/s")
	b.ReportMetric(payload/elapsed.Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(m.WALSyncs-before.WALSyncs)/appends, "syncs/append")
	b.ReportMetric(appends/float64(m.Commits-before.Commits), "appends/commit")
	if syncs := m.WALSyncs - before.WALSyncs; syncs > 0 {
		b.ReportMetric(float64(m.WALSyncLatency-before.WALSyncLatency)/float64(syncs)/1e6, "ms/sync")
	}
	b.ReportMetric(m.WriteAmp, "write-amp")
	written := float64(m.WALBytesWritten + m.FlushBytes + m.CompactionBytes - before.WALBytesWritten - before.FlushBytes - before.CompactionBytes)
	b.ReportMetric(written/payload, "disk-write-amp")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
}

// benchDir returns a fresh directory on a real disk: b.TempDir() unless it is
// on tmpfs, else a directory under the working directory (git-ignored).
func benchDir(b *testing.B) string {
	dir := b.TempDir()
	var fs syscall.Statfs_t
	const tmpfsMagic = 0x01021994
	if err := syscall.Statfs(dir, &fs); err == nil && fs.Type != tmpfsMagic {
		return dir
	}
	dir, err := os.MkdirTemp(".", ".benchdata-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	abs, _ := filepath.Abs(dir)
	return abs
}

// resetPeakRSS resets VmHWM (Linux: writing 5 to clear_refs).
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS returns VmHWM in bytes (0 if unknown).
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkRead reads a stream sequentially in batches of about 1 MB, the
// way a consumer polls. One op = one Read.
func BenchmarkRead(b *testing.B) {
	s, err := Open(benchDir(b), Options{RetentionInterval: -1, Sync: SyncNever})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	st := Stream{Topic: "bench", Version: 1}
	r := newRand(1)
	batch := randomEvents(r, benchBatchEvents, benchEventSize)
	const appends = 2000 // 200k events, 40 MB
	for range appends {
		if _, err := s.Append(context.Background(), st, batch); err != nil {
			b.Fatal(err)
		}
	}
	hwm := s.HighWatermark(st)
	var events, bytes int64
	b.ReportAllocs()
	b.ResetTimer()
	from := int64(0)
	for range b.N {
		bt, err := s.Read(st, from, 1<<20, 0)
		if err != nil {
			b.Fatal(err)
		}
		events += int64(len(bt.Events))
		for _, e := range bt.Events {
			bytes += int64(len(e))
		}
		from = bt.Start + int64(len(bt.Events))
		if from >= hwm {
			from = 0
		}
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/b.Elapsed().Seconds()/1e6, "MB/s")
}

// BenchmarkStreams finds one topic's streams among those of 20,000 topics,
// as a consumer group's rebalance does for each topic it reads.
func BenchmarkStreams(b *testing.B) {
	s := openT(b, b.TempDir(), Options{MaxTopics: -1})
	for i := range 20000 {
		for r := range 4 {
			ss, err := s.stateOrNew(testStream(fmt.Sprintf("topic-%d", i), r))
			if err != nil {
				b.Fatal(err)
			}
			ss.hwm.Store(1)
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if n := len(s.Streams(fmt.Sprintf("topic-%d", i%20000))); n != 4 {
			b.Fatalf("%d streams", n)
		}
	}
}
