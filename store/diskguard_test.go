//go:build unix

package store

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// Short of space, Append refuses events and stores nothing of them, while
// group offsets still commit; with space again, appends go on. The volume
// under test is not filled: the guard is given a margin larger than any
// disk, then a small one.
func TestDiskGuardRefusesEventsUntilSpaceComesBack(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Logger: testLogger(t), RetentionInterval: -1, MinFreeDiskBytes: 1})
	s.disk.min.Store(1 << 50) // more than any volume: Open refuses it
	s.disk.check()
	st := testStream("disk", 0)

	_, err := s.Append(context.Background(), st, makeEvents("refused", 3))
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Append with the disk short of space: %v, want ErrDiskFull", err)
	}
	for _, want := range []string{"free on the volume of " + dir, "less than the 1.0 PiB kept free"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if hwm := s.HighWatermark(st); hwm != 0 {
		t.Fatalf("high watermark %d after a refused append, want 0", hwm)
	}
	m := s.Metrics()
	if !m.DiskFull || m.DiskFreeBytes <= 0 {
		t.Errorf("metrics: DiskFull %v, DiskFreeBytes %d; want true and the free space", m.DiskFull, m.DiskFreeBytes)
	}
	if err := s.CommitGroupOffset("g", st, 0); err != nil {
		t.Fatalf("a group offset must still commit while events are refused: %v", err)
	}

	s.disk.min.Store(1) // space comes back
	deadline := time.Now().Add(10 * diskGuardInterval)
	for s.disk.refusing() != nil && time.Now().Before(deadline) {
		time.Sleep(diskGuardInterval / 4)
	}
	first := mustAppend(t, s, st, makeEvents("taken", 3))
	if first != 0 {
		t.Fatalf("first offset %d, want 0: the refused append took offsets", first)
	}
	if _, got := readAll(t, s, st, 0); len(got) != 3 || !strings.Contains(string(got[0]), "taken") {
		t.Fatalf("read back %q, want the 3 events taken", got)
	}
	if m := s.Metrics(); m.DiskFull {
		t.Error("metrics still say the disk is full")
	}
}

// The margin is never less than what the memtables may hold, and a
// negative one turns the guard off.
func TestDiskGuardMargin(t *testing.T) {
	for _, c := range []struct {
		set, memtable, want int64
	}{
		{0, 0, DefaultMinFreeDisk},
		{1 << 20, 0, 2 * memTableStopWritesThreshold * DefaultMemTableSize},
		{1 << 30, 64 << 20, 1 << 30},
		{0, 64 << 20, 2 * memTableStopWritesThreshold * 64 << 20},
		{-1, 0, -1},
	} {
		o := Options{MinFreeDiskBytes: c.set, MemTableSize: c.memtable}.withDefaults()
		if o.MinFreeDiskBytes != c.want {
			t.Errorf("MinFreeDiskBytes %d with memtables of %d: %d, want %d", c.set, c.memtable, o.MinFreeDiskBytes, c.want)
		}
	}
	s := openT(t, t.TempDir(), Options{Logger: testLogger(t), RetentionInterval: -1, MinFreeDiskBytes: -1})
	if s.disk != nil || s.Metrics().DiskFreeBytes != -1 {
		t.Error("a negative MinFreeDiskBytes must turn the guard off")
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 256 << 20: "256.0 MiB", 3 << 29: "1.5 GiB", 1 << 50: "1.0 PiB", 1 << 60: "1024.0 PiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// A margin as large as the volume could ever have free can never be met:
// Open refuses it, before Pebble opens, rather than take no event ever.
func TestOpenRefusesAMarginAsLargeAsTheVolume(t *testing.T) {
	dir := t.TempDir()
	usable, ok := usableBytes(dir)
	if !ok {
		t.Skip("the volume's size is unknown here")
	}
	_, err := Open(dir, Options{Logger: testLogger(t), MinFreeDiskBytes: usable})
	if err == nil || !strings.Contains(err.Error(), "no event could ever be stored") {
		t.Fatalf("Open with MinFreeDiskBytes the size of the volume: %v, want an error", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the refused Open left %d files in %s", len(entries), dir)
	}
}
