// Command storebench is the manual measurement tool of package store: it
// appends a given volume of incompressible events from concurrent appenders
// (SyncAlways, real disk), reports throughput, fsyncs, write amplification
// and peak RSS, then closes and reopens the store and reports the open
// (recovery) time. It is how the write-amplification table and the open-time
// numbers in store/tuning.md were produced.
//
//	CGO_ENABLED=0 go run ./store/cmd/storebench -dir /var/tmp/floe-bench -gb 10
//	CGO_ENABLED=0 go run ./store/cmd/storebench -dir /var/tmp/floe-bench -reopen-only
//
// Flags select the Pebble variants compared in tuning.md (-valsep=false,
// -compression=fastest, -memtable=...).
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/floe-streams/floe/store"
)

func main() {
	var (
		dir         = flag.String("dir", "", "store directory (on the disk to measure); required")
		gb          = flag.Float64("gb", 1, "gigabytes of event payload to append")
		appenders   = flag.Int("appenders", 16, "concurrent appenders")
		streams     = flag.Int("streams", 16, "streams (appender i writes stream i % streams)")
		events      = flag.Int("events", 100, "events per append")
		size        = flag.Int("size", 200, "event size in bytes")
		valsep      = flag.Bool("valsep", true, "value separation (blob files)")
		compression = flag.String("compression", "none", "none or fastest")
		memtable    = flag.Int64("memtable", 0, "memtable size in bytes (0: default)")
		inflight    = flag.Int("inflight", 0, "MaxInflightCommits (0: default)")
		l0          = flag.Int("l0", 0, "L0CompactionThreshold override (0: store default)")
		linger      = flag.Duration("linger", 0, "CommitLinger (0: default, negative: off)")
		blockSize   = flag.Int("blocksize", 0, "Pebble block size (sstables and blob files) override")
		minSync     = flag.Duration("minsync", 0, "Pebble WALMinSyncInterval")
		refDepth    = flag.Int("refdepth", 0, "ValueSeparationPolicy.MaxBlobReferenceDepth override (0: store default)")
		retainBytes = flag.Int64("retain-bytes", 0, "after the opens, apply size retention with this RetentionMaxBytes and report it")
		readers     = flag.Int("readers", 0, "concurrent readers tailing streams (1 MB reads) while appending")
		reopenOnly  = flag.Bool("reopen-only", false, "only measure Open of an existing store")
		verbose     = flag.Bool("v", false, "print Pebble's metrics at the end")
		logs        = flag.Bool("logs", false, "print store logs")
	)
	flag.Parse()
	if *dir == "" {
		flag.Usage()
		os.Exit(2)
	}
	opts := store.Options{
		DisableValueSeparation: !*valsep,
		MemTableSize:           *memtable,
		MaxInflightCommits:     *inflight,
		CommitLinger:           *linger,
		RetentionMaxAge:        -1,
		RetentionInterval:      -1,
	}
	if *compression == "fastest" {
		opts.Compression = store.CompressionFastest
	}
	opts.PebbleTuning = func(o *pebble.Options) {
		if *l0 > 0 {
			o.L0CompactionThreshold = *l0
		}
		if *verbose {
			el := o.EventListener
			el.CompactionEnd = func(info pebble.CompactionInfo) { fmt.Fprintln(os.Stderr, info) }
			el.FlushEnd = func(info pebble.FlushInfo) { fmt.Fprintln(os.Stderr, info) }
		}
		if *blockSize > 0 {
			for i := range o.Levels {
				o.Levels[i].BlockSize = *blockSize
			}
		}
		if *minSync > 0 {
			d := *minSync
			o.WALMinSyncInterval = func() time.Duration { return d }
		}
		if *refDepth > 0 && *valsep {
			p := o.Experimental.ValueSeparationPolicy()
			p.MaxBlobReferenceDepth = *refDepth
			o.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy { return p }
		}
	}
	if *logs {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}

	if !*reopenOnly {
		write(*dir, opts, *gb, *appenders, *streams, *events, *size, *readers, *verbose)
	}
	defer func() {
		if *retainBytes > 0 {
			retention(*dir, opts, *retainBytes)
		}
	}()
	for i := range 3 {
		start := time.Now()
		s, err := store.Open(*dir, opts)
		if err != nil {
			log.Fatal(err)
		}
		took := time.Since(start)
		m := s.Metrics()
		var hwm int64
		for i := range *streams {
			hwm += s.HighWatermark(stream(i))
		}
		fmt.Printf("open #%d: %v  (streams %d, events %d, disk %.2f GB, sstables %d, blob files %d)\n",
			i+1, took.Round(time.Microsecond), m.Streams, hwm, float64(m.DiskBytes)/1e9, m.Sstables, m.BlobFiles)
		if *verbose {
			fmt.Printf("%+v\n", m)
		}
		if err := s.Close(); err != nil {
			log.Fatal(err)
		}
	}
}

