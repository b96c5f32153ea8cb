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
		t.Logf("pass %d: %+v, %v", i, st, err)
	}
	if low := s.EarliestOffset(b); low != 2 {
		t.Errorf("topic b, all of it 2h old with a 1h max age, kept from %d (hwm %d): retention of b is blocked by a's bad index entry", low, s.HighWatermark(b))
	}
}
