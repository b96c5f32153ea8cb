package group

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/store"
)

// Coordinator keeps the consumer groups of one broker: membership, the
// assignment of streams to members, read positions and committed offsets.
// All methods are safe for concurrent use.
//
// Locking: mu guards all membership and position state. Store I/O (reads,
// offset commits, offset loads) runs without mu; a position being committed
// or loaded carries a lease (position.io) and a position being read a flag
// (position.reading), so that each has one writer and one reader at a time.
type Coordinator struct {
	log    Log
	opts   Options
	logger *slog.Logger

	mu      sync.Mutex
	closed  bool
	members map[string]*member
	groups  map[string]*groupState
	// nextExpiry is a lower bound of the members' expiry deadlines: no
	// scan is needed before it. Zero when there are no members.
	nextExpiry time.Time
	rebalances uint64
	expired    uint64
	// eventSize is the average size of the events read by the last poll
	// that read some: it sizes the buffer of a member's first poll
	// (loanSize).
	eventSize int
	// started is when New ran: a group that had members when the broker
	// stopped became inactive then, at the latest.
	started time.Time
	// emptied is when each group dropped from memory became inactive: lost
	// its last member, or (for groups with committed offsets and no record)
	// started. Offset retention counts from it, as Kafka's since 2.1.
	// Entries go when the group comes back, when its offsets expire, and
	// for groups without offsets.
	emptied map[string]time.Time
	// persisted is what the log may hold of emptied (recordInactive), so
	// that restarts do not reset the count: an entry is set before its
	// write, and a zero time means unknown (a write failed). recordLocks
	// serialize the writes of each group's record, by a hash of its name.
	persisted   map[string]time.Time
	recordLocks [64]sync.Mutex
	seed        maphash.Seed
	sweepMu     sync.Mutex // one expireOffsets at a time
	// deleting holds the groups whose offsets offset retention is deleting,
	// without the lock; Register waits for the channel before it recreates
	// one.
	deleting map[string]chan struct{}

	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	// Long polls waiting for events, by topic (notify.go).
	waitMu   sync.RWMutex
	waiters  map[string]map[*waiter]struct{}
	nwaiters atomic.Int64
}

// groupState is one consumer group: its members and, per stream of its
// topics, the position record.
type groupState struct {
	name    string
	members map[string]*member
	// byID holds the members of members in id order, kept as they join
	// and leave: sorting them at every rebalance made each registration
	// in a group of 20,000 members take 13 ms.
	byID      []*member
	positions map[store.Stream]*position
}

// add makes m a member of g.
func (g *groupState) add(m *member) {
	g.members[m.id] = m
	i, found := slices.BinarySearchFunc(g.byID, m.id, compareMemberID)
	if found {
		g.byID[i] = m
		return
	}
	g.byID = slices.Insert(g.byID, i, m)
}

// remove drops the member id from g.
func (g *groupState) remove(id string) {
	delete(g.members, id)
	if i, found := slices.BinarySearchFunc(g.byID, id, compareMemberID); found {
		g.byID = slices.Delete(g.byID, i, i+1)
	}
}

func compareMemberID(m *member, id string) int { return strings.Compare(m.id, id) }

// member is one registered consumer.
type member struct {
	id       string
	group    *groupState
	topics   []string // sorted, distinct; replaced, never modified in place
	onNew    StartPosition
	lastSeen time.Time
	polling  int  // polls, commits, goodbyes and registrations in progress; such a member does not expire
	gone     bool // unregistered or expired; a new registration makes a new member
	// registered counts the registrations of the id since this member
	// joined. A poll that began under an earlier one ends without reading
	// (errSuperseded): it may be the last poll of an instance that died
	// with the request open, and what it read would be committed by the
	// new instance's next poll without ever being delivered.
	registered uint64

	positions []*position // assigned streams, by topic then range index
	rot       int         // rotates the first stream read by a poll
	// readBytes is the payload read by the member's last poll that found
	// events, eventSize the average size of those events: they size the
	// buffer the next poll borrows (loanSize).
	readBytes, eventSize int
}

