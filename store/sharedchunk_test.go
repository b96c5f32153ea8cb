package store

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// chunkIndex lists the index entries of st as (first offset, entry), in
// offset order, checking that each chunk key has its index entry.
func chunkIndex(t *testing.T, s *Store, st Stream) (firsts []int64, entries []indexEntry) {
	t.Helper()
	prefix := streamPrefix(prefixChunkIndex, st)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		_, first, err := decodeOffsetKey(prefixChunkIndex, it.Key())
		if err != nil {
			t.Fatal(err)
		}
		e, err := decodeIndexEntry(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		v, closer, err := s.db.Get(offsetKey(prefixChunk, st, first))
		if err != nil {
			t.Fatalf("chunk %d of %s: %v", first, st, err)
		}
		c, err := decodeChunk(v)
		closer.Close()
		if err != nil {
			t.Fatal(err)
		}
		if c.count != int(e.count) || len(v) != int(e.size) {
			t.Fatalf("chunk %d of %s: %d events of %d bytes, index says %d of %d", first, st, c.count, len(v), e.count, e.size)
		}
		firsts = append(firsts, first)
		entries = append(entries, e)
	}
	return firsts, entries
}

// gatedOpts returns in-memory store options whose WAL fsyncs gate can
// hold, with one commit in flight, as commitTogether needs.
func gatedOpts(t *testing.T) (*syncGate, Options) {
	gate := newSyncGate()
	opts := memOpts(t, errorfs.Wrap(vfs.NewMem(), gate))
	opts.MaxInflightCommits = 1
	return gate, opts
}

// commitTogether appends each of appends (stream, events) while the fsync
// of an earlier commit is held, so that they are gathered into as few
// batches as the committer makes, and returns their first offsets.
func commitTogether(t *testing.T, s *Store, gate *syncGate, warm Stream, appends []appendCall) []int64 {
	t.Helper()
	gate.hold()
	resWarm := appendAsync(s, context.Background(), warm, makeEvents("warm", 1))
	waitFor(t, "the warm-up fsync", func() bool { return gate.waiting.Load() > 0 })
	res := make([]<-chan appendResult, len(appends))
	for i, a := range appends {
		res[i] = appendAsync(s, context.Background(), a.st, a.events)
	}
	waitFor(t, "every append queued or taken", func() bool {
		return s.budget.available() == s.opts.MaxQueuedBytes-s.reservedFor(warm, appends)
	})
	gate.release()
	if r := <-resWarm; r.err != nil {
		t.Fatal(r.err)
	}
	firsts := make([]int64, len(appends))
	for i, ch := range res {
		r := <-ch
		if r.err != nil {
			t.Fatalf("append %d: %v", i, r.err)
		}
		firsts[i] = r.first
	}
	return firsts
}

// appendedInOffsetOrder checks that the appends got dense offsets in each
// stream (concurrent appends are ordered as the committer took them) and
// returns each stream's events in offset order and its next offset.
func appendedInOffsetOrder(t *testing.T, calls []appendCall, firsts []int64) (map[Stream][][]byte, map[Stream]int64) {
	t.Helper()
	order := make([]int, len(calls))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int { return cmp.Compare(firsts[i], firsts[j]) })
	want, next := map[Stream][][]byte{}, map[Stream]int64{}
	for _, i := range order {
		c := calls[i]
		if firsts[i] != next[c.st] {
			t.Fatalf("append %d to %s at offset %d, want %d (offsets dense)", i, c.st, firsts[i], next[c.st])
		}
		next[c.st] += int64(len(c.events))
		want[c.st] = append(want[c.st], c.events...)
	}
	return want, next
}

type appendCall struct {
	st     Stream
	events [][]byte
}

// available is the budget not taken.
func (b *budget) available() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.avail
}

// reservedFor is the budget that the warm-up append and appends hold.
func (s *Store) reservedFor(warm Stream, appends []appendCall) int64 {
	n := int64(chunkSize(makeEvents("warm", 1)))
	for _, a := range appends {
		n += int64(chunkSize(a.events))
	}
	return n
}

