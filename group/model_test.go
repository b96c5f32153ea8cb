package group_test

// A randomized, model-based test of the coordinator: random sequences of
// produce, register (new member, re-register, topic change, move to another
// group), poll (with and without byte and event budgets), commit, goodbye
// (with and without commit), clock moves past (and exactly to) the member
// timeout and the offset retention, offset-retention sweeps and restarts
// (with and without reopening the store), over a real store in t.TempDir(),
// by 5 consumers in 3 groups over 2 topics of 3 streams each; plus bursts
// of concurrent calls (polls, long polls, polls whose caller gives up,
// commits and produces; or polls and commits around a register, a goodbye
// or a Close), with the store's offset and read I/O slowed down meanwhile.
//
// A model predicts the assignment of streams, the read positions, the
// committed offsets (and their commit times), the members' lastSeen and
// offset retention; after each step the coordinator (Stats,
// CheckInvariants) and the store (GroupOffsets) are compared with it. After
// a burst that changes membership, the model takes the read positions from
// Stats, once the burst's results have been checked. Spec-level invariants
// are checked independently of the model:
//
//   - a poll returns only events of streams its member owns (before or
//     after a concurrent change), in its topics, with the bytes produced,
//     contiguous from the member's read position (or a committed offset
//     after a rebalance, re-register, restart or timeout), never below the
//     group's start, within the poll's budgets; without budget, to the end;
//   - committed offsets never go backwards, and pass only events that a
//     member got and acknowledged (by its next call) before the commit
//     (at-least-once; in bursts, by the time the commit began);
//   - a long poll wakes up for events produced into its streams;
//   - lent poll buffers are not reused by later polls;
//   - at the end, every group drains both topics: it gets every event from
//     its start on, and its committed offsets reach the high watermarks.
//
// Replay one seed with FLOE_MODEL_SEED=n (FLOE_MODEL_OPS=n sets the number
// of operations; FLOE_MODEL_NOCONC=1 leaves out the concurrent bursts, so a
// run is then fully deterministic; FLOE_MODEL_RANDOM=n runs n random seeds
// besides the fixed ones).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/internal/testclock"
	"github.com/floe-streams/floe/store"
)

const (
	mTimeout   = time.Minute
	mRetention = 30 * time.Minute
	mRanges    = 3
)

var (
	mTopics    = []string{"a", "ab"} // one a prefix of the other, as groups
	mGroups    = []string{"g", "g1", "g-2"}
	mConsumers = []string{"c0", "c1", "c2", "c3", "c4"}
)

// mEvent is the event at offset off of st: its bytes tell where it belongs,
// and its length varies, for the byte budgets.
func mEvent(st store.Stream, off int64) []byte {
	pad := int((off*7 + int64(st.RangeIndex)*13 + int64(len(st.Topic))*5) % 37)
	return fmt.Appendf(nil, "%s/%d/%d:%s", st.Topic, st.RangeIndex, off, strings.Repeat("x", pad))
}

// ---------------------------------------------------------------- model

type mMember struct {
	id       string
	group    string
	topics   []string // sorted, distinct
	onNew    group.StartPosition
	lastSeen time.Time
}

type mPos struct {
	owner   string // "" when nobody reads it
	started bool
	read    int64
}

type okey struct {
	g  string
	st store.Stream
}

type model struct {
	ring    *broker.Ring
	now     func() time.Time
	started time.Time // when the current coordinator started

	hwm     map[store.Stream]int64
	members map[string]*mMember
	groups  map[string]map[store.Stream]*mPos // groups with members

	committed  map[okey]int64
	lastCommit map[string]time.Time // latest commit of any offset of the group
	inactive   map[string]time.Time // when a group without members lost the last one

	// Spec-level bookkeeping: the group's first committed offset in a
	// stream (its start), what was delivered to the group from there, and
	// what of that its receiver acknowledged (by a later call: poll, commit,
	// goodbye with commit). pending is what each member's last poll got,
	// not acknowledged yet. A committed offset must pass only acknowledged
	// events: otherwise a consumer that crashed while processing them would
	// lose them.
	base      map[okey]int64
	delivered map[okey][]bool
	acked     map[okey][]bool
	pending   map[string][]pend
}

// pend is a run of events delivered to a member, not acknowledged yet.
type pend struct {
	k     okey
	start int64
	n     int
}

func newModel(ring *broker.Ring, now func() time.Time) *model {
	return &model{
		ring: ring, now: now, started: now(),
		hwm:        map[store.Stream]int64{},
		members:    map[string]*mMember{},
		groups:     map[string]map[store.Stream]*mPos{},
		committed:  map[okey]int64{},
		lastCommit: map[string]time.Time{},
		inactive:   map[string]time.Time{},
		base:       map[okey]int64{},
		delivered:  map[okey][]bool{},
		acked:      map[okey][]bool{},
		pending:    map[string][]pend{},
	}
}