// position is the state of one stream in one group.
type position struct {
	st    store.Stream
	owner *member // nil: no member of the group reads the stream
	// epoch counts owner changes; a read or commit started under an older
	// epoch does not change the read position.
	epoch uint64

	known     bool  // committed is valid
	committed int64 // the group's committed offset (the start of a new owner)

	started bool  // read is the owner's position
	read    int64 // next offset the owner reads; committed by its next poll

	reading   bool          // a Read of the stream is in flight
	contended bool          // a poll skipped the stream because of that Read
	io        chan struct{} // non-nil while a commit or load is in flight; closed when done

	// Reads of the stream that failed in a row, and when the last of them
	// was logged: a failing stream is logged when it starts failing, then
	// at most every readErrorLogInterval (reportReadLocked).
	readFailures int
	readLogged   time.Time
}

// New returns a coordinator over log. It validates opts, applies defaults
// and starts the expiry loop; Close stops it.
func New(log Log, opts Options) (*Coordinator, error) {
	if log == nil {
		return nil, errors.New("group: New needs a Log")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	inactive, err := log.GroupsInactive()
	if err != nil {
		// Count from this start instead: better than refusing to start.
		// The records go, or one left for a group that gets a member would
		// not be cleared (Register clears the records it knows of), and a
		// bad one would make every start ignore them all. If the delete
		// fails, the store refuses writes until it is reopened, and the
		// next start tries again.
		opts.Logger.Warn("offset retention: when groups became inactive is unreadable; deleting the records and counting from now", "err", err)
		inactive = make(map[string]time.Time)
		if err := log.ClearGroupsInactive(); err != nil {
			opts.Logger.Warn("offset retention: delete the unreadable records", "err", err)
		}
	}
	c := &Coordinator{
		log:       log,
		opts:      opts,
		logger:    opts.Logger,
		members:   make(map[string]*member),
		groups:    make(map[string]*groupState),
		done:      make(chan struct{}),
		waiters:   make(map[string]map[*waiter]struct{}),
		started:   opts.Now(),
		emptied:   maps.Clone(inactive),
		persisted: inactive,
		seed:      maphash.MakeSeed(),
		deleting:  make(map[string]chan struct{}),
	}
	if c.opts.OffsetRetention > 0 {
		// Before anything else, so that a broker restarted more often than
		// the sweep interval still records the groups that became inactive
		// at its start.
		c.expireOffsets()
	}
	c.wg.Add(1)
	go c.runExpiry()
	return c, nil
}

// Close stops the expiry loop; pending long polls return ErrUnavailable at
// once, and so does every later call. Positions polled but not committed
// are not committed: their events are delivered again after a restart.
// It records which groups are inactive since when (offset retention) and
// returns the error of that write: the coordinator is closed either way,
// and the next start then counts those groups' retention from itself.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	c.mu.Unlock()
	c.wg.Wait()
	// Record the groups that became inactive since the last sweep, so that
	// the next start counts from then rather than from itself.
	c.mu.Lock()
	names := slices.Collect(maps.Keys(c.emptied))
	for name := range c.persisted {
		names = append(names, name)
	}
	c.mu.Unlock()
	if err := c.recordInactive(names); err != nil {
		return fmt.Errorf("offset retention: record when groups became inactive: %w", err)
	}
	return nil
}

// Registration is the register request of a consumer.
type Registration struct {
	ConsumerID string
	Group      string   // default DefaultGroup
	Topics     []string // 1 to MaxTopics names
	OnNewGroup StartPosition
}

