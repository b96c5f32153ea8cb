package group

import (
	"fmt"

	"github.com/floe-streams/floe/store"
)

// CheckInvariants verifies the coordinator's state under its lock: every
// member is in its group; every assigned position has exactly one owner,
// which lists it; no stream is listed by two members; a started position has
// a known committed offset. Tests call it while the coordinator runs.
func CheckInvariants(c *Coordinator) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, m := range c.members {
		if m.gone {
			return fmt.Errorf("member %s is registered and gone", id)
		}
		if m.group.members[id] != m {
			return fmt.Errorf("member %s is not in its group %s", id, m.group.name)
		}
		if c.groups[m.group.name] != m.group {
			return fmt.Errorf("group %s of member %s is not registered", m.group.name, id)
		}
	}
	for name, g := range c.groups {
		if len(g.byID) != len(g.members) {
			return fmt.Errorf("group %s: %d members, %d in id order", name, len(g.members), len(g.byID))
		}
		for i, m := range g.byID {
			if g.members[m.id] != m {
				return fmt.Errorf("group %s: member %s in id order is not a member", name, m.id)
			}
			if i > 0 && g.byID[i-1].id >= m.id {
				return fmt.Errorf("group %s: members out of id order: %s before %s", name, g.byID[i-1].id, m.id)
			}
		}
		listed := make(map[store.Stream]string)
		for id, m := range g.members {
			if c.members[id] != m {
				return fmt.Errorf("group %s lists %s, which is not registered", name, id)
			}
			for _, p := range m.positions {
				if other, ok := listed[p.st]; ok {
					return fmt.Errorf("group %s: %s is listed by %s and %s", name, p.st, other, id)
				}
				listed[p.st] = id
				if p.owner != m {
					return fmt.Errorf("group %s: %s is listed by %s but owned by %v", name, p.st, id, p.owner)
				}
				if g.positions[p.st] != p {
					return fmt.Errorf("group %s: %s of %s is not the group's position", name, p.st, id)
				}
			}
		}
		for st, p := range g.positions {
			if p.owner != nil && listed[st] != p.owner.id {
				return fmt.Errorf("group %s: %s is owned by %s, which does not list it", name, st, p.owner.id)
			}
			if p.started && !p.known {
				return fmt.Errorf("group %s: %s is started without a committed offset", name, st)
			}
		}
	}
	return nil
}

// Waiters is the number of long polls waiting for events.
func Waiters(c *Coordinator) int { return int(c.nwaiters.Load()) }

// SweepOffsets runs one offset-retention sweep now.
func SweepOffsets(c *Coordinator) { c.expireOffsets() }

// WaitersOn is the number of long polls waiting for events of topic, and
// IdleWaiters the number of those of members of group that read no stream.
func WaitersOn(c *Coordinator, topic string) int {
	c.waitMu.RLock()
	defer c.waitMu.RUnlock()
	return len(c.waiters[topic])
}

func IdleWaiters(c *Coordinator, group string) int {
	c.mu.Lock()
	var ids []string
	if g := c.groups[group]; g != nil {
		for id := range g.members {
			ids = append(ids, id)
		}
	}
	c.mu.Unlock()
	n := 0
	for _, id := range ids {
		n += WaitersOn(c, idleKey(id))
	}
	return n
}