func (m *model) membersOf(g string) []string {
	var ids []string
	for id, mm := range m.members {
		if mm.group == g {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// deal is the expected owner of each stream of g's topics.
func (m *model) deal(g string) map[store.Stream]string {
	ids := m.membersOf(g)
	var topics []string
	for _, id := range ids {
		topics = append(topics, m.members[id].topics...)
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)
	out := map[store.Stream]string{}
	load := map[string]int{}
	for _, t := range topics {
		var subs []string
		for _, id := range ids {
			if slices.Contains(m.members[id].topics, t) {
				subs = append(subs, id)
			}
		}
		for _, st := range m.ring.Streams(t) {
			// The subscriber with the fewest streams, the first by id.
			least := subs[0]
			for _, id := range subs[1:] {
				if load[id] < load[least] {
					least = id
				}
			}
			out[st] = least
			load[least]++
		}
	}
	return out
}

func (m *model) rebalance(g string) {
	pos := m.groups[g]
	owners := m.deal(g)
	for st, id := range owners {
		p := pos[st]
		if p == nil {
			p = &mPos{}
			pos[st] = p
		}
		if p.owner != id {
			*p = mPos{owner: id}
		}
	}
	for st, p := range pos {
		if _, ok := owners[st]; !ok && p.owner != "" {
			*p = mPos{}
		}
	}
}

func (m *model) join(id, g string) {
	if m.groups[g] == nil {
		m.groups[g] = map[store.Stream]*mPos{}
		delete(m.inactive, g)
	}
	m.members[id].group = g
	m.rebalance(g)
}

// afterLeave rebalances g once members left it, and drops it without
// members.
func (m *model) afterLeave(g string) {
	m.rebalance(g)
	if len(m.membersOf(g)) == 0 {
		delete(m.groups, g)
		m.inactive[g] = m.now()
	}
}

func (m *model) commitOffset(g string, st store.Stream, off int64) {
	m.committed[okey{g, st}] = off
	m.lastCommit[g] = m.now()
}

// loadStarts commits the start of every assigned stream of g that has no
// committed offset, by the onNewGroup of its owner.
func (m *model) loadStarts(g string) {
	for st, id := range m.deal(g) {
		k := okey{g, st}
		if _, ok := m.committed[k]; ok {
			continue
		}
		start := int64(0)
		if m.members[id].onNew == group.StartFromLatest {
			start = m.hwm[st]
		}
		m.commitOffset(g, st, start)
		m.base[k] = start
		m.delivered[k] = nil
		m.acked[k] = nil
	}
}

// owned is the positions of id, by stream, sorted.
func (m *model) owned(id string) []store.Stream {
	mm := m.members[id]
	var out []store.Stream
	for st, p := range m.groups[mm.group] {
		if p.owner == id {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b store.Stream) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	return out
}

// settle is what a poll (start) or a commit does before reading.
func (m *model) settle(id string, start bool) {
	mm := m.members[id]
	for _, st := range m.owned(id) {
		p := m.groups[mm.group][st]
		k := okey{mm.group, st}
		switch {
		case p.started && p.read != m.committed[k]:
			m.commitOffset(mm.group, st, p.read)
		case start && !p.started:
			c, ok := m.committed[k]
			if !ok {
				panic(fmt.Sprintf("model: %v starts without a committed offset", k))
			}
			p.started, p.read = true, c
		}
	}
}

func (m *model) register(id, g string, topics []string, onNew group.StartPosition) {
	now := m.now()
	mm := m.members[id]
	// A registration of a member drops what it polled without committing.
	delete(m.pending, id)
	switch {
	case mm == nil:
		m.members[id] = &mMember{id: id, group: g, topics: topics, onNew: onNew, lastSeen: now}
		m.join(id, g)
	case mm.group != g:
		mm.lastSeen, mm.onNew = now, onNew
		old := mm.group
		mm.group = ""
		m.afterLeave(old)
		mm.topics = topics
		m.join(id, g)
	default:
		mm.lastSeen, mm.onNew = now, onNew
		if !slices.Equal(mm.topics, topics) {
			mm.topics = topics
			m.rebalance(g)
		}
		for _, st := range m.owned(id) {
			p := m.groups[g][st]
			p.started, p.read = false, 0
		}
	}
	m.loadStarts(g)
}

func (m *model) goodbye(id string, commit bool) {
	mm := m.members[id]
	if commit {
		m.settle(id, false)
		m.ack(id)
	}
	delete(m.pending, id)
	delete(m.members, id)
	m.afterLeave(mm.group)
}

// expire drops the members not seen for mTimeout; it returns them.
func (m *model) expire() []string {
	now := m.now()
	var gone []string
	var affected []string
	for _, id := range slices.Sorted(maps.Keys(m.members)) {
		mm := m.members[id]
		if now.Before(mm.lastSeen.Add(mTimeout)) {
			continue
		}
		gone = append(gone, id)
		delete(m.pending, id)
		if !slices.Contains(affected, mm.group) {
			affected = append(affected, mm.group)
		}
		delete(m.members, id)
	}
	for _, g := range affected {
		m.afterLeave(g)
	}
	return gone
}

// restart: registrations go; groups that had members became inactive now.
func (m *model) restart() {
	now := m.now()
	for g := range m.groups {
		m.inactive[g] = now
	}
	m.members = map[string]*mMember{}
	m.groups = map[string]map[store.Stream]*mPos{}
	m.pending = map[string][]pend{}
	m.started = now
	m.sweep()
}

// sweep is offset retention: it returns the groups whose offsets go.
func (m *model) sweep() []string {
	now := m.now()
	var withOffsets []string
	for k := range m.committed {
		if !slices.Contains(withOffsets, k.g) {
			withOffsets = append(withOffsets, k.g)
		}
	}
	slices.Sort(withOffsets)
	var deleted []string
	for _, g := range withOffsets {
		if m.groups[g] != nil {
			continue
		}
		since, ok := m.inactive[g]
		if !ok {
			since = m.started
			m.inactive[g] = since
		}
		if c := m.lastCommit[g]; c.After(since) {
			since = c
		}
		if now.Sub(since) < mRetention {
			continue
		}
		deleted = append(deleted, g)
		for k := range m.committed {
			if k.g == g {
				delete(m.committed, k)
				delete(m.base, k)
				delete(m.delivered, k)
				delete(m.acked, k)
			}
		}
		delete(m.inactive, g)
		delete(m.lastCommit, g)
	}
	return deleted
}

func mark(set map[okey][]bool, k okey, start int64, n int) {
	d := set[k]
	for off := start; off < start+int64(n); off++ {
		for int64(len(d)) <= off {
			d = append(d, false)
		}
		d[off] = true
	}
	set[k] = d
}

func (m *model) deliver(g string, st store.Stream, start int64, n int) {
	mark(m.delivered, okey{g, st}, start, n)
}

// ack acknowledges what id has pending (its offsets may have been deleted
// meanwhile by offset retention: then the group starts over).
func (m *model) ack(id string) {
	for _, p := range m.pending[id] {
		if _, ok := m.base[p.k]; ok && p.start >= m.base[p.k] {
			mark(m.acked, p.k, p.start, p.n)
		}
	}
	delete(m.pending, id)
}

// firstUnset is the first offset in [base, upTo) not in set, or -1.
func (m *model) firstUnset(set map[okey][]bool, k okey, upTo int64) int64 {
	d := set[k]
	for off := m.base[k]; off < upTo; off++ {
		if off >= int64(len(d)) || !d[off] {
			return off
		}
	}
	return -1
}

// ---------------------------------------------------------------- harness

// slowLog is the store, with pauses in the coordinator's offset and read
// I/O while on (during bursts), to widen the windows in which calls
// interleave.
type slowLog struct {
	*store.Store
	on atomic.Bool

	mu      sync.Mutex
	commits []commitRec // during bursts
}

// commitRec is an offset commit the coordinator made, and when it began.
type commitRec struct {
	k   okey
	off int64
	at  time.Time
}

func (l *slowLog) pause() {
	if l.on.Load() {
		time.Sleep(rand.N(300 * time.Microsecond))
	}
}

func (l *slowLog) ReadInto(buf []byte, st store.Stream, from int64, maxBytes, maxEvents int) (store.Batch, []byte, error) {
	l.pause()
	return l.Store.ReadInto(buf, st, from, maxBytes, maxEvents)
}

func (l *slowLog) CommitGroupOffset(grp string, st store.Stream, offset int64) error {
	return l.commit(l.Store.CommitGroupOffset, grp, st, offset)
}

func (l *slowLog) CommitGroupOffsetSoon(grp string, st store.Stream, offset int64) error {
	return l.commit(l.Store.CommitGroupOffsetSoon, grp, st, offset)
}

func (l *slowLog) commit(commit commitFunc, grp string, st store.Stream, offset int64) error {
	if l.on.Load() {
		l.mu.Lock()
		l.commits = append(l.commits, commitRec{okey{grp, st}, offset, time.Now()})
		l.mu.Unlock()
	}
	l.pause()
	return commit(grp, st, offset)
}

func (l *slowLog) GroupOffset(grp string, st store.Stream) (int64, bool, error) {
	l.pause()
	return l.Store.GroupOffset(grp, st)
}

type harness struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	dir     string
	clock   *testclock.Clock
	ring    *broker.Ring
	st      *store.Store
	log     *slowLog
	c       *group.Coordinator
	opts    group.Options
	m       *model
	ctx     context.Context
	conc    bool
	step    int
	trace   []string
	prevCom map[okey]int64 // committed offsets at the last check

	// statistics
	polls, delivered, redelivered, bursts, restarts, expired, swept int
}

func newHarness(t *testing.T, seed uint64, conc bool, logger *slog.Logger) *harness {
	h := &harness{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		dir: t.TempDir(), clock: newFakeClock(), ring: broker.NewRing(mRanges),
		ctx: context.Background(), conc: conc, prevCom: map[okey]int64{},
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h.opts = group.Options{
		Streams:         h.ring.Streams,
		MemberTimeout:   mTimeout,
		OffsetRetention: mRetention,
		MaxPollWait:     time.Second,
		Logger:          logger,
		Now:             h.clock.Now,
	}
	h.openStore()
	h.m = newModel(h.ring, h.clock.Now)
	h.newCoordinator()
	t.Cleanup(func() {
		if h.c != nil {
			_ = h.c.Close()
		}
		if h.st != nil {
			_ = h.st.Close()
		}
	})
	return h
}

func (h *harness) openStore() {
	s, err := store.Open(filepath.Join(h.dir, "data"), store.Options{RetentionInterval: -1, Sync: store.SyncNever, Now: h.clock.Now})
	if err != nil {
		h.fail("store.Open: %v", err)
	}
	h.st = s
}

func (h *harness) newCoordinator() {
	h.log = &slowLog{Store: h.st}
	c, err := group.New(h.log, h.opts)
	if err != nil {
		h.fail("group.New: %v", err)
	}
	h.c = c
}

func (h *harness) logf(format string, args ...any) {
	h.trace = append(h.trace, fmt.Sprintf("%4d %s", h.step, fmt.Sprintf(format, args...)))
}

func (h *harness) fail(format string, args ...any) {
	h.t.Helper()
	tail := h.trace
	if len(tail) > 150 {
		tail = tail[len(tail)-150:]
	}
	h.t.Fatalf("seed %d (replay: FLOE_MODEL_SEED=%d FLOE_MODEL_NOCONC=%v), step %d: %s\nlast operations:\n%s",
		h.seed, h.seed, !h.conc, h.step, fmt.Sprintf(format, args...), strings.Join(tail, "\n"))
}

func (h *harness) stream(topic string, i int) store.Stream { return h.ring.Streams(topic)[i] }

func isNotRegistered(err error) bool { return errors.Is(err, broker.ErrNotRegistered) }

// ---------------------------------------------------------------- operations

func (h *harness) produce(st store.Stream, n int) {
	first := h.m.hwm[st]
	events := make([][]byte, n)
	for i := range events {
		events[i] = mEvent(st, first+int64(i))
	}
	got, err := h.st.Append(h.ctx, st, events)
	if err != nil || got != first {
		h.fail("Append(%s): first %d, %v; want %d", st, got, err, first)
	}
	h.m.hwm[st] = first + int64(n)
	h.c.Notify(st)
	h.logf("produce %s/%d +%d -> hwm %d", st.Topic, st.RangeIndex, n, first+int64(n))
}

func (h *harness) register(id, g string, topics []string, onNew group.StartPosition) {
	err := h.c.Register(h.ctx, group.Registration{ConsumerID: id, Group: g, Topics: topics, OnNewGroup: onNew})
	h.logf("register %s group %s topics %v %v: %v", id, g, topics, onNew, err)
	if err != nil {
		h.fail("Register: %v", err)
	}
	norm := slices.Compact(slices.Sorted(slices.Values(topics)))
	h.m.register(id, g, norm, onNew)
}

// checkBatches checks the batches of one successful poll of id, in group g,
// against the streams it may own (ownerOK), and records the deliveries. It
// returns the number of events.
func (h *harness) checkBatches(id, g string, topics []string, batches []group.Batch, maxBytes, maxEvents int,
	ownerOK func(st store.Stream) bool) []pend {
	var got []pend
	count, size := 0, 0
	seen := map[store.Stream]bool{}
	for _, b := range batches {
		st := b.Stream
		if seen[st] {
			h.fail("poll of %s returned %s twice", id, st)
		}
		seen[st] = true
		if !slices.Contains(topics, st.Topic) {
			h.fail("poll of %s (topics %v) returned %s: not its topic", id, topics, st)
		}
		if !ownerOK(st) {
			h.fail("poll of %s returned %s, which it does not own", id, st)
		}
		if len(b.Events) == 0 {
			h.fail("poll of %s returned an empty batch of %s", id, st)
		}
		k := okey{g, st}
		base, ok := h.m.base[k]
		if !ok {
			// A start committed concurrently: the store knows it.
			off, found, err := h.st.GroupOffset(g, st)
			if err != nil || !found {
				h.fail("poll of %s returned %s, and group %s has no start there (%v)", id, st, g, err)
			}
			base = off
			h.m.base[k] = off
			h.m.delivered[k] = nil
			h.m.acked[k] = nil
		}
		if b.Start < base {
			h.fail("poll of %s returned %s from %d, before the group's start %d", id, st, b.Start, base)
		}
		end := b.Start + int64(len(b.Events))
		if hwm := h.st.HighWatermark(st); end > hwm {
			h.fail("poll of %s returned %s up to %d, beyond the high watermark %d", id, st, end, hwm)
		}
		for i, ev := range b.Events {
			off := b.Start + int64(i)
			if want := mEvent(st, off); string(ev) != string(want) {
				h.fail("poll of %s: %s offset %d is %q, want %q", id, st, off, ev, want)
			}
			size += len(ev)
			if d := h.m.delivered[k]; off < int64(len(d)) && d[off] {
				h.redelivered++
			}
		}
		count += len(b.Events)
		h.m.deliver(g, st, b.Start, len(b.Events))
		got = append(got, pend{k, b.Start, len(b.Events)})
	}
	budget := maxBytes
	if budget == 0 {
		budget = group.DefaultMaxPollBytes
	}
	if maxEvents > 0 && count > maxEvents {
		h.fail("poll of %s returned %d events, maxEvents %d", id, count, maxEvents)
	}
	if size > budget && count > 1 {
		h.fail("poll of %s returned %d events of %d bytes, maxBytes %d", id, count, size, budget)
	}
	h.polls++
	h.delivered += count
	return got
}

func (h *harness) poll(id string, maxBytes, maxEvents int) {
	batches, err := h.c.Poll(h.ctx, group.PollRequest{ConsumerID: id, MaxBytes: maxBytes, MaxEvents: maxEvents})
	var desc []string
	for _, b := range batches {
		desc = append(desc, fmt.Sprintf("%s/%d[%d,%d)", b.Stream.Topic, b.Stream.RangeIndex, b.Start, b.Start+int64(len(b.Events))))
	}
	h.logf("poll %s maxBytes %d maxEvents %d: %v %v", id, maxBytes, maxEvents, desc, err)
	if !h.answered("poll", id, err) {
		return
	}
	mm := h.m.members[id]
	mm.lastSeen = h.clock.Now()
	h.m.settle(id, true)
	h.m.ack(id)
	pos := h.m.groups[mm.group]
	available := false
	for _, st := range h.m.owned(id) {
		if pos[st].read < h.m.hwm[st] {
			available = true
		}
	}
	h.m.pending[id] = h.checkBatches(id, mm.group, mm.topics, batches, maxBytes, maxEvents, func(st store.Stream) bool {
		p := pos[st]
		return p != nil && p.owner == id
	})
	got := map[store.Stream]bool{}
	for _, b := range batches {
		p := pos[b.Stream]
		if b.Start != p.read {
			h.fail("poll of %s returned %s from %d, want its read position %d", id, b.Stream, b.Start, p.read)
		}
		p.read = b.Start + int64(len(b.Events))
		got[b.Stream] = true
	}
	if available && len(batches) == 0 {
		h.fail("poll of %s returned nothing, though its streams have events", id)
	}
	if maxBytes == 0 && maxEvents == 0 {
		// Without a budget, a poll reads each stream to its end.
		for _, st := range h.m.owned(id) {
			if p := pos[st]; p.read != h.m.hwm[st] {
				h.fail("poll of %s without budget left %s at %d, high watermark %d", id, st, p.read, h.m.hwm[st])
			}
		}
	}
}

func (h *harness) commit(id string) {
	err := h.c.Commit(h.ctx, id)
	h.logf("commit %s: %v", id, err)
	if !h.answered("commit", id, err) {
		return
	}
	h.m.members[id].lastSeen = h.clock.Now()
	h.m.settle(id, false)
	h.m.ack(id)
}

func (h *harness) goodbye(id string, commit bool) {
	err := h.c.Goodbye(h.ctx, id, commit)
	h.logf("goodbye %s commit=%v: %v", id, commit, err)
	if !h.answered("goodbye", id, err) {
		return
	}
	h.m.goodbye(id, commit)
}

// answered checks the error of call op by id against the model: a
// consumer the model does not know must get ErrNotRegistered, a member no
// error. It says whether id is a member.
func (h *harness) answered(op, id string, err error) bool {
	if h.m.members[id] == nil {
		if !isNotRegistered(err) {
			h.fail("%s of unregistered %s: %v, want ErrNotRegistered", op, id, err)
		}
		return false
	}
	if err != nil {
		h.fail("%s of %s: %v", op, id, err)
	}
	return true
}

// probe makes the coordinator run its expiry check now (any call does).
func (h *harness) probe() {
	if err := h.c.Commit(h.ctx, "probe"); !isNotRegistered(err) {
		h.fail("commit of the unregistered probe: %v", err)
	}
}

func (h *harness) advance(d time.Duration) {
	h.clock.Advance(d)
	gone := h.m.expire()
	h.expired += len(gone)
	h.logf("advance %v: expired %v", d, gone)
	h.probe()
}

func (h *harness) sweep() {
	group.SweepOffsets(h.c)
	deleted := h.m.sweep()
	h.swept += len(deleted)
	h.logf("sweep: deleted %v", deleted)
}

func (h *harness) restart(reopen bool) {
	if err := h.c.Close(); err != nil {
		h.fail("Close: %v", err)
	}
	if reopen {
		if err := h.st.Close(); err != nil {
			h.fail("store Close: %v", err)
		}
		h.openStore()
	}
	h.newCoordinator()
	h.m.restart()
	h.restarts++
	h.logf("restart (reopen store %v); offsets now %v", reopen, h.m.committed)
}

// ---------------------------------------------------------------- checks

func (h *harness) check() {
	h.t.Helper()
	if err := group.CheckInvariants(h.c); err != nil {
		h.fail("CheckInvariants: %v", err)
	}
	m := h.m
	// Durable offsets, and their commit times (offset retention counts
	// from them).
	offs, err := h.st.GroupOffsets()
	if err != nil {
		h.fail("GroupOffsets: %v", err)
	}
	got := map[okey]int64{}
	latest := map[string]time.Time{}
	for _, o := range offs {
		got[okey{o.Group, o.Stream}] = o.Offset
		if o.Committed.After(latest[o.Group]) {
			latest[o.Group] = o.Committed
		}
	}
	for k, want := range m.committed {
		if off, ok := got[k]; !ok || off != want {
			h.fail("committed offset of %s in %s: %d %v, model %d", k.g, k.st, off, ok, want)
		}
	}
	for k, off := range got {
		if _, ok := m.committed[k]; !ok {
			h.fail("committed offset of %s in %s is %d; the model has none", k.g, k.st, off)
		}
	}
	for g, t := range latest {
		if !t.Equal(m.lastCommit[g]) {
			h.fail("last commit of group %s at %v, model %v", g, t, m.lastCommit[g])
		}
	}
	// Spec: committed offsets never go back, stay within the stream, and
	// pass only events delivered to the group.
	for k, off := range got {
		if prev, ok := h.prevCom[k]; ok && off < prev {
			h.fail("committed offset of %s in %s went back from %d to %d", k.g, k.st, prev, off)
		}
		if off > m.hwm[k.st] {
			h.fail("committed offset of %s in %s is %d, beyond the high watermark %d", k.g, k.st, off, m.hwm[k.st])
		}
		if miss := m.firstUnset(m.delivered, k, off); miss >= 0 {
			h.fail("at-least-once: %s committed %d in %s, but offset %d was never delivered to it (start %d)",
				k.g, off, k.st, miss, m.base[k])
		}
		if miss := m.firstUnset(m.acked, k, off); miss >= 0 {
			h.fail("at-least-once: %s committed %d in %s, but offset %d was never acknowledged by a member that got it (start %d)",
				k.g, off, k.st, miss, m.base[k])
		}
	}
	h.prevCom = got

	// Membership, assignment and positions, from Stats.
	s := h.c.Stats()
	if s.Members != len(m.members) {
		h.fail("Stats: %d members, model %d (%v)", s.Members, len(m.members), slices.Sorted(maps.Keys(m.members)))
	}
	live := map[string]group.GroupStats{}
	for _, gs := range s.Groups {
		if len(gs.Members) > 0 {
			live[gs.Group] = gs
		}
	}
	if len(live) != len(m.groups) {
		h.fail("Stats: groups with members %v, model %v", slices.Sorted(maps.Keys(live)), slices.Sorted(maps.Keys(m.groups)))
	}
	for g, pos := range m.groups {
		gs, ok := live[g]
		if !ok {
			h.fail("Stats: group %s has no members; model %v", g, m.membersOf(g))
		}
		var ids []string
		for _, ms := range gs.Members {
			ids = append(ids, ms.ConsumerID)
			mm := m.members[ms.ConsumerID]
			if mm == nil || mm.group != g {
				h.fail("Stats: %s is a member of %s; model says no", ms.ConsumerID, g)
			}
			if !slices.Equal(ms.Topics, mm.topics) {
				h.fail("Stats: %s has topics %v, model %v", ms.ConsumerID, ms.Topics, mm.topics)
			}
			if !ms.LastSeen.Equal(mm.lastSeen) {
				h.fail("Stats: %s last seen %v, model %v", ms.ConsumerID, ms.LastSeen, mm.lastSeen)
			}
		}
		if !slices.Equal(ids, m.membersOf(g)) {
			h.fail("Stats: members of %s %v, model %v", g, ids, m.membersOf(g))
		}
		owners := m.deal(g)
		inStats := map[store.Stream]bool{}
		for _, ss := range gs.Streams {
			inStats[ss.Stream] = true
			k := okey{g, ss.Stream}
			if ss.Owner != owners[ss.Stream] {
				h.fail("Stats: %s of %s owned by %q, model %q", ss.Stream, g, ss.Owner, owners[ss.Stream])
			}
			p := pos[ss.Stream]
			if p == nil {
				h.fail("Stats: %s of %s has a position the model lacks", ss.Stream, g)
			}
			want := int64(-1)
			if p.started {
				want = p.read
			}
			if ss.Owner != "" && ss.ReadPosition != want {
				h.fail("Stats: %s of %s (owner %s) read position %d, model %d (started %v)",
					ss.Stream, g, ss.Owner, ss.ReadPosition, want, p.started)
			}
			if ss.Committed != -1 && ss.Committed != m.committed[k] {
				h.fail("Stats: %s of %s committed %d, model %d", ss.Stream, g, ss.Committed, m.committed[k])
			}
		}
		for st := range owners {
			if !inStats[st] {
				h.fail("Stats: %s of %s missing, model owner %s", st, g, owners[st])
			}
		}
	}
}

// ---------------------------------------------------------------- bursts

// bCall is one call of a burst operation, and what it returned.
type bCall struct {
	t0, t1  time.Time // when it was made, when it returned
	batches []group.Batch
	err     error
	lent    [][]byte // buffers lent to the poll
	got     []pend   // what it delivered (filled by the checks)
}

// bOp is one goroutine of a burst: a few calls of one kind, in sequence.
type bOp struct {
	kind      string // poll, commit, produce, register, goodbye, close
	id        string
	reps      int
	maxBytes  int
	maxEvents int
	wait      time.Duration
	cancel    bool // polls: their context expires within half a millisecond
	buffer    bool // polls: lend buffers
	st        store.Stream
	n         int
	grp       string
	topics    []string
	onNew     group.StartPosition
	commit    bool
	first     int64
	delay     time.Duration // before the first call
	calls     []*bCall
}

// pollReq is the request of a poll of op; lent records the buffers lent.
func (op *bOp) pollReq(call *bCall) group.PollRequest {
	r := group.PollRequest{ConsumerID: op.id, MaxBytes: op.maxBytes, MaxEvents: op.maxEvents, Wait: op.wait}
	if op.buffer {
		r.Buffer = func(n int) []byte {
			b := make([]byte, 0, n)
			call.lent = append(call.lent, b)
			return b
		}
	}
	return r
}

// scribble overwrites the buffers lent to polls, as the REST API reuses
// them once an answer is written: later polls must not return their memory.
func scribble(calls ...*bCall) {
	for _, c := range calls {
		for _, b := range c.lent {
			b = b[:cap(b)]
			for i := range b {
				b[i] = '#'
			}
		}
	}
}

func describe(batches []group.Batch) []string {
	var desc []string
	for _, b := range batches {
		desc = append(desc, fmt.Sprintf("%s/%d[%d,%d)", b.Stream.Topic, b.Stream.RangeIndex, b.Start, b.Start+int64(len(b.Events))))
	}
	return desc
}

// runOps runs ops at once, with CheckInvariants in a loop meanwhile.
func (h *harness) runOps(ops []*bOp) {
	c, st := h.c, h.st
	h.log.on.Store(true)
	defer h.log.on.Store(false)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, op := range ops {
		op.calls = make([]*bCall, max(op.reps, 1))
		for i := range op.calls {
			op.calls[i] = &bCall{}
		}
		wg.Go(func() {
			<-start
			if op.delay > 0 {
				time.Sleep(op.delay)
			}
			for _, call := range op.calls {
				call.t0 = time.Now()
				switch op.kind {
				case "poll":
					ctx := h.ctx
					if op.cancel {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, 50*time.Microsecond+rand.N(400*time.Microsecond))
						defer cancel()
					}
					call.batches, call.err = c.Poll(ctx, op.pollReq(call))
				case "commit":
					call.err = c.Commit(h.ctx, op.id)
				case "produce":
					events := make([][]byte, op.n)
					for i := range events {
						events[i] = mEvent(op.st, op.first+int64(i))
					}
					var got int64
					got, call.err = st.Append(h.ctx, op.st, events)
					if call.err == nil && got != op.first {
						call.err = fmt.Errorf("appended at %d, want %d", got, op.first)
					}
					c.Notify(op.st)
				case "register":
					call.err = c.Register(h.ctx, group.Registration{ConsumerID: op.id, Group: op.grp, Topics: op.topics, OnNewGroup: op.onNew})
				case "goodbye":
					call.err = c.Goodbye(h.ctx, op.id, op.commit)
				case "close":
					call.err = c.Close()
				}
				call.t1 = time.Now()
			}
		})
	}
	h.log.mu.Lock()
	h.log.commits = nil
	h.log.mu.Unlock()
	stop := make(chan struct{})
	invDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				invDone <- nil
				return
			default:
			}
			if err := group.CheckInvariants(c); err != nil {
				invDone <- err
				return
			}
			runtime.Gosched()
		}
	}()
	close(start)
	wg.Wait()
	close(stop)
	for _, op := range ops {
		for i, call := range op.calls {
			h.logf("  || %s#%d %s %s/%d n=%d grp=%s topics=%v commit=%v mb=%d me=%d wait=%v cancel=%v: %v %v",
				op.kind, i, op.id, op.st.Topic, op.st.RangeIndex, op.n, op.grp, op.topics, op.commit,
				op.maxBytes, op.maxEvents, op.wait, op.cancel, describe(call.batches), call.err)
		}
	}
	if err := <-invDone; err != nil {
		h.fail("CheckInvariants during a burst: %v", err)
	}
}

