package store

import (
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func writeFile(t *testing.T, fs vfs.FS, name string, n int) {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, n/2)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, n-n/2), int64(n/2)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func (fs *cacheWindowFS) state() (names []string, cached int64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, f := range fs.files {
		names = append(names, f.name)
	}
	return names, fs.cached
}

// The window follows the blob files written, oldest first, and forgets the
// ones that are dropped or deleted.
func TestCacheWindowAccounting(t *testing.T) {
	fs := newCacheWindowFS(vfs.NewMem(), 100)
	check := func(wantNames []string, wantCached int64) {
		t.Helper()
		names, cached := fs.state()
		if len(names) != len(wantNames) || cached != wantCached {
			t.Fatalf("window holds %v (%d bytes), want %v (%d bytes)", names, cached, wantNames, wantCached)
		}
		for i := range names {
			if names[i] != wantNames[i] {
				t.Fatalf("window holds %v, want %v", names, wantNames)
			}
		}
	}
	writeFile(t, fs, "000001.blob", 60)
	writeFile(t, fs, "000002.sst", 500) // not a blob file: not counted
	check([]string{"000001.blob"}, 60)
	writeFile(t, fs, "000003.blob", 30)
	check([]string{"000001.blob", "000003.blob"}, 90)
	writeFile(t, fs, "000004.blob", 50) // 140 > 100: the oldest goes
	check([]string{"000003.blob", "000004.blob"}, 80)
	if err := fs.Remove("000003.blob"); err != nil {
		t.Fatal(err)
	}
	check([]string{"000004.blob"}, 50)
	writeFile(t, fs, "000005.blob", 250) // larger than the window: every file goes
	check(nil, 0)
	// A memory FS has no file descriptors: nothing was handed to the kernel.
	if d, f := fs.dropped.Load(), fs.dropFailures.Load(); d != 0 || f != 0 {
		t.Fatalf("dropped %d bytes, %d failures, on a memory FS", d, f)
	}
}

// A store reopened finds the blob files of the previous process in its
// window, oldest first, and drops those beyond it.
func TestCacheWindowSeedsFromDir(t *testing.T) {
	mem := vfs.NewMem()
	if err := mem.MkdirAll("db", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		size int
	}{{"000010.blob", 40}, {"000009.blob", 30}, {"1000000.blob", 20}, {"000011.sst", 99}, {"x.blob", 5}} {
		writeFile(t, mem, mem.PathJoin("db", f.name), f.size)
	}
	fs := newCacheWindowFS(mem, 70)
	fs.seed("db")
	names, cached := fs.state()
	want := []string{mem.PathJoin("db", "000010.blob"), mem.PathJoin("db", "1000000.blob")}
	if !slices.Equal(names, want) || cached != 60 {
		t.Fatalf("window holds %v (%d bytes), want %v (60 bytes): 000009 is the oldest and goes", names, cached, want)
	}
	newCacheWindowFS(mem, 70).seed("missing") // a new store: nothing to do
}
