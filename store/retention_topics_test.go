package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// fillTopics appends one event to each of n topics whose names are 200
// bytes long, as a client producing to many topics makes them.
func fillTopics(t testing.TB, s *Store, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	work := make(chan int)
	for range 64 {
		wg.Go(func() {
			for i := range work {
				name := fmt.Sprintf("t%d", i)
				name += strings.Repeat("x", 200-len(name))
				if _, err := s.Append(context.Background(), Stream{Topic: name, Token: -1 << 63, Version: 1}, [][]byte{[]byte(`{}`)}); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// A retention pass reads the store's streams once, not once per topic: a
// client that produced to 10,000 topics made each pass scan 10^8 streams,
// and with tens of thousands of topics a pass ran for longer than its
// interval, keeping a core busy for good and holding Close past the
// broker's 10 s.
func TestRetentionPassManyTopics(t *testing.T) {
	const n = 10000
	opts := memOpts(t, vfs.NewMem())
	opts.Sync = SyncNever
	s := openT(t, "", opts)
	fillTopics(t, s, n)
	start := time.Now()
	if _, err := s.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	// About 50 ms; a scan per topic took 14 s for 8,000 topics on a busy
	// 2-core machine, and grows as the square of the topics.
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a retention pass over %d topics with nothing to delete took %v", n, took)
	}
}

// The pass still deletes by age in every topic when they are many.
func TestRetentionPassManyTopicsDeletes(t *testing.T) {
	const n = 300
	opts := memOpts(t, vfs.NewMem())
	opts.Sync = SyncNever
	now := time.Now()
	opts.Now = func() time.Time { return now }
	opts.RetentionMaxAge = time.Hour
	s := openT(t, "", opts)
	fillTopics(t, s, n)
	now = now.Add(2 * time.Hour)
	stats, err := s.ApplyRetention()
	if err != nil {
		t.Fatal(err)
	}
	if stats.ChunksDeleted != n || stats.StreamsTrimmed != n {
		t.Fatalf("deleted %d chunks in %d streams, want %d in %d", stats.ChunksDeleted, stats.StreamsTrimmed, n, n)
	}
}
