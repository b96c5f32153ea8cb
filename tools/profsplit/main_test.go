package main

import (
	"testing"

	"github.com/google/pprof/profile"
)

func sample(funcs ...string) *profile.Sample {
	s := &profile.Sample{}
	for _, f := range funcs {
		s.Location = append(s.Location, &profile.Location{Line: []profile.Line{{Function: &profile.Function{Name: f}}}})
	}
	return s
}

func TestClassifyLeafFirst(t *testing.T) {
	for _, tc := range []struct {
		stack []string // leaf first
		want  string
	}{
		// The same system call belongs to whoever made it.
		{[]string{"syscall.write", "os.(*File).Write", "github.com/cockroachdb/pebble/v2/vfs.(*syncingFile).Write",
			"github.com/cockroachdb/pebble/v2/sstable/blob.(*FileWriter).drainWriteQueue"}, "Pebble flush + compaction"},
		// Blob files are written through the store's page-cache window.
		{[]string{"syscall.write", "os.(*File).Write", "github.com/floe-streams/floe/store.(*windowedFile).Write",
			"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider.(*fileBufferedWritable).Write"}, "Pebble flush + compaction"},
		{[]string{"syscall.write", "internal/poll.(*FD).Write", "net.(*netFD).Write", "net/http.(*conn).serve"}, "network I/O, HTTP parsing"},
		{[]string{"golang.org/x/sys/unix.Fdatasync", "github.com/cockroachdb/pebble/v2/vfs.(*syncingFile).Sync",
			"github.com/cockroachdb/pebble/v2/record.(*LogWriter).flushLoop"}, "Pebble WAL write + fdatasync"},
		// Validation inside the produce path is validation, not the path.
		{[]string{"github.com/goccy/go-json/internal/decoder.skipFast", "github.com/goccy/go-json.Valid",
			"github.com/floe-streams/floe/broker.SplitBody", "github.com/floe-streams/floe/server.(*Producer).Produce"}, "JSON validation"},
		{[]string{"runtime.memmove", "github.com/floe-streams/floe/broker.SplitBody", "net/http.(*conn).serve"}, "broker produce path (split, route, ack, metrics)"},
		// A memtable insert is the store's commit, though Pebble's commit
		// pipeline (which also writes the WAL) calls it.
		{[]string{"github.com/cockroachdb/pebble/v2/internal/arenaskl.(*Skiplist).findSpliceForLevel",
			"github.com/cockroachdb/pebble/v2.(*memTable).apply", "github.com/cockroachdb/pebble/v2.(*DB).commitApply",
			"github.com/cockroachdb/pebble/v2.(*commitPipeline).Commit"}, "store commit (batch encoding, memtable insert)"},
		{[]string{"runtime.memmove", "github.com/cockroachdb/pebble/v2/record.(*LogWriter).emitFragment",
			"github.com/cockroachdb/pebble/v2.(*DB).commitWrite", "github.com/cockroachdb/pebble/v2.(*commitPipeline).prepare"}, "Pebble WAL write + fdatasync"},
		{[]string{"runtime.futex", "runtime.notesleep"}, "other"},
	} {
		if got := classify(sample(tc.stack...)); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.stack, got, tc.want)
		}
	}
}
