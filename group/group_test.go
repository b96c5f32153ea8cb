package group_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/internal/testgroup"
	"github.com/floe-streams/floe/store"
)

func TestRegisterPollCommitGoodbye(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.register("c1", "g", group.StartFromEarliest, "orders")
	for i := range testRanges {
		e.produce("orders", i, 3, "a")
	}

	batches := e.poll("c1")
	if got := countEvents(batches); got != 4*3 {
		t.Fatalf("first poll: %d events, want 12", got)
	}
	for _, b := range batches {
		if b.Start != 0 || len(b.Events) != 3 || b.Stream.Topic != "orders" {
			t.Fatalf("batch %+v", b)
		}
		if string(b.Events[1]) != `{"tag":"a","k":1}` {
			t.Fatalf("event changed: %s", b.Events[1])
		}
	}
	// Only the group's start is committed: the poll only delivered.
	if off, ok := e.committed("g", e.stream("orders", 0)); !ok || off != 0 {
		t.Fatalf("committed %d %v before the consumer acknowledged, want the start 0", off, ok)
	}
	if b := e.poll("c1"); len(b) != 0 {
		t.Fatalf("second poll: %d batches, want none", len(b))
	}
	// The second poll committed the position reached by the first.
	for i := range testRanges {
		if off, ok := e.committed("g", e.stream("orders", i)); !ok || off != 3 {
			t.Fatalf("stream %d: committed %d %v, want 3", i, off, ok)
		}
	}

	e.produce("orders", 2, 2, "b")
	if b := e.poll("c1"); countEvents(b) != 2 || b[0].Start != 3 || b[0].Stream.RangeIndex != 2 {
		t.Fatalf("poll after produce: %+v", b)
	}
	if err := e.c.Commit(ctx, "c1"); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if off, _ := e.committed("g", e.stream("orders", 2)); off != 5 {
		t.Fatalf("after Commit: offset %d, want 5", off)
	}

	e.produce("orders", 1, 1, "c")
	if b := e.poll("c1"); countEvents(b) != 1 {
		t.Fatalf("poll: %d events, want 1", countEvents(b))
	}
	if err := e.c.Goodbye(ctx, "c1", true); err != nil {
		t.Fatalf("Goodbye: %v", err)
	}
	if off, _ := e.committed("g", e.stream("orders", 1)); off != 4 {
		t.Fatalf("after Goodbye: offset %d, want 4", off)
	}
	for name, err := range map[string]error{
		"Poll":    func() error { _, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c1"}); return err }(),
		"Commit":  e.c.Commit(ctx, "c1"),
		"Goodbye": e.c.Goodbye(ctx, "c1", true),
	} {
		if !errors.Is(err, broker.ErrNotRegistered) {
			t.Errorf("%s after Goodbye: %v, want ErrNotRegistered", name, err)
		}
	}
	// The group has no members, and its committed offsets still show, and
	// its lag grows while nobody reads.
	e.produce("orders", 1, 3, "d")
	s := e.c.Stats()
	if s.Members != 0 || len(s.Groups) != 1 || s.Groups[0].Group != "g" || len(s.Groups[0].Members) != 0 {
		t.Fatalf("stats after goodbye: %+v", s)
	}
	var found bool
	for _, ss := range s.Groups[0].Streams {
		if ss.Stream == e.stream("orders", 1) {
			found = true
			if ss.Committed != 4 || ss.HighWatermark != 7 || ss.Lag != 3 || ss.Owner != "" {
				t.Errorf("stats of the memberless group in orders/1: %+v, want committed 4, high watermark 7, lag 3", ss)
			}
		}
	}
	if !found {
		t.Errorf("stats after goodbye lack orders/1: %+v", s.Groups[0].Streams)
	}
}

func TestGoodbyeWithoutCommit(t *testing.T) {
	e := newEnv(t)
	e.register("c1", "g", group.StartFromEarliest, "t")
	e.produce("t", 0, 5, "a")
	if n := countEvents(e.poll("c1")); n != 5 {
		t.Fatalf("poll: %d", n)
	}
	if err := e.c.Goodbye(context.Background(), "c1", false); err != nil {
		t.Fatal(err)
	}
	if off, ok := e.committed("g", e.stream("t", 0)); !ok || off != 0 {
		t.Fatalf("Goodbye(commit=false): committed %d %v, want the start 0", off, ok)
	}
	// Only the start is committed: the group starts over.
	e.register("c2", "g", group.StartFromEarliest, "t")
	if n := countEvents(e.poll("c2")); n != 5 {
		t.Fatalf("events after goodbye without commit: %d, want 5 again", n)
	}
}

func TestRegisterIdempotent(t *testing.T) {
	e := newEnv(t)
	e.register("c1", "g", group.StartFromEarliest, "a")
	e.register("c1", "g", group.StartFromEarliest, "a", "a")
	s := e.c.Stats()
	if s.Members != 1 || len(s.Groups) != 1 || len(s.Groups[0].Members) != 1 {
		t.Fatalf("after registering twice: %+v", s)
	}
	rebalances := s.Rebalances

	e.produce("a", 0, 2, "x")
	if n := countEvents(e.poll("c1")); n != 2 {
		t.Fatalf("poll: %d", n)
	}
	// Registering again (a consumer restarted with the same id) does not
	// rebalance, and does not commit what the previous instance polled: it
	// is delivered again.
	e.register("c1", "g", group.StartFromEarliest, "a")
	if s := e.c.Stats(); s.Rebalances != rebalances {
		t.Fatalf("an unchanged registration rebalanced (%d -> %d)", rebalances, s.Rebalances)
	}
	if n := countEvents(e.poll("c1")); n != 2 {
		t.Fatalf("poll after re-register: %d events, want the 2 uncommitted ones again", n)
	}
	if n := countEvents(e.poll("c1")); n != 0 {
		t.Fatalf("second poll after re-register: %d events, want 0", n)
	}

	// New topics.
	e.register("c1", "g", group.StartFromEarliest, "a", "b")
	if got := len(owners(e.c, "g")); got != 2*testRanges {
		t.Fatalf("owned streams after adding a topic: %d", got)
	}
	e.check()

	// Moving to another group leaves the old one, which keeps only its
	// committed offsets.
	e.register("c1", "h", group.StartFromEarliest, "b")
	s = e.c.Stats()
	if len(s.Groups) != 2 || s.Groups[0].Group != "g" || len(s.Groups[0].Members) != 0 ||
		s.Groups[1].Group != "h" || len(s.Groups[1].Members) != 1 || len(owners(e.c, "h")) != testRanges {
		t.Fatalf("after moving: %+v", s)
	}
	e.check()
}

func TestRegisterValidation(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("x", group.MaxIDLen+1)
	tests := []struct {
		name  string
		r     group.Registration
		want  error
		param string
	}{
		{"no id", group.Registration{Topics: []string{"t"}}, broker.ErrInvalidParameter, "consumerId is required"},
		{"long id", group.Registration{ConsumerID: long, Topics: []string{"t"}}, broker.ErrInvalidParameter, "consumerId"},
		{"unprintable id", group.Registration{ConsumerID: "a\nb", Topics: []string{"t"}}, broker.ErrInvalidParameter, "consumerId"},
		{"invalid utf-8 id", group.Registration{ConsumerID: "a\xffb", Topics: []string{"t"}}, broker.ErrInvalidParameter, "consumerId"},
		{"long group", group.Registration{ConsumerID: "c", Group: long, Topics: []string{"t"}}, broker.ErrInvalidParameter, "group"},
		{"unprintable group", group.Registration{ConsumerID: "c", Group: "g\x00", Topics: []string{"t"}}, broker.ErrInvalidParameter, "group"},
		{"no topic", group.Registration{ConsumerID: "c"}, broker.ErrInvalidParameter, "topic is required"},
		{"invalid topic", group.Registration{ConsumerID: "c", Topics: []string{"ok", "bad/name"}}, broker.ErrInvalidTopic, `invalid topic name: "bad/name"`},
		{"empty topic", group.Registration{ConsumerID: "c", Topics: []string{""}}, broker.ErrInvalidTopic, "invalid topic name: the topic name is empty"},
		{"bad start", group.Registration{ConsumerID: "c", Topics: []string{"t"}, OnNewGroup: 7}, broker.ErrInvalidParameter, "onNewGroup"},
		{"too many topics", group.Registration{ConsumerID: "c", Topics: testgroup.TopicNames(group.MaxTopics + 1)}, broker.ErrInvalidParameter,
			fmt.Sprintf("topic: %d topics in one registration, the maximum is %d", group.MaxTopics+1, group.MaxTopics)},
		// Counted as named: the limit bounds the request's work too.
		{"too many topics, repeated", group.Registration{ConsumerID: "c", Topics: slices.Repeat([]string{"t"}, 10_000)}, broker.ErrInvalidParameter,
			"10000 topics in one registration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.c.Register(context.Background(), tt.r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.param) {
				t.Fatalf("error %q does not name %q", err, tt.param)
			}
		})
	}
	if s := e.c.Stats(); s.Members != 0 || len(s.Groups) != 0 {
		t.Fatalf("an invalid registration registered: %+v", s)
	}
	if offsets, err := e.st.GroupOffsets(); err != nil || len(offsets) != 0 {
		t.Fatalf("an invalid registration committed offsets: %v %v", offsets, err)
	}
	// Limits are inclusive; the group defaults to "default".
	e.register(strings.Repeat("é", group.MaxIDLen/2), "", group.StartFromLatest, testgroup.TopicNames(group.MaxTopics)...)
	if s := e.c.Stats(); len(s.Groups) != 1 || s.Groups[0].Group != group.DefaultGroup {
		t.Fatalf("default group: %+v", s.Groups)
	}
}

