package group_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/internal/testclock"
	"github.com/floe-streams/floe/internal/testlog"
	"github.com/floe-streams/floe/store"
)

func newFakeClock() *testclock.Clock {
	return testclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// testLogger sends the logs of the code under test to t.Log.
func testLogger(t testing.TB) *slog.Logger { return testlog.New(t) }

// openStore opens a store in dir of fs, on the clock now (commit times of
// group offsets), closed at the end of the test unless the test closed it.
func openStore(t testing.TB, fs vfs.FS, now func() time.Time) *store.Store {
	t.Helper()
	s, err := store.Open("data", store.Options{FS: fs, RetentionInterval: -1, Sync: store.SyncNever, Now: now})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

const testRanges = 4

// env is a store, a ring of testRanges sub-ranges, a fake clock and a
// coordinator over them.
type env struct {
	t     testing.TB
	fs    vfs.FS
	st    *store.Store
	log   group.Log // what the coordinator uses; st unless wrapped
	ring  *broker.Ring
	clock *testclock.Clock
	opts  group.Options
	c     *group.Coordinator
}

func newEnv(t testing.TB, tune ...func(*env)) *env {
	t.Helper()
	e := &env{t: t, fs: vfs.NewMem(), ring: broker.NewRing(testRanges), clock: newFakeClock()}
	e.st = openStore(t, e.fs, e.clock.Now)
	e.log = e.st
	e.opts = group.Options{
		Streams:       e.ring.Streams,
		MemberTimeout: time.Minute,
		MaxPollWait:   10 * time.Second,
		Logger:        testLogger(t),
		Now:           e.clock.Now,
	}
	for _, f := range tune {
		f(e)
	}
	e.c = e.newCoordinator()
	return e
}

func (e *env) newCoordinator() *group.Coordinator {
	e.t.Helper()
	c, err := group.New(e.log, e.opts)
	if err != nil {
		e.t.Fatalf("group.New: %v", err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// stream is sub-range i of topic.
func (e *env) stream(topic string, i int) store.Stream { return e.ring.Streams(topic)[i] }

// produce appends n events tagged tag to sub-range i of topic and notifies
// the coordinator.
func (e *env) produce(topic string, i, n int, tag string) {
	e.t.Helper()
	st := e.stream(topic, i)
	events := make([][]byte, n)
	for k := range events {
		events[k] = fmt.Appendf(nil, `{"tag":%q,"k":%d}`, tag, k)
	}
	if _, err := e.st.Append(context.Background(), st, events); err != nil {
		e.t.Fatalf("Append: %v", err)
	}
	e.c.Notify(st)
}

func (e *env) register(id, grp string, start group.StartPosition, topics ...string) {
	e.t.Helper()
	err := e.c.Register(context.Background(), group.Registration{ConsumerID: id, Group: grp, Topics: topics, OnNewGroup: start})
	if err != nil {
		e.t.Fatalf("Register(%s): %v", id, err)
	}
}

func (e *env) poll(id string) []group.Batch {
	e.t.Helper()
	b, err := e.c.Poll(context.Background(), group.PollRequest{ConsumerID: id})
	if err != nil {
		e.t.Fatalf("Poll(%s): %v", id, err)
	}
	return b
}

// waitOffsetGone waits up to 10 s for grp's committed offset in st to be
// deleted (offset retention runs in the background), and fails with why.
func (e *env) waitOffsetGone(grp string, st store.Stream, why string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := e.committed(grp, st); !ok {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatal(why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) committed(grp string, st store.Stream) (int64, bool) {
	e.t.Helper()
	off, ok, err := e.st.GroupOffset(grp, st)
	if err != nil {
		e.t.Fatalf("GroupOffset: %v", err)
	}
	return off, ok
}

func (e *env) check() {
	e.t.Helper()
	if err := group.CheckInvariants(e.c); err != nil {
		e.t.Fatal(err)
	}
}

// countEvents is the number of events in batches.
func countEvents(batches []group.Batch) int {
	n := 0
	for _, b := range batches {
		n += len(b.Events)
	}
	return n
}

// owners maps each stream of group grp to its owner, from Stats.
func owners(c *group.Coordinator, grp string) map[store.Stream]string {
	out := make(map[store.Stream]string)
	for _, g := range c.Stats().Groups {
		if g.Group != grp {
			continue
		}
		for _, s := range g.Streams {
			if s.Owner != "" {
				out[s.Stream] = s.Owner
			}
		}
	}
	return out
}

// assigned is the range indexes of topic's streams owned by each member.
func assigned(c *group.Coordinator, grp string) map[string][]uint32 {
	out := make(map[string][]uint32)
	for st, id := range owners(c, grp) {
		out[id] = append(out[id], st.RangeIndex)
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

// sweptByHand tunes an env for offset-retention tests: an hour of
// retention, swept when a coordinator starts and by group.SweepOffsets
// only (the periodic sweep, every minute, does not come in a test), and
// members that do not expire.
func sweptByHand(e *env) {
	e.opts.OffsetRetention = time.Hour
	e.opts.MemberTimeout = 100 * time.Hour
}

// leave registers consumer id in grp, polls (committing the group's start
// offsets) and says goodbye: grp has offsets and no member.
func (e *env) leave(id, grp string) {
	e.t.Helper()
	e.register(id, grp, group.StartFromEarliest, "t")
	e.poll(id)
	if err := e.c.Goodbye(context.Background(), id, true); err != nil {
		e.t.Fatal(err)
	}
}