type span struct{ start, end int64 }

// acks reports whether a call of op acknowledges what its member polled
// before (polls, commits, goodbyes with commit), failed or not: a consumer
// makes it once it processed what it got (and a call that fails with
// ErrUnavailable, the coordinator closing meanwhile, may have committed).
func (op *bOp) acks() bool {
	return op.kind == "poll" || op.kind == "commit" || op.kind == "goodbye" && op.commit
}

// ackBurst acknowledges what members polled before and during a burst. The
// calls of one goroutine are in order; those of different goroutines are
// not, so the rule is liberal there (the check must not fail a correct
// coordinator): what a member had pending before the burst is acknowledged
// if it made a call; what a call got is acknowledged by a later call of the
// same goroutine, or by any call of another goroutine of the member; the
// rest stays pending. ackBefore runs before the model applies a burst's
// membership change (which drops what is pending), ackDuring after it.
func (m *model) ackBurst(ops []*bOp) {
	m.ackBefore(ops)
	m.ackDuring(ops)
}

func goroutines(ops []*bOp) map[string]int {
	n := map[string]int{}
	for _, op := range ops {
		if op.acks() && op.id != "" {
			n[op.id]++
		}
	}
	return n
}

func (m *model) ackBefore(ops []*bOp) {
	for id := range goroutines(ops) {
		m.ack(id)
	}
}

