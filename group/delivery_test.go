package group_test

// Focused tests of the delivery guarantees of consumer groups at the
// edges the model test does not reach: store retention under a group's
// positions, a former owner's commit still in flight when its stream
// moves, many groups on one topic, topics that get events only after the
// registration, and a member that changes its topics.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/store"
)

// A group whose committed offset, or whose owner's read position, retention
// deleted resumes at the earliest event kept: the poll answer's Start says
// where (above the position reached), and the next commit moves the
// group's offset there, not back.
func TestPollResumesAtEarliestRetained(t *testing.T) {
	e := newEnv(t, withRetention(t), func(e *env) { e.opts.MemberTimeout = 100 * time.Hour })
	ctx := context.Background()
	st0, st1 := e.stream("t", 0), e.stream("t", 1)
	e.register("a", "g", group.StartFromEarliest, "t")
	e.produce("t", 0, 4, "old")
	e.produce("t", 1, 4, "old")
	// a reads 2 events of each stream and commits them: committed 2.
	if b, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "a", MaxEvents: 2}); err != nil || countEvents(b) != 2 {
		t.Fatalf("poll: %v %+v", err, b)
	}
	if b, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "a", MaxEvents: 2}); err != nil || countEvents(b) != 2 {
		t.Fatalf("poll: %v %+v", err, b)
	}
	if err := e.c.Commit(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	// Separate chunks, so that retention can cut between them.
	e.produce("t", 0, 3, "old2")
	e.produce("t", 1, 3, "old2")
	e.clock.Advance(2 * time.Hour)
	e.produce("t", 0, 2, "new")
	e.produce("t", 1, 2, "new")
	if _, err := e.st.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	for _, st := range []store.Stream{st0, st1} {
		if low := e.st.EarliestOffset(st); low != 7 {
			t.Fatalf("%s: retention kept from %d, want 7", st, low)
		}
		if off, _ := e.committed("g", st); off > 2 {
			t.Fatalf("%s: committed %d before the next poll", st, off)
		}
	}
	got := map[store.Stream]group.Batch{}
	for range 4 {
		for _, b := range e.poll("a") {
			if _, dup := got[b.Stream]; dup {
				t.Fatalf("%s read twice", b.Stream)
			}
			got[b.Stream] = b
		}
	}
	for _, st := range []store.Stream{st0, st1} {
		b := got[st]
		if b.Start != 7 || len(b.Events) != 2 || string(b.Events[0]) != `{"tag":"new","k":0}` {
			t.Fatalf("%s: resumed at %d with %d events (%q), want 7 and the 2 new ones", st, b.Start, len(b.Events), b.Events)
		}
	}
	if err := e.c.Commit(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	for _, st := range []store.Stream{st0, st1} {
		if off, _ := e.committed("g", st); off != 9 {
			t.Fatalf("%s: committed %d, want 9", st, off)
		}
	}
	e.check()
}

// gateLog holds the next offset commit in one stream, once armed, until
// released, so that a test can act while such a commit is in flight.
type gateLog struct {
	*store.Store
	st      store.Stream
	armed   atomic.Bool // the next commit in st waits for release
	entered chan int64
	release chan struct{}
	mu      sync.Mutex
	log     []int64 // offsets committed in st, in order
}

func (l *gateLog) CommitGroupOffset(grp string, st store.Stream, off int64) error {
	return l.commit(l.Store.CommitGroupOffset, grp, st, off)
}

func (l *gateLog) CommitGroupOffsetSoon(grp string, st store.Stream, off int64) error {
	return l.commit(l.Store.CommitGroupOffsetSoon, grp, st, off)
}

func (l *gateLog) commit(commit commitFunc, grp string, st store.Stream, off int64) error {
	if st != l.st {
		return commit(grp, st, off)
	}
	if l.armed.CompareAndSwap(true, false) {
		l.entered <- off
		<-l.release
	}
	err := commit(grp, st, off)
	l.mu.Lock()
	l.log = append(l.log, off)
	l.mu.Unlock()
	return err
}

// The former owner's commit still in flight when its stream moves lands
// before the new owner starts: the new owner starts from it, and nothing
// the new owner commits later goes below it (offsets stay monotonic, and
// the former owner's acknowledged events are not delivered again).
func TestFormerOwnersCommitInFlightWhenTheStreamMoves(t *testing.T) {
	var gl *gateLog
	e := newEnv(t, func(e *env) {
		gl = &gateLog{Store: e.st, entered: make(chan int64, 1), release: make(chan struct{})}
		e.log = gl
	})
	ctx := context.Background()
	gl.st = e.stream("t", 1)
	e.register("a", "g", group.StartFromEarliest, "t")
	e.produce("t", 1, 6, "x")
	if n := countEvents(e.poll("a")); n != 6 {
		t.Fatalf("a: %d events", n)
	}
	commitDone := make(chan error, 1)
	gl.armed.Store(true)
	go func() { commitDone <- e.c.Commit(ctx, "a") }()
	if off := <-gl.entered; off != 6 {
		t.Fatalf("a commits %d, want 6", off)
	}
	// b joins and takes stream 1 while a's commit of 6 is in flight; b
	// polls one event at a time.
	e.register("b", "g", group.StartFromEarliest, "t")
	if o := owners(e.c, "g")[gl.st]; o != "b" {
		t.Fatalf("stream 1 owned by %q, want b", o)
	}
	e.produce("t", 1, 2, "y")
	polled := make(chan []group.Batch, 1)
	go func() {
		b, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "b", MaxEvents: 1})
		if err != nil {
			t.Error(err)
		}
		polled <- b
	}()
	select {
	case b := <-polled:
		t.Fatalf("b polled %+v before a's commit landed", b)
	case <-time.After(50 * time.Millisecond):
	}
	close(gl.release)
	if err := <-commitDone; err != nil {
		t.Fatal(err)
	}
	b := <-polled
	if len(b) != 1 || b[0].Start != 6 || len(b[0].Events) != 1 {
		t.Fatalf("b's first poll: %+v, want offset 6 (after a's commit)", b)
	}
	e.poll("b") // commits 7
	if err := e.c.Commit(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	gl.mu.Lock()
	defer gl.mu.Unlock()
	for i := 1; i < len(gl.log); i++ {
		if gl.log[i] < gl.log[i-1] {
			t.Fatalf("commits of stream 1 went backwards: %v", gl.log)
		}
	}
	if off, _ := e.committed("g", gl.st); off != 8 {
		t.Fatalf("committed %d, want 8 (commits %v)", off, gl.log)
	}
}