// Register adds the consumer to its group, or refreshes it. Registering
// again with the same id is idempotent; it may change the consumer's topics
// or group (moving to another group leaves the old one; positions polled in
// the old group and not committed are discarded). The group's streams are
// rebalanced over its members, and the group's start positions in streams it
// has no committed offset for are fixed (and, for StartFromLatest,
// committed) before Register returns, and so is the deletion of the log's
// record of when the group became inactive. If that I/O fails, Register
// returns the error with the consumer registered; registering again retries
// it (and, for the start positions, a poll would too). A record that could
// not be deleted (the store then refuses writes until it is reopened) stays
// for the next start, which counts from it.
func (c *Coordinator) Register(ctx context.Context, r Registration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id, name, topics, err := validateRegistration(r)
	if err != nil {
		return err
	}
	if ranges := len(c.opts.Streams(topics[0])); len(topics)*ranges > MaxStreams {
		return fmt.Errorf("%w: topic: %d topics of %d sub-ranges each are %d sub-ranges in one registration, the maximum is %d (%d topics at most)",
			broker.ErrInvalidParameter, len(topics), ranges, len(topics)*ranges, MaxStreams, MaxStreams/ranges)
	}
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return errUnavailable()
		}
		ch := c.deleting[name]
		if ch == nil {
			break
		}
		// Offset retention is deleting the group's offsets: join it once
		// they are gone (it starts as a new group).
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
	now := c.opts.Now()
	c.expireLocked(now)
	m := c.members[id]
	switch {
	case m == nil:
		m = &member{id: id, topics: topics, onNew: r.OnNewGroup, lastSeen: now}
		c.members[id] = m
		c.joinLocked(m, name)
		c.logger.Debug("consumer registered", "consumer", id, "group", name, "topics", topics,
			"onNewGroup", r.OnNewGroup.String())
	case m.group.name != name:
		m.lastSeen, m.onNew = now, r.OnNewGroup
		c.supersedePollsLocked(m)
		old := m.group
		old.remove(id)
		c.rebalanceLocked(old)
		c.maybeDropGroupLocked(old)
		m.topics = topics
		c.joinLocked(m, name)
		c.logger.Info("consumer moved", "consumer", id, "from", old.name, "group", name, "topics", topics)
	default:
		m.lastSeen, m.onNew = now, r.OnNewGroup
		c.supersedePollsLocked(m)
		if !slices.Equal(m.topics, topics) {
			m.topics = topics
			c.rebalanceLocked(m.group)
			c.logger.Info("consumer changed topics", "consumer", id, "group", name, "topics", topics)
		}
		// A registration of an id that is already a member comes from a
		// consumer that (re)started, typically with a fixed id within the
		// member timeout: what the previous instance polled was not
		// necessarily processed, so its position is not committed; the
		// consumer reads again from the committed offsets (at-least-once).
		for _, p := range m.positions {
			p.epoch++
			p.started = false
			p.read = 0
		}
	}
	c.noteDeadlineLocked(now)
	jobs := c.loadJobsLocked(m.group)
	_, wasInactive := c.persisted[name]
	// The member does not expire while its registration's I/O runs, and
	// counts as seen when it ends: a registration slower than the member
	// timeout would otherwise answer success for a member already gone.
	m.polling++
	c.mu.Unlock()
	defer c.leave(m)
	err = c.runJobs(jobs)
	if wasInactive {
		// Durably, before the member counts on it: a stale record would
		// make offset retention count from it after the next restart.
		if rerr := c.recordInactive([]string{name}); err == nil {
			err = rerr
		}
	}
	return err
}

// supersedePollsLocked ends the polls of m in progress, for a registration
// of its id: they return nothing, at once for those waiting for events.
func (c *Coordinator) supersedePollsLocked(m *member) {
	m.registered++
	if m.polling > 0 {
		c.wakeMemberLocked(m)
	}
}

// joinLocked adds m to the group name (creating it) and rebalances it.
func (c *Coordinator) joinLocked(m *member, name string) {
	g := c.groups[name]
	if g == nil {
		g = &groupState{name: name, members: make(map[string]*member), positions: make(map[store.Stream]*position)}
		c.groups[name] = g
		delete(c.emptied, name)
	}
	m.group = g
	g.add(m)
	c.rebalanceLocked(g)
}

// Commit durably commits the consumer's read positions: the positions
// reached by its polls in the streams it still owns. It returns after the
// fsync that covers them, and the positions its polls committed before.
func (c *Coordinator) Commit(ctx context.Context, consumerID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m, registered, err := c.enter(consumerID, true)
	if err != nil {
		return err
	}
	defer c.leave(m)
	return c.commitDurably(ctx, m, registered)
}

// commitDurably commits m's read positions and waits for their fsync.
func (c *Coordinator) commitDurably(ctx context.Context, m *member, registered uint64) error {
	// Superseded, it commits nothing more, but what an earlier pass of
	// settle wrote is made durable before the answer, as any commit's.
	if err := c.settle(ctx, m, false, registered); err != nil && !errors.Is(err, errSuperseded) {
		return err
	}
	if err := c.log.SyncGroupOffsets(); err != nil {
		return logErr(err, "sync committed offsets of consumer %q", m.id)
	}
	return nil
}