func (m *model) ackDuring(ops []*bOp) {
	goroutines := goroutines(ops)
	for _, op := range ops {
		if !op.acks() {
			continue
		}
		for i, call := range op.calls {
			if i < len(op.calls)-1 || goroutines[op.id] > 1 {
				m.pending[op.id] = call.got
				m.ack(op.id)
			}
		}
	}
	for _, op := range ops {
		if op.kind == "poll" && goroutines[op.id] == 1 {
			last := op.calls[len(op.calls)-1]
			m.pending[op.id] = append(m.pending[op.id], last.got...)
		}
	}
}

// checkCommitTimes checks the commits of a burst against when members
// acknowledged what they got: a commit may pass an event only if a member
// that got it had acknowledged it (made its next call) when the commit
// began. preAcked and prePending are the model's before the burst; the
// calls' deliveries (got) are filled in.
func (h *harness) checkCommitTimes(ops []*bOp, log *slowLog, preAcked map[okey][]bool, prePending map[string][]pend) {
	ackAt := map[okey]map[int64]time.Time{}
	ackBy := func(k okey, start int64, n int, t time.Time) {
		if ackAt[k] == nil {
			ackAt[k] = map[int64]time.Time{}
		}
		for off := start; off < start+int64(n); off++ {
			if old, ok := ackAt[k][off]; !ok || t.Before(old) {
				ackAt[k][off] = t
			}
		}
	}
	// The calls that acknowledge, by member, and the goroutine of each.
	calls := map[string][]*bCall{}
	from := map[*bCall]*bOp{}
	for _, op := range ops {
		if op.acks() && op.id != "" {
			calls[op.id] = append(calls[op.id], op.calls...)
			for _, c := range op.calls {
				from[c] = op
			}
		}
	}
	for id, pend := range prePending {
		for _, c := range calls[id] {
			for _, p := range pend {
				ackBy(p.k, p.start, p.n, c.t0)
			}
		}
	}
	for _, op := range ops {
		if op.kind != "poll" {
			continue
		}
		for _, call := range op.calls {
			for _, c := range calls[op.id] {
				// A later call of the same goroutine acknowledges when it
				// is made. Concurrent calls of one consumer (other
				// goroutines) are not ordered: a poll made while another
				// reads may commit what that one returns (the
				// coordinator has one read position per stream), so the
				// rule is liberal there.
				if c == call || from[c] == op && c.t0.Before(call.t1) {
					continue
				}
				for _, p := range call.got {
					ackBy(p.k, p.start, p.n, c.t0)
				}
			}
		}
	}
	log.mu.Lock()
	commits := slices.Clone(log.commits)
	log.mu.Unlock()
	for _, r := range commits {
		base, ok := h.m.base[r.k]
		if !ok {
			continue // a start
		}
		for off := base; off < r.off; off++ {
			if a := preAcked[r.k]; off < int64(len(a)) && a[off] {
				continue
			}
			t, ok := ackAt[r.k][off]
			if !ok || t.After(r.at) {
				h.fail("burst: %s committed %d in %s before offset %d was acknowledged by a member that got it (acknowledged: %v, at %v; commit at %v)",
					r.k.g, r.off, r.k.st, off, ok, t.Format("15:04:05.000000"), r.at.Format("15:04:05.000000"))
			}
		}
	}
}

