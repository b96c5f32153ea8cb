package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// syncGate holds every WAL fsync while it is closed.
type syncGate struct {
	mu      sync.Mutex
	open    chan struct{}
	waiting atomic.Int32
}

func newSyncGate() *syncGate {
	g := &syncGate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *syncGate) hold() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *syncGate) release() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

// MaybeError implements errorfs.Injector: it blocks WAL syncs.
func (g *syncGate) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		if strings.HasSuffix(op.Path, ".log") {
			g.mu.Lock()
			ch := g.open
			g.mu.Unlock()
			g.waiting.Add(1)
			<-ch
			g.waiting.Add(-1)
		}
	}
	return nil
}

func (g *syncGate) String() string { return "syncGate" }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type appendResult struct {
	first int64
	err   error
}

func appendAsync(s *Store, ctx context.Context, st Stream, events [][]byte) <-chan appendResult {
	ch := make(chan appendResult, 1)
	go func() {
		first, err := s.Append(ctx, st, events)
		ch <- appendResult{first, err}
	}()
	return ch
}

// TestCancelWhileQueued checks context handling: an append cancelled while
// queued returns the context error and consumes no offset; an append
// cancelled while its commit syncs gets the commit's result.
func TestCancelWhileQueued(t *testing.T) {
	gate := newSyncGate()
	opts := memOpts(t, errorfs.Wrap(vfs.NewMem(), gate))
	opts.MaxInflightCommits = 1
	opts.MaxBatchBytes = 1 // one append per batch: the next one stays queued
	s := openT(t, "db", opts)
	st := testStream("cancel", 0)
	mustAppend(t, s, st, makeEvents("warm", 1)) // offset 0

	gate.hold()
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	evA := makeEvents("A", 3)
	resA := appendAsync(s, ctxA, st, evA)
	waitFor(t, "A's fsync", func() bool { return gate.waiting.Load() > 0 })

	// D, of another stream, goes into the batch built while A syncs (the
	// committer creates its stream state as it takes it) and fills it.
	stD := testStream("cancel", 1)
	resD := appendAsync(s, context.Background(), stD, makeEvents("D", 2))
	waitFor(t, "D in the next batch", func() bool { return s.state(stD) != nil })

	ctxB, cancelB := context.WithCancel(context.Background())
	resB := appendAsync(s, ctxB, st, makeEvents("B", 5))
	waitFor(t, "B queued", func() bool { return len(s.queue) == 1 })
	cancelB()
	select {
	case r := <-resB:
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled queued append: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled queued append did not return while the commit before it syncs")
	}

	cancelA()
	select {
	case r := <-resA:
		t.Fatalf("append in a syncing commit returned %+v before the sync", r)
	case <-time.After(50 * time.Millisecond):
	}
	if got := s.HighWatermark(st); got != 1 {
		t.Fatalf("hwm = %d before the sync, want 1", got)
	}
	if b, _ := s.Read(st, 0, 0, 0); len(b.Events) != 1 {
		t.Fatalf("%d events visible before the sync, want 1", len(b.Events))
	}
	gate.release()
	if r := <-resA; r.err != nil || r.first != 1 {
		t.Fatalf("append A = %+v, want offset 1 despite its cancelled context", r)
	}
	if r := <-resD; r.err != nil || r.first != 0 {
		t.Fatalf("append D = %+v, want offset 0", r)
	}
	evC := makeEvents("C", 2)
	if first := mustAppend(t, s, st, evC); first != 4 {
		t.Fatalf("append after the cancelled one at %d, want 4 (no gap)", first)
	}
	want := slices.Concat(makeEvents("warm", 1), evA, evC)
	if _, got := readAll(t, s, st, 0); !equalEvents(got, want) {
		t.Fatalf("events = %q, want %q", got, want)
	}
}