// Many groups read one topic independently: each gets every event, and a
// group without a rebalance gets each once, whatever the other groups do.
// (In a group that loses a member, streams also move between the members
// that stay, so their uncommitted events are delivered again.)
func TestManyGroupsOnOneTopic(t *testing.T) {
	e := newEnv(t)
	const groups, members = 40, 3
	for g := range groups {
		for m := range members {
			e.register(fmt.Sprintf("c%d-%d", g, m), fmt.Sprintf("g%d", g), group.StartFromEarliest, "t")
		}
	}
	for i := range testRanges {
		e.produce("t", i, 5, "x")
	}
	for g := range groups {
		seen := map[store.Stream]map[int64]int{}
		for round := range 3 {
			for m := range members {
				if g%2 == 0 && round == 1 && m == 0 {
					// Half the groups lose a member midway, with commit.
					if err := e.c.Goodbye(context.Background(), fmt.Sprintf("c%d-%d", g, m), true); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if g%2 == 0 && round > 1 && m == 0 {
					continue
				}
				for _, b := range e.poll(fmt.Sprintf("c%d-%d", g, m)) {
					if seen[b.Stream] == nil {
						seen[b.Stream] = map[int64]int{}
					}
					for k := range b.Events {
						seen[b.Stream][b.Start+int64(k)]++
					}
				}
			}
		}
		for i := range testRanges {
			st := e.stream("t", i)
			if len(seen[st]) != 5 {
				t.Fatalf("group g%d got %d events of %s, want 5", g, len(seen[st]), st)
			}
			for off, n := range seen[st] {
				if n != 1 && g%2 == 1 {
					t.Fatalf("group g%d got %s offset %d %d times", g, st, off, n)
				}
			}
		}
	}
	e.check()
}

// A topic that has no events when the group registers (startFromLatest:
// its start is the empty stream's end) delivers everything produced
// afterwards, and a topic added to a member's registration later starts at
// its end then (the group is new to it), not at the member's first
// registration.
func TestTopicsWithoutEventsAndAddedLater(t *testing.T) {
	e := newEnv(t)
	e.register("a", "g", group.StartFromLatest, "new")
	e.produce("later", 0, 3, "before") // before "later" is added: skipped
	for i := range testRanges {
		e.produce("new", i, 2, "x")
	}
	if n := countEvents(e.poll("a")); n != 2*testRanges {
		t.Fatalf("a: %d events of the new topic, want %d", n, 2*testRanges)
	}
	// Registering again resumes from the committed offsets: commit first.
	if err := e.c.Commit(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	e.register("a", "g", group.StartFromLatest, "new", "later")
	e.produce("later", 0, 1, "after")
	b := e.poll("a")
	if countEvents(b) != 1 || b[0].Stream.Topic != "later" || b[0].Start != 3 {
		t.Fatalf("a after adding topic later: %+v, want only the event at offset 3", b)
	}
	// Dropping the topic and taking it again resumes from the group's
	// committed offset in it.
	if err := e.c.Commit(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	e.register("a", "g", group.StartFromLatest, "new")
	e.produce("later", 0, 2, "while-away")
	e.register("a", "g", group.StartFromLatest, "new", "later")
	if b := e.poll("a"); countEvents(b) != 2 || b[0].Start != 4 {
		t.Fatalf("a back on later: %+v, want offsets 4 and 5", b)
	}
	e.check()
}
