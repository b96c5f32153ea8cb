package store

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// A retention pass whose WAL fsync fails keeps the earliest offsets it set:
// the range deletion was applied to the memtable (only the fsync failed) and
// is visible to reads. Restoring the earlier offsets made reads of the
// deleted span fail as corrupt.
func TestRetentionFsyncFailureKeepsReadsWhole(t *testing.T) {
	var failing atomic.Bool
	clock := newFakeClock()
	opts := memOpts(t, errorfs.Wrap(vfs.NewMem(), walSyncFails(&failing)))
	opts.Now = clock.Now
	opts.RetentionMaxAge = time.Hour
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := testStream("ret", 0)
	mustAppend(t, s, st, makeEvents("old0", 2)) // 0..1
	mustAppend(t, s, st, makeEvents("old1", 2)) // 2..3
	clock.Advance(2 * time.Hour)
	young := makeEvents("young", 2)
	mustAppend(t, s, st, young) // 4..5

	failing.Store(true)
	_, err = s.ApplyRetention()
	failing.Store(false)
	if !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("retention with a failing fsync: %v", err)
	}
	t.Logf("retention: %v", err)
	t.Logf("EarliestOffset after the failed pass = %d, hwm %d", s.EarliestOffset(st), s.HighWatermark(st))
	b, err := s.Read(st, 0, 0, 0)
	if err != nil {
		t.Errorf("Read(0) after a failed retention pass: %v", err)
	} else {
		t.Logf("Read(0) = start %d, %d events", b.Start, len(b.Events))
	}
	if b, err := s.Read(st, 2, 0, 0); err != nil {
		t.Errorf("Read(2) after a failed retention pass: %v", err)
	} else {
		t.Logf("Read(2) = start %d, %d events", b.Start, len(b.Events))
	}
}

// Same, every chunk old: the read returned nothing and no error, at the
// high watermark, while EarliestOffset said events 0..3 were retained.
func TestRetentionFsyncFailureAllOldReadsFail(t *testing.T) {
	var failing atomic.Bool
	clock := newFakeClock()
	opts := memOpts(t, errorfs.Wrap(vfs.NewMem(), walSyncFails(&failing)))
	opts.Now = clock.Now
	opts.RetentionMaxAge = time.Hour
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := testStream("ret", 0)
	mustAppend(t, s, st, makeEvents("old0", 2))
	mustAppend(t, s, st, makeEvents("old1", 2))
	clock.Advance(2 * time.Hour)
	failing.Store(true)
	_, err = s.ApplyRetention()
	failing.Store(false)
	if !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("retention with a failing fsync: %v", err)
	}
	low := s.EarliestOffset(st)
	b, err := s.Read(st, 0, 0, 0)
	t.Logf("EarliestOffset %d; Read(0) = start %d, %d events, err %v", low, b.Start, len(b.Events), err)
	if err == nil && len(b.Events) == 0 && low < s.HighWatermark(st) {
		t.Errorf("Read(0) silently returns nothing at %d while EarliestOffset is %d", b.Start, low)
	}
}
