package group

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/floe-streams/floe/store"
)

// Stats is a snapshot of the coordinator for metrics.
type Stats struct {
	// Groups by name: those with members, and those without members that
	// have committed offsets (their lag grows while nobody reads).
	Groups     []GroupStats
	Members    int    // registered consumers
	Rebalances uint64 // since New
	Expired    uint64 // members dropped after MemberTimeout, since New
}

// GroupStats describes one consumer group.
type GroupStats struct {
	Group   string
	Members []MemberStats // by consumer id
	Streams []StreamStats // by topic, then range index
}

// MemberStats describes one member of a group.
type MemberStats struct {
	ConsumerID string
	Topics     []string
	Streams    int // streams assigned to it
	LastSeen   time.Time
}

// StreamStats describes the position of a group in one stream.
type StreamStats struct {
	Stream store.Stream
	Owner  string // consumer id; "" when no member reads the stream
	// Committed is the group's committed offset (or the start chosen by
	// onNewGroup); -1 when not known yet.
	Committed int64
	// ReadPosition is the owner's read position: the next offset it reads;
	// -1 when the owner has not started reading.
	ReadPosition  int64
	HighWatermark int64
	// Lag is the number of events the group has still to read: from the
	// committed offset, or the earliest event retention kept if that is
	// later, to HighWatermark; 0 when Committed is unknown.
	Lag int64
}

// Stats returns a snapshot of the groups, their members and positions.
func (c *Coordinator) Stats() Stats {
	c.mu.Lock()
	s := Stats{Members: len(c.members), Rebalances: c.rebalances, Expired: c.expired}
	for _, name := range slices.Sorted(maps.Keys(c.groups)) {
		g := c.groups[name]
		gs := GroupStats{Group: name}
		// In id order already: sorting under the lock held up every
		// poll for milliseconds at each scrape of a large group.
		for _, m := range g.byID {
			gs.Members = append(gs.Members, MemberStats{
				ConsumerID: m.id, Topics: slices.Clone(m.topics), Streams: len(m.positions), LastSeen: m.lastSeen,
			})
		}
		for _, p := range g.positions {
			ss := StreamStats{Stream: p.st, Committed: -1, ReadPosition: -1}
			if p.owner != nil {
				ss.Owner = p.owner.id
				if p.started {
					ss.ReadPosition = p.read
				}
			}
			if p.known {
				ss.Committed = p.committed
			}
			gs.Streams = append(gs.Streams, ss)
		}
		s.Groups = append(s.Groups, gs)
	}
	c.mu.Unlock()
	s.Groups = append(s.Groups, c.storedGroups(s.Groups)...)
	slices.SortFunc(s.Groups, func(a, b GroupStats) int { return strings.Compare(a.Group, b.Group) })

	for i := range s.Groups {
		streams := s.Groups[i].Streams
		slices.SortFunc(streams, func(a, b StreamStats) int {
			return cmp.Or(strings.Compare(a.Stream.Topic, b.Stream.Topic), compareStreams(a.Stream, b.Stream))
		})
		for j := range streams {
			ss := &streams[j]
			ss.HighWatermark = c.log.HighWatermark(ss.Stream)
			if ss.Committed >= 0 {
				// Events that retention deleted are not behind the group:
				// its next poll starts at the earliest one kept.
				ss.Lag = max(ss.HighWatermark-max(ss.Committed, c.log.EarliestOffset(ss.Stream)), 0)
			}
		}
	}
	return s
}

// storedGroups returns the groups that have committed offsets in the store
// but no members (after their consumers said goodbye or expired, or a
// restart), with their committed positions; live is the groups in memory.
func (c *Coordinator) storedGroups(live []GroupStats) []GroupStats {
	offsets, err := c.log.GroupOffsets()
	if err != nil {
		c.logger.Warn("group stats: committed offsets", "err", err)
		return nil
	}
	inMemory := make(map[string]bool, len(live))
	for _, g := range live {
		inMemory[g.Group] = true
	}
	var out []GroupStats
	for _, o := range offsets {
		if inMemory[o.Group] {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Group != o.Group {
			out = append(out, GroupStats{Group: o.Group})
		}
		g := &out[len(out)-1]
		g.Streams = append(g.Streams, StreamStats{Stream: o.Stream, Committed: o.Offset, ReadPosition: -1})
	}
	return out
}
