package group_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/store"
)

// A Commit of the previous instance of a consumer, slow in the store, ends
// after the consumer (restarted with other topics) registered again and
// polled: it commits what the NEW instance has just been given and has not
// acknowledged. If the new instance dies before processing those events,
// its next registration resumes past them: events skipped.
func TestStaleCommitDoesNotCommitTheNewInstancesRead(t *testing.T) {
	e, bl := newBlockedEnv(t, "b")
	ctx := context.Background()

	// Old instance reads 3 events of b/0.
	e.register("c1", "g", group.StartFromEarliest, "a", "b")
	e.produce("b", 0, 3, "b")
	if n := countEvents(e.poll("c1")); n != 3 {
		t.Fatalf("old poll: %d events", n)
	}
	e.produce("a", 0, 3, "a")

	// Old instance commits; the store is slow on b/0.
	commitDone := make(chan error, 1)
	go func() { commitDone <- e.c.Commit(ctx, "c1") }()
	select {
	case <-bl.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("commit never reached the store")
	}

	// The old instance dies; the new one (new configuration: topic a only)
	// registers and polls.
	e.register("c1", "g", group.StartFromEarliest, "a")
	b := e.poll("c1")
	if n := countEvents(b); n != 3 {
		t.Fatalf("new instance's poll: %d events, want 3", n)
	}
	// Not acknowledged yet: the committed offset of a/0 must still be 0.
	close(bl.release)
	if err := <-commitDone; err != nil {
		t.Fatalf("stale commit: %v", err)
	}
	if off, _ := e.committed("g", e.stream("a", 0)); off != 0 {
		t.Errorf("a/0 committed at %d by the previous instance's Commit: the new instance never acknowledged those events", off)
	}
	// The new instance crashes before processing and restarts: what does it get?
	e.register("c1", "g", group.StartFromEarliest, "a")
	if n := countEvents(e.poll("c1")); n != 3 {
		t.Errorf("restarted instance gets %d events of a/0, want the 3 it never processed", n)
	}
}

// syncHookLog runs a hook, once, inside the next SyncGroupOffsets.
type syncHookLog struct {
	group.Log
	hook func()
}

func (l *syncHookLog) SyncGroupOffsets() error {
	if h := l.hook; h != nil {
		l.hook = nil
		h()
	}
	return l.Log.SyncGroupOffsets()
}

// The previous instance's goodbye, slow in its fsync, removes the member
// that the new instance registered meanwhile (Register answered 200).
func TestStaleGoodbyeLeavesTheNewRegistration(t *testing.T) {
	var sl *syncHookLog
	e := newEnv(t, func(e *env) {
		sl = &syncHookLog{Log: e.st}
		e.log = sl
	})
	ctx := context.Background()
	e.register("c1", "g", group.StartFromEarliest, "a")
	e.produce("a", 0, 3, "a")
	if n := countEvents(e.poll("c1")); n != 3 {
		t.Fatalf("old poll: %d", n)
	}
	sl.hook = func() {
		// New instance starts while the old goodbye waits for its fsync.
		e.register("c1", "g", group.StartFromEarliest, "a")
		e.produce("a", 0, 2, "a2")
	}
	if err := e.c.Goodbye(ctx, "c1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c1"}); err != nil {
		t.Errorf("new instance's first poll after a successful registration: %v", err)
	}
}

// blockSyncLog blocks CommitGroupOffsetSoon of one stream until released and
// counts SyncGroupOffsets calls.
type blockSyncLog struct {
	group.Log
	block   store.Stream
	entered chan struct{}
	release chan struct{}
	syncs   atomic.Int32
	soon    atomic.Int32
}

func (l *blockSyncLog) CommitGroupOffsetSoon(grp string, st store.Stream, offset int64) error {
	if st == l.block {
		select {
		case l.entered <- struct{}{}:
		default:
		}
		<-l.release
	}
	l.soon.Add(1)
	return l.Log.CommitGroupOffsetSoon(grp, st, offset)
}

func (l *blockSyncLog) SyncGroupOffsets() error {
	l.syncs.Add(1)
	return l.Log.SyncGroupOffsets()
}

// A commit answers once what it committed is fsynced, also one superseded
// by a registration of its id while its write ran: it answered without the
// fsync of what it had written.
func TestSupersededCommitSyncsWhatItWrote(t *testing.T) {
	e, bl := newBlockedEnv(t, "b")
	ctx := context.Background()
	e.register("c1", "g", group.StartFromEarliest, "b")
	e.produce("b", 0, 3, "b")
	if n := countEvents(e.poll("c1")); n != 3 {
		t.Fatalf("poll: %d events", n)
	}
	syncsBefore := bl.syncs.Load()
	done := make(chan error, 1)
	go func() { done <- e.c.Commit(ctx, "c1") }()
	select {
	case <-bl.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("commit never reached the store")
	}
	e.register("c1", "g", group.StartFromEarliest, "b") // same configuration, re-registered
	close(bl.release)
	if err := <-done; err != nil {
		t.Fatalf("commit: %v", err)
	}
	off, _ := e.committed("g", e.stream("b", 0))
	t.Logf("b/0 committed at %d by the superseded Commit (written with CommitGroupOffsetSoon)", off)
	if off == 3 && bl.syncs.Load() == syncsBefore {
		t.Errorf("Commit returned nil after writing offset 3 with CommitGroupOffsetSoon, and never called SyncGroupOffsets: the acknowledged commit is not durable")
	}
}

// newBlockedEnv is an env whose log blocks the commits of stream 0 of topic
// until released.
func newBlockedEnv(t *testing.T, topic string) (*env, *blockSyncLog) {
	var bl *blockSyncLog
	e := newEnv(t, func(e *env) {
		bl = &blockSyncLog{Log: e.st, entered: make(chan struct{}, 1), release: make(chan struct{})}
		e.log = bl
	})
	bl.block = e.stream(topic, 0)
	return e, bl
}
