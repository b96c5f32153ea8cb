package store

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestReadDuringPublishOfSharedChunk checks that a Read racing the syncer's
// publication of a batch never sees a high watermark inside a shared chunk:
// the syncer used to store the high watermark once per append, so between
// two appends of one chunk a reader found a chunk ending beyond it and
// reported ErrCorrupt.
func TestReadDuringPublishOfSharedChunk(t *testing.T) {
	gate, opts := gatedOpts(t)
	s := openT(t, "db", opts)
	st, warm := testStream("race", 0), testStream("warm", 0)

	var stop atomic.Bool
	var corrupt atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := int64(0)
		for !stop.Load() {
			h := s.HighWatermark(st)
			if h == last {
				runtime.Gosched()
				continue
			}
			last = h
			// Read the tail: the chunk holding h-1.
			if _, err := s.Read(st, max(0, h-1), 0, 0); err != nil {
				if errors.Is(err, ErrCorrupt) {
					corrupt.CompareAndSwap(nil, err.Error())
				}
			}
		}
	}()
	for round := range 200 {
		var calls []appendCall
		for i := range 300 {
			calls = append(calls, appendCall{st, makeEvents(fmt.Sprintf("r%d-%d", round, i), 1)})
		}
		commitTogether(t, s, gate, warm, calls)
		if v := corrupt.Load(); v != nil {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	if v := corrupt.Load(); v != nil {
		t.Fatalf("a read concurrent with a commit failed: %s", v)
	}
}