// Goodbye commits the consumer's read positions (unless commit is false)
// and unregisters it; its streams go to the other members of its group,
// from the last committed offset. If the commit fails, the consumer stays
// registered.
func (c *Coordinator) Goodbye(ctx context.Context, consumerID string, commit bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m, registered, err := c.enter(consumerID, true)
	if err != nil {
		return err
	}
	defer c.leave(m)
	if commit {
		if err := c.commitDurably(ctx, m, registered); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.gone || m.registered != registered {
		// Expired or unregistered meanwhile: the outcome is the same.
		return nil
	}
	g := m.group
	c.removeLocked(m)
	c.rebalanceLocked(g)
	c.maybeDropGroupLocked(g)
	c.logger.Debug("consumer said goodbye", "consumer", m.id, "group", g.name, "committed", commit)
	return nil
}

// enter looks up a registered consumer, runs the expiry check and marks the
// consumer as seen. With inCall (a poll, a commit, a goodbye), the member
// does not expire until the matching leave, which marks it as seen again:
// the member timeout counts from the end of its last call. It returns the
// consumer's registration count (member.registered).
func (c *Coordinator) enter(id string, inCall bool) (*member, uint64, error) {
	// An id that Register refuses is a bad parameter, not an unknown
	// consumer: "register it" would send the client in a loop.
	if err := validateName("consumerId", id); err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, errUnavailable()
	}
	now := c.opts.Now()
	c.expireLocked(now)
	m := c.members[id]
	if m == nil {
		return nil, 0, notRegistered(id)
	}
	m.lastSeen = now
	if inCall {
		m.polling++
	}
	return m, m.registered, nil
}

// leave ends a call of m (see enter) and marks it as seen.
func (c *Coordinator) leave(m *member) {
	c.mu.Lock()
	m.polling--
	if !m.gone {
		now := c.opts.Now()
		m.lastSeen = now
		c.noteDeadlineLocked(now)
	}
	c.mu.Unlock()
}

// checkLocked fails if the coordinator is closed or m is gone.
func (c *Coordinator) checkLocked(m *member) error {
	if c.closed {
		return errUnavailable()
	}
	if m.gone {
		return notRegistered(m.id)
	}
	return nil
}

// removeLocked unregisters m; the caller rebalances its group.
func (c *Coordinator) removeLocked(m *member) {
	m.gone = true
	delete(c.members, m.id)
	m.group.remove(m.id)
	m.positions = nil
	// A long poll of m returns ErrNotRegistered now, not at its timeout.
	c.wakeMemberLocked(m)
}

// maybeDropGroupLocked forgets a group without members, unless offset I/O
// of one of its streams is in flight. Its committed offsets stay in the log.
func (c *Coordinator) maybeDropGroupLocked(g *groupState) {
	if len(g.members) > 0 || c.groups[g.name] != g {
		return
	}
	for _, p := range g.positions {
		if p.io != nil {
			return
		}
	}
	delete(c.groups, g.name)
	if c.opts.OffsetRetention > 0 {
		c.emptied[g.name] = c.opts.Now()
	}
}

// noteDeadlineLocked records that some member may expire at now+timeout.
func (c *Coordinator) noteDeadlineLocked(now time.Time) {
	d := now.Add(c.opts.MemberTimeout)
	if c.nextExpiry.IsZero() || d.Before(c.nextExpiry) {
		c.nextExpiry = d
	}
}

// expireLocked drops the members not seen for MemberTimeout (except those
// in a poll) and rebalances their groups. It scans only when some member may
// have expired.
func (c *Coordinator) expireLocked(now time.Time) {
	if c.nextExpiry.IsZero() || now.Before(c.nextExpiry) {
		return
	}
	var next time.Time
	var expired []*member
	for _, m := range c.members {
		deadline := m.lastSeen.Add(c.opts.MemberTimeout)
		if now.Before(deadline) || m.polling > 0 {
			if m.polling > 0 && !now.Before(deadline) {
				// It is seen again when its poll ends, after now.
				deadline = now.Add(c.opts.MemberTimeout)
			}
			if next.IsZero() || deadline.Before(next) {
				next = deadline
			}
			continue
		}
		expired = append(expired, m)
	}
	// In id order, as logged; only the expired are sorted: with members
	// joining all the time, a pass runs for each deadline, and sorting
	// every member each time cost more than the scan.
	slices.SortFunc(expired, func(a, b *member) int { return strings.Compare(a.id, b.id) })
	var affected []*groupState
	seen := make(map[*groupState]bool)
	for _, m := range expired {
		c.logger.Info("consumer expired", "consumer", m.id, "group", m.group.name,
			"lastSeen", m.lastSeen, "timeout", c.opts.MemberTimeout.String())
		c.expired++
		if !seen[m.group] {
			seen[m.group] = true
			affected = append(affected, m.group)
		}
		c.removeLocked(m)
	}
	c.nextExpiry = next
	for _, g := range affected {
		c.rebalanceLocked(g)
		c.maybeDropGroupLocked(g)
	}
}