// TestBudgetBackpressure checks that Append waits, honoring its context,
// when MaxQueuedBytes of appends are already queued or committing.
func TestBudgetBackpressure(t *testing.T) {
	gate := newSyncGate()
	opts := memOpts(t, errorfs.Wrap(vfs.NewMem(), gate))
	opts.MaxInflightCommits = 1
	opts.MaxAppendBytes = 1 << 10
	opts.MaxQueuedBytes = 1 << 10
	s := openT(t, "db", opts)
	st := testStream("budget", 0)
	gate.hold()
	res := appendAsync(s, context.Background(), st, [][]byte{make([]byte, 900)})
	waitFor(t, "the first fsync", func() bool { return gate.waiting.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := s.Append(ctx, st, [][]byte{make([]byte, 900)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append over budget: %v, want a deadline error", err)
	}
	gate.release()
	if r := <-res; r.err != nil {
		t.Fatal(r.err)
	}
	if first := mustAppend(t, s, st, [][]byte{make([]byte, 900)}); first != 1 {
		t.Fatalf("append after backpressure at %d, want 1", first)
	}
}

// TestCommitFailure injects WAL write errors: the appends of the failed
// commit get the error, none of their events becomes visible (also after a
// reopen), the store refuses later writes until reopened, and offsets stay
// dense.
func TestCommitFailure(t *testing.T) {
	mem := vfs.NewMem()
	var failing atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errorfs.ErrInjected
		}
		return nil
	})
	opts := memOpts(t, errorfs.Wrap(mem, inj))
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	st := testStream("fail", 0)
	good := makeEvents("good", 3)
	mustAppend(t, s, st, good)

	checkFailedCommit(t, s, st, good, &failing)
	_ = s.Close() // Pebble reports the WAL error again

	s = openT(t, "db", memOpts(t, mem))
	if got := s.HighWatermark(st); got != 3 {
		t.Fatalf("hwm after reopen = %d, want 3", got)
	}
	if _, got := readAll(t, s, st, 0); !equalEvents(got, good) {
		t.Fatalf("events after reopen = %q", got)
	}
	if first := mustAppend(t, s, st, makeEvents("again", 1)); first != 3 {
		t.Fatalf("append after reopen at %d, want 3", first)
	}
}

