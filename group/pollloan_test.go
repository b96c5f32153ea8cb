package group_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/internal/reqbuf"
	"github.com/floe-streams/floe/store"
)

// minLoan is the smallest buffer a poll borrows (group.minLoan).
const minLoan = 64 << 10

// lendingPoll polls for id with a buffer lent by reqbuf, as the REST and
// gRPC APIs do, and returns the batches and the size asked (0: none lent).
// check runs on the batches before the buffer goes back to the pool, which
// overwrites it, as a reused buffer is.
func lendingPoll(t *testing.T, e *env, id string, maxBytes int, check func([]group.Batch)) int {
	t.Helper()
	l := reqbuf.New()
	asked, lends := 0, 0
	b, err := e.c.Poll(context.Background(), group.PollRequest{ConsumerID: id, MaxBytes: maxBytes, Buffer: func(n int) []byte {
		asked, lends = n, lends+1
		buf := l.Get(n)
		return buf
	}})
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	if lends > 1 {
		t.Fatalf("a poll lent %d buffers", lends)
	}
	check(b)
	reqbuf.SetPoison(true)
	l.Release()
	reqbuf.SetPoison(false)
	return asked
}

// A poll borrows a buffer for what it is likely to read, not for its whole
// budget: a consumer answered a few bytes at a time borrows 64 KiB, and no
// more than its budget when that is smaller. Borrowing the budget made each
// such poll hold 2 MiB by default (2 GB for 1,000 consumers woken by one
// produce), and, with --max-poll-bytes above the largest pooled buffer
// (8 MiB), allocate and clear all of it.
func TestPollBorrowsWhatItReads(t *testing.T) {
	for _, tc := range []struct {
		budget, maxBytes, want int
	}{
		{2 << 20, 0, minLoan},
		{64 << 20, 0, minLoan},
		{64 << 20, 3000, 3000},
	} {
		t.Run(fmt.Sprintf("budget=%d,maxBytes=%d", tc.budget, tc.maxBytes), func(t *testing.T) {
			e := newEnv(t, func(e *env) { e.opts.MaxPollBytes = tc.budget })
			e.register("c", "g", group.StartFromEarliest, "t")
			const polls = 20
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range polls {
				e.produce("t", i%testRanges, 1, "x")
				asked := lendingPoll(t, e, "c", tc.maxBytes, func(b []group.Batch) {
					if countEvents(b) != 1 || string(b[0].Events[0]) != `{"tag":"x","k":0}` {
						t.Fatalf("poll %d: %v, want the event produced", i, describe(b))
					}
				})
				if asked != tc.want {
					t.Errorf("poll %d of one 17-byte event asked a buffer of %d bytes, want %d", i, asked, tc.want)
				}
			}
			runtime.ReadMemStats(&after)
			perPoll := float64(after.TotalAlloc-before.TotalAlloc) / polls
			t.Logf("%.0f KiB allocated per poll", perPoll/1024)
			if perPoll > 8<<20 {
				t.Errorf("%.1f MiB allocated per poll of one event", perPoll/(1<<20))
			}
		})
	}
}

