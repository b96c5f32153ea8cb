package store

import (
	"context"
	"testing"
	"time"
)

// TestSharedChunkKeptForItsLatestAppend checks that a chunk shared by
// appends made at different times carries the time of the latest, so that
// retention by age never deletes an event younger than RetentionMaxAge.
func TestSharedChunkKeptForItsLatestAppend(t *testing.T) {
	gate, opts := gatedOpts(t)
	clock := newFakeClock()
	opts.Now = clock.Now
	opts.RetentionMaxAge = 90 * time.Minute
	s := openT(t, "db", opts)
	st, warm := testStream("age", 0), testStream("warm", 0)

	gate.hold()
	resWarm := appendAsync(s, context.Background(), warm, makeEvents("warm", 1))
	waitFor(t, "the warm-up fsync", func() bool { return gate.waiting.Load() > 0 })
	oldEv, newEv := makeEvents("old", 2), makeEvents("new", 3)
	resOld := appendAsync(s, context.Background(), st, oldEv) // at t0
	waitFor(t, "the old append taken", func() bool {
		return s.budget.available() == s.opts.MaxQueuedBytes-int64(chunkSize(makeEvents("warm", 1))+chunkSize(oldEv))
	})
	clock.Advance(time.Hour)
	resNew := appendAsync(s, context.Background(), st, newEv) // at t0+1h
	waitFor(t, "the new append taken", func() bool {
		return s.budget.available() == s.opts.MaxQueuedBytes-int64(chunkSize(makeEvents("warm", 1))+chunkSize(oldEv)+chunkSize(newEv))
	})
	gate.release()
	for _, ch := range []<-chan appendResult{resWarm, resOld, resNew} {
		if r := <-ch; r.err != nil {
			t.Fatal(r.err)
		}
	}
	if firsts, _ := chunkIndex(t, s, st); len(firsts) != 1 {
		t.Fatalf("%d chunks, want the two appends in one", len(firsts))
	}

	clock.Advance(time.Hour) // t0+2h: the old append is 2h old, the new one 1h
	if _, err := s.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	want := append(append([][]byte{}, oldEv...), newEv...)
	if start, got := readAll(t, s, st, 0); start != 0 || !equalEvents(got, want) {
		t.Fatalf("after retention at t0+2h: start %d, %d events; want all %d (the chunk holds an append of 1h)", start, len(got), len(want))
	}
	clock.Advance(31 * time.Minute) // the new append is now older than 90m
	if _, err := s.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	if got := s.EarliestOffset(st); got != 5 {
		t.Fatalf("earliest offset %d after the chunk aged out, want 5", got)
	}
}

// TestSharedChunkMetrics checks that Chunks and ChunkBytes count the chunks
// actually written, over several batches whose streams come in different
// orders.
func TestSharedChunkMetrics(t *testing.T) {
	gate, opts := gatedOpts(t)
	s := openT(t, "db", opts)
	a, b, warm := testStream("m", 0), testStream("m", 1), testStream("warm", 0)
	for round, order := range [][]Stream{{a, b}, {b, a}, {a}, {b, a}} {
		var calls []appendCall
		for i := range 12 {
			calls = append(calls, appendCall{order[i%len(order)], makeEvents("r", 1+i%3)})
		}
		_ = round
		commitTogether(t, s, gate, warm, calls)
	}
	var chunks, bytes int64
	for _, st := range []Stream{a, b, warm} {
		_, entries := chunkIndex(t, s, st)
		for _, e := range entries {
			chunks++
			bytes += int64(e.size)
		}
	}
	if m := s.Metrics(); m.Chunks != chunks || m.ChunkBytes != bytes {
		t.Fatalf("metrics: %d chunks of %d bytes; the store holds %d of %d", m.Chunks, m.ChunkBytes, chunks, bytes)
	}
}

// TestSharedChunkLimitWithLargeAppends checks the limit when an append
// would take an open chunk (under half the limit) over it.
func TestSharedChunkLimitWithLargeAppends(t *testing.T) {
	gate, opts := gatedOpts(t)
	opts.MaxAppendBytes = 4 << 10
	s := openT(t, "db", opts)
	st, warm := testStream("limit", 0), testStream("warm", 0)
	var calls []appendCall
	for i := range 12 {
		size := 1900 // an open chunk of 1928 bytes, under half the limit
		if i%2 == 1 {
			size = 2500 // 1928+2528-24 > 4096
		}
		calls = append(calls, appendCall{st, randomEvents(newRand(int64(i)), 1, size)})
	}
	firsts := commitTogether(t, s, gate, warm, calls)
	want, _ := appendedInOffsetOrder(t, calls, firsts)
	_, entries := chunkIndex(t, s, st)
	for i, e := range entries {
		if e.size > uint32(opts.MaxAppendBytes) {
			t.Fatalf("chunk %d is %d bytes, over the limit %d", i, e.size, opts.MaxAppendBytes)
		}
	}
	if _, got := readAll(t, s, st, 0); !equalEvents(got, want[st]) {
		t.Fatalf("read %d events, want %d", len(got), len(want[st]))
	}
}
