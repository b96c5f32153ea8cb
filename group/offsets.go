package group

import (
	"context"
	"errors"
	"sync"
)

// jobKind is the store I/O of an ioJob.
type jobKind int

const (
	// jobCommit writes the owner's read position as the committed offset.
	jobCommit jobKind = iota
	// jobLoad reads the committed offset; without one it applies
	// onNewGroup (committing the high watermark for StartFromLatest).
	jobLoad
)

// ioJob is one offset read or write of a position, done without the lock
// while the position's io lease is held.
type ioJob struct {
	g      *groupState
	p      *position
	kind   jobKind
	target int64         // jobCommit: the offset to commit
	onNew  StartPosition // jobLoad
	done   chan struct{} // the lease, closed when applied

	// Results.
	offset int64
	err    error
}

// newJobLocked takes p's io lease for a job.
func newJobLocked(g *groupState, p *position, kind jobKind) *ioJob {
	j := &ioJob{g: g, p: p, kind: kind, done: make(chan struct{})}
	p.io = j.done
	return j
}

// loadJobsLocked takes the lease of every assigned position of g whose
// committed offset is not known yet and that is not busy.
func (c *Coordinator) loadJobsLocked(g *groupState) []*ioJob {
	var jobs []*ioJob
	// By position, not by member: a group has at most as many read
	// positions as streams, and may have far more members.
	for _, p := range g.positions {
		if m := p.owner; m != nil && !p.known && p.io == nil {
			j := newJobLocked(g, p, jobLoad)
			j.onNew = m.onNew
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// settle brings m's positions up to date before a read (start is true) or as
// a commit (start is false): it commits every read position that moved since
// its last commit, and (if start) starts the positions m got since its last
// poll at the committed offset, loading it first if needed. It waits for I/O
// other calls have in flight on the same positions, so that commits of a
// stream are serialized and a new owner never starts before a commit of the
// previous owner that was already in flight has landed. A call that began
// under registration registered of m, when m was registered again since,
// gets errSuperseded: a poll, and a commit too, which would otherwise commit
// what the new instance was given and has not processed yet.
func (c *Coordinator) settle(ctx context.Context, m *member, start bool, registered uint64) error {
	for {
		c.mu.Lock()
		if err := c.checkLocked(m); err != nil {
			c.mu.Unlock()
			return err
		}
		if m.registered != registered {
			c.mu.Unlock()
			return errSuperseded
		}
		var jobs []*ioJob
		var wait chan struct{}
		for _, p := range m.positions {
			needCommit := p.started && p.read != p.committed
			needStart := start && !p.started
			switch {
			case !needCommit && !needStart:
				continue
			case p.io != nil:
				wait = p.io
			case needCommit:
				j := newJobLocked(m.group, p, jobCommit)
				j.target = p.read
				jobs = append(jobs, j)
			case p.known:
				p.read, p.started = p.committed, true
			default:
				j := newJobLocked(m.group, p, jobLoad)
				j.onNew = m.onNew
				jobs = append(jobs, j)
			}
		}
		c.mu.Unlock()
		if len(jobs) == 0 && wait == nil {
			return nil
		}
		if err := c.runJobs(jobs); err != nil {
			return err
		}
		if wait != nil {
			select {
			case <-wait:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// runJobs does the jobs' I/O (concurrently when there are several: the
// store shares one fsync among concurrent commits), then applies the
// results and releases the leases. It returns the first error.
func (c *Coordinator) runJobs(jobs []*ioJob) error {
	switch len(jobs) {
	case 0:
		return nil
	case 1:
		c.do(jobs[0])
	default:
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Go(func() { c.do(j) })
		}
		wg.Wait()
	}
	var errs []error
	c.mu.Lock()
	for _, j := range jobs {
		p := j.p
		if j.err != nil {
			errs = append(errs, j.err)
		} else {
			p.committed, p.known = j.offset, true
		}
		p.io = nil
		close(j.done)
		c.maybeDropGroupLocked(j.g)
	}
	c.mu.Unlock()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// do runs the I/O of a job.
func (c *Coordinator) do(j *ioJob) {
	group, st := j.g.name, j.p.st
	switch j.kind {
	case jobCommit:
		// A poll does not wait for the fsync of the position it commits:
		// losing it in a crash only makes the group read events again.
		// Commit and Goodbye wait for it (SyncGroupOffsets).
		if err := c.log.CommitGroupOffsetSoon(group, st, j.target); err != nil {
			j.err = logErr(err, "group %q: commit offset %d of %s", group, j.target, st)
			return
		}
		j.offset = j.target
	case jobLoad:
		off, ok, err := c.log.GroupOffset(group, st)
		if err != nil {
			j.err = logErr(err, "group %q: committed offset of %s", group, st)
			return
		}
		switch {
		case ok:
			j.offset = off
		default:
			// The group's start is decided once and committed durably at
			// once (later positions, committed without waiting for their
			// fsync, may be lost in a crash; this one may not, or the group
			// would start again from a later "latest"): after
			// a rebalance or a restart the group resumes there, whatever the
			// onNewGroup of the member that gets the stream next.
			start := int64(0) // earliest: the store reads from the earliest retained event
			if j.onNew == StartFromLatest {
				start = c.log.HighWatermark(st)
			}
			if err := c.log.CommitGroupOffset(group, st, start); err != nil {
				j.err = logErr(err, "group %q: commit start offset %d of %s", group, start, st)
				return
			}
			j.offset = start
			c.logger.Debug("group starts", "group", group, "stream", st.String(), "onNewGroup", j.onNew.String(), "offset", start)
		}
	default:
		j.err = errors.New("group: unknown job")
	}
}