// The buffer follows the size of the answers, and the answers stay whole
// whatever its size. The first poll of a broker, which knows nothing of the
// events' size, borrows 64 KiB and reads its budget anyway (what does not
// fit in the buffer is copied into memory of its own); later polls of a
// backlog borrow the whole budget, as every poll did before, and so do
// polls that wake to a burst after small answers, and the first poll of a
// new consumer facing a backlog: the events available, times the size of
// the events read last, fill the budget. Once the answers are small again,
// so is the buffer.
func TestPollLoanFollowsTheAnswers(t *testing.T) {
	const budget = 1 << 20
	const perPoll = budget / eventSize
	e := newEnv(t, func(e *env) { e.opts.MaxPollBytes = budget })
	e.register("c", "g", group.StartFromEarliest, "t")
	st := e.stream("t", 1)
	appendSized(t, e, st, 4000)

	drain := func(id string, next *int64) []int {
		t.Helper()
		check := func(b []group.Batch) {
			for _, batch := range b {
				if batch.Stream != st || batch.Start != *next {
					t.Fatalf("%s: batch %v, want t/1 from %d", id, describe(b), *next)
				}
				for k, ev := range batch.Events {
					if want := sizedEvent(*next + int64(k)); !bytes.Equal(ev, want) {
						t.Fatalf("%s: offset %d: %.40q..., want %.40q...", id, *next+int64(k), ev, want)
					}
				}
				*next += int64(len(batch.Events))
			}
		}
		var asked []int
		hwm := e.st.HighWatermark(st)
		for polls := 0; *next < hwm; polls++ {
			if polls == 20 {
				t.Fatalf("%s: 20 polls read up to offset %d of %d", id, *next, hwm)
			}
			from := *next
			asked = append(asked, lendingPoll(t, e, id, 0, check))
			if n := *next - from; *next < hwm && n != perPoll {
				t.Fatalf("%s: poll %d: %d events, want the budget's %d", id, polls, n, perPoll)
			}
		}
		t.Logf("%s: buffers asked %v", id, asked)
		return asked
	}
	wantAsked := func(what string, asked []int, first int) {
		t.Helper()
		for i, n := range asked {
			want := budget
			if i == 0 {
				want = first
			}
			if n != want {
				t.Fatalf("%s: buffers asked %v, want %d then the budget", what, asked, first)
			}
		}
	}
	var next int64
	wantAsked("the broker's first backlog", drain("c", &next), minLoan)

	// Answers of one event: the buffer shrinks after the first of them.
	small := func(i int) int {
		t.Helper()
		appendSized(t, e, st, 1)
		next++
		return lendingPoll(t, e, "c", 0, func(b []group.Batch) {
			if countEvents(b) != 1 || !bytes.Equal(b[0].Events[0], sizedEvent(next-1)) {
				t.Fatalf("small poll %d: %v, want offset %d", i, describe(b), next-1)
			}
		})
	}
	for i := range 3 {
		if n := small(i); i > 0 && n != minLoan {
			t.Fatalf("small poll %d asked %d bytes, want %d", i, n, minLoan)
		}
	}

	// A burst after small answers.
	appendSized(t, e, st, 2500)
	wantAsked("a burst after small answers", drain("c", &next), budget)
	small(0)
	if n := small(1); n != minLoan {
		t.Fatalf("small poll after the burst asked %d bytes, want %d", n, minLoan)
	}

	// A new consumer, of another group, reading the same stream from its
	// start.
	e.register("d", "g2", group.StartFromEarliest, "t")
	var dNext int64
	asked := drain("d", &dNext)
	wantAsked("a new consumer's backlog", asked, budget)
	e.check()
}

const eventSize = 1000

// sizedEvent is the event at offset off of appendSized: eventSize bytes of
// JSON that name the offset.
func sizedEvent(off int64) []byte {
	ev := fmt.Appendf(nil, `{"offset":%d,"pad":"`, off)
	ev = append(ev, bytes.Repeat([]byte{'p'}, eventSize-len(ev)-2)...)
	return append(ev, `"}`...)
}

// appendSized appends n events of eventSize bytes to st, in chunks of 100,
// each naming its offset, and notifies the coordinator.
func appendSized(t *testing.T, e *env, st store.Stream, n int) {
	t.Helper()
	off := e.st.HighWatermark(st)
	for n > 0 {
		batch := make([][]byte, min(n, 100))
		for i := range batch {
			batch[i] = sizedEvent(off)
			off++
		}
		if _, err := e.st.Append(context.Background(), st, batch); err != nil {
			t.Fatal(err)
		}
		n -= len(batch)
	}
	e.c.Notify(st)
}
