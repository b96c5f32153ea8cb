package group_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/internal/testlog"
	"github.com/floe-streams/floe/store"
)

// corruptStream fails every read of one stream with store.ErrCorrupt while
// broken is set, as the store does for a chunk that fails its checks until
// the data is repaired. Like the store, whose read copies the chunks before
// the bad one into the caller's buffer before it fails, it extends the
// buffer with garbage before it fails.
type corruptStream struct {
	group.Log
	bad    store.Stream
	broken atomic.Bool
	reads  atomic.Int64 // reads of bad
}

func (l *corruptStream) ReadInto(buf []byte, st store.Stream, from int64, maxBytes, maxEvents int) (store.Batch, []byte, error) {
	if st != l.bad {
		return l.Log.ReadInto(buf, st, from, maxBytes, maxEvents)
	}
	l.reads.Add(1)
	if !l.broken.Load() {
		return l.Log.ReadInto(buf, st, from, maxBytes, maxEvents)
	}
	if cap(buf)-len(buf) >= 4 {
		buf = append(buf, "####"...)
	}
	return store.Batch{}, buf, fmt.Errorf("store: read %s offset %d: %w: checksum mismatch", st, from, store.ErrCorrupt)
}

// logLines collects the lines a coordinator logs.
type logLines struct{ testlog.Buffer }

// count is the number of lines that contain s.
func (l *logLines) count(s string) int {
	n := 0
	for line := range strings.Lines(l.String()) {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// newCorruptEnv is an env whose stream t/2 can be broken, logging to the
// returned lines.
func newCorruptEnv(t *testing.T) (*env, *corruptStream, *logLines) {
	var cl *corruptStream
	lines := &logLines{}
	e := newEnv(t, func(e *env) {
		cl = &corruptStream{Log: e.st}
		e.log = cl
		e.opts.Logger = slog.New(slog.NewTextHandler(lines, nil))
		e.opts.MemberTimeout = 100 * time.Hour // the clock moves minutes
	})
	cl.bad = e.stream("t", 2)
	return e, cl, lines
}

// A sub-range that does not read (corrupt data) fails only itself: the
// consumer's other sub-ranges are delivered as usual, from a buffer the
// failed read wrote into too, and the broken one keeps its position,
// committed or not, until it reads again. A poll in which no other
// sub-range has events fails with the error, so a consumer whose only
// data is broken still sees it.
func TestPollReadErrorFailsOnlyItsStream(t *testing.T) {
	e, cl, _ := newCorruptEnv(t)
	ctx := context.Background()
	e.register("c", "g", group.StartFromEarliest, "t")
	e.produce("t", 2, 3, "bad")
	cl.broken.Store(true)

	// Nothing but the broken sub-range has events: the poll fails, at
	// once even for a long poll.
	start := time.Now()
	_, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c", Wait: 5 * time.Second})
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("poll with only a broken sub-range: %v, want ErrCorrupt", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the failing long poll took %v", took)
	}

	for i := range testRanges {
		if i != 2 {
			e.produce("t", i, 5, fmt.Sprintf("ok%d", i))
		}
	}
	got := map[uint32]int{}
	for poll := 0; got[0]+got[1]+got[3] < 15; poll++ {
		if poll == 20 {
			t.Fatalf("20 polls delivered %v of the healthy sub-ranges' events", got)
		}
		// Small answers, so that each stream comes first in some poll
		// (the first one read rotates), with a buffer lent as the REST
		// API does.
		lent := 0
		b, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c", MaxEvents: 3, Buffer: func(n int) []byte {
			lent++
			return make([]byte, 0, n)
		}})
		if err != nil {
			t.Fatalf("poll %d: %v; the healthy sub-ranges have events", poll, err)
		}
		for _, batch := range b {
			if batch.Stream == cl.bad {
				t.Fatalf("poll %d delivered %d events of the broken sub-range", poll, len(batch.Events))
			}
			ri := batch.Stream.RangeIndex
			for k, ev := range batch.Events {
				want := fmt.Sprintf(`{"tag":"ok%d","k":%d}`, ri, batch.Start+int64(k))
				if string(ev) != want {
					t.Fatalf("poll %d: %s offset %d is %q, want %q", poll, batch.Stream, batch.Start+int64(k), ev, want)
				}
			}
			if batch.Start != int64(got[ri]) {
				t.Fatalf("poll %d: %s starts at %d, want %d", poll, batch.Stream, batch.Start, got[ri])
			}
			got[ri] += len(batch.Events)
		}
		if lent > 1 {
			t.Fatalf("poll %d lent %d buffers", poll, lent)
		}
	}
	for i := range testRanges {
		if want := map[bool]int{true: 0, false: 5}[i == 2]; got[uint32(i)] != want {
			t.Fatalf("events delivered by sub-range: %v; want 5 of each healthy one, none of t/2", got)
		}
	}
	if n := cl.reads.Load(); n < 2 {
		t.Fatalf("the broken sub-range was read %d times", n)
	}

	// The healthy sub-ranges are drained: the broken one's error is
	// answered again. Its position never moved.
	if _, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c"}); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("poll after the healthy sub-ranges are drained: %v, want ErrCorrupt", err)
	}
	if err := e.c.Commit(ctx, "c"); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	for i := range testRanges {
		want := map[bool]int64{true: 0, false: 5}[i == 2]
		if off, _ := e.committed("g", e.stream("t", i)); off != want {
			t.Fatalf("t/%d committed at %d, want %d", i, off, want)
		}
	}

	// Repaired, it is delivered from where it stopped.
	cl.broken.Store(false)
	b := e.poll("c")
	if len(b) != 1 || b[0].Stream != cl.bad || b[0].Start != 0 || len(b[0].Events) != 3 ||
		string(b[0].Events[0]) != `{"tag":"bad","k":0}` {
		t.Fatalf("poll once repaired: %v, want t/2 [0,3)", describe(b))
	}
	e.check()
}

