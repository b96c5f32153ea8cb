package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Reads against a model of the log: random chunk sizes, random reads with
// byte and event budgets and arenas of every size (too small included),
// size retention and reopens interleaved. No read returns an event past the
// high watermark, skips or repeats one at a chunk boundary, or stops short
// of its budget.
func TestReadModel(t *testing.T) {
	fs := vfs.NewMem()
	clock := newFakeClock()
	opts := memOpts(t, fs)
	opts.Now = clock.Now
	opts.RetentionMaxAge = -1
	opts.RetentionMaxBytes = 4000
	opts.Sync = SyncNever
	s := openT(t, "db", opts)
	r := newRand(int64(time.Now().UnixNano()))
	sts := []Stream{testStream("m", 0), testStream("m", 1)}
	model := map[Stream][][]byte{}
	for round := 0; round < 5000; round++ {
		st := sts[r.IntN(len(sts))]
		n := 1 + r.IntN(8)
		ev := make([][]byte, n)
		for i := range ev {
			off := len(model[st]) + i
			ev[i] = fmt.Appendf(nil, "%s-%d-%s", st.Topic, off, string(make([]byte, r.IntN(30))))
		}
		first := mustAppend(t, s, st, ev)
		if first != int64(len(model[st])) {
			t.Fatalf("first %d want %d", first, len(model[st]))
		}
		model[st] = append(model[st], ev...)
		clock.Advance(time.Millisecond)
		if r.IntN(20) == 0 {
			if _, err := s.ApplyRetention(); err != nil {
				t.Fatal(err)
			}
		}
		if r.IntN(50) == 0 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, "db", opts)
		}
		for k := 0; k < 5; k++ {
			st := sts[r.IntN(len(sts))]
			hwm := s.HighWatermark(st)
			if hwm != int64(len(model[st])) {
				t.Fatalf("hwm %d want %d", hwm, len(model[st]))
			}
			low := s.EarliestOffset(st)
			from := r.Int64N(hwm + 1)
			maxBytes := r.IntN(200) - 20
			maxEvents := r.IntN(12) - 2
			var buf []byte
			if r.IntN(2) == 0 {
				buf = make([]byte, r.IntN(10), r.IntN(300)+10)
			}
			b, _, err := s.ReadInto(buf, st, from, maxBytes, maxEvents)
			if err != nil {
				t.Fatalf("read %d: %v", from, err)
			}
			wantStart := max(from, low)
			if b.Start != wantStart {
				t.Fatalf("start %d want %d", b.Start, wantStart)
			}
			if wantStart < hwm && len(b.Events) == 0 {
				t.Fatalf("no events from %d hwm %d", from, hwm)
			}
			if maxEvents > 0 && len(b.Events) > maxEvents {
				t.Fatalf("too many events")
			}
			sz := 0
			for i, e := range b.Events {
				if string(e) != string(model[st][b.Start+int64(i)]) {
					t.Fatalf("event %d mismatch", b.Start+int64(i))
				}
				sz += len(e)
			}
			if maxBytes > 0 && len(b.Events) > 1 && sz > maxBytes {
				t.Fatalf("bytes %d > %d", sz, maxBytes)
			}
			// maximality: next event would not fit
			next := b.Start + int64(len(b.Events))
			if next < hwm && len(b.Events) > 0 {
				fits := (maxEvents <= 0 || len(b.Events) < maxEvents) && (maxBytes <= 0 || sz+len(model[st][next]) <= maxBytes)
				if fits {
					t.Fatalf("stopped early at %d: %d events %d bytes, budget %d/%d", next, len(b.Events), sz, maxBytes, maxEvents)
				}
			}
		}
	}
}