func TestParseStartPosition(t *testing.T) {
	for in, want := range map[string]group.StartPosition{
		"":                  group.StartFromLatest,
		"startFromLatest":   group.StartFromLatest,
		"startFromEarliest": group.StartFromEarliest,
		"STARTFROMEARLIEST": group.StartFromEarliest,
	} {
		got, err := group.ParseStartPosition(in)
		if err != nil || got != want {
			t.Errorf("ParseStartPosition(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"earliest", "latest", "startFromBeginning", " startFromLatest"} {
		_, err := group.ParseStartPosition(in)
		if !errors.Is(err, broker.ErrInvalidParameter) || !strings.Contains(err.Error(), "onNewGroup") {
			t.Errorf("ParseStartPosition(%q): %v, want ErrInvalidParameter naming onNewGroup", in, err)
		}
	}
	if s := group.StartFromEarliest.String(); s != "startFromEarliest" {
		t.Errorf("String: %s", s)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	s := newEnv(t).st
	streams := broker.NewRing(1).Streams
	for name, opts := range map[string]group.Options{
		"no Streams":           {},
		"negative MaxPollWait": {Streams: streams, MaxPollWait: -1},
		"negative timeout":     {Streams: streams, MemberTimeout: -time.Second},
		"negative bytes":       {Streams: streams, MaxPollBytes: -1},
	} {
		if c, err := group.New(s, opts); err == nil {
			c.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := group.New(nil, group.Options{Streams: streams}); err == nil {
		t.Error("New without a Log succeeded")
	}
}

func TestPollValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "nobody"})
	if !errors.Is(err, broker.ErrNotRegistered) || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("unknown consumer: %v", err)
	}
	e.register("c", "g", group.StartFromLatest, "t")
	if _, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c", MaxBytes: -1}); !errors.Is(err, broker.ErrInvalidParameter) {
		t.Fatalf("negative maxBytes: %v", err)
	}
	if _, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c", MaxEvents: -1}); !errors.Is(err, broker.ErrInvalidParameter) {
		t.Fatalf("negative maxEvents: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.c.Poll(cctx, group.PollRequest{ConsumerID: "c"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if err := e.c.Commit(ctx, "nobody"); !errors.Is(err, broker.ErrNotRegistered) {
		t.Fatalf("Commit of unknown: %v", err)
	}
	if err := e.c.Goodbye(ctx, "nobody", true); !errors.Is(err, broker.ErrNotRegistered) {
		t.Fatalf("Goodbye of unknown: %v", err)
	}
}

