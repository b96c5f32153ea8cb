package group_test

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/store"
)

// newCrashableEnv is an env whose store syncs (SyncAlways) on a filesystem
// that can lose what was not synced. crashed returns group "g"'s offset in
// st as a machine crash now would leave it. The offset sync timer stays out
// of the tests.
func newCrashableEnv(t *testing.T) (e *env, crashed func(st store.Stream) (int64, bool)) {
	fs := vfs.NewCrashableMem()
	e = newEnv(t, func(e *env) {
		s, err := store.Open("synced", store.Options{FS: fs, RetentionInterval: -1, Now: e.clock.Now,
			OffsetSyncDelay: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		e.st, e.log = s, s
	})
	return e, func(st store.Stream) (int64, bool) {
		t.Helper()
		s, err := store.Open("synced", store.Options{FS: fs.CrashClone(vfs.CrashCloneCfg{}), RetentionInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		off, ok, err := s.GroupOffset("g", st)
		if err != nil {
			t.Fatal(err)
		}
		return off, ok
	}
}

// A poll commits the previous poll's position without waiting for an fsync;
// Commit and Goodbye answer only once their positions, and those the polls
// committed before, are synced. Checked on a store that syncs (SyncAlways)
// on a filesystem that can lose what was not synced: a machine crash.
func TestCommitAndGoodbyeWaitForTheFsyncPollsDoNot(t *testing.T) {
	e, crashed := newCrashableEnv(t)

	e.register("c", "g", group.StartFromEarliest, "t")
	e.register("d", "g", group.StartFromEarliest, "t")
	st := e.stream("t", 0)
	me := owners(e.c, "g")[st]
	e.produce("t", 0, 5, "a")
	if n := countEvents(e.poll(me)); n != 5 {
		t.Fatalf("first poll: %d events, want 5", n)
	}
	e.poll(me) // commits 5
	if off, _ := e.committed("g", st); off != 5 {
		t.Fatalf("committed %d after the second poll, want 5", off)
	}
	if off, ok := crashed(st); ok && off != 0 {
		t.Fatalf("the poll waited for the fsync of its commit: %d survives a crash", off)
	}
	if err := e.c.Commit(context.Background(), me); err != nil {
		t.Fatal(err)
	}
	if off, ok := crashed(st); !ok || off != 5 {
		t.Fatalf("after Commit a crash leaves %d, %v; want 5", off, ok)
	}

	e.produce("t", 0, 3, "b")
	if n := countEvents(e.poll(me)); n != 3 {
		t.Fatalf("third poll: %d events, want 3", n)
	}
	if err := e.c.Goodbye(context.Background(), me, true); err != nil {
		t.Fatal(err)
	}
	if off, ok := crashed(st); !ok || off != 8 {
		t.Fatalf("after Goodbye a crash leaves %d, %v; want 8", off, ok)
	}
	e.check()
}

// The start offset of a new group is committed with its own fsync, not
// deferred like a poll's: a crash right after the group started from
// "latest" must not make it start again from a later "latest", skipping the
// events produced in between.
func TestNewGroupStartSurvivesACrash(t *testing.T) {
	e, crashed := newCrashableEnv(t)
	st := e.stream("t", 0)
	e.produce("t", 0, 4, "before")
	e.register("c", "g", group.StartFromLatest, "t")
	if n := countEvents(e.poll("c")); n != 0 {
		t.Fatalf("first poll of a group starting from latest: %d events, want 0", n)
	}
	if off, ok := e.committed("g", st); !ok || off != 4 {
		t.Fatalf("start offset %d, %v; want 4", off, ok)
	}
	if off, ok := crashed(st); !ok || off != 4 {
		t.Fatalf("after a crash the group's start offset is %d, %v; want 4 (synced when the group started)", off, ok)
	}
	e.check()
}
