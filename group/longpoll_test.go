package group_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/store"
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

// A registration of an id ends that id's waiting long poll, at once and
// with nothing, whatever it changes (nothing, the topics, the group): the
// poll may be the last one of an instance that died with its request open,
// and anything it read would be committed by the new instance's next poll
// without having been delivered. The events produced afterwards go to the
// new registration's polls.
func TestLongPollEndsWhenRegisteredAgain(t *testing.T) {
	for _, tc := range []struct {
		name, group, topic string
	}{
		{"same registration", "g", "t"},
		{"other topics", "g", "u"},
		{"other group", "g2", "u"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.register("c", "g", group.StartFromLatest, "t")
			ch := startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: "c", Wait: 10 * time.Second})
			e.register("c", tc.group, group.StartFromLatest, tc.topic)
			r := awaitPoll(t, ch)
			if r.err != nil || len(r.batches) != 0 || r.took > 5*time.Second {
				t.Fatalf("the waiting poll: %+v, want nothing at once", r)
			}
			if n := group.Waiters(e.c); n != 0 {
				t.Fatalf("%d waiters left", n)
			}
			e.produce(tc.topic, 2, 1, "x")
			if b := e.poll("c"); countEvents(b) != 1 || b[0].Stream != e.stream(tc.topic, 2) {
				t.Fatalf("the next poll: %+v", b)
			}
			e.check()
		})
	}
}

// The reviewer's case: a consumer restarts while its previous instance's
// long poll is still open (a crashed host leaves the connection half open,
// so the poll is never cancelled). The new instance must receive every
// event produced after it registered: the old poll must not read them.
func TestRestartedConsumerGetsWhatTheOldPollWaitedFor(t *testing.T) {
	e := newEnv(t)
	st := e.stream("t", 1)
	e.register("c", "g", group.StartFromEarliest, "t")
	e.produce("t", 1, 4, "e1")
	if n := countEvents(e.poll("c")); n != 4 {
		t.Fatalf("first poll: %d events", n)
	}
	if err := e.c.Commit(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	// The old instance's last poll, whose caller never goes away.
	old := startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: "c", Wait: 10 * time.Second})
	// The new instance.
	e.register("c", "g", group.StartFromEarliest, "t")
	e.produce("t", 1, 4, "e2")
	if r := awaitPoll(t, old); r.err != nil || countEvents(r.batches) != 0 {
		t.Fatalf("the old instance's poll read %d events (%v): the new instance's next poll commits them", countEvents(r.batches), r.err)
	}
	b := e.poll("c")
	if countEvents(b) != 4 || b[0].Start != 4 || b[0].Stream != st {
		t.Fatalf("the new instance's poll: %+v, want the 4 events from offset 4", b)
	}
	if off, ok := e.committed("g", st); !ok || off != 4 {
		t.Fatalf("committed %d (%v), want 4", off, ok)
	}
}