// An id that Register refuses can never be registered: poll, commit and
// goodbye refuse it as Register does, naming the problem, instead of
// answering "not registered; register it", which would loop.
func TestCallsRefuseIDsRegisterRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	calls := map[string]func(id string) error{
		"Poll": func(id string) error {
			_, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: id})
			return err
		},
		"Commit":  func(id string) error { return e.c.Commit(ctx, id) },
		"Goodbye": func(id string) error { return e.c.Goodbye(ctx, id, true) },
	}
	for _, tc := range []struct{ name, id, mention string }{
		{"empty", "", "consumerId is required"},
		{"long", strings.Repeat("x", group.MaxIDLen+1), fmt.Sprintf("consumerId is %d bytes, the maximum is %d", group.MaxIDLen+1, group.MaxIDLen)},
		{"invalid UTF-8", "a\xffb", "consumerId is not valid UTF-8"},
		{"unprintable", "a\nb", "unprintable character U+000A"},
	} {
		regErr := e.c.Register(ctx, group.Registration{ConsumerID: tc.id, Topics: []string{"t"}})
		if !errors.Is(regErr, broker.ErrInvalidParameter) {
			t.Fatalf("%s: Register: %v, want ErrInvalidParameter", tc.name, regErr)
		}
		for name, call := range calls {
			err := call(tc.id)
			if !errors.Is(err, broker.ErrInvalidParameter) || errors.Is(err, broker.ErrNotRegistered) {
				t.Errorf("%s of a %s id: %v, want ErrInvalidParameter as Register's %v", name, tc.name, err, regErr)
			} else if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("%s of a %s id: %q does not say %q", name, tc.name, err, tc.mention)
			}
		}
	}
}

func TestStartFromEarliestAndLatest(t *testing.T) {
	e := newEnv(t)
	e.produce("t", 0, 5, "before")
	e.produce("t", 3, 2, "before")

	e.register("early", "E", group.StartFromEarliest, "t")
	e.register("late", "L", group.StartFromLatest, "t")
	// The latest start is committed at registration.
	if off, ok := e.committed("L", e.stream("t", 0)); !ok || off != 5 {
		t.Fatalf("latest start of stream 0: %d %v, want 5 committed", off, ok)
	}
	if off, ok := e.committed("L", e.stream("t", 1)); !ok || off != 0 {
		t.Fatalf("latest start of empty stream 1: %d %v, want 0 committed", off, ok)
	}
	// Events produced between registration and the first poll are not
	// skipped.
	e.produce("t", 0, 1, "between")

	if n := countEvents(e.poll("early")); n != 8 {
		t.Fatalf("earliest: %d events, want 8", n)
	}
	b := e.poll("late")
	if countEvents(b) != 1 || b[0].Start != 5 || string(b[0].Events[0]) != `{"tag":"between","k":0}` {
		t.Fatalf("latest: %+v", b)
	}
	e.produce("t", 2, 3, "after")
	if n := countEvents(e.poll("early")); n != 3 {
		t.Fatalf("earliest after: %d", n)
	}
	if n := countEvents(e.poll("late")); n != 3 {
		t.Fatalf("latest after: %d", n)
	}

	// Once a group has committed offsets, onNewGroup is ignored.
	if err := e.c.Goodbye(context.Background(), "late", true); err != nil {
		t.Fatal(err)
	}
	e.produce("t", 1, 4, "gone")
	e.register("late2", "L", group.StartFromEarliest, "t")
	if n := countEvents(e.poll("late2")); n != 4 {
		t.Fatalf("rejoining group: %d events, want the 4 produced since its commit", n)
	}
}

// A latest start is committed at once: events produced after it are read
// after a restart, not skipped.
func TestLatestStartSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.produce("t", 0, 5, "old")
	e.register("c", "g", group.StartFromLatest, "t")
	e.c.Close()
	e.produce("t", 0, 2, "new")

	e.c = e.newCoordinator()
	e.register("c", "g", group.StartFromLatest, "t")
	b := e.poll("c")
	if countEvents(b) != 2 || b[0].Start != 5 {
		t.Fatalf("after restart: %+v", b)
	}
}

func TestCommittedOffsetSurvivesReopen(t *testing.T) {
	e := newEnv(t)
	e.register("c", "g", group.StartFromEarliest, "t")
	for i := range testRanges {
		e.produce("t", i, 10, "a")
	}
	if n := countEvents(e.poll("c")); n != 40 {
		t.Fatalf("poll: %d", n)
	}
	if err := e.c.Commit(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	e.c.Close()
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}

	e.st = openStore(t, e.fs, e.clock.Now)
	e.log = e.st
	e.c = e.newCoordinator()
	// Registration is in memory: the consumer must register again.
	if _, err := e.c.Poll(context.Background(), group.PollRequest{ConsumerID: "c"}); !errors.Is(err, broker.ErrNotRegistered) {
		t.Fatalf("poll after restart: %v", err)
	}
	e.register("c", "g", group.StartFromEarliest, "t")
	if n := countEvents(e.poll("c")); n != 0 {
		t.Fatalf("after reopen: %d events redelivered, want 0", n)
	}
	e.produce("t", 1, 1, "b")
	if b := e.poll("c"); countEvents(b) != 1 || b[0].Start != 10 {
		t.Fatalf("after reopen: %+v", b)
	}
}

func TestPollBudget(t *testing.T) {
	e := newEnv(t)
	e.register("c", "g", group.StartFromEarliest, "t")
	for i := range testRanges {
		e.produce("t", i, 10, "a") // events of 18 bytes
	}
	ctx := context.Background()

	b, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c", MaxEvents: 5})
	if err != nil || countEvents(b) != 5 {
		t.Fatalf("MaxEvents 5: %d events, %v", countEvents(b), err)
	}
	b, err = e.c.Poll(ctx, group.PollRequest{ConsumerID: "c", MaxBytes: 100})
	if err != nil || countEvents(b) != 5 {
		t.Fatalf("MaxBytes 100: %d events, %v", countEvents(b), err)
	}
	// At least one event, whatever the budget.
	b, err = e.c.Poll(ctx, group.PollRequest{ConsumerID: "c", MaxBytes: 1})
	if err != nil || countEvents(b) != 1 {
		t.Fatalf("MaxBytes 1: %d events, %v", countEvents(b), err)
	}
	// Options.MaxPollBytes caps MaxBytes.
	e.opts.MaxPollBytes = 40
	c2 := e.newCoordinator()
	if err := c2.Register(ctx, group.Registration{ConsumerID: "d", Group: "h", Topics: []string{"t"}, OnNewGroup: group.StartFromEarliest}); err != nil {
		t.Fatal(err)
	}
	b, err = c2.Poll(ctx, group.PollRequest{ConsumerID: "d", MaxBytes: 1 << 20})
	if err != nil || countEvents(b) != 2 {
		t.Fatalf("MaxPollBytes 40: %d events, %v", countEvents(b), err)
	}
}

