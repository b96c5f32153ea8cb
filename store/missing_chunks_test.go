package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Every chunk of a stream is missing (its index is there, nothing was cut
// by retention: EarliestOffset is 0): a read fails as corrupt, as README
// says of missing chunks, instead of returning nothing at the high
// watermark, which a group would then have committed past every event.
func TestReadFailsWhenEveryChunkIsMissing(t *testing.T) {
	s := openT(t, "db", memOpts(t, vfs.NewMem()))
	st := testStream("hole", 0)
	for i := range 3 {
		mustAppend(t, s, st, makeEvents(fmt.Sprint(i), 2)) // 0, 2, 4
	}
	for _, off := range []int64{0, 2, 4} {
		if err := s.db.Delete(offsetKey(prefixChunk, st, off), nil); err != nil {
			t.Fatal(err)
		}
	}
	if low := s.EarliestOffset(st); low != 0 {
		t.Fatalf("earliest %d", low)
	}
	for _, from := range []int64{0, 3} {
		b, err := s.Read(st, from, 0, 0)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("Read(%d) with every chunk missing: start %d, %d events, err %v; want ErrCorrupt",
				from, b.Start, len(b.Events), err)
		}
	}
}