// Members that read no stream (more members than streams) wait for a
// rebalance, not for events: woken by every event of their topics, they
// spent the broker's CPU on polls that could find nothing. Once a rebalance
// gives one a stream, its long poll returns that stream's events.
func TestIdleMembersWaitForARebalance(t *testing.T) {
	e := newEnv(t)
	ids := []string{"a", "b", "c", "d", "e", "f"}
	for _, id := range ids {
		e.register(id, "g", group.StartFromEarliest, "t")
	}
	own := assigned(e.c, "g")
	var idle []string
	polls := map[string]<-chan pollResult{}
	for _, id := range ids {
		if len(own[id]) == 0 {
			idle = append(idle, id)
		}
		polls[id] = startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: id, Wait: 10 * time.Second})
	}
	if len(idle) != len(ids)-testRanges {
		t.Fatalf("assignment %v: want %d idle members", own, len(ids)-testRanges)
	}
	if n, m := group.WaitersOn(e.c, "t"), group.IdleWaiters(e.c, "g"); n != testRanges || m != len(idle) {
		t.Fatalf("%d polls wait for events of t and %d for a rebalance; want %d and %d", n, m, testRanges, len(idle))
	}

	// An owner leaves: the streams are dealt again, one idle member gets
	// one, and its long poll returns the events produced there.
	leaver := ids[0]
	if len(own[leaver]) == 0 {
		t.Fatalf("assignment %v: %s reads nothing", own, leaver)
	}
	if err := e.c.Goodbye(context.Background(), leaver, true); err != nil {
		t.Fatal(err)
	}
	if r := awaitPoll(t, polls[leaver]); !errors.Is(r.err, broker.ErrNotRegistered) && r.err != nil {
		t.Fatalf("poll of the member that left: %+v", r)
	}
	heir, st := "", store.Stream{}
	for s, id := range owners(e.c, "g") {
		if slices.Contains(idle, id) {
			heir, st = id, s
		}
	}
	if heir == "" {
		t.Fatalf("no idle member %v got a stream: %v", idle, assigned(e.c, "g"))
	}
	for deadline := time.Now().Add(5 * time.Second); group.WaitersOn(e.c, "t") != testRanges; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("%d polls wait for events of t, want %d: the heir's poll does not", group.WaitersOn(e.c, "t"), testRanges)
		}
	}
	e.produce("t", int(st.RangeIndex), 3, "x")
	if r := awaitPoll(t, polls[heir]); r.err != nil || countEvents(r.batches) != 3 {
		t.Fatalf("poll of the heir: %+v", r)
	}
	e.check()
}

// idleMember registers a, b, c, d and e in group g on topic t: a to d read
// one stream each and e none.
func idleMember(t *testing.T, e *env) {
	t.Helper()
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		e.register(id, "g", group.StartFromEarliest, "t")
	}
	if own := assigned(e.c, "g"); len(own["e"]) != 0 || len(own) != testRanges {
		t.Fatalf("assignment %v: want e idle", own)
	}
}

// An idle member's long poll is woken by any rebalance that gives it a
// stream, not only by a member leaving: here an owner that does not poll
// changes its topics or its group, so that nothing but the rebalance wakes
// the idle members.
func TestIdleLongPollWokenByARebalance(t *testing.T) {
	for _, tc := range []struct{ name, group, topic string }{
		{"owner changes topics", "g", "u"},
		{"owner moves", "g2", "t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			idleMember(t, e)
			ch := startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: "e", Wait: 10 * time.Second})
			e.register("a", tc.group, group.StartFromEarliest, tc.topic)
			var st store.Stream
			for s, id := range owners(e.c, "g") {
				if id == "e" {
					st = s
				}
			}
			if st.Topic == "" {
				t.Fatalf("e got no stream: %v", assigned(e.c, "g"))
			}
			for deadline := time.Now().Add(3 * time.Second); group.WaitersOn(e.c, "t") != 1; runtime.Gosched() {
				if time.Now().After(deadline) {
					t.Fatalf("e's long poll waits on t: %d, on the idle key: %d; it missed the rebalance",
						group.WaitersOn(e.c, "t"), group.IdleWaiters(e.c, "g"))
				}
			}
			e.produce("t", int(st.RangeIndex), 2, "x")
			if r := awaitPoll(t, ch); r.err != nil || countEvents(r.batches) != 2 {
				t.Fatalf("e's poll: %+v", r)
			}
			e.check()
		})
	}
}

// A registration of an idle member's id ends its waiting long poll at once,
// as it does an owner's (TestLongPollEndsWhenRegisteredAgain), although the
// same registration rebalances nothing.
func TestIdleLongPollEndsWhenRegisteredAgain(t *testing.T) {
	e := newEnv(t)
	idleMember(t, e)
	ch := startPoll(t, e, context.Background(), group.PollRequest{ConsumerID: "e", Wait: 10 * time.Second})
	e.register("e", "g", group.StartFromEarliest, "t")
	if r := awaitPoll(t, ch); r.err != nil || len(r.batches) != 0 || r.took > 3*time.Second {
		t.Fatalf("the waiting poll: %+v, want nothing at once", r)
	}
	if n := group.Waiters(e.c); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
}
