package group_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/store"
)

// A stress test of the long polls' wake-ups while members flip between
// idle (waiting on its idle key) and owning streams (waiting on
// their topics): a member "a" that sorts first joins and leaves (goodbye,
// a move to another group and back, a change of topics), so that m3 gains
// and loses its stream while it long-polls, and an event is produced
// meanwhile. Every event must reach a poll well before the polls' wait
// ends: a lost wake-up shows as an event that waits for a poll to time
// out. It fails if a poll that switches keys waits without reading once
// more, or does not switch, and, at the end, if a switch leaves a waiter
// behind.
func TestStressLongPollWakeUps(t *testing.T) {
	const (
		wait       = 4 * time.Second
		maxLatency = 1500 * time.Millisecond
	)
	iterations := 300
	if testing.Short() {
		iterations = 100
	}
	e := newEnv(t, func(e *env) {
		e.opts.Logger = nil
		e.opts.MaxPollWait = wait
		// A read that finds nothing returns late: the window between a
		// poll's read and its waiting is wider.
		e.log = slowReads{e.log}
	})
	ids := []string{"m0", "m1", "m2", "m3", "m4"}
	for _, id := range ids {
		e.register(id, "g", group.StartFromEarliest, "t")
	}
	var mu sync.Mutex
	produced := map[store.Stream][]time.Time{}
	delivered := map[store.Stream][]time.Time{}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait() }
	defer stop()
	for _, id := range append([]string{"a"}, ids...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				b, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: id, Wait: wait})
				if errors.Is(err, broker.ErrNotRegistered) {
					time.Sleep(100 * time.Microsecond)
					continue
				}
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Poll(%s): %v", id, err)
					}
					return
				}
				now := time.Now()
				mu.Lock()
				for _, bt := range b {
					d := delivered[bt.Stream]
					for off := bt.Start; off < bt.Start+int64(len(bt.Events)); off++ {
						for int64(len(d)) <= off {
							d = append(d, time.Time{})
						}
						if d[off].IsZero() {
							d[off] = now
						}
					}
					delivered[bt.Stream] = d
				}
				mu.Unlock()
			}
		}()
	}

	rng := rand.New(rand.NewPCG(1, 2))
	// undelivered is the number of produced events no poll returned yet.
	undelivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		missing := 0
		for st, p := range produced {
			d := delivered[st]
			for off := range p {
				if off >= len(d) || d[off].IsZero() {
					missing++
				}
			}
		}
		return missing
	}
	produce := func(i int, st store.Stream) {
		if _, err := e.st.Append(context.Background(), st, [][]byte{fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		produced[st] = append(produced[st], time.Now())
		mu.Unlock()
		e.c.Notify(st)
	}
	in := false // a is a member of g
	start := time.Now()
	for i := range iterations {
		if time.Since(start) > 15*time.Second {
			t.Logf("stopped after %d iterations", i)
			break
		}
		// The event races with the change of membership.
		delay := time.Duration(rng.IntN(1000)) * time.Microsecond
		st := e.stream("t", rng.IntN(testRanges))
		done := make(chan struct{})
		go func() {
			defer close(done)
			time.Sleep(delay)
			produce(i, st)
		}()
		switch {
		case !in:
			e.register("a", "g", group.StartFromEarliest, "t")
			in = true
		default:
			switch rng.IntN(3) {
			case 0:
				if err := e.c.Goodbye(context.Background(), "a", true); err != nil {
					t.Fatal(err)
				}
			case 1:
				e.register("a", "g2", group.StartFromEarliest, "t")
			case 2:
				e.register("a", "g", group.StartFromEarliest, "u")
			}
			in = false
		}
		<-done
		// Every event reaches a poll well before the polls' wait ends.
		for deadline := time.Now().Add(maxLatency); undelivered() > 0; time.Sleep(50 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatalf("iteration %d: %d events not delivered after %v (polls wait %v): a long poll missed its wake-up; assignment %v",
					i, undelivered(), maxLatency, wait, assigned(e.c, "g"))
			}
		}
	}
	stop()
	// No waiter is left behind by the polls that switched keys.
	if n, nt, ng, ng2 := group.Waiters(e.c), group.WaitersOn(e.c, "t"), group.IdleWaiters(e.c, "g"), group.IdleWaiters(e.c, "g2"); n+nt+ng+ng2 != 0 {
		t.Fatalf("waiters left: %d; on t %d, idle in g %d, in g2 %d", n, nt, ng, ng2)
	}
	var worst time.Duration
	var where string
	slow := 0
	for st, p := range produced {
		for off, at := range p {
			if l := delivered[st][off].Sub(at); l > worst {
				worst, where = l, fmt.Sprintf("%s@%d", st, off)
			}
			if delivered[st][off].Sub(at) > maxLatency {
				slow++
			}
		}
	}
	t.Logf("worst latency %v (%s), %d over %v", worst, where, slow, maxLatency)
	if slow > 0 {
		t.Fatalf("%d events waited more than %v for a poll (worst %v, %s): a long poll missed its wake-up", slow, maxLatency, worst, where)
	}
}

// slowReads delays the reads that find nothing.
type slowReads struct{ group.Log }

func (l slowReads) ReadInto(buf []byte, st store.Stream, from int64, maxBytes, maxEvents int) (store.Batch, []byte, error) {
	b, rest, err := l.Log.ReadInto(buf, st, from, maxBytes, maxEvents)
	if err == nil && len(b.Events) == 0 {
		time.Sleep(200 * time.Microsecond)
	}
	return b, rest, err
}
