package group_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
)

type pollResult struct {
	batches []group.Batch
	err     error
	took    time.Duration
}

// startPoll polls in a goroutine and waits until the poll is waiting for
// events.
func startPoll(t *testing.T, e *env, ctx context.Context, r group.PollRequest) <-chan pollResult {
	t.Helper()
	before := group.Waiters(e.c)
	ch := make(chan pollResult, 1)
	go func() {
		start := time.Now()
		b, err := e.c.Poll(ctx, r)
		ch <- pollResult{b, err, time.Since(start)}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for group.Waiters(e.c) == before {
		if time.Now().After(deadline) {
			t.Fatal("the poll never waited")
		}
		runtime.Gosched()
	}
	return ch
}

func awaitPoll(t *testing.T, ch <-chan pollResult) pollResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the poll did not return")
		return pollResult{}
	}
}

func TestLongPollReturnsOnNotify(t *testing.T) {
	e := newEnv(t)
	e.register("c", "g", group.StartFromLatest, "t", "u")
	ch := startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: "c", Wait: 10 * time.Second})
	e.produce("u", 2, 1, "x")
	r := awaitPoll(t, ch)
	if r.err != nil || countEvents(r.batches) != 1 || r.batches[0].Stream != e.stream("u", 2) {
		t.Fatalf("poll: %+v", r)
	}
	if r.took > 5*time.Second {
		t.Fatalf("the poll took %v", r.took)
	}
	if n := group.Waiters(e.c); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
}

func TestLongPollTimeout(t *testing.T) {
	e := newEnv(t)
	e.register("c", "g", group.StartFromLatest, "t")
	const wait = 30 * time.Millisecond
	ch := startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: "c", Wait: wait})
	// Events of another topic wake nobody who reads them.
	e.produce("other", 0, 1, "x")
	r := awaitPoll(t, ch)
	if r.err != nil || r.batches == nil || len(r.batches) != 0 {
		t.Fatalf("poll: %+v, want an empty result", r)
	}
	if r.took < wait {
		t.Fatalf("returned after %v, before the wait of %v", r.took, wait)
	}
}

func TestLongPollCappedByMaxPollWait(t *testing.T) {
	e := newEnv(t, func(e *env) { e.opts.MaxPollWait = 20 * time.Millisecond })
	e.register("c", "g", group.StartFromLatest, "t")
	r := awaitPoll(t, startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: "c", Wait: time.Hour}))
	if r.err != nil || len(r.batches) != 0 {
		t.Fatalf("poll: %+v", r)
	}
}

func TestLongPollContextCancel(t *testing.T) {
	e := newEnv(t)
	e.register("c", "g", group.StartFromLatest, "t")
	ctx, cancel := context.WithCancel(context.Background())
	ch := startPoll(t, e, ctx, group.PollRequest{ConsumerID: "c", Wait: 10 * time.Second})
	cancel()
	if r := awaitPoll(t, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("poll: %+v, want context.Canceled", r)
	}
}

func TestLongPollClose(t *testing.T) {
	e := newEnv(t)
	e.register("c", "g", group.StartFromLatest, "t")
	ch := startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: "c", Wait: 10 * time.Second})
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	if r := awaitPoll(t, ch); !errors.Is(r.err, broker.ErrUnavailable) {
		t.Fatalf("poll: %+v, want ErrUnavailable", r)
	}
}

// A consumer unregistered while it waits learns it at once.
func TestLongPollGoodbye(t *testing.T) {
	e := newEnv(t)
	e.register("c", "g", group.StartFromLatest, "t")
	ch := startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: "c", Wait: 10 * time.Second})
	if err := e.c.Goodbye(context.Background(), "c", true); err != nil {
		t.Fatal(err)
	}
	if r := awaitPoll(t, ch); !errors.Is(r.err, broker.ErrNotRegistered) {
		t.Fatalf("poll: %+v, want ErrNotRegistered", r)
	}
}

// A member waiting without streams gets the streams of a member that left,
// and their events, before its wait ends.
func TestLongPollAfterRebalance(t *testing.T) {
	e := newEnv(t, func(e *env) {
		e.ring = broker.NewRing(1)
		e.opts.Streams = e.ring.Streams
	})
	e.register("a", "g", group.StartFromEarliest, "t")
	e.register("b", "g", group.StartFromEarliest, "t")
	e.produce("t", 0, 2, "x")
	ch := startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: "b", Wait: 10 * time.Second})
	if err := e.c.Goodbye(context.Background(), "a", true); err != nil {
		t.Fatal(err)
	}
	if r := awaitPoll(t, ch); r.err != nil || countEvents(r.batches) != 2 {
		t.Fatalf("poll: %+v", r)
	}
}