func cloneAcked(a map[okey][]bool) map[okey][]bool {
	out := make(map[okey][]bool, len(a))
	for k, v := range a {
		out[k] = slices.Clone(v)
	}
	return out
}

func clonePending(p map[string][]pend) map[string][]pend {
	out := make(map[string][]pend, len(p))
	for k, v := range p {
		out[k] = slices.Clone(v)
	}
	return out
}

// chains groups the batches of the successful polls by member and stream.
func chains(ops []*bOp) map[string]map[store.Stream][]span {
	out := map[string]map[store.Stream][]span{}
	for _, op := range ops {
		if op.kind != "poll" {
			continue
		}
		for _, call := range op.calls {
			if call.err != nil {
				continue
			}
			for _, b := range call.batches {
				if out[op.id] == nil {
					out[op.id] = map[store.Stream][]span{}
				}
				out[op.id][b.Stream] = append(out[op.id][b.Stream], span{b.Start, b.Start + int64(len(b.Events))})
			}
		}
	}
	for _, byStream := range out {
		for _, s := range byStream {
			slices.SortFunc(s, func(a, b span) int { return int(a.start - b.start) })
		}
	}
	return out
}

func (h *harness) drawPollParams() (maxBytes, maxEvents int) {
	switch h.rng.IntN(4) {
	case 0:
		maxEvents = 1 + h.rng.IntN(4)
		return 0, maxEvents
	case 1:
		return 1 + h.rng.IntN(120), 0
	default:
		return 0, 0
	}
}

