package group_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/store"
)

var errDisk = errors.New("disk on fire")

// faultyLog fails offset commits and reads while its switches are on.
type faultyLog struct {
	group.Log
	failCommits, failReads atomic.Bool
}

func (l *faultyLog) CommitGroupOffset(grp string, st store.Stream, offset int64) error {
	if l.failCommits.Load() {
		return errDisk
	}
	return l.Log.CommitGroupOffset(grp, st, offset)
}

func (l *faultyLog) CommitGroupOffsetSoon(grp string, st store.Stream, offset int64) error {
	if l.failCommits.Load() {
		return errDisk
	}
	return l.Log.CommitGroupOffsetSoon(grp, st, offset)
}

func (l *faultyLog) SyncGroupOffsets() error {
	if l.failCommits.Load() {
		return errDisk
	}
	return l.Log.SyncGroupOffsets()
}

func (l *faultyLog) ReadInto(buf []byte, st store.Stream, from int64, maxBytes, maxEvents int) (store.Batch, []byte, error) {
	if l.failReads.Load() {
		return store.Batch{}, buf, errDisk
	}
	return l.Log.ReadInto(buf, st, from, maxBytes, maxEvents)
}

// Failed I/O is reported, leaves no position half-updated and no lease
// held: the same calls succeed once the log recovers, and nothing is lost.
func TestLogFaults(t *testing.T) {
	var fl *faultyLog
	e := newEnv(t, func(e *env) {
		fl = &faultyLog{Log: e.st}
		e.log = fl
	})
	ctx := context.Background()

	// A latest start that cannot be committed fails the registration.
	e.produce("t", 0, 3, "old")
	fl.failCommits.Store(true)
	err := e.c.Register(ctx, group.Registration{ConsumerID: "c", Group: "g", Topics: []string{"t"}})
	if !errors.Is(err, errDisk) {
		t.Fatalf("Register: %v", err)
	}
	fl.failCommits.Store(false)
	e.register("c", "g", group.StartFromLatest, "t")
	if off, ok := e.committed("g", e.stream("t", 0)); !ok || off != 3 {
		t.Fatalf("latest start: %d %v", off, ok)
	}

	e.produce("t", 0, 2, "new")
	if b := e.poll("c"); countEvents(b) != 2 {
		t.Fatalf("poll: %+v", b)
	}
	// The next poll cannot commit the previous one: it fails, reads nothing.
	fl.failCommits.Store(true)
	if _, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c"}); !errors.Is(err, errDisk) {
		t.Fatalf("poll with failing commits: %v", err)
	}
	if err := e.c.Commit(ctx, "c"); !errors.Is(err, errDisk) {
		t.Fatalf("Commit: %v", err)
	}
	if err := e.c.Goodbye(ctx, "c", true); !errors.Is(err, errDisk) {
		t.Fatalf("Goodbye: %v", err)
	}
	fl.failCommits.Store(false)
	if err := e.c.Commit(ctx, "c"); err != nil {
		t.Fatalf("Commit after recovery: %v", err)
	}
	if off, _ := e.committed("g", e.stream("t", 0)); off != 5 {
		t.Fatalf("committed %d, want 5", off)
	}

	// A failed read delivers nothing and does not move the position.
	e.produce("t", 1, 4, "more")
	fl.failReads.Store(true)
	if _, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c"}); !errors.Is(err, errDisk) {
		t.Fatalf("poll with failing reads: %v", err)
	}
	fl.failReads.Store(false)
	if b := e.poll("c"); countEvents(b) != 4 || b[0].Start != 0 {
		t.Fatalf("poll after recovery: %+v", b)
	}
	e.check()
}

// unreadableRecords fails GroupsInactive, and GroupOffsets too if offsets
// is set.
type unreadableRecords struct {
	group.Log
	offsets bool
}

func (unreadableRecords) GroupsInactive() (map[string]time.Time, error) { return nil, errDisk }

func (l unreadableRecords) GroupOffsets() ([]store.GroupOffset, error) {
	if l.offsets {
		return nil, errDisk
	}
	return l.Log.GroupOffsets()
}

