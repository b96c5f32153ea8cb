package store

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Page-cache window.
//
// Events reach the disk twice: in the WAL, whose files Pebble recycles, and
// in the blob files that flushes write, one new file per flush. Left alone,
// the kernel keeps every blob file it wrote in the page cache until memory
// runs out, so the cache grows by the produce rate. On VMs that hand free
// memory back to their host (free page reporting, ballooning), every new
// page-cache page must first be backed again: produce then slows down as
// soon as the cache grows (tuning.md, "The page cache"). The window keeps
// the newest PageCacheWindow bytes of blob files in the cache, where
// consumers that keep up read them, and asks the kernel to drop older blob
// files (posix_fadvise DONTNEED). The pages it frees are reused by the next
// flush. Consumers reading further back read from disk.
//
// The window bounds what the store writes into the cache, and what a
// previous process left there (seed). Blob files that consumers read back
// from disk come back into the cache and stay until the kernel evicts them.

// cacheWindowFS wraps the store's FS: it counts the bytes of each blob file
// written through it and, once a file is complete, drops the oldest files
// from the page cache until the newest ones fit in the window.
type cacheWindowFS struct {
	vfs.FS
	window int64

	mu     sync.Mutex
	files  []windowFile // completed blob files still cached, oldest first
	cached int64        // their bytes

	dropped      atomic.Int64 // bytes of blob files dropped from the cache
	dropFailures atomic.Int64
}

type windowFile struct {
	name string
	size int64
}

func newCacheWindowFS(fs vfs.FS, window int64) *cacheWindowFS {
	return &cacheWindowFS{FS: fs, window: window}
}

func isBlobFile(name string) bool { return strings.HasSuffix(name, ".blob") }

// Create wraps blob files so that their size is known when they are closed.
func (fs *cacheWindowFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !isBlobFile(name) {
		return f, err
	}
	return &windowedFile{File: f, fs: fs, name: name}, nil
}

// Open opens blob files for the kernel's readahead: Pebble opens every
// file for random reads (POSIX_FADV_RANDOM), which turns readahead off,
// but consumers read a stream's chunks in order, and blob files hold them
// in that order. Without readahead, a consumer reading past the window
// waited for the disk at every chunk.
func (fs *cacheWindowFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	if isBlobFile(name) {
		opts = slices.DeleteFunc(slices.Clone(opts), func(o vfs.OpenOption) bool { return o == vfs.RandomReadsOption })
	}
	return fs.FS.Open(name, opts...)
}

// Remove forgets a deleted blob file: its pages left the cache with it.
func (fs *cacheWindowFS) Remove(name string) error {
	err := fs.FS.Remove(name)
	if err == nil && isBlobFile(name) {
		fs.mu.Lock()
		for i, f := range fs.files {
			if f.name == name {
				fs.files = append(fs.files[:i], fs.files[i+1:]...)
				fs.cached -= f.size
				break
			}
		}
		fs.mu.Unlock()
	}
	return err
}

// Unwrap returns the wrapped FS.
func (fs *cacheWindowFS) Unwrap() vfs.FS { return fs.FS }

// seed adds the blob files already in dir, oldest (lowest file number)
// first, as if this process had written them: a previous process may have
// left them in the page cache.
func (fs *cacheWindowFS) seed(dir string) {
	names, err := fs.FS.List(dir)
	if err != nil {
		return // a new store
	}
	type numbered struct {
		num  uint64
		name string
	}
	var blobs []numbered
	for _, n := range names {
		if !isBlobFile(n) {
			continue
		}
		num, err := strconv.ParseUint(strings.TrimSuffix(n, ".blob"), 10, 64)
		if err != nil {
			continue
		}
		blobs = append(blobs, numbered{num, n})
	}
	slices.SortFunc(blobs, func(a, b numbered) int { return cmp.Compare(a.num, b.num) })
	for _, b := range blobs {
		path := fs.FS.PathJoin(dir, b.name)
		if info, err := fs.FS.Stat(path); err == nil {
			fs.completed(path, info.Size())
		}
	}
}

// completed adds a blob file that was written and closed, then drops the
// oldest files until the window holds the rest.
func (fs *cacheWindowFS) completed(name string, size int64) {
	fs.mu.Lock()
	fs.files = append(fs.files, windowFile{name, size})
	fs.cached += size
	var drop []windowFile
	for fs.cached > fs.window && len(fs.files) > 0 {
		drop = append(drop, fs.files[0])
		fs.cached -= fs.files[0].size
		fs.files = fs.files[1:]
	}
	fs.mu.Unlock()
	for _, f := range drop {
		fs.drop(f)
	}
}

// drop asks the kernel to drop a file's pages. The file may be gone already
// (compacted away, or deleted by retention): then there is nothing to drop.
func (fs *cacheWindowFS) drop(w windowFile) {
	f, err := fs.FS.Open(w.name)
	if err != nil {
		return
	}
	defer f.Close()
	if fd := f.Fd(); fd != vfs.InvalidFd {
		if err := dropPageCache(fd); err != nil {
			fs.dropFailures.Add(1)
			return
		}
		fs.dropped.Add(w.size)
	}
}

// windowedFile is a blob file being written.
type windowedFile struct {
	vfs.File
	fs   *cacheWindowFS
	name string
	size atomic.Int64
}

func (f *windowedFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.size.Add(int64(n))
	return n, err
}

func (f *windowedFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	for end := off + int64(n); ; {
		cur := f.size.Load()
		if end <= cur || f.size.CompareAndSwap(cur, end) {
			break
		}
	}
	return n, err
}

// Close completes the file: flushes and compactions sync a blob file before
// they close it, so its pages are clean and can be dropped at once.
func (f *windowedFile) Close() error {
	err := f.File.Close()
	if err == nil {
		f.fs.completed(f.name, f.size.Load())
	}
	return err
}
