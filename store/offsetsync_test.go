package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// openCrashable opens a store that syncs on a filesystem that can lose what
// was not synced, with the offset sync delay delay (10 s keeps the timer out
// of a test), and returns it with its filesystem and a stream.
func openCrashable(t *testing.T, delay time.Duration) (*Store, *vfs.MemFS, Stream) {
	t.Helper()
	fs := vfs.NewCrashableMem()
	opts := memOpts(t, fs)
	opts.OffsetSyncDelay = delay
	return openT(t, "db", opts), fs, testStream("t", 0)
}

// crashedOffset reopens a crash clone of fs holding only synced data (a
// machine crash now) and returns the offset of group in st there.
func crashedOffset(t *testing.T, fs *vfs.MemFS, group string, st Stream) (int64, bool) {
	t.Helper()
	clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	r := openT(t, "db", memOpts(t, clone))
	defer r.Close()
	off, ok, err := r.GroupOffset(group, st)
	if err != nil {
		t.Fatal(err)
	}
	return off, ok
}

// A deferred offset is visible at once, not durable until SyncGroupOffsets,
// and durable after it; a second SyncGroupOffsets with nothing new to cover
// makes no fsync.
func TestCommitGroupOffsetSoonAndSync(t *testing.T) {
	s, fs, st := openCrashable(t, 10*time.Second)
	if err := s.CommitGroupOffset("g", st, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitGroupOffsetSoon("g", st, 5); err != nil {
		t.Fatal(err)
	}
	if off, ok, err := s.GroupOffset("g", st); err != nil || !ok || off != 5 {
		t.Fatalf("GroupOffset after CommitGroupOffsetSoon = %d, %v, %v; want 5", off, ok, err)
	}
	if off, ok := crashedOffset(t, fs, "g", st); !ok || off != 3 {
		t.Fatalf("crash before any fsync: offset %d, %v; want the synced 3 (the deferred 5 not synced yet)", off, ok)
	}
	if err := s.SyncGroupOffsets(); err != nil {
		t.Fatal(err)
	}
	if off, ok := crashedOffset(t, fs, "g", st); !ok || off != 5 {
		t.Fatalf("crash after SyncGroupOffsets: offset %d, %v; want 5", off, ok)
	}
	if err := s.SyncGroupOffsets(); err != nil {
		t.Fatal(err)
	}
	m := s.Metrics()
	if m.GroupOffsetSyncs != 1 || m.GroupOffsetCommits != 2 {
		t.Fatalf("GroupOffsetSyncs %d, GroupOffsetCommits %d; want 1 (the second sync had nothing to cover) and 2", m.GroupOffsetSyncs, m.GroupOffsetCommits)
	}
}

// The fsync of an append covers the offsets written before it: no fsync of
// their own.
func TestAppendSyncCoversDeferredOffsets(t *testing.T) {
	s, fs, st := openCrashable(t, 10*time.Second)
	if err := s.CommitGroupOffsetSoon("g", st, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), testStream("other", 1), makeEvents("x", 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncGroupOffsets(); err != nil {
		t.Fatal(err)
	}
	if n := s.Metrics().GroupOffsetSyncs; n != 0 {
		t.Fatalf("GroupOffsetSyncs = %d after an append's fsync covered the offset; want 0", n)
	}
	if off, ok := crashedOffset(t, fs, "g", st); !ok || off != 7 {
		t.Fatalf("crash after the append: offset %d, %v; want 7", off, ok)
	}
}

// With nothing else syncing the WAL, the timer makes a deferred offset
// durable after OffsetSyncDelay.
func TestDeferredOffsetSyncedByTimer(t *testing.T) {
	s, fs, st := openCrashable(t, 20*time.Millisecond)
	for i := range 3 { // one timer for the three
		if err := s.CommitGroupOffsetSoon("g", st, int64(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Metrics().GroupOffsetSyncs == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no fsync of the deferred offsets 5 s after they were written")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if off, ok := crashedOffset(t, fs, "g", st); !ok || off != 12 {
		t.Fatalf("crash after the timer: offset %d, %v; want 12", off, ok)
	}
	if n := s.Metrics().GroupOffsetSyncs; n != 1 {
		t.Fatalf("GroupOffsetSyncs = %d for three writes under one timer; want 1", n)
	}
	// A write after the timer fired arms a new one.
	if err := s.CommitGroupOffsetSoon("g", st, 20); err != nil {
		t.Fatal(err)
	}
	for s.Metrics().GroupOffsetSyncs == 1 {
		if time.Now().After(deadline) {
			t.Fatal("no second timer for a write after the first one fired")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if off, ok := crashedOffset(t, fs, "g", st); !ok || off != 20 {
		t.Fatalf("crash after the second timer: offset %d, %v; want 20", off, ok)
	}
}

// Close leaves deferred offsets durable.
func TestCloseSyncsDeferredOffsets(t *testing.T) {
	s, fs, st := openCrashable(t, 10*time.Second)
	if err := s.CommitGroupOffsetSoon("g", st, 9); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if off, ok := crashedOffset(t, fs, "g", st); !ok || off != 9 {
		t.Fatalf("crash after Close: offset %d, %v; want 9", off, ok)
	}
	// The timer may fire after Close: it finds the store closed (and
	// logs nothing).
	if err := s.SyncGroupOffsets(); !errors.Is(err, ErrClosed) {
		t.Fatalf("SyncGroupOffsets after Close = %v, want ErrClosed", err)
	}
}