// Polls rotate the stream they start with, so a busy stream does not starve
// the others.
func TestPollFairness(t *testing.T) {
	e := newEnv(t)
	e.register("c", "g", group.StartFromEarliest, "t")
	for i := range testRanges {
		e.produce("t", i, 50, "a")
	}
	seen := make(map[uint32]int)
	for range testRanges * 2 {
		b, err := e.c.Poll(context.Background(), group.PollRequest{ConsumerID: "c", MaxEvents: 3})
		if err != nil || len(b) != 1 {
			t.Fatalf("poll: %d batches, %v", len(b), err)
		}
		seen[b[0].Stream.RangeIndex]++
	}
	for i := range testRanges {
		if seen[uint32(i)] != 2 {
			t.Fatalf("streams served: %v, want each twice", seen)
		}
	}
}

func TestTwoMembersSplitAndThirdJoins(t *testing.T) {
	e := newEnv(t)
	e.register("a", "g", group.StartFromEarliest, "t")
	e.register("b", "g", group.StartFromEarliest, "t")
	got := assigned(e.c, "g")
	if !equalU32(got["a"], 0, 2) || !equalU32(got["b"], 1, 3) {
		t.Fatalf("two members: %v", got)
	}
	for i := range testRanges {
		e.produce("t", i, 1, "x")
	}
	for _, id := range []string{"a", "b"} {
		b := e.poll(id)
		if countEvents(b) != 2 {
			t.Fatalf("%s: %d events, want 2", id, countEvents(b))
		}
		for _, batch := range b {
			if owners(e.c, "g")[batch.Stream] != id {
				t.Fatalf("%s read %s, which it does not own", id, batch.Stream)
			}
		}
	}

	e.register("c", "g", group.StartFromEarliest, "t")
	got = assigned(e.c, "g")
	if !equalU32(got["a"], 0, 3) || !equalU32(got["b"], 1) || !equalU32(got["c"], 2) {
		t.Fatalf("three members: %v", got)
	}
	e.check()
	if s := e.c.Stats(); s.Groups[0].Members[2].Streams != 1 {
		t.Fatalf("stats: %+v", s.Groups[0].Members)
	}
	// Stream 3 moved from b to a, stream 2 from a to c: their events were
	// polled but not committed, so the new owners get them again.
	if b := e.poll("c"); countEvents(b) != 1 || b[0].Stream.RangeIndex != 2 {
		t.Fatalf("c: %+v", b)
	}
	b := e.poll("a") // commits stream 0; stream 3 starts from its committed offset
	if countEvents(b) != 1 || b[0].Stream.RangeIndex != 3 || b[0].Start != 0 {
		t.Fatalf("a: %+v", b)
	}
	if off, ok := e.committed("g", e.stream("t", 0)); !ok || off != 1 {
		t.Fatalf("stream 0 kept by a: committed %d %v, want 1", off, ok)
	}

	// More members than streams: the extra ones get nothing.
	for _, id := range []string{"d", "e", "f"} {
		e.register(id, "g", group.StartFromEarliest, "t")
	}
	got = assigned(e.c, "g")
	if len(got) != testRanges {
		t.Fatalf("six members: %v", got)
	}
	if b := e.poll("f"); len(b) != 0 {
		t.Fatalf("member without streams got %+v", b)
	}
	e.check()
}

// Members of one group may subscribe to different topics: each topic is
// dealt to its own subscribers, each stream to the one with the fewest so
// far. a reads all of x, so b, the only other reader of y, gets y.
func TestMixedSubscriptions(t *testing.T) {
	e := newEnv(t)
	e.register("a", "g", group.StartFromEarliest, "x", "y")
	e.register("b", "g", group.StartFromEarliest, "y")
	o := owners(e.c, "g")
	for i := range testRanges {
		if o[e.stream("x", i)] != "a" || o[e.stream("y", i)] != "b" {
			t.Fatalf("x/%d owned by %q, y/%d by %q; want a and b", i, o[e.stream("x", i)], i, o[e.stream("y", i)])
		}
	}
	e.register("c", "g", group.StartFromEarliest, "x", "y")
	if got := assigned(e.c, "g"); len(got["a"]) != 3 || len(got["b"]) != 3 || len(got["c"]) != 2 {
		t.Fatalf("three members: %v, want 3, 3 and 2 streams", got)
	}
	e.check()
}

// The streams of many topics are spread over all the members: each topic
// was dealt from the first member again, so that 8 members of 10 topics of
// 4 streams read 10, 10, 10, 10, 0, 0, 0 and 0 streams.
func TestStreamsOfManyTopicsAreSpreadOverEveryMember(t *testing.T) {
	e := newEnv(t)
	var topics []string
	for i := range 10 {
		topics = append(topics, fmt.Sprintf("t%d", i))
	}
	for i := range 8 {
		e.register(fmt.Sprintf("c%d", i), "g", group.StartFromLatest, topics...)
	}
	for id, streams := range assigned(e.c, "g") {
		if n := len(streams); n != 10*testRanges/8 {
			t.Errorf("%s reads %d streams, want %d", id, n, 10*testRanges/8)
		}
	}
	e.check()
}

