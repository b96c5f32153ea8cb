package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/store"
)

// PollRequest is a poll of a registered consumer.
type PollRequest struct {
	ConsumerID string
	// MaxBytes bounds the payload of the response; 0 or more than
	// Options.MaxPollBytes means Options.MaxPollBytes. At least one event
	// is returned when any is available, even if it is larger.
	MaxBytes int
	// MaxEvents bounds the number of events; 0: no limit.
	MaxEvents int
	// Wait is how long to wait for events when none is available (capped
	// by Options.MaxPollWait); 0 answers at once.
	Wait time.Duration
	// Buffer, when set, lends a buffer of capacity at least n into which
	// the events are copied; the returned events then share its memory. A
	// poll calls it at most once, when a stream first has events to read:
	// a long poll waiting for events holds no buffer. n is about twice what
	// the poll is likely to read, at most the byte budget: events that do
	// not fit are copied into memory of their own. The REST API lends
	// buffers that it reuses once the answer is written (package reqbuf).
	Buffer func(n int) []byte
}

// Batch is the events of one stream in a poll response: Events[i] has
// offset Start+i. The events are exactly as produced.
type Batch struct {
	Stream store.Stream
	Start  int64
	Events [][]byte
}

// Poll commits the position reached by the consumer's previous poll (in the
// streams it still owns), then reads from its streams, starting with a
// different stream each poll, and returns one Batch per stream that had
// events. An empty result and a nil error mean that nothing is available
// (after waiting up to r.Wait). A stream whose read fails (corrupt data)
// keeps its position and is left out of the answer, and the failure is
// logged; the poll fails with that error only when no other stream
// returned events. An unknown consumer gets an error wrapping
// broker.ErrNotRegistered, and an id that Register refuses one wrapping
// broker.ErrInvalidParameter (as Commit and Goodbye do); after Close,
// broker.ErrUnavailable.
func (c *Coordinator) Poll(ctx context.Context, r PollRequest) ([]Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case r.MaxBytes < 0:
		return nil, fmt.Errorf("%w: maxBytes is negative (%d)", broker.ErrInvalidParameter, r.MaxBytes)
	case r.MaxEvents < 0:
		return nil, fmt.Errorf("%w: maxEvents is negative (%d)", broker.ErrInvalidParameter, r.MaxEvents)
	}
	maxBytes := c.opts.MaxPollBytes
	if r.MaxBytes > 0 && r.MaxBytes < maxBytes {
		maxBytes = r.MaxBytes
	}
	wait := min(r.Wait, c.opts.MaxPollWait)

	m, registered, err := c.enter(r.ConsumerID, true)
	if err != nil {
		return nil, err
	}
	defer c.leave(m)
	out, err := c.poll(ctx, m, registered, maxBytes, r.MaxEvents, wait, r.Buffer)
	if errors.Is(err, errSuperseded) {
		// The consumer registered again while this poll ran: it may be
		// the last poll of an instance that died with the request open.
		// It answers nothing, and the new registration reads from the
		// committed offsets.
		return []Batch{}, nil
	}
	return out, err
}

// errSuperseded ends a poll whose consumer registered again since it began.
var errSuperseded = errors.New("group: the consumer registered again during the poll")

// poll is Poll once m is entered: registered is m's registration count at
// entry.
func (c *Coordinator) poll(ctx context.Context, m *member, registered uint64, maxBytes, maxEvents int, wait time.Duration, lend func(int) []byte) ([]Batch, error) {
	var w *waiter
	defer func() {
		if w != nil {
			c.removeWaiter(w)
		}
	}()
	var timer *time.Timer
	rb := readBuffer{lend: lend}
	for {
		if err := c.settle(ctx, m, true, registered); err != nil {
			return nil, err
		}
		out, err := c.read(ctx, m, registered, maxBytes, maxEvents, &rb)
		if err != nil || len(out) > 0 {
			return out, err
		}
		if wait <= 0 {
			return []Batch{}, nil
		}
		c.mu.Lock()
		keys := waitKeysLocked(m)
		c.mu.Unlock()
		if w == nil || !slices.Equal(w.topics, keys) {
			// Register for wake-ups, then read once more: an event made
			// durable (or a rebalance made) before the registration is
			// seen by that read, one made after it wakes us. A member
			// that got or lost all its streams since it registered
			// changes keys the same way.
			if w != nil {
				c.removeWaiter(w)
			}
			w = c.addWaiter(keys)
			if timer == nil {
				timer = time.NewTimer(wait)
				defer timer.Stop()
			}
			continue
		}
		select {
		case <-w.ch:
		case <-timer.C:
			return []Batch{}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, errUnavailable()
		}
	}
}

