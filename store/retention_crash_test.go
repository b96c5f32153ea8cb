package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A crash (unsynced writes lost, some or all) while appends, synced group
// offset commits and size retention run concurrently: after the reopen each
// stream is whole from its earliest offset to its high watermark, every
// acknowledged append is where it was acknowledged, synced group offsets
// survive, and the next append gets the next offset. 30 rounds of random
// timings and seeds.
func TestCrashDuringRetention(t *testing.T) {
	for round := range 30 {
		t.Run(fmt.Sprint(round), func(t *testing.T) { crashRetRound(t, int64(round), []int{0, 50, 100}[round%3]) })
	}
}

func crashRetRound(t *testing.T, seed int64, unsyncedPct int) {
	rng := rand.New(rand.NewPCG(uint64(seed), 99))
	fs := vfs.NewCrashableMem()
	opts := memOpts(t, fs)
	opts.MemTableSize = 2 << 20
	opts.MaxBatchBytes = 256 << 10
	opts.MaxAppendBytes = 256 << 10
	opts.RetentionMaxAge = -1
	opts.RetentionMaxBytes = 200 << 10
	s := openT(t, "db", opts)
	streams := []Stream{testStream("crash", 0), testStream("crash", 1), testStream("crash2", 0)}
	var (
		mu       sync.Mutex
		acked    []ackRecord
		stop     atomic.Bool
		wg       sync.WaitGroup
		gcommits = map[string]int64{}
	)
	pad := strings.Repeat("p", 100+rng.IntN(400))
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(seed), uint64(w)))
			for i := 0; !stop.Load(); i++ {
				st := streams[r.IntN(len(streams))]
				n := 1 + r.IntN(40)
				first, err := s.Append(context.Background(), st, crashEvents(w, i, n, pad))
				if err != nil {
					return
				}
				mu.Lock()
				acked = append(acked, ackRecord{st, first, n, fmt.Sprintf("%d/%d", w, i)})
				mu.Unlock()
				if i%5 == 0 {
					off := first + int64(n)
					g := fmt.Sprint("g", w)
					if err := s.CommitGroupOffset(g, st, off); err == nil {
						mu.Lock()
						k := g + "|" + st.String()
						if off > gcommits[k] {
							gcommits[k] = off
						}
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if _, err := s.ApplyRetention(); err != nil {
				return
			}
		}
	}()
	time.Sleep(time.Duration(50+rng.IntN(150)) * time.Millisecond)
	mu.Lock()
	mustSurvive := append([]ackRecord(nil), acked...)
	lowBefore := map[Stream]int64{}
	for _, st := range streams {
		lowBefore[st] = s.EarliestOffset(st)
	}
	wantG := map[string]int64{}
	for k, v := range gcommits {
		wantG[k] = v
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPct, RNG: rand.New(rand.NewPCG(uint64(seed), 1))})
	mu.Unlock()
	stop.Store(true)
	wg.Wait()
	_ = s.Close()

	r := openT(t, "db", memOpts(t, crashed))
	found := map[Stream]map[string]int64{}
	for _, st := range streams {
		low, hwm := r.EarliestOffset(st), r.HighWatermark(st)
		start, events := readAll(t, r, st, 0)
		if start != low || start+int64(len(events)) != hwm {
			t.Fatalf("%s: read %d events from %d, low %d hwm %d", st, len(events), start, low, hwm)
		}
		found[st] = checkWholeAppends(t, st, start, events)
		_ = lowBefore
	}
	for _, a := range mustSurvive {
		if a.first+int64(a.n) <= r.EarliestOffset(a.st) {
			continue
		}
		first, ok := found[a.st][a.key]
		if !ok || first != a.first {
			t.Fatalf("acked append %s at %d: found %v %d (low %d)", a.key, a.first, ok, first, r.EarliestOffset(a.st))
		}
	}
	offs, err := r.GroupOffsets()
	if err != nil {
		t.Fatal(err)
	}
	gotG := map[string]int64{}
	for _, o := range offs {
		gotG[o.Group+"|"+o.Stream.String()] = o.Offset
	}
	for st, want := range wantG {
		got, ok := gotG[st]
		if !ok || got < want {
			t.Fatalf("group offset %s = %d %v, want >= %d", st, got, ok, want)
		}
	}
	for _, st := range streams {
		hwm := r.HighWatermark(st)
		if first := mustAppend(t, r, st, crashEvents(99, 0, 3, "after")); first != hwm {
			t.Fatalf("%s: append after recovery at %d, want %d", st, first, hwm)
		}
	}
	t.Logf("%d acked; lows %v", len(mustSurvive), lowBefore)
}
