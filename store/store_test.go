package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestAppendReadBasic(t *testing.T) {
	s := openT(t, "db", memOpts(t, vfs.NewMem()))
	st := testStream("orders", 0)

	if got := s.HighWatermark(st); got != 0 {
		t.Fatalf("HighWatermark of a new stream = %d", got)
	}
	e1 := makeEvents("a", 3)
	e2 := makeEvents("b", 2)
	if first := mustAppend(t, s, st, e1); first != 0 {
		t.Fatalf("first offset = %d, want 0", first)
	}
	if first := mustAppend(t, s, st, e2); first != 3 {
		t.Fatalf("second offset = %d, want 3", first)
	}
	if got := s.HighWatermark(st); got != 5 {
		t.Fatalf("HighWatermark = %d, want 5", got)
	}
	b, err := s.Read(st, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(e1), e2...)
	if b.Start != 0 || !equalEvents(b.Events, want) {
		t.Fatalf("Read = %d %q, want 0 %q", b.Start, b.Events, want)
	}
	// From the middle of a chunk.
	b, err = s.Read(st, 2, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b.Start != 2 || !equalEvents(b.Events, want[2:]) {
		t.Fatalf("Read(2) = %d %q", b.Start, b.Events)
	}
	// The returned slices are the caller's: modifying them changes nothing.
	b.Events[0][0] = 'X'
	b2, _ := s.Read(st, 2, 0, 1)
	if !bytes.Equal(b2.Events[0], want[2]) {
		t.Fatalf("Read after modifying a previous result = %q", b2.Events[0])
	}
}

func equalEvents(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, bytes.Equal)
}

func TestReadBudgets(t *testing.T) {
	s := openT(t, "db", memOpts(t, vfs.NewMem()))
	st := testStream("budget", 1)
	var all [][]byte
	for i := range 5 {
		ev := makeEvents(fmt.Sprint(i), 4) // 20 events in 5 chunks of 4
		mustAppend(t, s, st, ev)
		all = append(all, ev...)
	}
	size := len(all[0]) // all events have the same size
	for _, tc := range []struct {
		name                string
		from                int64
		maxBytes, maxEvents int
		want                int
	}{
		{"unlimited", 0, 0, 0, 20},
		{"maxEvents within a chunk", 0, 0, 3, 3},
		{"maxEvents across chunks", 2, 0, 7, 7},
		{"maxEvents beyond the end", 15, 0, 100, 5},
		{"maxBytes exact", 0, 6 * size, 0, 6},
		{"maxBytes rounds down", 1, 6*size - 1, 0, 5},
		{"maxBytes below one event still returns one", 7, 1, 0, 1},
		{"both, events bind", 0, 100 * size, 2, 2},
		{"both, bytes bind", 0, 2 * size, 10, 2},
		{"last event", 19, 1, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := s.Read(st, tc.from, tc.maxBytes, tc.maxEvents)
			if err != nil {
				t.Fatal(err)
			}
			if b.Start != tc.from || !equalEvents(b.Events, all[tc.from:tc.from+int64(tc.want)]) {
				t.Fatalf("Read = start %d, %d events; want start %d, %d events", b.Start, len(b.Events), tc.from, tc.want)
			}
		})
	}
}

