package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetentionConcurrentReads appends, reads and applies size retention
// concurrently; every read must succeed and return the right events.
func TestRetentionConcurrentReads(t *testing.T) {
	opts := Options{Logger: testLogger(t), RetentionInterval: -1}
	opts.RetentionMaxBytes = 64 << 10
	opts.RetentionMaxAge = -1
	opts.Sync = SyncNever
	s := openT(t, t.TempDir(), opts)
	const nStreams = 4
	ev := func(i int, off int64) []byte { return fmt.Appendf(nil, `{"s":%d,"o":%d,"pad":"%080d"}`, i, off, off) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var passes, reads, errs atomic.Int64
	fail := func(format string, a ...any) {
		if errs.Add(1) < 20 {
			t.Errorf(format, a...)
		}
	}
	for i := 0; i < nStreams; i++ {
		st := testStream("race", i)
		wg.Add(1)
		go func() { // appender: offsets == counter
			defer wg.Done()
			var next int64
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := 1 + int(next%7)
				batch := make([][]byte, n)
				for k := range batch {
					batch[k] = ev(i, next+int64(k))
				}
				first, err := s.Append(context.Background(), st, batch)
				if err != nil {
					fail("append: %v", err)
					return
				}
				if first != next {
					fail("append first %d want %d", first, next)
				}
				next += int64(n)
			}
		}()
		for mode := 0; mode < 3; mode++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var pos int64
				for {
					select {
					case <-stop:
						return
					default:
					}
					from := pos
					switch mode {
					case 1:
						from = 0
					case 2:
						from = s.EarliestOffset(st)
					}
					b, err := s.Read(st, from, 512, 0)
					reads.Add(1)
					if err != nil {
						fail("read %s from %d (mode %d): %v", st, from, mode, err)
						continue
					}
					if b.Start < from && mode == 0 {
						fail("read from %d started at %d", from, b.Start)
					}
					for k, e := range b.Events {
						if want := ev(i, b.Start+int64(k)); string(e) != string(want) {
							fail("stream %d offset %d: got %s want %s", i, b.Start+int64(k), e, want)
							break
						}
					}
					if mode == 0 {
						pos = b.Start + int64(len(b.Events))
					}
				}
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.ApplyRetention(); err != nil {
				fail("retention: %v", err)
			}
			passes.Add(1)
		}
	}()
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	m := s.Metrics()
	t.Logf("passes %d reads %d chunks deleted %d errors %d", passes.Load(), reads.Load(), m.ChunksDeleted, errs.Load())
	if m.ChunksDeleted == 0 || reads.Load() == 0 {
		t.Errorf("nothing raced: %d chunks deleted, %d reads", m.ChunksDeleted, reads.Load())
	}
}