// TestCloseFailsQueued checks that Close fails appends still queued with
// ErrClosed and completes those already committing or in the batch being
// built.
func TestCloseFailsQueued(t *testing.T) {
	gate := newSyncGate()
	opts := memOpts(t, errorfs.Wrap(vfs.NewMem(), gate))
	opts.MaxInflightCommits = 1
	opts.MaxBatchBytes = 1 // one append per batch: the next one stays queued
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	st := testStream("close", 0)
	gate.hold()
	resA := appendAsync(s, context.Background(), st, makeEvents("A", 1))
	waitFor(t, "A's fsync", func() bool { return gate.waiting.Load() > 0 })
	stD := testStream("close", 1)
	resD := appendAsync(s, context.Background(), stD, makeEvents("D", 1))
	waitFor(t, "D in the next batch", func() bool { return s.state(stD) != nil })
	resB := appendAsync(s, context.Background(), st, makeEvents("B", 1))
	waitFor(t, "B queued", func() bool { return len(s.queue) == 1 })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if r := <-resB; !errors.Is(r.err, ErrClosed) {
		t.Fatalf("queued append at Close: %+v, want ErrClosed", r)
	}
	gate.release()
	if r := <-resA; r.err != nil || r.first != 0 {
		t.Fatalf("committing append at Close: %+v", r)
	}
	if r := <-resD; r.err != nil || r.first != 0 {
		t.Fatalf("append in the batch built at Close: %+v", r)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestFsyncFailure checks a WAL whose writes succeed but whose fsync fails:
// the appends of that commit get ErrWriteFailed, nothing of them becomes
// visible in this process, the store refuses writes until reopened, and
// after a reopen the stream is dense: the failed chunk is either wholly
// there (the kernel wrote it anyway) or wholly gone (a crash dropped the
// unsynced write).
func TestFsyncFailure(t *testing.T) {
	fs := vfs.NewCrashableMem()
	var failing atomic.Bool
	inj := walSyncFails(&failing)
	opts := memOpts(t, errorfs.Wrap(fs, inj))
	var reported []error
	opts.OnWriteFailure = func(err error) { reported = append(reported, err) }
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	st := testStream("fsync", 0)
	good := makeEvents("good", 3)
	mustAppend(t, s, st, good)
	if err := s.WriteErr(); err != nil {
		t.Fatalf("WriteErr of a healthy store: %v", err)
	}

	lost := checkFailedCommit(t, s, st, good, &failing)
	if err := s.WriteErr(); !errors.Is(err, ErrWriteFailed) || !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("WriteErr after a failed fsync: %v", err)
	}
	// Read by the test goroutine after the appends that followed the
	// failure returned: the syncer wrote it before acknowledging them.
	if len(reported) != 1 || !errors.Is(reported[0], ErrWriteFailed) || !errors.Is(reported[0], errorfs.ErrInjected) {
		t.Fatalf("OnWriteFailure calls: %v, want one ErrWriteFailed", reported)
	}
	// A crash now drops what was never synced: the failed chunk is gone.
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	_ = s.Close() // Pebble reports the sync error again

	for _, c := range []struct {
		name string
		fs   vfs.FS
		want [][]byte
	}{
		{"crash", crashed, good},
		// Without a crash the write reached the file: the chunk is back, whole.
		{"reopen", fs, slices.Concat(good, lost)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openT(t, "db", memOpts(t, c.fs))
			want := int64(len(c.want))
			if got := s.HighWatermark(st); got != want {
				t.Fatalf("hwm after reopen = %d, want %d", got, want)
			}
			if _, got := readAll(t, s, st, 0); !equalEvents(got, c.want) {
				t.Fatalf("events after reopen = %q, want %q", got, c.want)
			}
			if first := mustAppend(t, s, st, makeEvents("again", 1)); first != want {
				t.Fatalf("append after reopen at %d, want %d", first, want)
			}
		})
	}
}

// TestFsyncFailureRefusesNextBatch checks the batch built while a commit
// syncs: when that fsync fails, the batch is refused (ErrWritesRefused,
// nothing of it written) instead of being applied to the broken WAL, so its
// events are not found even after a reopen.
func TestFsyncFailureRefusesNextBatch(t *testing.T) {
	fs := vfs.NewMem()
	gate := newSyncGate()
	var failing atomic.Bool
	fails := walSyncFails(&failing)
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		_ = gate.MaybeError(op) // waits while the gate is held
		return fails.MaybeError(op)
	})
	opts := memOpts(t, errorfs.Wrap(fs, inj))
	opts.MaxInflightCommits = 1
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	st := testStream("refuse", 0)
	good := makeEvents("good", 2)
	mustAppend(t, s, st, good)

	gate.hold()
	resA := appendAsync(s, context.Background(), st, makeEvents("A", 1))
	waitFor(t, "A's fsync", func() bool { return gate.waiting.Load() > 0 })
	stB := testStream("refuse", 1)
	resB := appendAsync(s, context.Background(), stB, makeEvents("B", 2))
	waitFor(t, "B in the next batch", func() bool { return s.state(stB) != nil })
	failing.Store(true)
	gate.release()
	if r := <-resA; !errors.Is(r.err, ErrWriteFailed) || errors.Is(r.err, ErrWritesRefused) {
		t.Fatalf("append whose fsync failed: %+v, want ErrWriteFailed (outcome unknown)", r)
	}
	if r := <-resB; !errors.Is(r.err, ErrWritesRefused) {
		t.Fatalf("append built during the failed fsync: %+v, want ErrWritesRefused", r)
	}
	if got := s.HighWatermark(stB); got != 0 {
		t.Fatalf("hwm of the refused stream = %d, want 0", got)
	}
	failing.Store(false)
	_ = s.Close() // Pebble reports the sync error again

	s = openT(t, "db", memOpts(t, fs))
	if got := s.HighWatermark(stB); got != 0 {
		t.Fatalf("hwm of the refused stream after reopen = %d, want 0 (nothing written)", got)
	}
	if _, got := readAll(t, s, st, 0); len(got) < len(good) || !equalEvents(got[:len(good)], good) {
		t.Fatalf("events after reopen = %q, want %q first", got, good)
	}
}

