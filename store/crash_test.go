package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// crashEvent is the content of every event written by the crash and kill
// tests: it says which append it belongs to, so a reader can check that
// every visible append is whole.
type crashEvent struct {
	W   int    `json:"w"` // writer
	I   int    `json:"i"` // append number of the writer
	J   int    `json:"j"` // index in the append
	N   int    `json:"n"` // events in the append
	Pad string `json:"pad"`
}

func crashEvents(w, i, n int, pad string) [][]byte {
	out := make([][]byte, n)
	for j := range out {
		out[j], _ = json.Marshal(crashEvent{W: w, I: i, J: j, N: n, Pad: pad})
	}
	return out
}

// checkWholeAppends parses the events of one stream and checks that they
// form whole appends, in order, each written by a known writer. It returns
// the appends found, keyed by "w/i", with their first offset.
func checkWholeAppends(t testing.TB, st Stream, start int64, events [][]byte) map[string]int64 {
	t.Helper()
	found := make(map[string]int64)
	for p := 0; p < len(events); {
		var e crashEvent
		if err := json.Unmarshal(events[p], &e); err != nil {
			t.Fatalf("%s offset %d: bad event %q: %v", st, start+int64(p), events[p], err)
		}
		if e.J != 0 {
			t.Fatalf("%s offset %d: append w%d/%d starts at index %d: half-visible append", st, start+int64(p), e.W, e.I, e.J)
		}
		if p+e.N > len(events) {
			t.Fatalf("%s offset %d: append w%d/%d has %d of %d events: half-visible append", st, start+int64(p), e.W, e.I, len(events)-p, e.N)
		}
		for j := 1; j < e.N; j++ {
			var f crashEvent
			if err := json.Unmarshal(events[p+j], &f); err != nil || f.W != e.W || f.I != e.I || f.J != j {
				t.Fatalf("%s offset %d: expected event %d of append w%d/%d, got %q", st, start+int64(p+j), j, e.W, e.I, events[p+j])
			}
		}
		key := fmt.Sprintf("%d/%d", e.W, e.I)
		if _, dup := found[key]; dup {
			t.Fatalf("%s: append %s visible twice", st, key)
		}
		found[key] = start + int64(p)
		p += e.N
	}
	return found
}

type ackRecord struct {
	st    Stream
	first int64
	n     int
	key   string
}

// TestCrashRecovery simulates machine crashes with a crashable in-memory
// filesystem (Pebble v2 replaced vfs.NewStrictMem and ResetToSyncedState by
// vfs.NewCrashableMem and CrashClone, which can also keep a random part of
// the unsynced writes): while writers append concurrently, it takes a crash clone
// holding only the synced data (and, in some rounds, a random part of the
// unsynced data: torn writes), reopens the store on the clone and checks
// that every append acknowledged before the crash is present and intact,
// that no append is half-visible, and that offsets stay dense.
func TestCrashRecovery(t *testing.T) {
	rounds := 9
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		unsynced := []int{0, 50, 100}[round%3]
		t.Run(fmt.Sprintf("round%d-unsynced%d%%", round, unsynced), func(t *testing.T) {
			crashRound(t, int64(round), unsynced)
		})
	}
}

func crashRound(t *testing.T, seed int64, unsyncedPct int) {
	rng := rand.New(rand.NewPCG(uint64(seed), 99))
	fs := vfs.NewCrashableMem()
	opts := memOpts(t, fs)
	opts.MemTableSize = 2 << 20 // rotate memtables and flush during the test
	opts.MaxBatchBytes = 256 << 10
	opts.MaxAppendBytes = 256 << 10
	s := openT(t, "db", opts)
	streams := []Stream{testStream("crash", 0), testStream("crash", 1), testStream("crash2", 0)}

	var (
		mu    sync.Mutex
		acked []ackRecord
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	pad := strings.Repeat("p", 100+rng.IntN(400))
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(seed), uint64(w)))
			for i := 0; !stop.Load(); i++ {
				st := streams[r.IntN(len(streams))]
				n := 1 + r.IntN(40)
				first, err := s.Append(context.Background(), st, crashEvents(w, i, n, pad))
				if err != nil {
					if stop.Load() {
						return
					}
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				acked = append(acked, ackRecord{st, first, n, fmt.Sprintf("%d/%d", w, i)})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Duration(20+rng.IntN(80)) * time.Millisecond)

	// Crash: everything acknowledged so far must survive.
	mu.Lock()
	mustSurvive := append([]ackRecord(nil), acked...)
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPct, RNG: rand.New(rand.NewPCG(uint64(seed), 1))})
	mu.Unlock()
	stop.Store(true)
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(mustSurvive) == 0 {
		t.Fatal("no append acknowledged before the crash")
	}

	r := openT(t, "db", memOpts(t, crashed))
	found := make(map[Stream]map[string]int64)
	for _, st := range streams {
		start, events := readAll(t, r, st, 0)
		if start != 0 || int64(len(events)) != r.HighWatermark(st) {
			t.Fatalf("%s: read %d events from %d, high watermark %d", st, len(events), start, r.HighWatermark(st))
		}
		found[st] = checkWholeAppends(t, st, 0, events)
	}
	for _, a := range mustSurvive {
		first, ok := found[a.st][a.key]
		if !ok {
			t.Fatalf("acknowledged append %s (%s at %d, %d events) lost in the crash", a.key, a.st, a.first, a.n)
		}
		if first != a.first {
			t.Fatalf("acknowledged append %s at %d, found at %d", a.key, a.first, first)
		}
	}
	// Offsets continue densely after recovery.
	for _, st := range streams {
		hwm := r.HighWatermark(st)
		if first := mustAppend(t, r, st, crashEvents(99, 0, 3, "after")); first != hwm {
			t.Fatalf("%s: append after recovery at %d, want %d", st, first, hwm)
		}
	}
	t.Logf("%d appends acknowledged before the crash, all present", len(mustSurvive))
}