// retention applies size retention once and reports what it deleted and
// how long it took to get the disk space back.
func retention(dir string, opts store.Options, maxBytes int64) {
	opts.RetentionMaxBytes = maxBytes
	s, err := store.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	before := s.Metrics().DiskBytes
	start := time.Now()
	stats, err := s.ApplyRetention()
	if err != nil {
		log.Fatal(err)
	}
	took := time.Since(start)
	time.Sleep(2 * time.Second) // obsolete files are deleted in the background
	fmt.Printf("retention to %.2f GB: deleted %d chunks (%.2f GB) in %v; disk %.2f GB -> %.2f GB (after 2s)\n",
		float64(maxBytes)/1e9, stats.ChunksDeleted, float64(stats.BytesDeleted)/1e9, took.Round(time.Millisecond),
		float64(before)/1e9, float64(s.Metrics().DiskBytes)/1e9)
}

func stream(i int) store.Stream {
	return store.Stream{Topic: "bench", Token: int64(i) << 56, RangeIndex: uint32(i % 4), Version: 1}
}

func write(dir string, opts store.Options, gb float64, appenders, streams, events, size, readers int, verbose bool) {
	s, err := store.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	perAppend := int64(events * size)
	total := int64(gb*1e9) / perAppend
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	done := make(chan struct{})
	go progress(s, start, done)
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(a), 1))
			batches := make([][][]byte, 4)
			for i := range batches {
				batches[i] = randomEvents(r, events, size)
			}
			st := stream(a % streams)
			for i := 0; next.Add(1) <= total; i++ {
				if _, err := s.Append(context.Background(), st, batches[i%len(batches)]); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	var readEvents atomic.Int64
	stopReaders := make(chan struct{})
	var rwg sync.WaitGroup
	for i := range readers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			st := stream(i % streams)
			var from int64
			for {
				select {
				case <-stopReaders:
					return
				default:
				}
				b, err := s.Read(st, from, 1<<20, 0)
				if err != nil {
					log.Fatal(err)
				}
				readEvents.Add(int64(len(b.Events)))
				from = b.Start + int64(len(b.Events))
				if len(b.Events) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(stopReaders)
	rwg.Wait()
	close(done)
	elapsed := time.Since(start)
	if readers > 0 {
		fmt.Printf("readers read %d events (%.0f/s)\n", readEvents.Load(), float64(readEvents.Load())/elapsed.Seconds())
	}
	m := s.Metrics()
	fmt.Printf("appended %.2f GB in %v: %.0f events/s, %.1f MB/s, %.3f syncs/append, %.2f appends/commit, %.3f ms/sync\n",
		float64(m.EventBytes)/1e9, elapsed.Round(time.Millisecond),
		float64(m.Events)/elapsed.Seconds(), float64(m.EventBytes)/elapsed.Seconds()/1e6,
		float64(m.WALSyncs)/float64(m.Appends), float64(m.Appends)/float64(m.Commits),
		float64(m.WALSyncLatency)/float64(max(m.WALSyncs, 1))/1e6)
	// Let compactions catch up before measuring write amplification: it is
	// what the LSM eventually costs, not what it has paid so far.
	waitCompactions(s)
	m = s.Metrics()
	written := m.WALBytesWritten + m.FlushBytes + m.CompactionBytes
	fmt.Printf("write-amp (pebble) %.2f, disk bytes written / payload %.2f (WAL %.2f GB, flush %.2f GB, compaction %.2f GB), disk usage %.2f GB, peak RSS %d MB\n",
		m.WriteAmp, float64(written)/float64(m.EventBytes),
		float64(m.WALBytesWritten)/1e9, float64(m.FlushBytes)/1e9, float64(m.CompactionBytes)/1e9,
		float64(m.DiskBytes)/1e9, peakRSS()>>20)
	if verbose {
		fmt.Printf("%+v\n", m)
	}
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}
}

// waitCompactions waits until no compaction ran for 3 seconds (at most 2
// minutes).
func waitCompactions(s *store.Store) {
	deadline := time.Now().Add(2 * time.Minute)
	last, quiet := s.Metrics().Compactions, 0
	for time.Now().Before(deadline) && quiet < 6 {
		time.Sleep(500 * time.Millisecond)
		n := s.Metrics().Compactions
		if n == last {
			quiet++
		} else {
			last, quiet = n, 0
		}
	}
}

func progress(s *store.Store, start time.Time, done <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	var ms runtime.MemStats
	for {
		select {
		case <-done:
			return
		case <-t.C:
			m := s.Metrics()
			runtime.ReadMemStats(&ms)
			fmt.Fprintf(os.Stderr, "%6.1fs %6.2f GB  %.0f MB/s  w-amp %.2f  L0 sublevels %d  debt %d MB  memtables %d MB  heap %d MB  rss %d MB\n",
				time.Since(start).Seconds(), float64(m.EventBytes)/1e9,
				float64(m.EventBytes)/time.Since(start).Seconds()/1e6, m.WriteAmp, m.L0Sublevels,
				m.CompactionDebt>>20, m.MemTableBytes>>20, ms.HeapInuse>>20, rss()>>20)
		}
	}
}

func randomEvents(r *rand.Rand, n, size int) [][]byte {
	buf := make([]byte, n*size)
	for i := 0; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = buf[i*size : (i+1)*size : (i+1)*size]
	}
	return out
}

func procStatus(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func peakRSS() int64 { return procStatus("VmHWM") }
func rss() int64     { return procStatus("VmRSS") }