func TestReadOffsets(t *testing.T) {
	s := openT(t, "db", memOpts(t, vfs.NewMem()))
	st := testStream("offsets", 2)
	unknown := testStream("offsets", 3)

	if b, err := s.Read(unknown, 0, 0, 0); err != nil || b.Start != 0 || len(b.Events) != 0 {
		t.Fatalf("Read(unknown, 0) = %+v, %v; want empty", b, err)
	}
	if _, err := s.Read(unknown, 1, 0, 0); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Read(unknown, 1) err = %v, want ErrOffsetOutOfRange", err)
	}
	mustAppend(t, s, st, makeEvents("x", 3))
	if b, err := s.Read(st, 3, 0, 0); err != nil || b.Start != 3 || len(b.Events) != 0 {
		t.Fatalf("Read(hwm) = %+v, %v; want empty at 3", b, err)
	}
	_, err := s.Read(st, 4, 0, 0)
	if !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Read(hwm+1) err = %v, want ErrOffsetOutOfRange", err)
	}
	if !strings.Contains(err.Error(), st.String()) {
		t.Fatalf("error %q does not name the stream", err)
	}
	// A negative offset is below the earliest one: read from the start.
	if b, err := s.Read(st, -5, 0, 0); err != nil || b.Start != 0 || len(b.Events) != 3 {
		t.Fatalf("Read(-5) = %+v, %v", b, err)
	}
}

