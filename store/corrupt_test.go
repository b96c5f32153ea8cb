package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestCorruptChunkValue corrupts one chunk value in Pebble (bypassing the
// store) and checks that Read reports ErrCorrupt naming the stream and the
// chunk's offset, returns no event of it, and still serves the chunks before.
func TestCorruptChunkValue(t *testing.T) {
	s := openT(t, "db", memOpts(t, vfs.NewMem()))
	st := testStream("corrupt", 0)
	for i := range 4 {
		mustAppend(t, s, st, makeEvents(fmt.Sprint(i), 5)) // chunks at 0, 5, 10, 15
	}
	key := offsetKey(prefixChunk, st, 10)
	v, closer, err := s.db.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(v)
	closer.Close()
	bad[len(bad)-3] ^= 0x40 // a payload bit
	if err := s.db.Set(key, bad, nil); err != nil {
		t.Fatal(err)
	}

	for _, from := range []int64{0, 7, 10, 12} {
		b, err := s.Read(st, from, 0, 0)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Read(%d) = %d events, err %v; want ErrCorrupt", from, len(b.Events), err)
		}
		if msg := err.Error(); !strings.Contains(msg, st.String()) || !strings.Contains(msg, "offset 10") {
			t.Fatalf("error %q does not name the stream and offset 10", msg)
		}
		if len(b.Events) != 0 {
			t.Fatalf("Read returned events with an error")
		}
	}
	// The chunks before the corrupt one are readable within budget.
	if b, err := s.Read(st, 0, 0, 10); err != nil || len(b.Events) != 10 {
		t.Fatalf("Read(0, 10 events) = %d, %v", len(b.Events), err)
	}
	// And those after it.
	if b, err := s.Read(st, 15, 0, 0); err != nil || len(b.Events) != 5 {
		t.Fatalf("Read(15) = %d, %v", len(b.Events), err)
	}
}

// TestMissingChunk deletes a chunk in the middle of a stream: a read across
// the hole is corruption, not a silent skip.
func TestMissingChunk(t *testing.T) {
	s := openT(t, "db", memOpts(t, vfs.NewMem()))
	st := testStream("hole", 0)
	for i := range 3 {
		mustAppend(t, s, st, makeEvents(fmt.Sprint(i), 2)) // 0, 2, 4
	}
	if err := s.db.Delete(offsetKey(prefixChunk, st, 2), nil); err != nil {
		t.Fatal(err)
	}
	for _, from := range []int64{0, 2, 3} {
		if _, err := s.Read(st, from, 0, 0); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Read(%d) across a missing chunk: %v", from, err)
		}
	}
	if err := s.db.Delete(offsetKey(prefixChunk, st, 4), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(st, 0, 0, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read with the last chunk missing: %v", err)
	}
}

// A stream whose first chunks are missing (not cut by retention, which
// records where it cut) is corrupt below the first chunk left, as across a
// hole in the middle: the reader that starts there is not moved silently
// past the missing events, before or after a restart.
func TestMissingFirstChunk(t *testing.T) {
	fs := vfs.NewMem()
	s := openT(t, "db", memOpts(t, fs))
	st := testStream("hole", 0)
	for i := range 3 {
		mustAppend(t, s, st, makeEvents(fmt.Sprint(i), 2)) // 0, 2, 4
	}
	for _, prefix := range []byte{prefixChunk, prefixChunkIndex} {
		if err := s.db.Delete(offsetKey(prefix, st, 0), nil); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		for _, from := range []int64{0, 1} {
			if b, err := s.Read(st, from, 0, 0); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: Read(%d) with the first chunk missing: %d events from %d, %v", when, from, len(b.Events), b.Start, err)
			}
		}
		if b, err := s.Read(st, 2, 0, 0); err != nil || b.Start != 2 || len(b.Events) != 4 {
			t.Fatalf("%s: Read(2), after the hole: %d events from %d, %v", when, len(b.Events), b.Start, err)
		}
		if low := s.EarliestOffset(st); low != 0 {
			t.Fatalf("%s: earliest offset %d, want 0: nothing was cut", when, low)
		}
	}
	check("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, "db", memOpts(t, fs))
	check("reopened")
}

// TestCorruptBlobFile flips a byte of every blob file on disk (the chunk
// values live there after a flush): Pebble's block checksum catches it and
// Read reports ErrCorrupt.
func TestCorruptBlobFile(t *testing.T) {
	fs := vfs.NewMem()
	opts := memOpts(t, fs)
	s := openT(t, "db", opts)
	st := testStream("blob", 0)
	for i := range 4 {
		mustAppend(t, s, st, randomEvents(newRand(int64(i)), 20, 200))
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	names, err := fs.List("db")
	if err != nil {
		t.Fatal(err)
	}
	var blobs int
	for _, name := range names {
		if !strings.HasSuffix(name, ".blob") {
			continue
		}
		blobs++
		path := fs.PathJoin("db", name)
		f, err := fs.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := f.Stat()
		data := make([]byte, info.Size())
		if _, err := f.ReadAt(data, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		data[len(data)/3] ^= 0x01
		w, err := fs.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	if blobs == 0 {
		t.Fatalf("no blob file among %v: value separation is off", names)
	}
	s = openT(t, "db", opts)
	_, err = s.Read(st, 0, 0, 0)
	t.Logf("Read: %v", err)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), st.String()) {
		t.Fatalf("Read of a corrupt blob file: %v", err)
	}
}

// noSpace fails every write to a table file while full is set, as a full
// disk does. Not blob files: Pebble v2.1.7 dereferences nil when a blob
// file's last write fails (cockroachdb/pebble#6128, fixed in its release
// branches after v2.1.7).
type noSpace struct{ full *atomic.Bool }

func (n noSpace) MaybeError(op errorfs.Op) error {
	if n.full.Load() && op.Kind == errorfs.OpFileWrite && strings.HasSuffix(op.Path, ".sst") {
		return &os.PathError{Op: "write", Path: op.Path, Err: syscall.ENOSPC}
	}
	return nil
}

func (noSpace) String() string { return "noSpace" }

// Opening a store whose write-ahead log must be flushed, on a disk too full
// for the flush, fails with ErrNoSpace: Pebble alone retried the flush
// forever, and Open never returned.
func TestOpenOnAFullDisk(t *testing.T) {
	mem := vfs.NewMem()
	s := openT(t, "db", memOpts(t, mem))
	mustAppend(t, s, testStream("full", 0), makeEvents("e", 100))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var full atomic.Bool
	full.Store(true)
	// Space comes back at the end, so that the Open Pebble goes on retrying
	// completes (and is closed) instead of outliving the test.
	defer full.Store(false)
	opts := memOpts(t, errorfs.Wrap(mem, noSpace{&full}))
	opts.Logger = slog.New(slog.DiscardHandler) // Pebble may log after the test
	done := make(chan error, 1)
	go func() {
		s, err := Open("db", opts)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "free space") {
			t.Fatalf("Open on a full disk: %v, want ErrNoSpace", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Open on a full disk did not return in 30 s")
	}
}