// A live group forgets the positions of streams no member reads any more
// (their committed offsets stay in the store): it kept one for every stream
// its members ever read.
func TestLiveGroupForgetsStreamsNoMemberReads(t *testing.T) {
	e := newEnv(t)
	e.register("keeper", "g", group.StartFromEarliest, "base")
	e.produce("old", 0, 3, "x")
	e.register("c", "g", group.StartFromEarliest, "old")
	if n := countEvents(e.poll("c")); n != 3 {
		t.Fatalf("c read %d events of old, want 3", n)
	}
	if err := e.c.Commit(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		e.register("c", "g", group.StartFromLatest, fmt.Sprintf("topic-%d", i))
	}
	for _, g := range e.c.Stats().Groups {
		if g.Group == "g" && len(g.Streams) != 2*testRanges {
			t.Errorf("group g holds %d positions for the 2 topics its members read, want %d", len(g.Streams), 2*testRanges)
		}
	}
	// Read again, the stream resumes from its committed offset.
	e.produce("old", 0, 2, "y")
	e.register("c", "g", group.StartFromLatest, "old")
	if n := countEvents(e.poll("c")); n != 2 {
		t.Errorf("c read %d events of old again, want the 2 after its commit", n)
	}
	e.check()
}

func TestExpiryMovesStreams(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.register("a", "g", group.StartFromEarliest, "t")
	e.register("b", "g", group.StartFromEarliest, "t")
	for i := range testRanges {
		e.produce("t", i, 2, "x")
	}
	if n := countEvents(e.poll("a")); n != 4 {
		t.Fatalf("a: %d", n)
	}
	if err := e.c.Commit(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := countEvents(e.poll("b")); n != 4 {
		t.Fatalf("b: %d", n)
	}
	e.produce("t", 0, 1, "y") // a's stream

	// b keeps polling; a stops.
	for range 2 {
		e.clock.Advance(25 * time.Second)
		e.poll("b")
	}
	if got := assigned(e.c, "g"); len(got) != 2 {
		t.Fatalf("before a's timeout: %v", got)
	}
	e.clock.Advance(25 * time.Second)
	// b resumes a's streams from a's committed offset: only the new event.
	b := e.poll("b")
	if countEvents(b) != 1 || b[0].Start != 2 || b[0].Stream.RangeIndex != 0 {
		t.Fatalf("b after expiry: %+v", b)
	}
	got := assigned(e.c, "g")
	if len(got) != 1 || len(got["b"]) != testRanges {
		t.Fatalf("after a's timeout: %v", got)
	}
	if s := e.c.Stats(); s.Expired != 1 || s.Members != 1 {
		t.Fatalf("stats: %+v", s)
	}
	if _, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "a"}); !errors.Is(err, broker.ErrNotRegistered) {
		t.Fatalf("expired member polls: %v", err)
	}
	e.check()
}