// Unreadable inactive-group records do not stop the coordinator: offset
// retention then counts from its start, later than the records would.
func TestUnreadableInactiveRecords(t *testing.T) {
	e := newEnv(t, sweptByHand)
	st := e.stream("t", 0)
	e.leave("c1", "g")
	if err := e.c.Close(); err != nil { // records g inactive now
		t.Fatal(err)
	}
	e.clock.Advance(50 * time.Minute)
	e.log = unreadableRecords{Log: e.st}
	e.c = e.newCoordinator()
	e.clock.Advance(50 * time.Minute)
	group.SweepOffsets(e.c)
	if _, ok := e.committed("g", st); !ok {
		t.Fatal("with its record unreadable, the group's offsets expired 100 min after its last member left, 50 min after the start")
	}
	e.clock.Advance(10 * time.Minute)
	group.SweepOffsets(e.c)
	if _, ok := e.committed("g", st); ok {
		t.Fatal("the group's offsets outlived the retention counted from the start")
	}
}

// The records a start could not read are deleted: one left behind for a
// group that then gets a member (nothing else rewrote it: here the start's
// sweep failed too) would make a later start count from it.
func TestUnreadableInactiveRecordsAreDeleted(t *testing.T) {
	e := newEnv(t, sweptByHand)
	st := e.stream("t", 0)
	e.leave("c1", "g")
	if err := e.c.Close(); err != nil { // records g inactive since T0
		t.Fatal(err)
	}
	e.clock.Advance(30 * time.Minute)
	e.log = unreadableRecords{Log: e.st, offsets: true}
	e.c = e.newCoordinator()
	e.register("c2", "g", group.StartFromEarliest, "t") // stays until the stop
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(40 * time.Minute) // T0+70
	e.log = e.st
	e.c = e.newCoordinator()
	if _, ok := e.committed("g", st); !ok {
		t.Fatal("a group that had a member at the stop lost its offsets at the start, counted from a record of before")
	}
}

// hookedLog runs a hook, once, in the next read or offset commit after it
// is armed: something happens while the coordinator waits on the store.
type hookedLog struct {
	group.Log
	onRead, onCommit atomic.Pointer[func()]
}

// newHookedEnv is an env whose coordinator uses the store through a
// hookedLog.
func newHookedEnv(t *testing.T) (*env, *hookedLog) {
	var hl *hookedLog
	e := newEnv(t, func(e *env) {
		hl = &hookedLog{Log: e.st}
		e.log = hl
	})
	return e, hl
}

func (l *hookedLog) ReadInto(buf []byte, st store.Stream, from int64, maxBytes, maxEvents int) (store.Batch, []byte, error) {
	if h := l.onRead.Swap(nil); h != nil {
		(*h)()
	}
	return l.Log.ReadInto(buf, st, from, maxBytes, maxEvents)
}

func (l *hookedLog) CommitGroupOffset(grp string, st store.Stream, offset int64) error {
	if h := l.onCommit.Swap(nil); h != nil {
		(*h)()
	}
	return l.Log.CommitGroupOffset(grp, st, offset)
}

func (l *hookedLog) CommitGroupOffsetSoon(grp string, st store.Stream, offset int64) error {
	if h := l.onCommit.Swap(nil); h != nil {
		(*h)()
	}
	return l.Log.CommitGroupOffsetSoon(grp, st, offset)
}

// A poll whose caller went away during the read does not move the read
// position: the next poll delivers the same events instead of committing
// them unseen.
func TestPollOfAGoneCallerDoesNotAdvance(t *testing.T) {
	e, hl := newHookedEnv(t)
	e.register("c1", "g", group.StartFromEarliest, "t")
	e.produce("t", 0, 3, "x")
	ctx, cancel := context.WithCancel(context.Background())
	hook := func() { cancel() } // the poll's caller goes away during the read
	hl.onRead.Store(&hook)
	if _, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "c1"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("poll of a gone caller: %v, want context.Canceled", err)
	}
	if n := countEvents(e.poll("c1")); n != 3 {
		t.Fatalf("next poll: %d events, want the 3 the gone caller never received", n)
	}
	if off, _ := e.committed("g", e.stream("t", 0)); off != 0 {
		t.Fatalf("committed %d before any delivered poll was followed by another", off)
	}
}