// TestAppendsOfOneCommitShareAChunk checks that the appends to one stream
// committed together are stored as one chunk with one index entry, that
// each still gets its own offsets, and that reads, a reopen and retention
// see the same events as with one chunk per append.
func TestAppendsOfOneCommitShareAChunk(t *testing.T) {
	gate, opts := gatedOpts(t)
	s := openT(t, "db", opts)
	a, b, warm := testStream("merge", 0), testStream("merge", 1), testStream("warm", 0)

	var calls []appendCall
	for i := range 30 {
		st := a
		if i%3 == 2 {
			st = b
		}
		calls = append(calls, appendCall{st, makeEvents(fmt.Sprintf("%s-%d", st, i), 1+i%4)})
	}
	firsts := commitTogether(t, s, gate, warm, calls)
	want, next := appendedInOffsetOrder(t, calls, firsts)

	m := s.Metrics()
	// The warm-up append commits alone; the others in as few batches as
	// the committer made, each holding one chunk per stream.
	if m.Appends != 31 || m.Chunks > 1+2*(m.Commits-1) {
		t.Fatalf("%d appends in %d commits made %d chunks, want at most 1 + 2 per later commit", m.Appends, m.Commits, m.Chunks)
	}
	for _, st := range []Stream{a, b} {
		check := func(when string) {
			t.Helper()
			if _, got := readAll(t, s, st, 0); !equalEvents(got, want[st]) {
				t.Fatalf("%s: %s read %d events, want %d as appended", when, st, len(got), len(want[st]))
			}
			firsts, entries := chunkIndex(t, s, st)
			var end int64
			for i, e := range entries {
				if firsts[i] != end {
					t.Fatalf("%s: chunk %d of %s starts at %d, want %d", when, i, st, firsts[i], end)
				}
				end += int64(e.count)
			}
			if end != int64(len(want[st])) || len(entries) >= 10 {
				t.Fatalf("%s: %d chunks of %s end at %d, want fewer than 10 (one per commit) ending at %d", when, len(entries), st, end, len(want[st]))
			}
			// A read from inside a shared chunk starts at that offset.
			for from := range int64(len(want[st])) {
				if start, got := readAll(t, s, st, from); start != from || !equalEvents(got, want[st][from:]) {
					t.Fatalf("%s: read of %s from %d: start %d, %d events, want %d", when, st, from, start, len(got), len(want[st])-int(from))
				}
			}
		}
		check("after the commit")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, "db", opts)
	for _, st := range []Stream{a, b} {
		if got := s.HighWatermark(st); got != next[st] {
			t.Fatalf("after reopening, high watermark of %s = %d, want %d", st, got, next[st])
		}
		if _, got := readAll(t, s, st, 0); !equalEvents(got, want[st]) {
			t.Fatalf("after reopening, %s read %d events, want %d", st, len(got), len(want[st]))
		}
	}
}

// TestSharedChunksStayWithinTheLimit checks that appends to one stream
// committed together share chunks of at most MaxAppendBytes (under
// maxMergedChunkBytes here), each holding whole appends.
func TestSharedChunksStayWithinTheLimit(t *testing.T) {
	gate, opts := gatedOpts(t)
	opts.MaxAppendBytes = 4 << 10
	s := openT(t, "db", opts)
	st, warm := testStream("limit", 0), testStream("warm", 0)

	var calls []appendCall
	for i := range 24 {
		calls = append(calls, appendCall{st, randomEvents(newRand(int64(i)), 1+i%3, 300)}) // 0.3 to 0.9 KiB per append
	}
	firsts := commitTogether(t, s, gate, warm, calls)
	wantBy, _ := appendedInOffsetOrder(t, calls, firsts)
	want := wantBy[st]
	appendStarts := map[int64]bool{}
	for _, f := range firsts {
		appendStarts[f] = true
	}
	chunkFirsts, entries := chunkIndex(t, s, st)
	var payload int
	for _, ev := range want {
		payload += len(ev)
	}
	if min := (payload + opts.MaxAppendBytes - 1) / opts.MaxAppendBytes; len(entries) < min || len(entries) >= len(calls) {
		t.Fatalf("%d appends (%d bytes of events) stored in %d chunks, want between %d and %d", len(calls), payload, len(entries), min, len(calls)-1)
	}
	for i, e := range entries {
		if e.size > uint32(opts.MaxAppendBytes) {
			t.Fatalf("chunk %d is %d bytes, over the limit %d", i, e.size, opts.MaxAppendBytes)
		}
		if !appendStarts[chunkFirsts[i]] {
			t.Fatalf("chunk %d starts at offset %d, inside an append (appends start at %v)", i, chunkFirsts[i], slices.Sorted(maps.Keys(appendStarts)))
		}
	}
	if _, got := readAll(t, s, st, 0); !equalEvents(got, want) {
		t.Fatalf("read %d events, want %d", len(got), len(want))
	}
}