// TestGroupOffsetFsyncFailure checks that a WAL fsync failing under a group
// offset commit (not an append) also stops writes: the commit fails with
// ErrWriteFailed, WriteErr and OnWriteFailure report it, appends are refused.
func TestGroupOffsetFsyncFailure(t *testing.T) {
	var failing atomic.Bool
	inj := walSyncFails(&failing)
	opts := memOpts(t, errorfs.Wrap(vfs.NewMem(), inj))
	var reported atomic.Int32
	opts.OnWriteFailure = func(error) { reported.Add(1) }
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := testStream("offsets", 0)
	if err := s.CommitGroupOffset("g", st, 1); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	if err := s.CommitGroupOffset("g", st, 2); !errors.Is(err, ErrWriteFailed) || !errors.Is(err, errorfs.ErrInjected) || errors.Is(err, ErrWritesRefused) {
		t.Fatalf("group commit with a failing fsync: %v", err)
	}
	failing.Store(false)
	if err := s.WriteErr(); !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("WriteErr after a failed group commit: %v", err)
	}
	if n := reported.Load(); n != 1 {
		t.Fatalf("OnWriteFailure called %d times, want 1", n)
	}
	if err := s.CommitGroupOffset("g", st, 3); !errors.Is(err, ErrWritesRefused) || !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("group commit after a failure: %v", err)
	}
	if _, err := s.Append(context.Background(), st, makeEvents("x", 1)); !errors.Is(err, ErrWritesRefused) {
		t.Fatalf("append after a failed group commit: %v", err)
	}
	if n := reported.Load(); n != 1 {
		t.Fatalf("OnWriteFailure called %d times, want 1", n)
	}
}

// walSyncFails fails every WAL fsync while failing is set; writes succeed.
func walSyncFails(failing *atomic.Bool) errorfs.Injector {
	return errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if failing.Load() && strings.HasSuffix(op.Path, ".log") {
				return errorfs.ErrInjected
			}
		}
		return nil
	})
}

// checkFailedCommit appends two events of st while failing is set (s holds
// good in st) and checks that the append fails with the injected error,
// leaves nothing visible, and that a later append is refused
// (ErrWritesRefused) even once the disk works again. It returns the events of the failed append.
func checkFailedCommit(t *testing.T, s *Store, st Stream, good [][]byte, failing *atomic.Bool) [][]byte {
	t.Helper()
	failing.Store(true)
	lost := makeEvents("lost", 2)
	if _, err := s.Append(context.Background(), st, lost); !errors.Is(err, ErrWriteFailed) || !errors.Is(err, errorfs.ErrInjected) || errors.Is(err, ErrWritesRefused) {
		t.Fatalf("append with a failing WAL: %v", err)
	}
	if got, want := s.HighWatermark(st), int64(len(good)); got != want {
		t.Fatalf("hwm after a failed commit = %d, want %d", got, want)
	}
	if _, got := readAll(t, s, st, 0); !equalEvents(got, good) {
		t.Fatalf("events after a failed commit = %q", got)
	}
	failing.Store(false)
	if _, err := s.Append(context.Background(), st, makeEvents("later", 1)); !errors.Is(err, ErrWritesRefused) || !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("append after a failed commit: %v, want ErrWritesRefused", err)
	}
	return lost
}