// drawPoll draws a burst poll (or commit) of id.
func (h *harness) drawPoll(id string) *bOp {
	op := &bOp{id: id, kind: "poll", reps: 1 + h.rng.IntN(3)}
	op.maxBytes, op.maxEvents = h.drawPollParams()
	switch h.rng.IntN(6) {
	case 0:
		op.wait = 2 * time.Millisecond
	case 1:
		op.cancel = true
	case 2:
		op.wait = longWait
		op.reps = 1 // it often waits to the end
	}
	op.buffer = h.rng.IntN(2) == 0
	if h.rng.IntN(4) == 0 {
		op.kind = "commit"
	}
	return op
}

// longWait is the wait of the long polls that must see the events produced
// meanwhile.
const longWait = 30 * time.Millisecond

func isCanceled(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// safeBurst runs polls, commits and produces at once, without membership
// changes: the model still predicts where each member reads.
func (h *harness) safeBurst() {
	n := 2 + h.rng.IntN(5)
	var ops []*bOp
	used := map[store.Stream]bool{}
	for range n {
		op := h.drawPoll(h.pickID())
		st := h.stream(mTopics[h.rng.IntN(len(mTopics))], h.rng.IntN(mRanges))
		if h.rng.IntN(4) == 0 && !used[st] {
			used[st] = true
			op = &bOp{kind: "produce", st: st, n: 1 + h.rng.IntN(4), first: h.m.hwm[st]}
			if h.rng.IntN(2) == 0 {
				op.delay = time.Duration(1+h.rng.IntN(8)) * time.Millisecond
			}
		}
		ops = append(ops, op)
	}
	m := h.m
	h.logf("safe burst of %d", len(ops))
	preAcked, prePending := cloneAcked(m.acked), clonePending(m.pending)
	h.runOps(ops)
	h.bursts++

	now := h.clock.Now()
	canceled := map[string]bool{}
	for _, op := range ops {
		for _, call := range op.calls {
			switch op.kind {
			case "produce":
				if call.err != nil {
					h.fail("burst: append: %v", call.err)
				}
			case "poll", "commit":
				mm := m.members[op.id]
				switch {
				case mm == nil && op.cancel && isCanceled(call.err):
				case mm == nil:
					if !isNotRegistered(call.err) {
						h.fail("burst: %s of unregistered %s: %v", op.kind, op.id, call.err)
					}
				case op.cancel && isCanceled(call.err):
					canceled[op.id] = true
				case call.err != nil:
					h.fail("burst: %s of %s: %v", op.kind, op.id, call.err)
				default:
					mm.lastSeen = now
				}
			}
		}
	}
	for _, op := range ops {
		if op.kind == "produce" {
			m.hwm[op.st] = op.first + int64(op.n)
		}
	}
	polled := map[string]bool{}
	for _, op := range ops {
		if op.kind != "poll" || m.members[op.id] == nil {
			continue
		}
		mm := m.members[op.id]
		pos := m.groups[mm.group]
		for _, call := range op.calls {
			if call.err != nil {
				continue
			}
			polled[op.id] = true
			call.got = h.checkBatches(op.id, mm.group, mm.topics, call.batches, op.maxBytes, op.maxEvents, func(st store.Stream) bool {
				p := pos[st]
				return p != nil && p.owner == op.id
			})
		}
	}
	h.checkCommitTimes(ops, h.log, preAcked, prePending)
	h.checkWakeUps(ops)
	m.ackBurst(ops)
	h.lastSeenAfterCancel(canceled, now)
	ch := chains(ops)
	stats := h.readPositions()
	for _, id := range slices.Sorted(maps.Keys(m.members)) {
		mm := m.members[id]
		for _, st := range m.owned(id) {
			p := m.groups[mm.group][st]
			k := okey{mm.group, st}
			preC := m.committed[k]
			at := preC
			if p.started {
				at = p.read
			}
			points := []int64{preC, at}
			for _, s := range ch[id][st] {
				if s.start != at {
					h.fail("burst: %s read %s from %d, want %d (chain %v)", id, st, s.start, at, ch[id][st])
				}
				at = s.end
				points = append(points, at)
			}
			switch {
			case polled[id]:
				p.started, p.read = true, at
			case canceled[id] && !p.started:
				// A poll whose caller gave up may have started it.
				if rp := stats[k]; rp >= 0 {
					if rp != at {
						h.fail("burst: %s starts %s at %d after a canceled poll, want %d", id, st, rp, at)
					}
					p.started, p.read = true, at
				}
			}
			off, ok, err := h.st.GroupOffset(mm.group, st)
			if err != nil || !ok {
				h.fail("burst: committed offset of %s in %s: %v %v", mm.group, st, ok, err)
			}
			if !slices.Contains(points, off) {
				h.fail("burst: %s committed %d in %s, not one of the positions %v", mm.group, off, st, points)
			}
			if off != preC {
				m.commitOffset(mm.group, st, off)
			}
		}
	}
	for _, op := range ops {
		scribble(op.calls...)
	}
}

// checkWakeUps checks that a long poll of a member (the only poller of the
// member in the burst) does not answer empty at its timeout when events
// were produced into its streams while it waited (by the model before the
// burst, which changes no membership).
func (h *harness) checkWakeUps(ops []*bOp) {
	pollers := map[string]int{}
	for _, op := range ops {
		if op.kind == "poll" {
			pollers[op.id]++
		}
	}
	for _, op := range ops {
		mm := h.m.members[op.id]
		if op.kind != "poll" || op.wait < longWait || pollers[op.id] != 1 || mm == nil {
			continue
		}
		owned := h.m.owned(op.id)
		for i, call := range op.calls {
			if call.err != nil || len(call.batches) > 0 {
				continue
			}
			for _, p := range ops {
				if p.kind != "produce" || !slices.Contains(owned, p.st) {
					continue
				}
				// Events visible before the producer's Notify returned may
				// have gone to an earlier poll.
				got := false
				for _, prev := range op.calls[:i] {
					for _, b := range prev.batches {
						got = got || b.Stream == p.st && b.Start+int64(len(b.Events)) > p.first
					}
				}
				if got {
					continue
				}
				notified := p.calls[0].t1 // after its Notify
				if notified.After(call.t0) && notified.Add(longWait/2).Before(call.t1) {
					h.fail("burst: a long poll of %s answered nothing after %v, though %d events were produced into its %s %v after it began",
						op.id, call.t1.Sub(call.t0), p.n, p.st, notified.Sub(call.t0))
				}
			}
		}
	}
}

// lastSeenAfterCancel takes from Stats the lastSeen of the members that
// made a poll whose context expired, and was not seen otherwise: it is now
// if the poll came in before it expired.
func (h *harness) lastSeenAfterCancel(canceled map[string]bool, now time.Time) {
	for _, gs := range h.c.Stats().Groups {
		for _, ms := range gs.Members {
			mm := h.m.members[ms.ConsumerID]
			if mm == nil || !canceled[ms.ConsumerID] || mm.lastSeen.Equal(now) {
				continue
			}
			if !ms.LastSeen.Equal(now) && !ms.LastSeen.Equal(mm.lastSeen) {
				h.fail("burst: %s last seen %v, want %v or %v", ms.ConsumerID, ms.LastSeen, mm.lastSeen, now)
			}
			mm.lastSeen = ms.LastSeen
		}
	}
}

// readPositions is the read position of each owned stream, from Stats (-1:
// not started).
func (h *harness) readPositions() map[okey]int64 {
	out := map[okey]int64{}
	for _, gs := range h.c.Stats().Groups {
		for _, ss := range gs.Streams {
			if ss.Owner != "" {
				out[okey{gs.Group, ss.Stream}] = ss.ReadPosition
			}
		}
	}
	return out
}

// chaosBurst runs polls and commits at once with one membership change (a
// register, a goodbye) or a Close; afterwards the model takes the positions
// from Stats and the offsets from the store, having checked that every
// batch came from a stream its member owned before or after, from a
// position it may resume at.
func (h *harness) chaosBurst() {
	m := h.m
	change := &bOp{id: h.pickID()}
	// The change comes while the polls read (most often).
	change.delay = time.Duration(h.rng.IntN(1000)) * time.Microsecond
	kind := h.rng.IntN(10)
	change.grp = mGroups[h.rng.IntN(len(mGroups))]
	change.topics = h.drawTopics()
	change.onNew = group.StartPosition(h.rng.IntN(2))
	change.commit = h.rng.IntN(2) == 0
	reopen := h.rng.IntN(2) == 0
	switch {
	case kind < 5:
		change.kind = "register"
	case kind < 8:
		change.kind = "goodbye"
	default:
		change.kind = "close"
	}
	moving := change.kind == "register" && m.members[change.id] != nil && m.members[change.id].group != change.grp
	ops := []*bOp{change}
	// Most polls come from the group that changes, so that its streams
	// move while they are read.
	target := change.grp
	if mm := m.members[change.id]; mm != nil && change.kind != "register" {
		target = mm.group
	}
	local := m.membersOf(target)
	for range 2 + h.rng.IntN(4) {
		id := h.pickID()
		if k := h.rng.IntN(1000); k < 700 && len(local) > 0 {
			id = local[k%len(local)]
		}
		op := h.drawPoll(id)
		if reps := 1 + h.rng.IntN(5); op.wait < longWait {
			op.reps = reps
		}
		if op.id == change.id && moving {
			// Which group a poll of a moving member reads is not
			// observable: leave it out.
			op.kind = "commit"
		}
		ops = append(ops, op)
	}
	h.logf("chaos burst of %d around %s %s", len(ops), change.kind, change.id)

	// Before.
	type pre struct {
		group   string
		topics  []string
		owned   map[store.Stream]mPos
		present bool
	}
	before := map[string]pre{}
	for _, id := range mConsumers {
		mm := m.members[id]
		if mm == nil {
			continue
		}
		p := pre{group: mm.group, topics: mm.topics, owned: map[store.Stream]mPos{}, present: true}
		for _, st := range m.owned(id) {
			p.owned[st] = *m.groups[mm.group][st]
		}
		before[id] = p
	}
	preCom := maps.Clone(m.committed)
	preLast := maps.Clone(m.lastCommit)
	preAcked, prePending := cloneAcked(m.acked), clonePending(m.pending)
	log := h.log

	h.runOps(ops)
	h.bursts++
	now := h.clock.Now()
	chg := change.calls[0]

	// Errors.
	for _, op := range ops[1:] {
		_, was := before[op.id]
		for _, call := range op.calls {
			switch {
			case change.kind == "close" && errors.Is(call.err, broker.ErrUnavailable):
			case isNotRegistered(call.err) && (!was || change.kind == "goodbye" && op.id == change.id):
			case op.cancel && isCanceled(call.err):
			case call.err == nil && (was || change.kind == "register" && op.id == change.id):
			default:
				h.fail("burst: %s of %s: %v (registered before: %v)", op.kind, op.id, call.err, was)
			}
		}
	}

	// Offsets after, from the store.
	postCom := map[okey]int64{}
	offs, err := h.st.GroupOffsets()
	if err != nil {
		h.fail("GroupOffsets: %v", err)
	}
	for _, o := range offs {
		postCom[okey{o.Group, o.Stream}] = o.Offset
	}

	// The change, in the model (positions are taken from the coordinator
	// below). Starts it commits get their base here.
	switch change.kind {
	case "register":
		if chg.err != nil {
			h.fail("burst: register: %v", chg.err)
		}
	case "goodbye":
		if m.members[change.id] == nil {
			if !isNotRegistered(chg.err) {
				h.fail("burst: goodbye of unregistered %s: %v", change.id, chg.err)
			}
		} else if chg.err != nil {
			h.fail("burst: goodbye of %s: %v", change.id, chg.err)
		}
	case "close":
		if chg.err != nil {
			h.fail("burst: Close: %v", chg.err)
		}
	}

	// The batches, checked against the membership after the change.
	after := func(id string) *mMember {
		switch {
		case change.kind == "close":
			return nil
		case change.kind == "goodbye" && id == change.id:
			return nil
		case change.kind == "register" && id == change.id:
			return &mMember{id: id, group: change.grp, topics: slices.Compact(slices.Sorted(slices.Values(change.topics)))}
		}
		return m.members[id]
	}
	shadow := &model{ring: m.ring, members: map[string]*mMember{}}
	for _, id := range mConsumers {
		if mm := after(id); mm != nil {
			shadow.members[id] = mm
		}
	}
	if change.kind == "register" {
		// The starts the registration commits (nothing is produced
		// meanwhile).
		shadow.members[change.id].onNew = change.onNew
		for st, id := range shadow.deal(change.grp) {
			k := okey{change.grp, st}
			if _, had := preCom[k]; had {
				continue
			}
			start := int64(0)
			if shadow.members[id].onNew == group.StartFromLatest {
				start = m.hwm[st]
			}
			if off, ok := postCom[k]; !ok || off < start {
				h.fail("burst: %s committed %d %v in %s after the registration, want at least its start %d", k.g, off, ok, st, start)
			}
			m.base[k] = start
			m.delivered[k] = nil
			m.acked[k] = nil
		}
	}
	ch := chains(ops)
	for _, op := range ops[1:] {
		if op.kind != "poll" {
			continue
		}
		b4 := before[op.id]
		var g string
		var topics []string
		if b4.present {
			g, topics = b4.group, b4.topics
		}
		if mm := after(op.id); mm != nil {
			if g == "" {
				g = mm.group
			}
			topics = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(topics), mm.topics...))))
		}
		owners := shadow.deal(g)
		for _, call := range op.calls {
			if call.err != nil {
				continue
			}
			if g == "" {
				h.fail("burst: poll of %s succeeded, and it is a member neither before nor after", op.id)
			}
			call.got = h.checkBatches(op.id, g, topics, call.batches, op.maxBytes, op.maxEvents, func(st store.Stream) bool {
				_, was := b4.owned[st]
				return was || owners[st] == op.id
			})
			for _, b := range call.batches {
				k := okey{g, b.Stream}
				preC, hadC := preCom[k]
				postC := postCom[k]
				if !hadC {
					preC = m.base[k]
				}
				okStart := b.Start >= preC && b.Start <= postC
				if p, was := b4.owned[b.Stream]; was && p.started && b.Start == p.read {
					okStart = true
				}
				for _, s := range ch[op.id][b.Stream] {
					if s.end == b.Start {
						okStart = true
					}
				}
				if !okStart {
					h.fail("burst: %s read %s from %d: neither where it was nor a committed offset (committed %d..%d, before %+v)",
						op.id, b.Stream, b.Start, preC, postC, b4.owned[b.Stream])
				}
			}
		}
	}
	h.checkCommitTimes(ops, log, preAcked, prePending)
	m.ackBefore(ops)

	// The offsets first, so that the registration in the model finds the
	// starts committed.
	m.lastCommit = preLast
	for k, off := range postCom {
		if pc, had := preCom[k]; !had || pc != off {
			m.lastCommit[k.g] = now
		}
		m.committed[k] = off
		if _, ok := m.base[k]; !ok {
			h.fail("burst: %s has an offset in %s, and the model no start", k.g, k.st)
		}
	}
	for k := range m.committed {
		if _, ok := postCom[k]; !ok {
			h.fail("burst: committed offset of %s in %s is gone", k.g, k.st)
		}
	}
	lastCommit := maps.Clone(m.lastCommit)
	switch change.kind {
	case "register":
		norm := slices.Compact(slices.Sorted(slices.Values(change.topics)))
		m.register(change.id, change.grp, norm, change.onNew)
	case "goodbye":
		if m.members[change.id] != nil {
			m.goodbye(change.id, change.commit)
		}
	}
	m.ackDuring(ops)
	canceled := map[string]bool{}
	for _, op := range ops[1:] {
		for _, call := range op.calls {
			mm := m.members[op.id]
			switch {
			case mm == nil || change.kind == "close":
			case call.err == nil:
				mm.lastSeen = now
			case isCanceled(call.err):
				canceled[op.id] = true
			}
		}
	}

	if change.kind == "close" {
		if reopen {
			if err := h.st.Close(); err != nil {
				h.fail("store Close: %v", err)
			}
			h.openStore()
		}
		h.newCoordinator()
	}
	// Undo what the model's goodbye committed from stale positions.
	maps.Copy(m.committed, postCom)
	m.lastCommit = lastCommit
	for _, op := range ops {
		scribble(op.calls...)
	}
	if change.kind == "close" {
		m.restart()
		h.restarts++
		return
	}
	h.lastSeenAfterCancel(canceled, now)
	// Positions, from Stats (checked against the assignment by check).
	for k, rp := range h.readPositions() {
		if p := m.groups[k.g][k.st]; p != nil {
			p.started, p.read = rp >= 0, max(rp, 0)
		}
	}
}