// readJob is the read of one stream by a poll.
type readJob struct {
	p      *position
	epoch  uint64
	from   int64
	done   bool
	next   int64 // read position after the read
	start  int64
	events [][]byte
	err    error // the read failed: the stream keeps its position
}

// readBuffer is the buffer a poll lends its reads (PollRequest.Buffer),
// taken when a stream first has events to read and reused by later passes:
// a pass that returns events ends the poll, so the events of the passes
// before were all dropped.
type readBuffer struct {
	lend func(int) []byte
	buf  []byte
}

// get returns the buffer, empty, lending n bytes first if need be (n is
// called only then); nil without a lender.
func (rb *readBuffer) get(n func() int) []byte {
	if rb.lend == nil {
		return nil
	}
	if rb.buf == nil {
		rb.buf = rb.lend(n())
	}
	return rb.buf[:0]
}

// minLoan is the smallest buffer a poll borrows, unless its budget is
// smaller.
const minLoan = 64 << 10

// loanHint is what a poll knows, before it reads, of the size of its
// answer: the payload of its member's last poll that read events, and the
// average size of the events read by that poll, or by the last poll of any
// member (0: none yet).
type loanHint struct {
	lastBytes, eventSize int
}

// loanSize is the size of the buffer a poll borrows to read jobs, with a
// budget of maxBytes and maxEvents (0: no limit): twice what it is likely
// to read, at least minLoan, at most maxBytes. What it is likely to read is
// the larger of its member's last answer and the events available in jobs
// times the average event size. Borrowing the whole budget made every poll
// with an event hold maxBytes (2 MiB by default: 2 GB for 1,000 consumers
// woken by one produce), and, above the largest pooled buffer (8 MiB),
// allocate and clear it, for answers of a few bytes. A poll that reads more
// than its buffer holds copies the rest into memory of its own
// (Log.ReadInto): a consumer draining a backlog, or one that wakes to a
// burst, borrows its whole budget as before, and the events are the same
// whatever the buffer.
func (c *Coordinator) loanSize(jobs []readJob, h loanHint, maxBytes, maxEvents int) int {
	want := h.lastBytes
	if h.eventSize > 0 {
		events := 0
		for i := range jobs {
			j := &jobs[i]
			events += int(min(max(0, c.log.HighWatermark(j.p.st)-j.from), int64(maxBytes)))
			if maxEvents > 0 && events >= maxEvents {
				events = maxEvents
				break
			}
			if events >= maxBytes/h.eventSize+1 {
				break
			}
		}
		want = max(want, events*h.eventSize)
	}
	return min(maxBytes, max(minLoan, 2*want))
}