// A registration whose I/O outlasts the member timeout does not answer
// success for a member that expired meanwhile: the member does not expire
// while it registers, and counts as seen when the registration ends.
func TestSlowRegistrationDoesNotExpire(t *testing.T) {
	e, hl := newHookedEnv(t)
	e.register("other", "g2", group.StartFromLatest, "x")
	hook := func() {
		// The commit takes two member timeouts, during which another
		// call runs the expiry check.
		e.clock.Advance(2 * e.opts.MemberTimeout)
		_ = e.c.Commit(context.Background(), "other")
	}
	hl.onCommit.Store(&hook)
	e.register("c", "g", group.StartFromLatest, "t")
	if hl.onCommit.Load() != nil {
		t.Fatal("the registration committed no offset")
	}
	if _, err := e.c.Poll(context.Background(), group.PollRequest{ConsumerID: "c"}); err != nil {
		t.Fatalf("poll right after a successful registration: %v", err)
	}
	if err := e.c.Commit(context.Background(), "other"); err == nil {
		t.Fatal("the other consumer, silent for two member timeouts, did not expire")
	}
}

// slowSyncLog holds its first SyncGroupOffsets, after closing entered,
// until release is closed.
type slowSyncLog struct {
	group.Log
	entered, release chan struct{}
	first            sync.Once
}

func (l *slowSyncLog) SyncGroupOffsets() error {
	l.first.Do(func() {
		close(l.entered)
		<-l.release
	})
	return l.Log.SyncGroupOffsets()
}

// The member timeout counts from the end of a member's last call: a commit
// (or goodbye) whose fsync outlasts the timeout does not let the member
// expire under it, and the member counts as seen when the call ends.
func TestMemberDoesNotExpireDuringCommit(t *testing.T) {
	for _, call := range []string{"commit", "goodbye"} {
		t.Run(call, func(t *testing.T) {
			sl := &slowSyncLog{entered: make(chan struct{}), release: make(chan struct{})}
			e := newEnv(t, func(e *env) {
				sl.Log = e.st
				e.log = sl
				e.opts.MemberTimeout = time.Minute
			})
			ctx := context.Background()
			e.register("slow", "g", group.StartFromEarliest, "t")
			e.produce("t", 0, 3, "a")
			e.poll("slow")
			done := make(chan error, 1)
			go func() {
				if call == "commit" {
					done <- e.c.Commit(ctx, "slow")
				} else {
					done <- e.c.Goodbye(ctx, "slow", true)
				}
			}()
			<-sl.entered
			// The fsync takes longer than the member timeout; a
			// registration in another group runs the expiry check meanwhile.
			e.clock.Advance(2 * time.Minute)
			e.register("probe1", "p", group.StartFromEarliest, "u")
			if s := e.c.Stats(); s.Expired != 0 {
				t.Fatalf("a member expired during its %s: %+v", call, s)
			}
			close(sl.release)
			if err := <-done; err != nil {
				t.Fatalf("%s: %v", call, err)
			}
			if call == "goodbye" {
				if s := e.c.Stats(); s.Members != 1 || s.Expired != 0 {
					t.Fatalf("after goodbye: %+v", s)
				}
				return
			}
			// Seen at the end of the commit: not expired a little less
			// than the timeout later.
			e.clock.Advance(time.Minute - time.Second)
			e.register("probe2", "p", group.StartFromEarliest, "u")
			if s := e.c.Stats(); s.Expired != 0 || s.Members != 3 {
				t.Fatalf("%v after the commit ended: %+v", time.Minute-time.Second, s)
			}
			if _, err := e.c.Poll(ctx, group.PollRequest{ConsumerID: "slow"}); err != nil {
				t.Fatalf("poll after the commit: %v", err)
			}
		})
	}
}

// failingRecords fails every write of inactive-group records.
type failingRecords struct{ group.Log }

func (failingRecords) SetGroupsInactive(map[string]time.Time) error { return errDisk }

// Close reports a failed write of the inactive-group records (the broker's
// shutdown logs it and exits non-zero), and the coordinator is closed all
// the same.
func TestCloseReportsFailedInactiveRecords(t *testing.T) {
	e := newEnv(t, sweptByHand, func(e *env) { e.log = failingRecords{Log: e.st} })
	e.leave("c1", "g")
	if err := e.c.Close(); !errors.Is(err, errDisk) {
		t.Fatalf("Close: %v, want the failed write of the records", err)
	}
	ctx := context.Background()
	if err := e.c.Register(ctx, group.Registration{ConsumerID: "c2", Topics: []string{"t"}}); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Register after a failed Close: %v, want ErrUnavailable", err)
	}
}
