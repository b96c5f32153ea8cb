package group

import "github.com/floe-streams/floe/store"

// waiter is a long poll waiting for events of its topics, or, for a member
// that reads no stream, for a rebalance that gives it one (idleKey).
type waiter struct {
	ch     chan struct{} // buffered: a wake-up is never lost
	topics []string      // keys of waiters: topic names, or one idleKey
}

// idleKey is the waiters key of the long polls of member id while it reads
// no stream: only a rebalance that gives it one (or its own registration or
// removal) can give it something to do. Woken by every event of their
// topics, as they were, 252 idle members long-polling beside 4 readers of
// 2,000 requests a second added a third to the broker's CPU (floe bench e2e
// --consumers 256: 1,181 and 1,213 CPU ticks in 10 s, against 820 and 914
// since). The key is the member's, not its group's, so that a rebalance or
// a registration wakes only the members it concerns. Topic names never
// start with a NUL byte, so the keys cannot meet.
func idleKey(memberID string) string { return "\x00" + memberID }

// waitKeysLocked are the keys a long poll of m waits on: its topics, or its
// idle key when it reads no stream.
func waitKeysLocked(m *member) []string {
	if len(m.positions) == 0 {
		return []string{idleKey(m.id)}
	}
	return m.topics
}

// wakeMemberLocked wakes the long polls of m, whichever keys they wait on.
func (c *Coordinator) wakeMemberLocked(m *member) {
	for _, t := range m.topics {
		c.wake(t)
	}
	c.wake(idleKey(m.id))
}

// Notify tells the coordinator that events of st became durable: it wakes
// the long polls waiting for the topic of st. It is cheap when nobody waits.
func (c *Coordinator) Notify(st store.Stream) {
	c.wake(st.Topic)
}

func (c *Coordinator) wake(topic string) {
	if c.nwaiters.Load() == 0 {
		return
	}
	c.waitMu.RLock()
	for w := range c.waiters[topic] {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
	c.waitMu.RUnlock()
}

func (c *Coordinator) addWaiter(topics []string) *waiter {
	w := &waiter{ch: make(chan struct{}, 1), topics: topics}
	c.waitMu.Lock()
	for _, t := range topics {
		set := c.waiters[t]
		if set == nil {
			set = make(map[*waiter]struct{})
			c.waiters[t] = set
		}
		set[w] = struct{}{}
	}
	c.nwaiters.Add(1)
	c.waitMu.Unlock()
	return w
}

func (c *Coordinator) removeWaiter(w *waiter) {
	c.waitMu.Lock()
	for _, t := range w.topics {
		set := c.waiters[t]
		delete(set, w)
		if len(set) == 0 {
			delete(c.waiters, t)
		}
	}
	c.nwaiters.Add(-1)
	c.waitMu.Unlock()
}