// runExpiry drops expired members in the background, so that their streams
// move even when no request arrives.
func (c *Coordinator) runExpiry() {
	defer c.wg.Done()
	// At most 5% of the timeout, and 1 s, late: a tick costs a lock and a
	// comparison while no member is due.
	interval := min(max(c.opts.MemberTimeout/20, 10*time.Millisecond), time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	// Offset retention scans every group's offsets: at most once a minute.
	sweep := time.NewTicker(min(max(c.opts.OffsetRetention/20, 10*time.Millisecond), time.Minute))
	defer sweep.Stop()
	if c.opts.OffsetRetention < 0 {
		sweep.Stop()
	}
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.mu.Lock()
			c.expireLocked(c.opts.Now())
			c.mu.Unlock()
		case <-sweep.C:
			c.expireOffsets()
		}
	}
}

// expireOffsets deletes the committed offsets of the groups that have been
// inactive (without members) for OffsetRetention: counted from the moment
// they became inactive (or their last commit, if later: a clock set back).
// A group that had members when the broker stopped became inactive when it
// started again (its consumers had no way to be there before), and a group
// idle for long with consumers alive commits nothing. A group is deleted
// without the lock (a synced write), marked in deleting so that Register
// waits for it rather than join a group whose offsets are going. The sweep
// then records in the log, in one write, when the others became inactive.
func (c *Coordinator) expireOffsets() {
	c.sweepMu.Lock()
	defer c.sweepMu.Unlock()
	snapshot := c.opts.Now()
	offsets, err := c.log.GroupOffsets()
	if err != nil {
		c.logger.Warn("offset retention: committed offsets", "err", err)
		return
	}
	last := make(map[string]time.Time) // groups with offsets: latest commit time
	for _, o := range offsets {
		if t, ok := last[o.Group]; !ok || o.Committed.After(t) {
			last[o.Group] = o.Committed // zero if written before commit times were recorded
		}
	}
	c.mu.Lock()
	names := slices.Collect(maps.Keys(last))
	for name := range c.emptied {
		names = append(names, name)
	}
	for name := range c.persisted {
		names = append(names, name)
	}
	c.mu.Unlock()
	slices.Sort(names)
	var record []string
	for _, name := range slices.Compact(names) {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		committed, hasOffsets := last[name]
		_, live := c.groups[name]
		since, inactive := c.emptied[name]
		switch {
		case live:
		case hasOffsets && !inactive:
			// Its members were there when the broker stopped.
			since = c.started
			c.emptied[name] = since
		case !hasOffsets && inactive && since.Before(snapshot):
			// It committed nothing: there is nothing to expire.
			delete(c.emptied, name)
		}
		if committed.After(since) {
			since = committed
		}
		if live || !hasOffsets || c.opts.Now().Sub(since) < c.opts.OffsetRetention {
			c.mu.Unlock()
			record = append(record, name)
			continue
		}
		done := make(chan struct{})
		c.deleting[name] = done
		c.mu.Unlock()

		lock := c.recordLock(name)
		lock.Lock()
		err := c.log.DeleteGroup(name) // and its inactive record
		c.mu.Lock()
		delete(c.deleting, name)
		close(done)
		if err == nil {
			delete(c.emptied, name)
			delete(c.persisted, name)
		}
		c.mu.Unlock()
		lock.Unlock()
		if err != nil {
			c.logger.Warn("offset retention: delete group", "group", name, "err", err)
			continue
		}
		c.logger.Info("group offsets expired", "group", name, "inactiveSince", since,
			"retention", c.opts.OffsetRetention.String())
	}
	if err := c.recordInactive(record); err != nil {
		c.logger.Warn("offset retention: record when groups became inactive", "err", err)
	}
}

