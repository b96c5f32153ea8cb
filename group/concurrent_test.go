package group_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/store"
)

// checkLog wraps the store and records what would show, at the log, that
// the coordinator broke exclusive ownership: two reads of one stream of a
// group at once (two readers), two commits of one stream at once, or a
// committed offset going backwards (a former owner's position committed
// after the new owner's).
type checkLog struct {
	group.Log
	mu         sync.Mutex
	reading    map[store.Stream]bool
	committing map[store.Stream]bool
	last       map[store.Stream]int64
	reads      int
	problems   []string
}

func newCheckLog(l group.Log) *checkLog {
	return &checkLog{Log: l, reading: map[store.Stream]bool{}, committing: map[store.Stream]bool{}, last: map[store.Stream]int64{}}
}

func (l *checkLog) problem(format string, args ...any) {
	if len(l.problems) < 20 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

func (l *checkLog) ReadInto(buf []byte, st store.Stream, from int64, maxBytes, maxEvents int) (store.Batch, []byte, error) {
	l.mu.Lock()
	if l.reading[st] {
		l.problem("two reads of %s at once", st)
	}
	l.reading[st] = true
	l.reads++
	l.mu.Unlock()
	runtime.Gosched() // widen the window
	b, buf, err := l.Log.ReadInto(buf, st, from, maxBytes, maxEvents)
	l.mu.Lock()
	l.reading[st] = false
	l.mu.Unlock()
	return b, buf, err
}

func (l *checkLog) CommitGroupOffset(grp string, st store.Stream, offset int64) error {
	return l.commit(l.Log.CommitGroupOffset, grp, st, offset)
}

func (l *checkLog) CommitGroupOffsetSoon(grp string, st store.Stream, offset int64) error {
	return l.commit(l.Log.CommitGroupOffsetSoon, grp, st, offset)
}

type commitFunc func(grp string, st store.Stream, offset int64) error

func (l *checkLog) commit(commit commitFunc, grp string, st store.Stream, offset int64) error {
	l.mu.Lock()
	if l.committing[st] {
		l.problem("two commits of %s at once", st)
	}
	if last, ok := l.last[st]; ok && offset < last {
		l.problem("committed offset of %s went back from %d to %d", st, last, offset)
	}
	l.committing[st] = true
	l.mu.Unlock()
	runtime.Gosched()
	err := commit(grp, st, offset)
	l.mu.Lock()
	l.committing[st] = false
	if err == nil {
		l.last[st] = max(l.last[st], offset)
	}
	l.mu.Unlock()
	return err
}

// TestConcurrentGroup runs producers and a changing group of consumers at
// once: members join, one stops polling and expires (injected clock), one
// says goodbye. Every event must be delivered (at least once, always with
// the bytes produced), no stream may have two readers or out-of-order
// commits, the coordinator's invariants must hold throughout, and at the
// end the committed offsets are the high watermarks.
func TestConcurrentGroup(t *testing.T) {
	const (
		ranges      = 8
		producers   = 4
		appends     = 150
		stepTimeout = time.Minute
	)
	var cl *checkLog
	e := newEnv(t, func(e *env) {
		e.ring = broker.NewRing(ranges)
		e.opts.Streams = e.ring.Streams
		e.opts.MemberTimeout = stepTimeout
		cl = newCheckLog(e.st)
		e.log = cl
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams := e.ring.Streams("t")

	// What consumers saw, by stream and offset.
	var mu sync.Mutex
	seen := make(map[store.Stream]map[int64]string)
	duplicates := 0
	record := func(batches []group.Batch) {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range batches {
			m := seen[b.Stream]
			if m == nil {
				m = make(map[int64]string)
				seen[b.Stream] = m
			}
			for i, ev := range b.Events {
				off := b.Start + int64(i)
				if prev, ok := m[off]; ok {
					duplicates++
					if prev != string(ev) {
						t.Errorf("%s offset %d delivered as %s and as %s", b.Stream, off, prev, ev)
					}
					continue
				}
				m[off] = string(ev)
			}
		}
	}

	type consumer struct {
		id    string
		stop  chan bool // true: say goodbye
		done  chan struct{}
		polls atomic.Int64
	}
	var unexpected atomic.Int64
	start := func(id string, seed uint64) *consumer {
		e.register(id, "g", group.StartFromEarliest, "t")
		c := &consumer{id: id, stop: make(chan bool, 1), done: make(chan struct{})}
		go func() {
			defer close(c.done)
			rng := rand.New(rand.NewPCG(seed, 7))
			for {
				select {
				case goodbye := <-c.stop:
					if goodbye {
						if err := e.c.Goodbye(ctx, id, true); err != nil {
							t.Errorf("Goodbye(%s): %v", id, err)
						}
					}
					return
				default:
				}
				b, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: id, MaxEvents: 1 + rng.IntN(40), Wait: 2 * time.Millisecond})
				if errors.Is(err, broker.ErrNotRegistered) {
					unexpected.Add(1)
					e.register(id, "g", group.StartFromEarliest, "t")
					continue
				}
				if err != nil {
					t.Errorf("Poll(%s): %v", id, err)
					return
				}
				record(b)
				c.polls.Add(1)
				if rng.IntN(8) == 0 {
					if err := e.c.Commit(ctx, id); err != nil {
						t.Errorf("Commit(%s): %v", id, err)
					}
				}
			}
		}()
		return c
	}
	// waitPolls waits until each consumer has completed two more polls, so
	// each has been seen after the current time of the clock.
	waitPolls := func(cs ...*consumer) {
		t.Helper()
		for _, c := range cs {
			target := c.polls.Load() + 2
			deadline := time.Now().Add(10 * time.Second)
			for c.polls.Load() < target {
				if time.Now().After(deadline) {
					t.Fatalf("consumer %s stopped polling", c.id)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}

	// Producers.
	var produced atomic.Int64
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for n := range appends {
				st := streams[rng.IntN(ranges)]
				events := make([][]byte, 1+rng.IntN(5))
				for k := range events {
					events[k] = fmt.Appendf(nil, `{"p":%d,"n":%d,"k":%d}`, p, n, k)
				}
				if _, err := e.st.Append(ctx, st, events); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				produced.Add(int64(len(events)))
				e.c.Notify(st)
				if n%10 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	// Invariant checker.
	checkDone := make(chan struct{})
	var checks atomic.Int64
	go func() {
		defer close(checkDone)
		for ctx.Err() == nil {
			if err := group.CheckInvariants(e.c); err != nil {
				t.Errorf("invariant: %v", err)
				return
			}
			checks.Add(1)
			runtime.Gosched()
		}
	}()

	c0 := start("c0", 1)
	c1 := start("c1", 2)
	c2 := start("c2", 3)
	waitPolls(c0, c1, c2)
	c3 := start("c3", 4) // joins: rebalance
	waitPolls(c0, c1, c2, c3)

	// c1 stops polling without a goodbye; the clock moves on until it
	// expires, while the others keep polling.
	c1.stop <- false
	<-c1.done
	for range 4 {
		e.clock.Advance(stepTimeout / 3)
		waitPolls(c0, c2, c3)
	}
	if s := e.c.Stats(); s.Expired != 1 || s.Members != 3 {
		t.Fatalf("after c1 stopped: expired %d, members %d", s.Expired, s.Members)
	}

	// c2 leaves properly.
	c2.stop <- true
	<-c2.done
	wg.Wait()

	// Drain: every stream read to its end by its current owner.
	deadline := time.Now().Add(20 * time.Second)
	for {
		caughtUp := true
		for _, g := range e.c.Stats().Groups {
			for _, s := range g.Streams {
				if s.Owner == "" || s.ReadPosition != s.HighWatermark {
					caughtUp = false
				}
			}
		}
		if caughtUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumers did not catch up: %+v", e.c.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
	c0.stop <- true
	<-c0.done
	c3.stop <- true
	<-c3.done
	cancel()
	<-checkDone

	// Every event delivered, with its bytes.
	total := int64(0)
	for _, st := range streams {
		hwm := e.st.HighWatermark(st)
		total += hwm
		for off := range hwm {
			if _, ok := seen[st][off]; !ok {
				t.Errorf("%s offset %d never delivered", st, off)
			}
		}
		if off, ok := e.committed("g", st); hwm > 0 && (!ok || off != hwm) {
			t.Errorf("%s: committed %d %v, high watermark %d", st, off, ok, hwm)
		}
	}
	if total != produced.Load() {
		t.Errorf("store holds %d events, producers appended %d", total, produced.Load())
	}
	for _, p := range cl.problems {
		t.Error(p)
	}
	if n := unexpected.Load(); n > 0 {
		t.Errorf("%d polls found their consumer unregistered", n)
	}
	t.Logf("%d events, %d redelivered after rebalances, %d reads, %d invariant checks, %d rebalances",
		total, duplicates, cl.reads, checks.Load(), e.c.Stats().Rebalances)
}

// Concurrent polls of one consumer (and of a second member that joins
// meanwhile) never hand out the same events twice while no stream changes
// owner, and hand out every event.
func TestConcurrentPollsOfOneConsumer(t *testing.T) {
	var cl *checkLog
	e := newEnv(t, func(e *env) {
		cl = newCheckLog(e.st)
		e.log = cl
	})
	e.register("c", "g", group.StartFromEarliest, "t")
	const perStream = 300
	for i := range testRanges {
		for k := range perStream / 10 {
			e.produce("t", i, 10, fmt.Sprint(k))
		}
	}
	var mu sync.Mutex
	seen := make(map[store.Stream]map[int64]int)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			empty := 0
			for empty < 20 {
				b, err := e.c.Poll(context.Background(), group.PollRequest{ConsumerID: "c", MaxEvents: 1 + rng.IntN(7)})
				if err != nil {
					t.Errorf("Poll: %v", err)
					return
				}
				if len(b) == 0 {
					empty++
					runtime.Gosched()
					continue
				}
				mu.Lock()
				for _, batch := range b {
					m := seen[batch.Stream]
					if m == nil {
						m = make(map[int64]int)
						seen[batch.Stream] = m
					}
					for i := range batch.Events {
						m[batch.Start+int64(i)]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, st := range e.ring.Streams("t") {
		for off := range int64(perStream) {
			if n := seen[st][off]; n != 1 {
				t.Fatalf("%s offset %d delivered %d times", st, off, n)
			}
		}
	}
	for _, p := range cl.problems {
		t.Error(p)
	}
}
