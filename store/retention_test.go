package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestRetentionByAge(t *testing.T) {
	fs := vfs.NewMem()
	clock := newFakeClock()
	opts := memOpts(t, fs)
	opts.Now = clock.Now
	opts.RetentionMaxAge = time.Hour
	s := openT(t, "db", opts)
	st, other := testStream("age", 0), testStream("age", 1)

	var all [][]byte
	for i := range 3 { // offsets 0..8, appended at t0
		ev := makeEvents(fmt.Sprint("old", i), 3)
		mustAppend(t, s, st, ev)
		all = append(all, ev...)
	}
	mustAppend(t, s, other, makeEvents("other-old", 2))
	clock.Advance(30 * time.Minute)
	for i := range 2 { // offsets 9..14, appended at t0+30m
		ev := makeEvents(fmt.Sprint("new", i), 3)
		mustAppend(t, s, st, ev)
		all = append(all, ev...)
	}
	clock.Advance(40 * time.Minute) // t0+70m: only the first three chunks are older than 1h

	stats, err := s.ApplyRetention()
	if err != nil {
		t.Fatal(err)
	}
	if stats.ChunksDeleted != 4 || stats.EventsDeleted != 11 || stats.StreamsTrimmed != 2 || stats.BytesDeleted <= 0 {
		t.Fatalf("stats = %+v, want 4 chunks (3 of st, 1 of other), 11 events", stats)
	}
	check := func(s *Store) {
		t.Helper()
		if got := s.HighWatermark(st); got != 15 {
			t.Fatalf("hwm = %d, want 15", got)
		}
		if got := s.EarliestOffset(st); got != 9 {
			t.Fatalf("earliest = %d, want 9", got)
		}
		for _, from := range []int64{0, 4, 9} {
			b, err := s.Read(st, from, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if b.Start != 9 || !equalEvents(b.Events, all[9:]) {
				t.Fatalf("Read(%d) = start %d, %d events; want the retained 9..14", from, b.Start, len(b.Events))
			}
		}
		if b, err := s.Read(st, 10, 0, 1); err != nil || b.Start != 10 {
			t.Fatalf("Read(10) = %+v, %v", b, err)
		}
		// other lost everything: empty, at its high watermark.
		if b, err := s.Read(other, 0, 0, 0); err != nil || b.Start != 2 || len(b.Events) != 0 {
			t.Fatalf("Read(other, 0) = %+v, %v; want empty at 2", b, err)
		}
		if got := s.Streams("age"); !slices.Equal(got, []Stream{st, other}) {
			t.Fatalf("Streams = %v", got)
		}
	}
	check(s)
	if stats, err := s.ApplyRetention(); err != nil || stats.ChunksDeleted != 0 {
		t.Fatalf("second run = %+v, %v", stats, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, "db", opts)
	check(s)
	if first := mustAppend(t, s, other, makeEvents("other-new", 1)); first != 2 {
		t.Fatalf("append to an emptied stream after reopen at %d, want 2", first)
	}

	clock.Advance(2 * time.Hour)
	if stats, err := s.ApplyRetention(); err != nil || stats.ChunksDeleted != 3 {
		t.Fatalf("run at t0+3h = %+v, %v", stats, err)
	}
	if b, err := s.Read(st, 0, 0, 0); err != nil || b.Start != 15 || len(b.Events) != 0 {
		t.Fatalf("Read after everything expired = %+v, %v", b, err)
	}
	if first := mustAppend(t, s, st, makeEvents("again", 1)); first != 15 {
		t.Fatalf("append after everything expired at %d, want 15", first)
	}
}

func TestRetentionKeepForever(t *testing.T) {
	clock := newFakeClock()
	opts := memOpts(t, vfs.NewMem())
	opts.Now = clock.Now
	opts.RetentionMaxAge = -1
	s := openT(t, "db", opts)
	mustAppend(t, s, testStream("f", 0), makeEvents("x", 1))
	clock.Advance(1000 * 24 * time.Hour)
	if stats, err := s.ApplyRetention(); err != nil || stats.ChunksDeleted != 0 {
		t.Fatalf("ApplyRetention = %+v, %v", stats, err)
	}
}

func TestRetentionBySize(t *testing.T) {
	clock := newFakeClock()
	opts := memOpts(t, vfs.NewMem())
	opts.Now = clock.Now
	opts.RetentionMaxAge = -1
	chunk := chunkSize(makeEvents("aa", 2)) // every chunk below has this size
	opts.RetentionMaxBytes = int64(5 * chunk)
	s := openT(t, "db", opts)
	a, b := testStream("big", 0), testStream("big", 1)
	small := testStream("small", 0)
	// Appended in this time order: a0 b0 a1 a2 b1 b2 a3 b3 (8 chunks of topic
	// "big"), so the 3 oldest are a0, b0, a1.
	order := []Stream{a, b, a, a, b, b, a, b}
	for i, st := range order {
		mustAppend(t, s, st, makeEvents(fmt.Sprint("e", i%10), 2))
		clock.Advance(time.Second)
	}
	for i := range 7 {
		mustAppend(t, s, small, makeEvents(fmt.Sprint("s", i), 1))
	}
	stats, err := s.ApplyRetention()
	if err != nil {
		t.Fatal(err)
	}
	if stats.ChunksDeleted != 3 || stats.BytesDeleted != int64(3*chunk) {
		t.Fatalf("stats = %+v, want 3 chunks of %d bytes", stats, chunk)
	}
	if got := s.EarliestOffset(a); got != 4 {
		t.Fatalf("earliest of a = %d, want 4 (a0, a1 deleted)", got)
	}
	if got := s.EarliestOffset(b); got != 2 {
		t.Fatalf("earliest of b = %d, want 2 (b0 deleted)", got)
	}
	if got := s.EarliestOffset(small); got != 0 {
		t.Fatalf("topic small (7 small chunks, under the limit) lost data: earliest %d", got)
	}
	if bt, err := s.Read(a, 0, 0, 0); err != nil || bt.Start != 4 || len(bt.Events) != 4 {
		t.Fatalf("Read(a, 0) = start %d, %d events, %v", bt.Start, len(bt.Events), err)
	}
}

func TestRetentionBackground(t *testing.T) {
	clock := newFakeClock()
	opts := memOpts(t, vfs.NewMem())
	opts.Now = clock.Now
	opts.RetentionMaxAge = time.Minute
	opts.RetentionInterval = 5 * time.Millisecond
	s := openT(t, "db", opts)
	st := testStream("bg", 0)
	mustAppend(t, s, st, makeEvents("x", 3))
	clock.Advance(2 * time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for s.Metrics().ChunksDeleted != 1 {
		if time.Now().After(deadline) {
			t.Fatal("background retention did not run")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.EarliestOffset(st); got != 3 {
		t.Fatalf("earliest offset after background retention = %d, want 3", got)
	}
}

// TestRetentionReclaimsSpace checks that deleting chunks frees disk space:
// the range deletions let Pebble drop whole sstables and blob files.
func TestRetentionReclaimsSpace(t *testing.T) {
	clock := newFakeClock()
	opts := memOpts(t, vfs.NewMem())
	opts.Now = clock.Now
	opts.RetentionMaxAge = time.Hour
	opts.MemTableSize = 4 << 20
	opts.MaxBatchBytes = 1 << 20
	opts.MaxAppendBytes = 1 << 20
	s := openT(t, "db", opts)
	r := newRand(1)
	for i := range 200 { // 200 chunks of 40 KB over 4 streams: 8 MB
		mustAppend(t, s, testStream("space", i%4), randomEvents(r, 200, 200))
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	m := s.Metrics()
	before, beforeData := m.DiskBytes, m.SstableBytes+int64(m.BlobBytes)
	if beforeData < 7<<20 {
		t.Fatalf("only %d bytes of sstables and blob files before retention", beforeData)
	}
	clock.Advance(2 * time.Hour)
	mustAppend(t, s, testStream("space", 0), makeEvents("young", 1))
	stats, err := s.ApplyRetention()
	if err != nil {
		t.Fatal(err)
	}
	if stats.ChunksDeleted != 200 {
		t.Fatalf("deleted %d chunks, want 200", stats.ChunksDeleted)
	}
	// The WAL files Pebble keeps for recycling stay; the data files go.
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := s.Metrics()
		data := m.SstableBytes + int64(m.BlobBytes)
		if data < beforeData/50 && m.DiskBytes+uint64(beforeData)*9/10 < before {
			t.Logf("data files %d -> %d bytes, disk %d -> %d", beforeData, data, before, m.DiskBytes)
			break
		}
		if time.Now().After(deadline) {
			t.Logf("pebble metrics:\n%s", s.db.Metrics())
			t.Fatalf("data files %d -> %d bytes, disk %d -> %d: space not reclaimed", beforeData, data, before, m.DiskBytes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
