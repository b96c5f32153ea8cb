package store

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A topic that retention cannot plan (a corrupt chunk-index value in topic
// "a") is left as it is, and the others are still trimmed: one such entry
// stopped retention of every topic, every pass, until the disk filled.
func TestRetentionGoesOnPastATopicItCannotPlan(t *testing.T) {
	clock := newFakeClock()
	opts := memOpts(t, vfs.NewMem())
	opts.Now = clock.Now
	opts.RetentionMaxAge = time.Hour
	s := openT(t, "db", opts)
	a, b := testStream("a", 0), testStream("b", 0)
	mustAppend(t, s, a, makeEvents("a", 2))
	mustAppend(t, s, a, makeEvents("a", 2))
	mustAppend(t, s, b, makeEvents("b", 2))
	// A bit flip in the index entry of a's second chunk (count 0).
	if err := s.db.Set(offsetKey(prefixChunkIndex, a, 2), make([]byte, indexValueLen), nil); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	for i := 0; i < 3; i++ {
		st, err := s.ApplyRetention()
		if err == nil {
			t.Errorf("pass %d: no error for the unreadable index entry", i)
		}
		t.Logf("pass %d: %+v, %v", i, st, err)
	}
	if low := s.EarliestOffset(b); low != 2 {
		t.Errorf("topic b, all of it 2h old with a 1h max age, kept from %d (hwm %d): retention of b is blocked by a's bad index entry", low, s.HighWatermark(b))
	}
}

// Within the topic, the stream with the unreadable entry loses its expired
// chunks before it, and the topic's other streams all theirs: the whole
// topic was left as it was.
func TestRetentionGoesOnPastAnEntryItCannotRead(t *testing.T) {
	clock := newFakeClock()
	opts := memOpts(t, vfs.NewMem())
	opts.Now = clock.Now
	opts.RetentionMaxAge = time.Hour
	s := openT(t, "db", opts)
	s0, s1 := testStream("a", 0), testStream("a", 1)
	for range 3 {
		mustAppend(t, s, s0, makeEvents("x", 2)) // 0, 2, 4
		mustAppend(t, s, s1, makeEvents("y", 2))
	}
	if err := s.db.Set(offsetKey(prefixChunkIndex, s0, 2), make([]byte, indexValueLen), nil); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	st, err := s.ApplyRetention()
	if err == nil {
		t.Error("no error for the unreadable index entry")
	}
	if st.ChunksDeleted != 4 {
		t.Errorf("%d chunks deleted, want 4 (a/0's first and a/1's three)", st.ChunksDeleted)
	}
	if low, hwm := s.EarliestOffset(s1), s.HighWatermark(s1); low != hwm {
		t.Errorf("stream a/1, every chunk expired and readable, kept from %d (hwm %d)", low, hwm)
	}
	if low := s.EarliestOffset(s0); low != 2 {
		t.Errorf("stream a/0 kept from %d, want 2: its expired chunk before the bad entry goes", low)
	}
}
