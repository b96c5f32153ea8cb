package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floe-streams/floe/internal/testclock"
	"github.com/floe-streams/floe/internal/testlog"
)

// testLogger sends the logs of the code under test to t.Log.
func testLogger(t testing.TB) *slog.Logger { return testlog.New(t) }

// memOpts returns options for a store on fs with logs to t.
func memOpts(t testing.TB, fs vfs.FS) Options {
	return Options{FS: fs, Logger: testLogger(t), RetentionInterval: -1}
}

// openT opens a store and closes it at the end of the test (unless the test
// closed it already).
func openT(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testStream(topic string, i int) Stream {
	return Stream{Topic: topic, Token: int64(i)*1000 - 5000, RangeIndex: uint32(i % 4), Version: 1}
}

// makeEvents returns n JSON-ish events tagged with tag, each distinct.
func makeEvents(tag string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"tag":%q,"i":%d}`, tag, i)
	}
	return out
}

// randomEvents returns n incompressible events of size bytes.
func randomEvents(r *rand.Rand, n, size int) [][]byte {
	buf := make([]byte, n*size)
	for i := 0; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = buf[i*size : (i+1)*size : (i+1)*size]
	}
	return out
}

// hashEvents is the content hash the crash and kill tests compare.
func hashEvents(events [][]byte) string {
	h := sha256.New()
	var l [4]byte
	for _, e := range events {
		binary.LittleEndian.PutUint32(l[:], uint32(len(e)))
		h.Write(l[:])
		h.Write(e)
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:16])
}

func mustAppend(t testing.TB, s *Store, st Stream, events [][]byte) int64 {
	t.Helper()
	first, err := s.Append(context.Background(), st, events)
	if err != nil {
		t.Fatalf("Append(%s): %v", st, err)
	}
	return first
}

// readAll reads st from `from` to the high watermark in small steps.
func readAll(t testing.TB, s *Store, st Stream, from int64) (int64, [][]byte) {
	t.Helper()
	var out [][]byte
	start := int64(-1)
	for {
		b, err := s.Read(st, from, 1<<16, 0)
		if err != nil {
			t.Fatalf("Read(%s, %d): %v", st, from, err)
		}
		if start < 0 {
			start = b.Start
		} else if b.Start != from {
			t.Fatalf("Read(%s, %d) started at %d", st, from, b.Start)
		}
		if len(b.Events) == 0 {
			return start, out
		}
		out = append(out, b.Events...)
		from = b.Start + int64(len(b.Events))
	}
}

func newFakeClock() *testclock.Clock {
	return testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), 7)) }