// The background loop expires members without any request.
func TestExpiryInBackground(t *testing.T) {
	e := newEnv(t, func(e *env) { e.opts.MemberTimeout = 40 * time.Millisecond })
	e.register("a", "g", group.StartFromLatest, "t")
	e.clock.Advance(time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for e.c.Stats().Members != 0 {
		if time.Now().After(deadline) {
			t.Fatal("member not expired by the background loop")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A member that polls and disappears without committing: another member
// reads the same events again (at-least-once), and the old owner's position
// is never committed.
func TestAtLeastOnceRedelivery(t *testing.T) {
	e := newEnv(t)
	e.register("a", "g", group.StartFromEarliest, "t")
	for i := range testRanges {
		e.produce("t", i, 5, "x")
	}
	if n := countEvents(e.poll("a")); n != 20 {
		t.Fatalf("a: %d", n)
	}
	e.register("b", "g", group.StartFromEarliest, "t")
	// a lost streams 1 and 3; its next poll commits only 0 and 2.
	if n := countEvents(e.poll("a")); n != 0 {
		t.Fatalf("a again: %d", n)
	}
	for i, want := range []int64{5, 0, 5, 0} {
		off, ok := e.committed("g", e.stream("t", i))
		if !ok || off != want {
			t.Fatalf("stream %d: committed %d %v, want %d", i, off, ok, want)
		}
	}
	// a disappears without committing what it polls next.
	e.produce("t", 0, 1, "y")
	if n := countEvents(e.poll("a")); n != 1 {
		t.Fatalf("a: %d", n)
	}
	if n := countEvents(e.poll("b")); n != 10 {
		t.Fatalf("b got %d events of streams 1 and 3, want 10 again", n)
	}
	e.clock.Advance(45 * time.Second)
	e.poll("b")
	e.clock.Advance(45 * time.Second)
	b := e.poll("b")
	if countEvents(b) != 1 || b[0].Start != 5 || b[0].Stream.RangeIndex != 0 {
		t.Fatalf("b after a expired: %+v, want event 5 of stream 0 again", b)
	}
}

// A poll of a member whose stream moved while it was reading does not get
// the events, and does not commit them.
func TestStaleOwnerDoesNotCommit(t *testing.T) {
	e := newEnv(t)
	e.register("a", "g", group.StartFromEarliest, "t")
	e.produce("t", 1, 3, "x")
	if n := countEvents(e.poll("a")); n != 3 {
		t.Fatalf("a: %d", n)
	}
	e.register("b", "g", group.StartFromEarliest, "t") // takes stream 1
	if err := e.c.Commit(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if off, ok := e.committed("g", e.stream("t", 1)); !ok || off != 0 {
		t.Fatalf("committed %d %v: the old owner's position was committed after the stream moved (want the start 0)", off, ok)
	}
	if err := e.c.Goodbye(context.Background(), "b", true); err != nil {
		t.Fatal(err)
	}
	// Back to a, which starts from the committed offset (the start, 0).
	if b := e.poll("a"); countEvents(b) != 3 || b[0].Start != 0 {
		t.Fatalf("a after b left: %+v", b)
	}
}

func TestStats(t *testing.T) {
	e := newEnv(t)
	e.register("a", "g", group.StartFromEarliest, "t")
	e.produce("t", 0, 7, "x")
	e.poll("a")
	e.poll("a")
	e.produce("t", 0, 3, "y")
	e.poll("a")
	s := e.c.Stats()
	if len(s.Groups) != 1 || len(s.Groups[0].Streams) != testRanges {
		t.Fatalf("stats: %+v", s)
	}
	st0 := s.Groups[0].Streams[0]
	want := group.StreamStats{Stream: e.stream("t", 0), Owner: "a", Committed: 7, ReadPosition: 10, HighWatermark: 10, Lag: 3}
	if st0 != want {
		t.Fatalf("stream 0: %+v, want %+v", st0, want)
	}
	m := s.Groups[0].Members[0]
	if m.ConsumerID != "a" || m.Streams != testRanges || !m.LastSeen.Equal(e.clock.Now()) {
		t.Fatalf("member: %+v", m)
	}
}

func TestClose(t *testing.T) {
	e := newEnv(t)
	e.register("a", "g", group.StartFromLatest, "t")
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	if _, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "a"}); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Poll after Close: %v", err)
	}
	if err := e.c.Register(ctx, group.Registration{ConsumerID: "b", Topics: []string{"t"}}); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Register after Close: %v", err)
	}
}

// A store closed under the coordinator gives ErrUnavailable, not a bare
// store error.
func TestStoreClosed(t *testing.T) {
	e := newEnv(t)
	e.register("a", "g", group.StartFromEarliest, "t")
	e.produce("t", 0, 1, "x")
	e.poll("a")
	e.st.Close()
	_, err := e.c.Poll(context.Background(), group.PollRequest{ConsumerID: "a"})
	if !errors.Is(err, broker.ErrUnavailable) || !errors.Is(err, store.ErrClosed) {
		t.Fatalf("poll on a closed store: %v", err)
	}
}

func equalU32(got []uint32, want ...uint32) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// A consumer that restarts with the same id, within the member timeout,
// does not lose the events its previous instance polled without processing.
func TestRestartWithSameIDRedelivers(t *testing.T) {
	e := newEnv(t)
	e.register("w1", "g", group.StartFromEarliest, "t")
	e.produce("t", 0, 1, "x")
	if n := countEvents(e.poll("w1")); n != 1 {
		t.Fatalf("poll: %d", n)
	}
	// The process dies and starts again: register, poll.
	e.register("w1", "g", group.StartFromEarliest, "t")
	if n := countEvents(e.poll("w1")); n != 1 {
		t.Fatalf("after the restart, poll: %d events, want the 1 uncommitted event again", n)
	}
	// Nothing was committed past it before this poll: a goodbye without
	// commit leaves it for the next member.
	if err := e.c.Goodbye(context.Background(), "w1", false); err != nil {
		t.Fatal(err)
	}
	e.register("w2", "g", group.StartFromEarliest, "t")
	if n := countEvents(e.poll("w2")); n != 1 {
		t.Fatalf("next member: %d events, want 1", n)
	}
}

// The committed offsets of a group without members are deleted once its
// last commit is older than OffsetRetention; a group with a member keeps
// them however old, and a member that joins later starts as in a new group.
func TestOffsetRetention(t *testing.T) {
	e := newEnv(t, func(e *env) {
		e.opts.OffsetRetention = 100 * time.Millisecond
		e.opts.MemberTimeout = 100 * time.Hour // "here" stays a member
	})
	ctx := context.Background()
	e.register("gone", "old", group.StartFromEarliest, "t")
	e.register("here", "live", group.StartFromEarliest, "t")
	e.produce("t", 0, 3, "a")
	e.poll("gone")
	e.poll("here")
	if err := e.c.Goodbye(ctx, "gone", true); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Commit(ctx, "here"); err != nil {
		t.Fatal(err)
	}
	st := e.stream("t", 0)
	// The sweep runs every 10 ms of real time; the fake clock has not
	// moved, so nothing is old enough.
	time.Sleep(100 * time.Millisecond)
	if off, ok := e.committed("old", st); !ok || off != 3 {
		t.Fatalf("before retention: group old at %d, %v", off, ok)
	}
	e.clock.Advance(time.Hour)
	e.waitOffsetGone("old", st, "the offsets of a group without members outlived OffsetRetention")
	if off, ok := e.committed("live", st); !ok || off != 3 {
		t.Fatalf("the group with a member lost its offset: %d, %v", off, ok)
	}
	for _, g := range e.c.Stats().Groups {
		if g.Group == "old" {
			t.Fatalf("stats still list the expired group: %+v", g)
		}
	}
	// Joining the expired group again starts from its onNewGroup.
	e.register("back", "old", group.StartFromLatest, "t")
	e.produce("t", 0, 2, "b")
	if n := countEvents(e.poll("back")); n != 2 {
		t.Fatalf("a member joining the expired group from latest read %d events, want 2", n)
	}
}

// withRetention gives an env a store that deletes chunks older than an hour
// of its clock when the test calls ApplyRetention.
func withRetention(t *testing.T) func(*env) {
	return func(e *env) {
		s, err := store.Open("retained", store.Options{FS: e.fs, RetentionInterval: -1, Sync: store.SyncNever,
			RetentionMaxAge: time.Hour, Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		e.st, e.log = s, s
	}
}

// Lag counts the events a group has still to read: not those that retention
// deleted after the group's committed offset.
func TestLagSkipsDeletedEvents(t *testing.T) {
	e := newEnv(t, withRetention(t))
	e.register("c1", "g", group.StartFromEarliest, "t")
	e.poll("c1") // commits the start, offset 0, of every sub-range
	if err := e.c.Goodbye(context.Background(), "c1", true); err != nil {
		t.Fatal(err)
	}
	e.produce("t", 0, 5, "old")
	e.clock.Advance(2 * time.Hour)
	e.produce("t", 0, 3, "new")
	if _, err := e.st.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	st := e.stream("t", 0)
	if low := e.st.EarliestOffset(st); low != 5 {
		t.Fatalf("retention kept from offset %d, want 5", low)
	}
	found := false
	for _, g := range e.c.Stats().Groups {
		for _, ss := range g.Streams {
			if ss.Stream != st {
				continue
			}
			found = true
			if ss.Committed != 0 || ss.Lag != 3 {
				t.Fatalf("group %s in %s: committed %d, lag %d; want committed 0, lag 3 (the 5 deleted events are not behind it)",
					g.Group, st, ss.Committed, ss.Lag)
			}
		}
	}
	if !found {
		t.Fatalf("stats lack %s: %+v", st, e.c.Stats())
	}
}

// After a restart every group is without members until its consumers
// register again: a group that had members when the broker stopped counts
// from the start, so that one whose last commit is old (its consumers
// alive but idle) keeps its offsets.
func TestOffsetRetentionCountsFromTheStart(t *testing.T) {
	e := newEnv(t, func(e *env) { e.opts.OffsetRetention = 100 * time.Millisecond })
	e.register("c1", "idle", group.StartFromEarliest, "t")
	e.produce("t", 0, 3, "a")
	e.poll("c1")
	if err := e.c.Commit(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	st := e.stream("t", 0)
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Hour) // the broker was down, or the group idle, for long
	e.c = e.newCoordinator()
	time.Sleep(100 * time.Millisecond) // ten sweeps, on a clock that does not move
	if off, ok := e.committed("idle", st); !ok || off != 3 {
		t.Fatalf("offsets of a group last committed long before the start were deleted at the start: %d, %v", off, ok)
	}
	e.clock.Advance(time.Second)
	e.waitOffsetGone("idle", st, "the offsets outlived OffsetRetention counted from the start")
}

// frozenLog refuses writes once dead: the log of a coordinator that
// crashed, which the test leaves running.
type frozenLog struct {
	group.Log
	dead atomic.Bool
}

var errCrashed = errors.New("this coordinator crashed")

func (l *frozenLog) CommitGroupOffset(grp string, st store.Stream, offset int64) error {
	if l.dead.Load() {
		return errCrashed
	}
	return l.Log.CommitGroupOffset(grp, st, offset)
}

func (l *frozenLog) CommitGroupOffsetSoon(grp string, st store.Stream, offset int64) error {
	if l.dead.Load() {
		return errCrashed
	}
	return l.Log.CommitGroupOffsetSoon(grp, st, offset)
}

func (l *frozenLog) SyncGroupOffsets() error {
	if l.dead.Load() {
		return errCrashed
	}
	return l.Log.SyncGroupOffsets()
}

func (l *frozenLog) DeleteGroup(grp string) error {
	if l.dead.Load() {
		return errCrashed
	}
	return l.Log.DeleteGroup(grp)
}

func (l *frozenLog) SetGroupsInactive(records map[string]time.Time) error {
	if l.dead.Load() {
		return errCrashed
	}
	return l.Log.SetGroupsInactive(records)
}

func (l *frozenLog) ClearGroupsInactive() error {
	if l.dead.Load() {
		return errCrashed
	}
	return l.Log.ClearGroupsInactive()
}

// Restarts do not reset offset retention: when a group became inactive is
// recorded in the log, by each sweep (the one at the start included) and at
// Close. A group that lost its members before a stop counts from then; one
// that had members when the broker stopped counts from the next start, and
// later restarts, crashes included, do not move that. A member that joins a
// group recorded inactive clears the record before Register returns.
func TestOffsetRetentionSurvivesRestarts(t *testing.T) {
	var log *frozenLog
	e := newEnv(t, sweptByHand, func(e *env) {
		log = &frozenLog{Log: e.st}
		e.log = log
	})
	ctx := context.Background()
	st := e.stream("t", 0)
	e.produce("t", 0, 3, "a")
	for _, g := range []string{"left", "busy", "back", "quit"} {
		e.register(g+"-1", g, group.StartFromEarliest, "t")
		e.poll(g + "-1")
		if err := e.c.Commit(ctx, g+"-1"); err != nil {
			t.Fatal(err)
		}
	}
	goodbye := func(id string) {
		t.Helper()
		if err := e.c.Goodbye(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	}
	crash := func() {
		log.dead.Store(true) // the crashed coordinator writes nothing more
		log = &frozenLog{Log: e.st}
		e.log = log
		e.c = e.newCoordinator()
	}
	restart := func() {
		t.Helper()
		if err := e.c.Close(); err != nil {
			t.Fatal(err)
		}
		e.c = e.newCoordinator()
	}
	after := func(d time.Duration) {
		e.clock.Advance(d)
		group.SweepOffsets(e.c)
	}
	check := func(when string, kept, gone []string) {
		t.Helper()
		for _, g := range kept {
			if off, ok := e.committed(g, st); !ok || off != 3 {
				t.Fatalf("%s: group %s lost its offsets (%d, %v)", when, g, off, ok)
			}
		}
		for _, g := range gone {
			if _, ok := e.committed(g, st); ok {
				t.Fatalf("%s: group %s kept its offsets", when, g)
			}
		}
	}

	goodbye("left-1") // T0
	goodbye("back-1")
	after(10 * time.Minute) // T0+10: the sweep records left and back
	goodbye("quit-1")
	e.clock.Advance(10 * time.Minute)
	crash() // T0+20 = S1: quit's loss was not recorded; it and busy count from S1
	e.clock.Advance(2 * time.Minute)
	crash()                                                    // T0+22: nothing swept or closed since S1
	e.register("back-2", "back", group.StartFromEarliest, "t") // stays
	inactive, err := e.st.GroupsInactive()
	if err != nil {
		t.Fatal(err)
	}
	if since, ok := inactive["back"]; ok {
		t.Fatalf("Register returned with its group still recorded inactive since %s", since)
	}
	e.register("quit-2", "quit", group.StartFromEarliest, "t")
	e.clock.Advance(5 * time.Minute)
	goodbye("quit-2") // T0+27
	e.clock.Advance(5 * time.Minute)
	restart() // T0+32 = S2: Close records quit at T0+27; back counts from S2
	check("T0+32", []string{"left", "busy", "back", "quit"}, nil)
	after(33 * time.Minute) // T0+65
	check("T0+65: left inactive since T0 across two crashes", []string{"busy", "back", "quit"}, []string{"left"})
	after(16 * time.Minute) // T0+81
	check("T0+81: busy inactive since S1, recorded by its start", []string{"back", "quit"}, []string{"busy"})
	after(7 * time.Minute) // T0+88
	check("T0+88: quit inactive since T0+27, recorded by Close", []string{"back"}, []string{"quit"})
	after(5 * time.Minute) // T0+93
	check("T0+93: back inactive since S2", nil, []string{"back"})
}

// gatedRecords, once armed, holds SetGroupsInactive until release is
// closed, and closes entered when it is called. With fail set, it writes
// and then reports a failure, as a write whose fsync failed may have.
type gatedRecords struct {
	group.Log
	armed   atomic.Bool
	fail    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedRecords) SetGroupsInactive(records map[string]time.Time) error {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
	err := g.Log.SetGroupsInactive(records)
	if err == nil && g.fail.Load() {
		err = errors.New("fsync failed")
	}
	return err
}

// A member that joins a group while a sweep records it inactive waits for
// that write and then clears it: the record of a group with a member must
// not stay behind for the next start to count from.
func TestRegisterDuringARecordClearsIt(t *testing.T) {
	gr := &gatedRecords{entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, sweptByHand, func(e *env) {
		gr.Log = e.st
		e.log = gr
	})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(gr.release) }) }
	t.Cleanup(func() { gr.armed.Store(false); release() }) // before the coordinator's Close
	e.leave("c1", "g")
	gr.armed.Store(true)
	swept := make(chan struct{})
	go func() {
		group.SweepOffsets(e.c)
		close(swept)
	}()
	select {
	case <-gr.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the sweep did not record the group without members")
	}
	registered := make(chan error, 1)
	go func() {
		registered <- e.c.Register(context.Background(), group.Registration{ConsumerID: "c2", Group: "g", Topics: []string{"t"}})
	}()
	// Release the write only once c2 has joined (it then waits for the
	// write to clear the record).
	for deadline := time.Now().Add(10 * time.Second); e.c.Stats().Members == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("c2 did not join")
		}
	}
	release()
	if err := <-registered; err != nil {
		t.Fatal(err)
	}
	<-swept
	inactive, err := e.st.GroupsInactive()
	if err != nil {
		t.Fatal(err)
	}
	if since, ok := inactive["g"]; ok {
		t.Fatalf("group g has a member and is recorded inactive since %s", since)
	}
}