// read reads once from m's started streams, within the budget, without
// holding the lock during store reads. A stream being read by another poll
// (of m, or of its previous owner) is skipped. Results of reads whose stream
// changed owner meanwhile are dropped.
func (c *Coordinator) read(ctx context.Context, m *member, registered uint64, maxBytes, maxEvents int, rb *readBuffer) ([]Batch, error) {
	c.mu.Lock()
	if err := c.checkLocked(m); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if m.registered != registered {
		c.mu.Unlock()
		return nil, errSuperseded
	}
	n := len(m.positions)
	if n == 0 {
		c.mu.Unlock()
		return nil, nil
	}
	first := m.rot % n
	m.rot++
	hint := loanHint{lastBytes: m.readBytes, eventSize: m.eventSize}
	if hint.eventSize == 0 {
		hint.eventSize = c.eventSize
	}
	jobs := make([]readJob, 0, n)
	for i := range n {
		p := m.positions[(first+i)%n]
		if !p.started {
			continue
		}
		if p.reading {
			p.contended = true
			continue
		}
		p.reading = true
		jobs = append(jobs, readJob{p: p, epoch: p.epoch, from: p.read})
	}
	c.mu.Unlock()

	var buf []byte
	lent := false
	used, count := 0, 0
	for i := range jobs {
		if count > 0 && (used >= maxBytes || maxEvents > 0 && count >= maxEvents) {
			break
		}
		j := &jobs[i]
		st := j.p.st
		remEvents := 0
		if maxEvents > 0 {
			remEvents = maxEvents - count
		}
		if !lent && c.log.HighWatermark(st) > j.from {
			// Lent only when there is something to read.
			buf, lent = rb.get(func() int { return c.loanSize(jobs[i:], hint, maxBytes-used, remEvents) }), true
		}
		b, rest, err := c.log.ReadInto(buf, st, j.from, maxBytes-used, remEvents)
		if errors.Is(err, store.ErrOffsetOutOfRange) {
			// The committed offset is beyond the end of the stream: the
			// log lost events it had acknowledged, or was replaced.
			// Resume at its end rather than failing forever.
			hwm := c.log.HighWatermark(st)
			c.logger.Warn("read position beyond the high watermark; resuming at the high watermark",
				"stream", st.String(), "position", j.from, "highWatermark", hwm)
			j.done, j.next, j.start = true, hwm, hwm
			continue
		}
		if err != nil {
			// Only this stream fails (a corrupt chunk fails every read
			// until it is repaired): it keeps its position, and the
			// other streams are read and answered. buf is not extended:
			// no event of the failed read is returned.
			j.err = logErr(err, "read %s from offset %d", st, j.from)
			continue
		}
		buf = rest
		events := b.Events
		if count > 0 {
			// The store returns at least one event; beyond the first
			// stream, keep only what fits in the budget.
			k, size := 0, used
			for k < len(events) && size+len(events[k]) <= maxBytes {
				size += len(events[k])
				k++
			}
			events = events[:k]
		}
		for _, e := range events {
			used += len(e)
		}
		count += len(events)
		j.done, j.start, j.events = true, b.Start, events
		j.next = b.Start + int64(len(events))
	}

	var out []Batch
	var skipped []string
	var readErr error // the first read that failed
	var reports []readReport
	c.mu.Lock()
	if count > 0 {
		m.readBytes = used
		m.eventSize = max(1, used/count)
		c.eventSize = m.eventSize
	}
	// A poll whose caller is gone (the client disconnected or timed out
	// while the read ran) does not move the read position: the next poll
	// would commit events nobody received.
	gone := ctx.Err()
	if gone == nil && m.registered != registered {
		// Registered again while the read ran (Register also moved the
		// positions' epochs, which drops these reads below).
		gone = errSuperseded
	}
	for i := range jobs {
		j := &jobs[i]
		p := j.p
		p.reading = false
		if p.contended {
			// Another poll skipped the stream while we read it.
			p.contended = false
			skipped = append(skipped, p.st.Topic)
		}
		if j.err != nil && readErr == nil {
			readErr = j.err
		}
		if r, ok := c.reportReadLocked(m, j); ok {
			reports = append(reports, r)
		}
		if p.epoch != j.epoch {
			// The stream changed owner during the read: drop the
			// events, the new owner reads them from the committed offset.
			continue
		}
		if !j.done || gone != nil {
			continue
		}
		p.read = j.next
		if len(j.events) > 0 {
			out = append(out, Batch{Stream: p.st, Start: j.start, Events: j.events})
		}
	}
	c.mu.Unlock()
	// Wake the long polls that skipped a stream we were reading: a new
	// owner, or a concurrent poll of the same consumer.
	for _, t := range skipped {
		c.wake(t)
	}
	for _, r := range reports {
		r.log(c.logger)
	}
	if gone != nil {
		return nil, gone
	}
	if len(out) == 0 && readErr != nil {
		// Nothing else to answer: the consumer sees the failure, which
		// would otherwise only be logged.
		return nil, readErr
	}
	return out, nil
}

// readErrorLogInterval is how often a stream whose reads keep failing is
// logged again: its owner may poll it many times a second.
const readErrorLogInterval = time.Minute

// readReport is a log line about the reads of a stream: one that failed, or
// the first that succeeded after failures.
type readReport struct {
	group, consumer string
	st              store.Stream
	from            int64
	failures        int // in a row, this one included; recovered: before it
	recovered       bool
	err             error
}

// reportReadLocked counts j's outcome in the failures of its stream, and
// returns the line to log, if any: when the stream starts failing, every
// readErrorLogInterval while it keeps failing, and when it reads again.
func (c *Coordinator) reportReadLocked(m *member, j *readJob) (readReport, bool) {
	p := j.p
	r := readReport{group: m.group.name, consumer: m.id, st: p.st, from: j.from, err: j.err}
	if j.err == nil {
		if !j.done || p.readFailures == 0 {
			return r, false
		}
		r.failures, r.recovered = p.readFailures, true
		p.readFailures, p.readLogged = 0, time.Time{}
		return r, true
	}
	p.readFailures++
	r.failures = p.readFailures
	now := c.opts.Now()
	if p.readFailures > 1 && now.Sub(p.readLogged) < readErrorLogInterval {
		return r, false
	}
	p.readLogged = now
	return r, true
}

func (r readReport) log(l *slog.Logger) {
	if r.recovered {
		l.Info("sub-range readable again; its events are delivered", "group", r.group, "consumer", r.consumer,
			"stream", r.st.String(), "offset", r.from, "failedReads", r.failures)
		return
	}
	l.Error("poll: a sub-range does not read; it keeps its position and none of its events are delivered until it reads, while the consumer's other sub-ranges are",
		"group", r.group, "consumer", r.consumer, "stream", r.st.String(), "offset", r.from,
		"failedReads", r.failures, "err", r.err.Error())
}
