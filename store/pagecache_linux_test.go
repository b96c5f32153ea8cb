//go:build linux

package store

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentBytes is how much of a file is in the page cache (mincore).
func residentBytes(t *testing.T, path string) (resident, size int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, 0
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (st.Size()+page-1)/page)
	// x/sys has no Mincore wrapper.
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			resident += page
		}
	}
	return resident, st.Size()
}

// blobResidency sums the cached and total bytes of the store's blob files.
func blobResidency(t *testing.T, dir string) (resident, size, largest int64) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".blob") {
			r, s := residentBytes(t, filepath.Join(dir, e.Name()))
			resident += r
			size += s
			largest = max(largest, s)
		}
	}
	return resident, size, largest
}

// With a window, the blob files written beyond it leave the page cache, and
// their events still read back whole (from the disk).
func TestPageCacheWindowDropsOldBlobFiles(t *testing.T) {
	const window = 2 << 20
	write := func(t *testing.T, window int64) (dir string, s *Store, events [][]byte) {
		dir = t.TempDir()
		s = openT(t, dir, Options{Logger: testLogger(t), RetentionInterval: -1,
			MemTableSize: 1 << 20, PageCacheWindow: window})
		r := newRand(1)
		st := testStream("cache", 0)
		for range 64 { // 64 appends of 64 KiB: 4 MiB, then more to flush it
			batch := randomEvents(r, 32, 2048)
			mustAppend(t, s, st, batch)
			events = append(events, batch...)
		}
		for range 128 {
			mustAppend(t, s, testStream("filler", 1), randomEvents(r, 32, 2048))
		}
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
		return dir, s, events
	}

	dir, s, events := write(t, window)
	resident, size, largest := blobResidency(t, dir)
	t.Logf("window %d: blob files %d bytes, %d in the page cache; %d dropped", window, size, resident, s.Metrics().PageCacheDropped)
	if size < 4*window {
		t.Fatalf("only %d bytes of blob files: the test needs several windows of them", size)
	}
	if resident > window+largest {
		t.Errorf("%d bytes of blob files in the page cache, want at most the window (%d) and one file (%d)", resident, window, largest)
	}
	if m := s.Metrics(); m.PageCacheDropped < size-window-largest || m.PageCacheDropFailures != 0 {
		t.Errorf("dropped %d bytes (%d failures) of %d", m.PageCacheDropped, m.PageCacheDropFailures, size)
	}
	_, got := readAll(t, s, testStream("cache", 0), 0)
	if hashEvents(got) != hashEvents(events) {
		t.Fatalf("read back %d events that differ from the %d appended", len(got), len(events))
	}

	// The same writes without the window stay cached: the measure above
	// can tell the two apart.
	dir, s, _ = write(t, -1)
	resident, size, _ = blobResidency(t, dir)
	t.Logf("window off: blob files %d bytes, %d in the page cache", size, resident)
	if s.Metrics().PageCacheDropped != 0 {
		t.Errorf("window off, yet %d bytes dropped", s.Metrics().PageCacheDropped)
	}
}

// On the OS's file system, DiskBytes is what the files occupy (du), which
// counts the blocks Pebble preallocates for its WAL beyond the file's size.
func TestDiskBytesCountsAllocatedBlocks(t *testing.T) {
	for _, c := range []struct {
		name string
		opts Options
		big  bool // flush 4 MB of events into sstables
	}{
		{"WAL only", Options{}, false},
		// The sstables must not be counted twice (du's total, then again
		// from Pebble's level sizes).
		{"sstables", Options{DisableValueSeparation: true}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.opts.Logger, c.opts.RetentionInterval = testLogger(t), -1
			s := openT(t, dir, c.opts)
			st := testStream("du", 0)
			var tables uint64
			mustAppend(t, s, st, makeEvents("e", 10))
			if c.big {
				event := bytes.Repeat([]byte("x"), 5000)
				for range 8 {
					events := make([][]byte, 100)
					for i := range events {
						events[i] = event
					}
					mustAppend(t, s, st, events)
				}
				if err := s.db.Flush(); err != nil {
					t.Fatal(err)
				}
				if tables = uint64(s.Metrics().SstableBytes); tables < 3<<20 {
					t.Fatalf("sstables hold %d bytes, want the 4 MB of events", tables)
				}
			}
			var want uint64
			err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				var st unix.Stat_t
				if err := unix.Lstat(path, &st); err != nil {
					return err
				}
				want += uint64(st.Blocks) * 512
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got := s.Metrics().DiskBytes
			// The store may write (its WAL, a manifest) between the two counts.
			if got < want*9/10 || got > want*11/10+1<<20 {
				t.Fatalf("DiskBytes %d, du counts %d", got, want)
			}
			if tables > 0 && got >= want+tables/2 {
				t.Fatalf("DiskBytes %d, du counts %d: the %d bytes of sstables counted twice", got, want, tables)
			}
		})
	}
}