func TestAppendErrors(t *testing.T) {
	s := openT(t, "db", Options{FS: vfs.NewMem(), Logger: testLogger(t), RetentionInterval: -1, MaxAppendBytes: 1 << 10})
	st := testStream("errs", 0)
	ctx := context.Background()
	for name, events := range map[string][][]byte{
		"nil":         nil,
		"empty list":  {},
		"empty event": {[]byte("{}"), {}},
	} {
		if _, err := s.Append(ctx, st, events); !errors.Is(err, ErrEmptyAppend) {
			t.Errorf("%s: err = %v, want ErrEmptyAppend", name, err)
		}
	}
	if _, err := s.Append(ctx, st, [][]byte{make([]byte, 2000)}); !errors.Is(err, ErrAppendTooLarge) {
		t.Errorf("too large: err = %v, want ErrAppendTooLarge", err)
	}
	for _, topic := range []string{"", "a\x00b", "sp ace", strings.Repeat("t", MaxTopicLen+1)} {
		if _, err := s.Append(ctx, Stream{Topic: topic}, makeEvents("x", 1)); !errors.Is(err, ErrInvalidStream) {
			t.Errorf("topic %q: err = %v, want ErrInvalidStream", topic, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Append(cancelled, st, makeEvents("x", 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: err = %v", err)
	}
	if got := s.HighWatermark(st); got != 0 {
		t.Fatalf("failed appends moved the high watermark to %d", got)
	}
	if first := mustAppend(t, s, st, makeEvents("ok", 1)); first != 0 {
		t.Fatalf("first successful append at %d, want 0", first)
	}
}

func TestConcurrentAppends(t *testing.T) {
	s := openT(t, "db", memOpts(t, vfs.NewMem()))
	const writers, appends, streams = 16, 50, 4
	type ack struct {
		first  int64
		events [][]byte
	}
	acks := make([][]ack, streams)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range appends {
				si := (w + i) % streams
				ev := makeEvents(fmt.Sprintf("w%d-%d", w, i), 1+i%7)
				first, err := s.Append(context.Background(), testStream("conc", si), ev)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acks[si] = append(acks[si], ack{first, ev})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for si := range streams {
		st := testStream("conc", si)
		_, got := readAll(t, s, st, 0)
		var n int
		for _, a := range acks[si] {
			n += len(a.events)
			if !equalEvents(got[a.first:a.first+int64(len(a.events))], a.events) {
				t.Fatalf("%s: events at %d differ from the acknowledged append", st, a.first)
			}
		}
		if int64(n) != s.HighWatermark(st) || len(got) != n {
			t.Fatalf("%s: acked %d events, hwm %d, read %d", st, n, s.HighWatermark(st), len(got))
		}
	}
	m := s.Metrics()
	if m.Appends != writers*appends || m.Commits == 0 || m.Commits > m.Appends {
		t.Fatalf("metrics: %d appends in %d commits", m.Appends, m.Commits)
	}
	t.Logf("%d appends in %d commits, %d WAL syncs", m.Appends, m.Commits, m.WALSyncs)
	if got := s.Streams("conc"); len(got) != streams || !slices.IsSortedFunc(got, compareStreams) {
		t.Fatalf("Streams = %v", got)
	}
}

func TestStreamsOrder(t *testing.T) {
	s := openT(t, "db", memOpts(t, vfs.NewMem()))
	want := []Stream{
		{Topic: "t", Token: -9223372036854775808, RangeIndex: 0, Version: 1},
		{Topic: "t", Token: -1, RangeIndex: 3, Version: 1},
		{Topic: "t", Token: 0, RangeIndex: 0, Version: 1},
		{Topic: "t", Token: 0, RangeIndex: 0, Version: 2},
		{Topic: "t", Token: 0, RangeIndex: 1, Version: 1},
		{Topic: "t", Token: 9223372036854775807, RangeIndex: 0, Version: 1},
	}
	for _, i := range []int{3, 5, 0, 2, 4, 1} {
		mustAppend(t, s, want[i], makeEvents("x", 1))
	}
	mustAppend(t, s, Stream{Topic: "t.other"}, makeEvents("x", 1))
	mustAppend(t, s, Stream{Topic: "s"}, makeEvents("x", 1))
	if got := s.Streams("t"); !slices.Equal(got, want) {
		t.Fatalf("Streams = %v\nwant %v", got, want)
	}
	if got := s.Streams("nope"); len(got) != 0 {
		t.Fatalf("Streams(nope) = %v", got)
	}
	// Key order agrees with compareStreams.
	for i := 1; i < len(want); i++ {
		a, b := offsetKey(prefixChunk, want[i-1], 99), offsetKey(prefixChunk, want[i], 0)
		if bytes.Compare(a, b) >= 0 {
			t.Fatalf("key of %s does not sort before key of %s", want[i-1], want[i])
		}
	}
}

func TestReopenRecoversOffsets(t *testing.T) {
	fs := vfs.NewMem()
	opts := memOpts(t, fs)
	s := openT(t, "db", opts)
	streams := []Stream{testStream("a", 0), testStream("a", 1), testStream("b", 0)}
	want := map[Stream][][]byte{}
	for i := range 30 {
		st := streams[i%len(streams)]
		ev := makeEvents(fmt.Sprint(i), 1+i%5)
		mustAppend(t, s, st, ev)
		want[st] = append(want[st], ev...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, "db", opts)
	for _, st := range streams {
		if got := s.HighWatermark(st); got != int64(len(want[st])) {
			t.Fatalf("%s: hwm after reopen = %d, want %d", st, got, len(want[st]))
		}
		if _, got := readAll(t, s, st, 0); !equalEvents(got, want[st]) {
			t.Fatalf("%s: events differ after reopen", st)
		}
		if first := mustAppend(t, s, st, makeEvents("more", 2)); first != int64(len(want[st])) {
			t.Fatalf("%s: append after reopen at %d, want %d", st, first, len(want[st]))
		}
	}
	if got := s.Streams("a"); len(got) != 2 {
		t.Fatalf("Streams(a) after reopen = %v", got)
	}
}

func TestGroupOffsets(t *testing.T) {
	fs := vfs.NewMem()
	opts := memOpts(t, fs)
	s := openT(t, "db", opts)
	st1, st2 := testStream("g", 0), testStream("g", 1)
	if _, ok, err := s.GroupOffset("grp", st1); ok || err != nil {
		t.Fatalf("GroupOffset before commit = %v, %v", ok, err)
	}
	groups := []string{"grp", "grp2", "g\x00rp", "g\x00", "\x00\xff\x01"}
	for i, g := range groups {
		if err := s.CommitGroupOffset(g, st1, int64(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CommitGroupOffset("grp", st2, 7); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitGroupOffset("grp", st1, 12); err != nil { // overwrite
		t.Fatal(err)
	}
	if err := s.CommitGroupOffset("grp", st1, -1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("negative offset: err = %v", err)
	}
	if err := s.CommitGroupOffset("", st1, 1); !errors.Is(err, ErrInvalidGroup) {
		t.Fatalf("empty group: err = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, "db", opts)
	check := func(g string, st Stream, want int64) {
		t.Helper()
		got, ok, err := s.GroupOffset(g, st)
		if err != nil || !ok || got != want {
			t.Fatalf("GroupOffset(%q, %s) = %d, %v, %v; want %d", g, st, got, ok, err, want)
		}
	}
	check("grp", st1, 12)
	check("grp", st2, 7)
	for i, g := range groups[1:] {
		check(g, st1, int64(11+i))
	}
	if _, ok, _ := s.GroupOffset("grp2", st2); ok {
		t.Fatal("GroupOffset of an uncommitted stream is ok")
	}
	// GroupOffsets lists them all, each group's together, in key order.
	all, err := s.GroupOffsets()
	if err != nil {
		t.Fatal(err)
	}
	want := []GroupOffset{
		{"\x00\xff\x01", st1, 14, time.Time{}}, {"g\x00", st1, 13, time.Time{}}, {"g\x00rp", st1, 12, time.Time{}},
		{"grp", st1, 12, time.Time{}}, {"grp", st2, 7, time.Time{}}, {"grp2", st1, 11, time.Time{}},
	}
	for i := range all {
		if all[i].Committed.IsZero() {
			t.Errorf("GroupOffsets[%d] has no commit time", i)
		}
		all[i].Committed = time.Time{}
	}
	if !slices.Equal(all, want) {
		t.Fatalf("GroupOffsets = %+v\nwant %+v", all, want)
	}

	// DeleteGroup deletes one group's positions, not those of groups whose
	// names it starts or that start with it.
	if err := s.DeleteGroup("g\x00"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup("grp"); err != nil {
		t.Fatal(err)
	}
	all, err = s.GroupOffsets()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, o := range all {
		left = append(left, o.Group)
	}
	if !slices.Equal(left, []string{"\x00\xff\x01", "g\x00rp", "grp2"}) {
		t.Fatalf("after deleting g\\x00 and grp: %q", left)
	}
	if _, ok, _ := s.GroupOffset("grp", st1); ok {
		t.Fatal("GroupOffset of a deleted group is ok")
	}
}

// SetGroupsInactive records survive a reopen, a zero time deletes one, and
// DeleteGroup deletes the group's record with its offsets, not those of
// groups whose names it starts.
func TestGroupInactive(t *testing.T) {
	fs := vfs.NewMem()
	opts := memOpts(t, fs)
	s := openT(t, "db", opts)
	t1, t2 := time.Unix(100, 5), time.Unix(200, 0)
	if err := s.SetGroupsInactive(map[string]time.Time{"g": t1, "g\x00": t2, "gone": t1, "g2": t2}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGroupsInactive(map[string]time.Time{"gone": {}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGroupsInactive(map[string]time.Time{"ok": t1, "": t1}); !errors.Is(err, ErrInvalidGroup) {
		t.Fatalf("empty group: err = %v", err)
	}
	if err := s.CommitGroupOffset("g", testStream("t", 0), 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, "db", opts)
	got, err := s.GroupsInactive()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"g": t1, "g\x00": t2, "g2": t2}
	if !maps.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("GroupsInactive after reopen = %v, want %v (nothing of the refused write)", got, want)
	}
	if err := s.DeleteGroup("g"); err != nil {
		t.Fatal(err)
	}
	if got, err = s.GroupsInactive(); err != nil {
		t.Fatal(err)
	}
	if want := map[string]time.Time{"g\x00": t2, "g2": t2}; !maps.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("GroupsInactive after DeleteGroup(g) = %v, want %v", got, want)
	}
	if offs, _ := s.GroupOffsets(); len(offs) != 0 {
		t.Fatalf("DeleteGroup left offsets: %+v", offs)
	}
	// A record of the wrong size is reported as corrupt, naming the group.
	if err := s.db.Set(groupInactiveKey("bad"), []byte{1, 2}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GroupsInactive(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"bad"`) {
		t.Fatalf("GroupsInactive with a 2-byte record: %v", err)
	}
	// ClearGroupsInactive deletes them all, the bad one too.
	if err := s.ClearGroupsInactive(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GroupsInactive(); len(got) != 0 || err != nil {
		t.Fatalf("GroupsInactive after ClearGroupsInactive = %v, %v", got, err)
	}
}

// A group offset written before the commit time was recorded (8 bytes)
// still reads, without a time.
func TestGroupOffsetWithoutTime(t *testing.T) {
	s := openT(t, "db", memOpts(t, vfs.NewMem()))
	st := testStream("g", 0)
	if err := s.db.Set(groupOffsetKey("old", st), encodeInt64Value(42), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if off, ok, err := s.GroupOffset("old", st); off != 42 || !ok || err != nil {
		t.Fatalf("GroupOffset = %d, %v, %v", off, ok, err)
	}
	all, err := s.GroupOffsets()
	if err != nil || len(all) != 1 || all[0].Offset != 42 || !all[0].Committed.IsZero() {
		t.Fatalf("GroupOffsets = %+v, %v", all, err)
	}
}

func TestClosed(t *testing.T) {
	s := openT(t, "db", memOpts(t, vfs.NewMem()))
	st := testStream("c", 0)
	mustAppend(t, s, st, makeEvents("x", 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := s.Append(context.Background(), st, makeEvents("x", 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if _, err := s.Read(st, 0, 0, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close = %v", err)
	}
	if err := s.CommitGroupOffset("g", st, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("CommitGroupOffset after Close = %v", err)
	}
	if _, _, err := s.GroupOffset("g", st); !errors.Is(err, ErrClosed) {
		t.Fatalf("GroupOffset after Close = %v", err)
	}
	if _, err := s.ApplyRetention(); !errors.Is(err, ErrClosed) {
		t.Fatalf("ApplyRetention after Close = %v", err)
	}
	_ = s.Metrics() // must not panic
	if got := s.HighWatermark(st); got != 1 {
		t.Fatalf("HighWatermark after Close = %d", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Fatalf("zero Options: %v", err)
	}
	for field, o := range map[string]Options{
		"Sync":               {Sync: 7},
		"CacheSize":          {CacheSize: -1},
		"RetentionMaxBytes":  {RetentionMaxBytes: -1},
		"MemTableSize":       {MemTableSize: 1000},
		"MaxBatchBytes":      {MaxBatchBytes: 64 << 20},
		"MaxAppendBytes":     {MaxAppendBytes: 10},
		"MaxQueuedBytes":     {MaxQueuedBytes: 1 << 10},
		"MaxInflightCommits": {MaxInflightCommits: -1},
		"Compression":        {Compression: 9},
		"OffsetSyncDelay":    {OffsetSyncDelay: time.Minute},
	} {
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), "Options."+field+" ") {
			t.Errorf("%s: Validate = %v, want an error naming it", field, err)
		}
		if _, err := Open("db", Options{FS: vfs.NewMem(), Sync: o.Sync, CacheSize: o.CacheSize}); field == "Sync" && err == nil {
			t.Errorf("Open accepted an invalid %s", field)
		}
	}
}

func TestLayoutVersionChecked(t *testing.T) {
	fs := vfs.NewMem()
	s := openT(t, "db", memOpts(t, fs))
	if err := s.db.Set(metaLayoutKey(), encodeInt64Value(99), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("db", memOpts(t, fs)); err == nil || !strings.Contains(err.Error(), "layout version 99") {
		t.Fatalf("Open of a store with another layout: %v", err)
	}
}

// An older store opens, keeps its offsets, and is upgraded, so that a
// build that reads only its version refuses it rather than misread it:
// version 1 has 8-byte group offsets, version 2 no inactive-group records.
func TestLayoutUpgrade(t *testing.T) {
	for _, version := range []int64{1, 2} {
		t.Run(fmt.Sprint("version ", version), func(t *testing.T) {
			fs := vfs.NewMem()
			s := openT(t, "db", memOpts(t, fs))
			st := testStream("up", 0)
			value := encodeInt64Value(7)
			if version >= 2 {
				value = encodeGroupOffsetValue(7, 1)
			}
			if err := s.db.Set(groupOffsetKey("g", st), value, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.db.Set(metaLayoutKey(), encodeInt64Value(version), nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, "db", memOpts(t, fs))
			if off, ok, err := s.GroupOffset("g", st); off != 7 || !ok || err != nil {
				t.Fatalf("offset of a version %d store: %d, %v, %v", version, off, ok, err)
			}
			if inactive, err := s.GroupsInactive(); len(inactive) != 0 || err != nil {
				t.Fatalf("inactive groups of a version %d store: %v, %v", version, inactive, err)
			}
			v, closer, err := s.db.Get(metaLayoutKey())
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			if got, _ := decodeInt64Value(v); got != int64(layoutVersion) {
				t.Fatalf("layout after opening a version %d store: %d, want %d", version, got, layoutVersion)
			}
		})
	}
}

// ReadInto copies the events into the caller's buffer while its spare
// capacity holds them, and into memory of their own beyond: the events are
// those of Read either way, and those in the buffer share its memory.
func TestReadIntoUsesTheBuffer(t *testing.T) {
	s := openT(t, "db", memOpts(t, vfs.NewMem()))
	st := testStream("t", 0)
	for i := range 4 {
		mustAppend(t, s, st, makeEvents(fmt.Sprintf("c%d-", i), 10))
	}
	want, err := s.Read(st, 3, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, e := range want.Events {
		size += len(e)
	}
	inside := func(buf, e []byte) bool {
		return len(e) > 0 && cap(buf) > 0 &&
			uintptr(unsafe.Pointer(&e[0])) >= uintptr(unsafe.Pointer(&buf[:1][0])) &&
			uintptr(unsafe.Pointer(&e[0])) < uintptr(unsafe.Pointer(&buf[:1][0]))+uintptr(cap(buf))
	}
	for _, c := range []struct {
		name     string
		capacity int
		inBuf    int // events expected in the buffer
	}{
		{"room for all", size + 10, len(want.Events)},
		{"room for the first chunk's events only", len(want.Events[0]) * 8, 7},
		{"no room", 5, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			buf := make([]byte, 2, c.capacity+2) // what the caller had in it stays
			copy(buf, "ab")
			got, out, err := s.ReadInto(buf, st, 3, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got.Start != want.Start || len(got.Events) != len(want.Events) {
				t.Fatalf("start %d, %d events; Read gave %d, %d", got.Start, len(got.Events), want.Start, len(want.Events))
			}
			n := 0
			for i, e := range got.Events {
				if !bytes.Equal(e, want.Events[i]) {
					t.Fatalf("event %d: %q, Read gave %q", i, e, want.Events[i])
				}
				if inside(buf, e) {
					n++
				}
				if cap(e) != len(e) {
					t.Fatalf("event %d has capacity %d beyond its %d bytes: an append to it would overwrite the next", i, cap(e), len(e))
				}
			}
			if n != c.inBuf {
				t.Errorf("%d events in the buffer, want %d", n, c.inBuf)
			}
			if string(out[:2]) != "ab" || &out[:1][0] != &buf[:1][0] {
				t.Errorf("ReadInto must append to the caller's buffer without moving it")
			}
			if c.inBuf > 0 && len(out) <= 2 {
				t.Errorf("returned buffer has length %d: not extended by the events", len(out))
			}
		})
	}
}