// A long-polling member is never expired.
func TestLongPollingMemberDoesNotExpire(t *testing.T) {
	e := newEnv(t)
	e.register("c", "g", group.StartFromLatest, "t")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := startPoll(t, e, ctx, group.PollRequest{ConsumerID: "c", Wait: 10 * time.Second})
	e.clock.Advance(time.Hour)
	e.register("other", "g", group.StartFromLatest, "t") // runs the expiry check
	if s := e.c.Stats(); s.Members != 2 {
		t.Fatalf("members: %+v", s)
	}
	e.produce("t", 0, 1, "x")
	e.produce("t", 2, 1, "x")
	if r := awaitPoll(t, ch); r.err != nil || countEvents(r.batches) == 0 {
		t.Fatalf("poll: %+v", r)
	}
}

// A poll lends its buffer (PollRequest.Buffer) once, when one of its streams
// has events: a long poll that waits, or that wakes for events of other
// members' streams, holds none.
func TestPollLendsItsBufferOnlyToRead(t *testing.T) {
	e := newEnv(t)
	e.register("a", "g", group.StartFromLatest, "t")
	e.register("b", "g", group.StartFromLatest, "t")
	for i := range testRanges {
		e.produce("t", i, 1, "seed")
	}
	owned := map[string][]int{}
	for _, id := range []string{"a", "b", "a", "b"} {
		for _, b := range e.poll(id) {
			owned[id] = append(owned[id], int(b.Stream.RangeIndex))
		}
	}
	if len(owned["a"]) == 0 || len(owned["b"]) == 0 {
		t.Fatalf("streams by member: %v; want some for each", owned)
	}

	lends := 0
	lend := func(n int) []byte { lends++; return make([]byte, 0, n) }
	r := group.PollRequest{ConsumerID: "a", Wait: 150 * time.Millisecond, Buffer: lend}
	if got := awaitPoll(t, startPoll(t, e, context.Background(), r)); got.err != nil || countEvents(got.batches) != 0 {
		t.Fatalf("idle long poll: %+v", got)
	}
	if lends != 0 {
		t.Fatalf("an idle long poll lent %d buffers", lends)
	}

	r.Wait = 10 * time.Second
	ch := startPoll(t, e, context.Background(), r)
	for range 5 {
		// Each wakes a's poll, which finds nothing in its own streams.
		e.produce("t", owned["b"][0], 1, "for-b")
		runtime.Gosched()
	}
	e.produce("t", owned["a"][0], 3, "for-a")
	got := awaitPoll(t, ch)
	if got.err != nil || countEvents(got.batches) != 3 {
		t.Fatalf("poll after events for a: %+v", got)
	}
	if lends != 1 {
		t.Fatalf("the poll lent %d buffers, want 1", lends)
	}
}

// A long poll follows its consumer's topics: registered again with another
// topic while the poll waits, the consumer gets that topic's events in the
// same poll.
func TestLongPollFollowsNewTopics(t *testing.T) {
	for _, move := range []bool{false, true} {
		e := newEnv(t)
		e.register("c", "g", group.StartFromLatest, "t")
		ch := startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: "c", Wait: 10 * time.Second})
		g := "g"
		if move {
			g = "g2" // another group, another topic
		}
		e.register("c", g, group.StartFromLatest, "u")
		// The poll wakes, and waits again on the new topic (an event
		// produced before that would be seen by its read anyway).
		deadline := time.Now().Add(5 * time.Second)
		for group.WaitersOn(e.c, "u") != 1 || group.WaitersOn(e.c, "t") != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("moved to another group %v: the poll does not wait on the new topic", move)
			}
			runtime.Gosched()
		}
		e.produce("u", 2, 1, "x")
		r := awaitPoll(t, ch)
		if r.err != nil || countEvents(r.batches) != 1 || r.batches[0].Stream != e.stream("u", 2) {
			t.Fatalf("moved to another group %v: poll %+v", move, r)
		}
		if n := group.Waiters(e.c); n != 0 {
			t.Fatalf("%d waiters left", n)
		}
	}
}
