package store

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Size retention trims one topic while another keeps its events of the same
// time, so the blob files they share are left mostly garbage. Pebble
// rewrites them once they are old enough; on a broker that writes nothing
// afterwards, the next retention pass must get them rewritten (Pebble looks
// for such rewrites only when something makes it look for compactions).
func TestRetentionRewritesBlobGarbageWhenIdle(t *testing.T) {
	const minAge = 2 * time.Second
	opts := Options{
		Logger:            testLogger(t),
		RetentionMaxAge:   -1,
		RetentionMaxBytes: 100 << 10,
		RetentionInterval: -1,
		PageCacheWindow:   -1,
		MinFreeDiskBytes:  -1,
		PebbleTuning: func(po *pebble.Options) {
			p := po.Experimental.ValueSeparationPolicy()
			p.RewriteMinimumAge = minAge
			po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy { return p }
		},
	}
	s := openT(t, t.TempDir(), opts)
	r := newRand(3)
	// 40 chunks of 20 KB in "big", 4 of 2 KB in "small", interleaved: one
	// flush puts them all in one blob file.
	for i := range 40 {
		mustAppend(t, s, testStream("big", 0), randomEvents(r, 10, 2000))
		if i%10 == 0 {
			mustAppend(t, s, testStream("small", 0), randomEvents(r, 1, 2000))
		}
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	garbage := func() (ratio float64, files uint64) {
		b := s.db.Metrics().BlobFiles
		if b.ValueSize == 0 {
			return 0, b.LiveCount
		}
		return float64(b.ValueSize-b.ReferencedValueSize) / float64(b.ValueSize), b.LiveCount
	}

	// The retention pass trims "big" to 100 KB while the blob file is too
	// young to be rewritten.
	stats, err := s.ApplyRetention()
	if err != nil {
		t.Fatal(err)
	}
	if stats.ChunksDeleted < 30 {
		t.Fatalf("retention deleted %d chunks, want most of big's 40", stats.ChunksDeleted)
	}
	ratio, files := garbage()
	if time.Since(created) >= minAge {
		t.Skip("the machine took longer than the blob file's minimum age to get here")
	}
	if ratio < 0.7 || files == 0 {
		t.Fatalf("after retention: blob garbage %.2f in %d files, want over 0.7", ratio, files)
	}

	// Nothing is written any more. Once the file is old enough, a pass
	// that deletes nothing gets it rewritten.
	time.Sleep(time.Until(created.Add(minAge + 1500*time.Millisecond)))
	if ratio2, _ := garbage(); ratio2 < 0.7 {
		t.Fatalf("blob garbage went from %.2f to %.2f with no write and no retention pass", ratio, ratio2)
	}
	if stats, err := s.ApplyRetention(); err != nil || stats.ChunksDeleted != 0 {
		t.Fatalf("second pass: %+v, %v; want nothing deleted", stats, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ratio, files := garbage()
		if ratio < 0.2 {
			t.Logf("blob garbage %.2f in %d files after the idle pass", ratio, files)
			break
		}
		if time.Now().After(deadline) {
			t.Logf("pebble metrics:\n%s", s.db.Metrics())
			t.Fatalf("blob garbage still %.2f in %d files 10 s after an idle retention pass", ratio, files)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What is left reads back whole.
	for _, st := range []Stream{testStream("big", 0), testStream("small", 0)} {
		readAll(t, s, st, s.EarliestOffset(st))
	}
}

// One-event chunks go to blob files like any other: kept inside sstables,
// they straddle streams, and every later flush of those streams makes
// compactions rewrite them (tuning.md, "Separating values of every size").
func TestSmallChunksGoToBlobFiles(t *testing.T) {
	s := openT(t, "data", memOpts(t, vfs.NewMem()))
	r := newRand(5)
	const chunks, size = 2000, 200
	for i := range chunks {
		mustAppend(t, s, testStream("small", i%4), randomEvents(r, 1, size))
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	m := s.Metrics()
	payload := uint64(chunks * size)
	if m.BlobBytes < payload {
		t.Errorf("blob files hold %d bytes, want at least the %d bytes of events", m.BlobBytes, payload)
	}
	// Keys, blob handles and index entries: about 100 bytes a chunk.
	if uint64(m.SstableBytes) > payload/2 {
		t.Errorf("sstables hold %d bytes for %d bytes of events: the events stayed in them", m.SstableBytes, payload)
	}
	for i := range 4 {
		_, got := readAll(t, s, testStream("small", i), 0)
		if len(got) != chunks/4 {
			t.Fatalf("stream %d: read %d events, want %d", i, len(got), chunks/4)
		}
	}
}