// ---------------------------------------------------------------- driver

func (h *harness) drawTopics() []string {
	switch h.rng.IntN(5) {
	case 0, 1:
		return []string{"a"}
	case 2:
		return []string{"ab"}
	case 3:
		return []string{"ab", "a"}
	default:
		return []string{"a", "ab", "a"}
	}
}

// pickID draws a consumer id: most often a registered one (so that most
// calls do something), sometimes any. It draws the same number of random
// numbers whatever the state.
func (h *harness) pickID() string {
	u, k := h.rng.IntN(100), h.rng.IntN(1000)
	if live := slices.Sorted(maps.Keys(h.m.members)); u < 75 && len(live) > 0 {
		return live[k%len(live)]
	}
	return mConsumers[k%len(mConsumers)]
}

func (h *harness) randomStep() {
	r := h.rng.IntN(1000)
	id := h.pickID()
	g := mGroups[h.rng.IntN(len(mGroups))]
	topics := h.drawTopics()
	onNew := group.StartPosition(h.rng.IntN(2))
	st := h.stream(mTopics[h.rng.IntN(len(mTopics))], h.rng.IntN(mRanges))
	n := 1 + h.rng.IntN(5)
	maxBytes, maxEvents := h.drawPollParams()
	flag := h.rng.IntN(2) == 0
	adv := h.rng.IntN(22)
	if r < 120 {
		// Registrations pick any id: new members, moves, re-registers.
		id = mConsumers[h.rng.IntN(len(mConsumers))]
	}
	switch {
	case r < 120:
		h.register(id, g, topics, onNew)
	case r < 320:
		h.produce(st, n)
	case r < 600:
		h.poll(id, maxBytes, maxEvents)
	case r < 670:
		h.commit(id)
	case r < 720:
		h.goodbye(id, flag)
	case r < 780:
		switch {
		case adv < 7:
			h.advance(20 * time.Second)
		case adv < 10:
			h.advance(30 * time.Second)
		case adv < 13:
			h.advance(45 * time.Second)
		case adv < 16:
			h.advance(mTimeout + time.Second)
		case adv < 18:
			h.advance(mRetention)
		case adv < 20:
			h.advance(mRetention + time.Minute)
		default:
			// To the next member's deadline, or just before it.
			d := time.Duration(0)
			for _, mm := range h.m.members {
				if left := mm.lastSeen.Add(mTimeout).Sub(h.clock.Now()); d == 0 || left < d {
					d = left
				}
			}
			if adv == 20 {
				d -= time.Nanosecond
			}
			h.advance(max(d, 0))
		}
	case r < 795:
		h.restart(flag)
	case r < 830:
		h.sweep()
	case r < 930:
		if h.conc {
			h.safeBurst()
		} else {
			h.poll(id, maxBytes, maxEvents)
		}
	default:
		if h.conc {
			h.chaosBurst()
		} else {
			h.commit(id)
		}
	}
}