// A record whose write failed may be on disk all the same: a member that
// joins the group then clears it.
func TestRegisterClearsARecordWhoseWriteFailed(t *testing.T) {
	gr := &gatedRecords{}
	e := newEnv(t, sweptByHand, func(e *env) {
		gr.Log = e.st
		e.log = gr
	})
	e.leave("c1", "g")
	gr.fail.Store(true)
	group.SweepOffsets(e.c) // writes g's record, reports a failure
	gr.fail.Store(false)
	if inactive, _ := e.st.GroupsInactive(); len(inactive) != 1 {
		t.Fatalf("records after the failed write: %v", inactive)
	}
	e.register("c2", "g", group.StartFromEarliest, "t")
	inactive, err := e.st.GroupsInactive()
	if err != nil {
		t.Fatal(err)
	}
	if since, ok := inactive["g"]; ok {
		t.Fatalf("group g has a member and is recorded inactive since %s", since)
	}
}

// blockingDelete holds DeleteGroup until release is closed.
type blockingDelete struct {
	*store.Store
	started chan struct{}
	release chan struct{}
}

func (b *blockingDelete) DeleteGroup(group string) error {
	close(b.started)
	<-b.release
	return b.Store.DeleteGroup(group)
}

// Offset retention deletes a group without holding the coordinator's lock
// (a synced write may be slow): polls of other groups and Stats go on, and
// a Register into the group being deleted waits for the delete, then
// starts it as a new group.
func TestOffsetRetentionDeletesWithoutTheLock(t *testing.T) {
	var bd *blockingDelete
	e := newEnv(t, func(e *env) {
		e.opts.OffsetRetention = 100 * time.Millisecond
		e.opts.MemberTimeout = 100 * time.Hour
		bd = &blockingDelete{Store: e.st, started: make(chan struct{}), release: make(chan struct{})}
		e.log = bd
	})
	ctx := context.Background()
	e.register("gone", "old", group.StartFromEarliest, "t")
	e.register("here", "live", group.StartFromEarliest, "t")
	e.produce("t", 0, 3, "a")
	e.poll("gone")
	if err := e.c.Goodbye(ctx, "gone", true); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	select {
	case <-bd.started:
	case <-time.After(10 * time.Second):
		t.Fatal("offset retention did not start deleting the group without members")
	}
	// The delete is held: the live group polls, and Stats answers.
	e.produce("t", 0, 2, "b")
	if n := countEvents(e.poll("here")); n != 5 {
		t.Fatalf("a live group's poll during the delete read %d events, want 5", n)
	}
	e.c.Stats()
	registered := make(chan error, 1)
	go func() {
		registered <- e.c.Register(ctx, group.Registration{ConsumerID: "back", Group: "old", Topics: []string{"t"}, OnNewGroup: group.StartFromLatest})
	}()
	select {
	case err := <-registered:
		t.Fatalf("Register into the group being deleted returned before the delete: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(bd.release)
	if err := <-registered; err != nil {
		t.Fatal(err)
	}
	e.produce("t", 0, 1, "c")
	if n := countEvents(e.poll("back")); n != 1 {
		t.Fatalf("the group joined after its offsets expired read %d events, want 1 (from latest)", n)
	}
}

// A registration is bounded in sub-ranges, not only in topics: with many
// sub-ranges per topic, fewer topics fit, and the error says how many.
func TestRegistrationStreamLimit(t *testing.T) {
	const ranges = 1024
	e := newEnv(t, func(e *env) {
		e.ring = broker.NewRing(ranges)
		e.opts.Streams = e.ring.Streams
	})
	most := group.MaxStreams / ranges
	err := e.c.Register(context.Background(), group.Registration{ConsumerID: "c", Topics: testgroup.TopicNames(most + 1)})
	want := fmt.Sprintf("invalid parameter: topic: %d topics of %d sub-ranges each are %d sub-ranges in one registration, the maximum is %d (%d topics at most)",
		most+1, ranges, (most+1)*ranges, group.MaxStreams, most)
	if !errors.Is(err, broker.ErrInvalidParameter) || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	if s := e.c.Stats(); s.Members != 0 {
		t.Fatalf("a refused registration registered: %+v", s)
	}
	// Repeats count once here (MaxTopics counts them as named).
	e.register("c", "g", group.StartFromLatest, append(testgroup.TopicNames(most), testgroup.TopicNames(most)...)...)
	if s := e.c.Stats(); s.Members != 1 {
		t.Fatalf("a registration of %d topics: %+v", most, s)
	}
}