// recordInactive makes the log's records of when the named groups became
// inactive follow emptied, in one synced write: the time while a group has
// no members, no record while it has. It holds the record locks of the
// names and writes the state read after taking them, so the last record
// written of a group is of its latest state. A name marked in persisted
// before its write is seen by a Register that joins meanwhile, which then
// clears the record once the write is done.
func (c *Coordinator) recordInactive(names []string) error {
	locks := make([]int, 0, len(names))
	for _, name := range names {
		locks = append(locks, c.recordLockIndex(name))
	}
	slices.Sort(locks)
	locks = slices.Compact(locks)
	for _, i := range locks {
		c.recordLocks[i].Lock()
	}
	defer func() {
		for _, i := range locks {
			c.recordLocks[i].Unlock()
		}
	}()

	changes := make(map[string]time.Time)
	c.mu.Lock()
	for _, name := range names {
		want, inactive := c.emptied[name]
		if c.groups[name] != nil {
			want, inactive = time.Time{}, false
		}
		have, recorded := c.persisted[name]
		if inactive == recorded && want.Equal(have) {
			continue
		}
		changes[name] = want // zero: delete
		if inactive {
			c.persisted[name] = want // may be on disk from now on
		}
	}
	c.mu.Unlock()
	if len(changes) == 0 {
		return nil
	}
	err := c.log.SetGroupsInactive(changes)
	c.mu.Lock()
	for name, want := range changes {
		switch {
		case err != nil:
			c.persisted[name] = time.Time{} // unknown: written again, cleared by a Register
		case want.IsZero():
			delete(c.persisted, name)
		}
	}
	c.mu.Unlock()
	return err
}

// recordLockIndex is the index of the record lock of group name.
func (c *Coordinator) recordLockIndex(name string) int {
	return int(maphash.String(c.seed, name) % uint64(len(c.recordLocks)))
}

// recordLock is the record lock of group name.
func (c *Coordinator) recordLock(name string) *sync.Mutex {
	return &c.recordLocks[c.recordLockIndex(name)]
}

func validateRegistration(r Registration) (id, group string, topics []string, err error) {
	if err := validateName("consumerId", r.ConsumerID); err != nil {
		return "", "", nil, err
	}
	group = r.Group
	if group == "" {
		group = DefaultGroup
	}
	if err := validateName("group", group); err != nil {
		return "", "", nil, err
	}
	switch n := len(r.Topics); {
	case n == 0:
		return "", "", nil, fmt.Errorf("%w: topic is required (at least one)", broker.ErrInvalidParameter)
	case n > MaxTopics:
		return "", "", nil, fmt.Errorf("%w: topic: %d topics in one registration, the maximum is %d",
			broker.ErrInvalidParameter, n, MaxTopics)
	}
	for _, t := range r.Topics {
		if err := broker.ValidateTopic(t); err != nil {
			return "", "", nil, err // the message is produce's, which also names the topic
		}
	}
	if !r.OnNewGroup.valid() {
		return "", "", nil, fmt.Errorf("%w: onNewGroup: unknown start position %d", broker.ErrInvalidParameter, int(r.OnNewGroup))
	}
	topics = slices.Compact(slices.Sorted(slices.Values(r.Topics)))
	return r.ConsumerID, group, topics, nil
}

// validateName checks a consumer id or group name: 1-256 bytes of printable
// UTF-8.
func validateName(param, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s is required", broker.ErrInvalidParameter, param)
	case len(s) > MaxIDLen:
		return fmt.Errorf("%w: %s is %d bytes, the maximum is %d", broker.ErrInvalidParameter, param, len(s), MaxIDLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", broker.ErrInvalidParameter, param)
	}
	for i, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: %s %q has the unprintable character %U at byte %d",
				broker.ErrInvalidParameter, param, s, r, i)
		}
	}
	return nil
}

// notRegistered says why a consumer may not be a member, since the broker
// cannot tell a consumer that never registered from one that it forgot
// (after a goodbye, member-timeout or a restart).
func notRegistered(id string) error {
	return fmt.Errorf("%w: consumerId %q is in no group (it never registered, said goodbye, "+
		"timed out or the broker restarted); register it", broker.ErrNotRegistered, id)
}

func errUnavailable() error {
	return fmt.Errorf("%w: consumer groups are closed", broker.ErrUnavailable)
}

// logErr wraps an error of the log; a closed store means the broker is
// shutting down.
func logErr(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("group: %s: %w: %w", what, broker.ErrUnavailable, err)
	}
	return fmt.Errorf("group: %s: %w", what, err)
}