// A failed read is logged, as a consumer that gets the other sub-ranges'
// events does not see it: when the sub-range starts failing, then at most
// once a minute while it keeps failing (its owner may poll many times a
// second), and when it reads again.
func TestPollReadErrorIsLogged(t *testing.T) {
	e, cl, lines := newCorruptEnv(t)
	ctx := context.Background()
	e.register("c", "g", group.StartFromEarliest, "t")
	e.produce("t", 2, 1, "bad")
	cl.broken.Store(true)
	const failed, again = "does not read", "readable again"

	polls := 0
	poll := func() {
		t.Helper()
		polls++
		e.produce("t", 0, 1, "ok")
		b, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c"})
		if err != nil || countEvents(b) != 1 {
			t.Fatalf("poll %d: %v %v, want t/0's event", polls, describe(b), err)
		}
	}
	for range 10 {
		poll()
	}
	if n := lines.count(failed); n != 1 {
		t.Fatalf("%d polls of a broken sub-range logged %d failures, want 1:\n%s", polls, n, lines.String())
	}
	for _, want := range []string{"level=ERROR", `stream=t/` + fmt.Sprint(cl.bad.Token) + "/2/", "offset=0", "err=", "corrupt", "consumer=c", "group=g"} {
		if lines.count(want) == 0 {
			t.Fatalf("the log does not say %q:\n%s", want, lines.String())
		}
	}
	e.clock.Advance(61 * time.Second)
	poll()
	poll()
	if n := lines.count(failed); n != 2 {
		t.Fatalf("a minute later, %d failures logged, want 2:\n%s", n, lines.String())
	}
	if n := lines.count("failedReads=11"); n != 1 {
		t.Fatalf("the reminder does not count 11 failed reads:\n%s", lines.String())
	}

	cl.broken.Store(false)
	if b := e.poll("c"); countEvents(b) != 1 {
		t.Fatalf("poll once repaired: %v", describe(b))
	}
	if lines.count(again) != 1 || lines.count("failedReads=12") != 1 {
		t.Fatalf("the recovery is not logged once, with the 12 failed reads:\n%s", lines.String())
	}
	poll()
	if lines.count(failed) != 2 || lines.count(again) != 1 {
		t.Fatalf("healthy reads logged:\n%s", lines.String())
	}
}
