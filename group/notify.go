package group

import "github.com/floe-streams/floe/store"

// waiter is a long poll waiting for events of its topics.
type waiter struct {
	ch     chan struct{} // buffered: a wake-up is never lost
	topics []string
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