// drain makes every group read both topics to their ends and checks that
// each got every event from its start on.
func (h *harness) drain() {
	h.logf("drain")
	for _, g := range mGroups {
		h.register("drain-"+g, g, mTopics, group.StartFromEarliest)
		h.check()
		for round := 0; ; round++ {
			if round > 1000 {
				h.fail("drain of %s does not end", g)
			}
			before := h.delivered
			for _, id := range h.m.membersOf(g) {
				h.poll(id, 0, 0)
			}
			h.check()
			if h.delivered == before {
				break
			}
		}
		for _, id := range h.m.membersOf(g) {
			h.commit(id)
		}
		h.check()
		for _, topic := range mTopics {
			for _, st := range h.ring.Streams(topic) {
				k := okey{g, st}
				if off := h.m.committed[k]; off != h.m.hwm[st] {
					h.fail("after the drain, %s committed %d in %s, high watermark %d", g, off, st, h.m.hwm[st])
				}
				if miss := h.m.firstUnset(h.m.acked, k, h.m.hwm[st]); miss >= 0 {
					h.fail("at-least-once: %s never got offset %d of %s (start %d)", g, miss, st, h.m.base[k])
				}
			}
		}
	}
}

func runModel(t *testing.T, seed uint64, steps int, conc bool) *harness {
	h := newHarness(t, seed, conc, nil)
	h.check()
	for h.step = 1; h.step <= steps; h.step++ {
		h.randomStep()
		h.check()
	}
	h.drain()
	return h
}

func TestModel(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	steps := 300
	random := 2
	if testing.Short() {
		seeds, steps, random = seeds[:3], 120, 1
	}
	if v := os.Getenv("FLOE_MODEL_OPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		steps = n
	}
	if v := os.Getenv("FLOE_MODEL_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seeds, random = []uint64{s}, 0
	}
	if v := os.Getenv("FLOE_MODEL_RANDOM"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		random = n
	}
	for range random {
		seeds = append(seeds, rand.Uint64()%1_000_000_000)
	}
	conc := os.Getenv("FLOE_MODEL_NOCONC") == ""
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			h := runModel(t, seed, steps, conc)
			t.Logf("seed %d: %d steps, %d polls, %d events delivered (%d again), %d bursts, %d restarts, %d members expired, %d groups' offsets expired",
				seed, steps, h.polls, h.delivered, h.redelivered, h.bursts, h.restarts, h.expired, h.swept)
		})
	}
}
