package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floe-streams/floe/internal/testlog"
)

func TestMaxTopics(t *testing.T) {
	fs := vfs.NewMem()
	opts := memOpts(t, fs)
	opts.MaxTopics = 2
	s := openT(t, "db", opts)
	ctx := context.Background()

	mustAppend(t, s, testStream("a", 0), makeEvents("a", 1))
	mustAppend(t, s, testStream("b", 0), makeEvents("b", 1))
	_, err := s.Append(ctx, testStream("c", 0), makeEvents("c", 3))
	if !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("third topic: %v, want ErrTooManyTopics", err)
	}
	const want = `store: too many topics: "c" would be topic 3, over the limit of 2`
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if got := s.Streams("c"); len(got) != 0 || s.HighWatermark(testStream("c", 0)) != 0 {
		t.Errorf("refused topic has streams %v, high watermark %d", got, s.HighWatermark(testStream("c", 0)))
	}
	// The topics it holds take new streams and events.
	mustAppend(t, s, testStream("a", 1), makeEvents("a1", 2))
	mustAppend(t, s, testStream("b", 0), makeEvents("b", 1))
	m := s.Metrics()
	if m.Topics != 2 || m.MaxTopics != 2 || m.AppendErrors != 1 {
		t.Errorf("metrics: %d topics of at most %d, %d append errors; want 2 of 2, 1", m.Topics, m.MaxTopics, m.AppendErrors)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened with a lower limit, the store keeps its topics and takes no
	// new one; without a limit it takes them.
	opts.MaxTopics = 1
	s = openT(t, "db", opts)
	mustAppend(t, s, testStream("b", 2), makeEvents("b2", 1))
	_, err = s.Append(ctx, testStream("c", 0), makeEvents("c", 1))
	if want := `store: too many topics: "c" would be topic 3, over the limit of 1`; err == nil || err.Error() != want {
		t.Fatalf("new topic over a lowered limit: %v, want %s", err, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opts.MaxTopics = -1
	s = openT(t, "db", opts)
	mustAppend(t, s, testStream("c", 0), makeEvents("c", 1))
	if m := s.Metrics(); m.Topics != 3 || m.MaxTopics != -1 {
		t.Errorf("no limit: %d topics, limit %d; want 3, -1", m.Topics, m.MaxTopics)
	}
}

// TestMaxTopicsConcurrent appends to new topics from many goroutines at once,
// so that the refused appends share batches with accepted ones: exactly the
// limit is accepted, and every accepted append, of any topic, is readable.
func TestMaxTopicsConcurrent(t *testing.T) {
	opts := memOpts(t, vfs.NewMem())
	opts.MaxTopics = 5
	s := openT(t, "db", opts)
	mustAppend(t, s, testStream("held", 0), makeEvents("held", 1))

	const appenders = 32
	var wg sync.WaitGroup
	errs := make([]error, appenders)
	heldErrs := make([]error, appenders)
	for i := range appenders {
		wg.Go(func() {
			_, errs[i] = s.Append(context.Background(), testStream(fmt.Sprintf("t%d", i), 0), makeEvents("x", 2))
		})
		wg.Go(func() {
			_, heldErrs[i] = s.Append(context.Background(), testStream("held", 0), makeEvents("held", 1))
		})
	}
	wg.Wait()
	accepted := 0
	for i, err := range errs {
		switch {
		case err == nil:
			accepted++
			st := testStream(fmt.Sprintf("t%d", i), 0)
			b, err := s.Read(st, 0, 1<<20, 100)
			if err != nil || len(b.Events) != 2 {
				t.Errorf("accepted topic t%d: read %d events, %v", i, len(b.Events), err)
			}
		case !errors.Is(err, ErrTooManyTopics):
			t.Errorf("t%d: %v", i, err)
		}
		if heldErrs[i] != nil {
			t.Errorf("append %d to a held topic: %v", i, heldErrs[i])
		}
	}
	if accepted != 4 {
		t.Errorf("%d new topics accepted, want 4 (limit 5, one held)", accepted)
	}
	if hwm := s.HighWatermark(testStream("held", 0)); hwm != 1+appenders {
		t.Errorf("held topic's high watermark %d, want %d", hwm, 1+appenders)
	}
}

// The operator learns from the log that the limit was reached: once, at the
// first refused topic (not at every refused append), and at Open when the
// store already holds as many topics as it may, as after an upgrade to the
// default limit or a restart with a lower one.
func TestMaxTopicsIsLogged(t *testing.T) {
	fs := vfs.NewMem()
	var logs testlog.Buffer
	opts := memOpts(t, fs)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	opts.MaxTopics = 2
	s := openT(t, "db", opts)
	mustAppend(t, s, testStream("a", 0), makeEvents("a", 1))
	if strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("a warning below the limit:\n%s", logs.String())
	}
	mustAppend(t, s, testStream("b", 0), makeEvents("b", 1))
	for _, topic := range []string{"c", "d", "c"} {
		if _, err := s.Append(context.Background(), testStream(topic, 0), makeEvents(topic, 1)); !errors.Is(err, ErrTooManyTopics) {
			t.Fatalf("topic %s: %v, want ErrTooManyTopics", topic, err)
		}
	}
	if n := strings.Count(logs.String(), "refusing a new topic"); n != 1 || !strings.Contains(logs.String(), `topic=c topics=2 max_topics=2`) {
		t.Errorf("%d warnings of a refused topic, want 1 naming c:\n%s", n, logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	opts.MaxTopics = 1
	logs = testlog.Buffer{}
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s = openT(t, "db", opts)
	if !strings.Contains(logs.String(), "level=WARN msg=\"store: holds as many topics as it may") ||
		!strings.Contains(logs.String(), "topics=2 max_topics=1") {
		t.Errorf("no warning at Open of a store at its limit:\n%s", logs.String())
	}
}
