package group

import (
	"cmp"
	"slices"

	"github.com/floe-streams/floe/store"
)

// rebalanceLocked deals the streams of the group's topics to its members:
// topic by topic, each stream (by range index) goes to the member subscribed
// to its topic that has the fewest streams so far, the first by id among
// equals. Dealing each topic from the first member again, as it did, gave 8
// members of 10 topics of 4 streams 10, 10, 10, 10, 0, 0, 0 and 0 streams.
// A position whose owner changes gets a new epoch and restarts from the
// committed offset; its previous owner's uncommitted position is dropped. A
// position that no member reads any more is forgotten once no I/O or read
// of it is in flight (its committed offset stays in the store, and is
// loaded again if a member reads the stream again): a group whose members
// changed topics kept a position for every stream they ever read. Long
// polls of the group's topics are woken so that members see their new
// streams.
func (c *Coordinator) rebalanceLocked(g *groupState) {
	members := g.byID
	var topics []string
	var last []string
	wasIdle := make([]bool, len(members))
	for i, m := range members {
		wasIdle[i] = len(m.positions) == 0
		m.positions = nil
		// Members of a group mostly read the same topics: only a list
		// unlike the previous member's adds names to sort.
		if !slices.Equal(m.topics, last) {
			topics = append(topics, m.topics...)
			last = m.topics
		}
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)

	assigned := make(map[store.Stream]bool, len(g.positions))
	var subs []*member
	for _, t := range topics {
		subs = subs[:0]
		for _, m := range members {
			if _, ok := slices.BinarySearch(m.topics, t); ok {
				subs = append(subs, m)
			}
		}
		for _, st := range sortedStreams(c.opts.Streams(t)) {
			if assigned[st] {
				continue // a duplicate in Options.Streams
			}
			assigned[st] = true
			m := slices.MinFunc(subs, func(a, b *member) int { return cmp.Compare(len(a.positions), len(b.positions)) })
			p := g.positions[st]
			if p == nil {
				p = &position{st: st}
				g.positions[st] = p
			}
			setOwner(p, m)
			m.positions = append(m.positions, p)
		}
	}
	for st, p := range g.positions {
		if !assigned[st] {
			setOwner(p, nil)
			if p.io == nil && !p.reading {
				delete(g.positions, st)
			}
		}
	}
	c.rebalances++
	for _, t := range topics {
		c.wake(t)
	}
	// Members that read nothing before wait on their idle keys: wake
	// those that got a stream.
	for i, m := range members {
		if wasIdle[i] && len(m.positions) > 0 {
			c.wake(idleKey(m.id))
		}
	}
}

// setOwner gives p to m (nil: nobody). A new owner starts from the committed
// offset.
func setOwner(p *position, m *member) {
	if p.owner == m {
		return
	}
	p.owner = m
	p.epoch++
	p.started = false
	p.read = 0
}

// sortedStreams orders a topic's streams by range index (then token and
// version), without changing the caller's slice.
func sortedStreams(streams []store.Stream) []store.Stream {
	if slices.IsSortedFunc(streams, compareStreams) {
		return streams
	}
	return slices.SortedFunc(slices.Values(streams), compareStreams)
}

func compareStreams(a, b store.Stream) int {
	if c := cmp.Compare(a.RangeIndex, b.RangeIndex); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Token, b.Token); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Version, b.Version); c != 0 {
		return c
	}
	return cmp.Compare(a.Topic, b.Topic)
}
