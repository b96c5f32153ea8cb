package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// readers is the consuming side of a run: --consumers members of one group,
// all registered before any polls (so that no rebalance moves a sub-range
// between polls, which would redeliver events).
type readers struct {
	c        *Config
	st       *stats
	v        *verifier
	group    string
	ids      []string
	stop     atomic.Bool
	start    time.Time
	lastData atomic.Int64 // Unix ns of the last event received
	done     chan struct{}
	doneOnce sync.Once
	reason   string        // why the run finished: set once, before done closes
	ofRun    atomic.Uint64 // events of the verified run received (consume --count)
}

// countOfRun counts the events of a poll that consume --count counts: those
// of the verified run when there is one (an ack file), else all. An event
// starts {"run":"<8 hex digits>"; one that does not is the checker's to
// call malformed, and is not counted here.
func (r *readers) countOfRun(rc *received) uint64 {
	if r.v == nil || r.v.acks == nil {
		return uint64(len(rc.ends))
	}
	const prefix = runPrefix
	var n uint64
	start := 0
	for _, end := range rc.ends {
		ev := rc.data[start:end]
		if len(ev) >= len(prefix)+runIDLen && string(ev[len(prefix):len(prefix)+runIDLen]) == r.v.run {
			n++
		}
		start = end
	}
	return n
}

func newReaders(c *Config, v *verifier) *readers {
	r := &readers{c: c, st: newStats(), v: v, group: c.Group, done: make(chan struct{})}
	tag := newRunID()
	if r.group == "" {
		r.group = "bench-" + tag
	}
	for i := range c.Consumers {
		r.ids = append(r.ids, fmt.Sprintf("bench-%s-%d", tag, i))
	}
	return r
}

// finish ends the run: every acknowledged event arrived (reason ""), or
// --count was reached.
func (r *readers) finish(reason string) {
	r.doneOnce.Do(func() {
		r.reason = reason
		// At once, so that no consumer starts another poll: waiting for
		// the run's goroutine to see done let the consumers, on a loaded
		// machine, poll 40 events past --count 100 instead of 18 at most.
		r.stop.Store(true)
		close(r.done)
	})
}

// consumerClient is one consumer's view of the consumer API.
type consumerClient interface {
	register(ctx context.Context) error
	// poll returns the number of events and their bytes; events go to fn.
	poll(ctx context.Context, fn func(ev []byte)) (n, size int, err error)
	goodbye(ctx context.Context)
	// prime polls once without waiting (a 1 ms timeout), so that a new
	// group takes its positions; the events are dropped.
	prime(ctx context.Context) error
}

// errNotRegistered is what poll returns on 409 / FailedPrecondition.
type errNotRegistered struct{}

func (errNotRegistered) Error() string { return "consumer not registered" }

type restConsumer struct {
	r         *readers
	id        string
	doer      httpDoer
	pollPath  string
	primePath string
}

func (rc *restConsumer) register(ctx context.Context) error {
	c := rc.r.c
	q := url.Values{"consumerId": {rc.id}, "group": {rc.r.group}, "topic": {c.Topic},
		"onNewGroup": {map[string]string{"earliest": "startFromEarliest", "latest": "startFromLatest"}[c.From]}}
	st, body, err := rc.doer.do(ctx, http.MethodPut, "/v1/consumer/register?"+q.Encode(), "", nil)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return fmt.Errorf("http %d: %s", st, errorMessage(body))
	}
	q = url.Values{"consumerId": {rc.id}}
	if c.PollTimeout > 0 {
		q.Set("timeout", strconv.FormatInt(c.PollTimeout.Milliseconds(), 10))
	}
	if c.PollMaxBytes > 0 {
		q.Set("maxBytes", strconv.Itoa(c.PollMaxBytes))
	}
	rc.pollPath = "/v1/consumer/poll?" + q.Encode()
	q.Set("timeout", "1")
	rc.primePath = "/v1/consumer/poll?" + q.Encode()
	return nil
}

func (rc *restConsumer) prime(ctx context.Context) error {
	st, body, err := rc.doer.do(ctx, http.MethodPost, rc.primePath, "", nil)
	switch {
	case err != nil:
		return err
	case st != http.StatusOK && st != http.StatusNoContent:
		return fmt.Errorf("http %d: %s", st, errorMessage(body))
	}
	return nil
}

func (rc *restConsumer) poll(ctx context.Context, fn func(ev []byte)) (int, int, error) {
	st, body, err := rc.doer.do(ctx, http.MethodPost, rc.pollPath, "", nil)
	switch {
	case err != nil:
		return 0, 0, err
	case st == http.StatusNoContent:
		return 0, 0, nil
	case st == http.StatusConflict:
		return 0, 0, errNotRegistered{}
	case st != http.StatusOK:
		return 0, 0, httpStatusError{st, errorMessage(body)}
	}
	size := 0
	n, err := forEachValue(body, func(ev []byte) {
		size += len(ev)
		fn(ev)
	})
	return n, size, err
}

func (rc *restConsumer) goodbye(ctx context.Context) {
	_, _, _ = rc.doer.do(ctx, http.MethodPost, "/v1/consumer/goodbye?consumerId="+url.QueryEscape(rc.id), "", nil)
	rc.doer.close()
}

// httpStatusError is a poll answered with an error status, and the
// broker's message.
type httpStatusError struct {
	status int
	msg    string
}

func (e httpStatusError) Error() string { return fmt.Sprintf("http %d: %s", e.status, e.msg) }

type grpcConsumer struct {
	r      *readers
	id     string
	client floev1.ConsumerClient
	req    *floev1.PollRequest
}

func newGRPCConsumer(r *readers, id string, cc *grpc.ClientConn) *grpcConsumer {
	c := r.c
	return &grpcConsumer{r: r, id: id, client: floev1.NewConsumerClient(cc), req: &floev1.PollRequest{
		ConsumerId: id, Timeout: uint32(c.PollTimeout.Milliseconds()), MaxBytes: uint32(c.PollMaxBytes),
	}}
}

func (gc *grpcConsumer) register(ctx context.Context) error {
	c := gc.r.c
	_, err := gc.client.Register(ctx, &floev1.RegisterRequest{
		ConsumerId: gc.id, Group: gc.r.group, Topic: []string{c.Topic},
		OnNewGroup: map[string]string{"earliest": "startFromEarliest", "latest": "startFromLatest"}[c.From],
	})
	return err
}

func (gc *grpcConsumer) poll(ctx context.Context, fn func(ev []byte)) (int, int, error) {
	resp, err := gc.client.Poll(ctx, gc.req)
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.NotFound {
			return 0, 0, errNotRegistered{}
		}
		return 0, 0, err
	}
	n, size := 0, 0
	for _, b := range resp.GetBatches() {
		for _, ev := range b.GetValues() {
			fn(ev)
			n++
			size += len(ev)
		}
	}
	return n, size, nil
}

func (gc *grpcConsumer) prime(ctx context.Context) error {
	req := &floev1.PollRequest{ConsumerId: gc.id, Timeout: 1, MaxBytes: gc.req.MaxBytes}
	_, err := gc.client.Poll(ctx, req)
	return err
}

func (gc *grpcConsumer) goodbye(ctx context.Context) {
	_, _ = gc.client.Goodbye(ctx, &floev1.GoodbyeRequest{ConsumerId: gc.id})
}

// clients makes the consumers of the run and registers them all.
func (r *readers) clients(ctx context.Context) ([]consumerClient, func(), error) {
	c := r.c
	out := make([]consumerClient, len(r.ids))
	closeAll := func() {}
	addr := c.Consumer
	switch c.API {
	case "rest":
		if err := reachableTCP(ctx, "consumer", c.Consumer); err != nil {
			return nil, nil, err
		}
		tr := newTransport(c.HTTPClient, len(r.ids))
		closeAll = tr.CloseIdleConnections
		for i, id := range r.ids {
			out[i] = &restConsumer{r: r, id: id, doer: newHTTPDoer(c.HTTPClient, c.Consumer, tr)}
		}
	case "grpc":
		addr = c.GRPC
		pool, err := dialGRPC(c.GRPC, len(r.ids))
		if err != nil {
			return nil, nil, err
		}
		if err := pool.reachable(ctx, c.GRPC); err != nil {
			pool.close()
			return nil, nil, err
		}
		closeAll = pool.close
		for i, id := range r.ids {
			out[i] = newGRPCConsumer(r, id, pool.conn(i))
		}
	}
	for _, cl := range out {
		if err := cl.register(ctx); err != nil {
			closeAll()
			if c.API == "grpc" {
				err = errors.New(oneLine(status.Convert(err).Message()))
			}
			return nil, nil, fmt.Errorf("register at %s: %w", addr, err)
		}
	}
	return out, closeAll, nil
}

// received is what one poll returned, copied for the checker.
type received struct {
	data []byte
	ends []int // end of each event in data
	now  int64 // when the first event arrived (Unix ns)
}

// pollLoop polls until the run stops. Its checker goroutine verifies the
// events of each poll while the next poll runs: verifying inline (parsing
// each event, hashing its padding) took a third of the time between two
// polls of a single consumer, so the tool measured itself as much as the
// broker. The loop copies each poll's events for the checker (up to two
// polls ahead of it) and counts them; the checker verifies them and ends the
// run once every acknowledged event arrived.
// countPolls adds polls that succeeded, with their latencies.
func (r *readers) countPolls(lat []time.Duration) {
	for _, d := range lat {
		r.st.lat.Record(d)
	}
	r.st.requests.Add(uint64(len(lat)))
}

func (r *readers) pollLoop(ctx context.Context, cl consumerClient) {
	free := make(chan *received, 3)
	for range cap(free) {
		free <- &received{}
	}
	work := make(chan *received, cap(free)-1)
	var checker sync.WaitGroup
	checker.Go(func() {
		for rc := range work {
			if r.v != nil {
				start := 0
				for _, end := range rc.ends {
					r.v.check(rc.data[start:end], rc.now)
					start = end
				}
				if r.c.Mode == "consume" && r.v.complete() {
					r.finish("")
				}

			}
			free <- rc
		}
	})
	defer func() {
		close(work)
		checker.Wait()
	}()
	// Polls without events are counted (requests, latency) only once a poll
	// with events follows: the empty long polls that end a run, waiting for
	// --idle or for events that will not come, are not part of it. Past
	// maxEmpty in a row they are counted anyway.
	const maxEmpty = 4096
	var empty []time.Duration
	for !r.stop.Load() {
		rc := <-free
		rc.data, rc.ends, rc.now = rc.data[:0], rc.ends[:0], 0
		start := time.Now()
		n, size, err := cl.poll(ctx, func(ev []byte) {
			if rc.now == 0 {
				rc.now = time.Now().UnixNano()
			}
			rc.data = append(rc.data, ev...)
			rc.ends = append(rc.ends, len(rc.data))
		})
		if r.stop.Load() && len(rc.ends) == 0 {
			// A poll that outlived the run without events (a long poll
			// waiting for events that will not come) is not measured: the
			// run's time ends at its last event.
			free <- rc
			return
		}
		if err != nil {
			if len(rc.ends) > 0 {
				// A damaged answer: the events before the damage are
				// counted and verified all the same.
				r.st.events.Add(uint64(len(rc.ends)))
				r.st.bytes.Add(uint64(len(rc.data)))
				r.lastData.Store(time.Now().UnixNano())
				work <- rc
			} else {
				free <- rc
			}
			if ctx.Err() != nil || r.stop.Load() {
				return // cancelled by the stop (or an interrupt): not a failed poll
			}
			r.st.requests.Add(1)
			if _, ok := err.(errNotRegistered); ok {
				r.st.addErr(errReRegistered)
				_ = cl.register(ctx)
				continue
			}
			switch e := err.(type) {
			case httpStatusError:
				r.st.addErrExample(fmt.Sprintf("http %d", e.status), e.msg)
			default:
				if r.c.API == "grpc" {
					r.st.addErrExample(grpcErrKey(err), status.Convert(err).Message())
				} else {
					r.st.addErr(httpErrKey(0, err))
				}
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		lat := time.Since(start)
		if n == 0 {
			empty = append(empty, lat)
			if len(empty) == maxEmpty {
				r.countPolls(empty)
				empty = empty[:0]
			}
			free <- rc
			continue
		}
		r.countPolls(append(empty, lat))
		empty = empty[:0]
		r.st.events.Add(uint64(n))
		r.st.bytes.Add(uint64(size))
		r.lastData.Store(time.Now().UnixNano())
		if r.c.Mode == "consume" && r.c.Count > 0 && r.ofRun.Add(r.countOfRun(rc)) >= r.c.Count {
			r.finish(fmt.Sprintf("stopped at --count %s", commas(r.c.Count)))
		}
		work <- rc
	}
}

func runConsume(ctx context.Context, c *Config, a *acks) (*Result, error) {
	v := newVerifier(c.Run, a)
	r := newReaders(c, v)
	cls, closeAll, err := r.clients(ctx)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	cpu := startCPU()
	r.start = time.Now()
	r.lastData.Store(r.start.UnixNano())
	if a != nil && a.nAcked.Load() == 0 {
		r.finish("")
	}
	stopProgress := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Go(func() { progress(c.Log, c.Progress, r.start, stopProgress, namedStats{name: "consume", s: r.st}) })
	// The polls in flight when the run stops are cancelled: a long poll
	// must not hold the end of the run (--duration, --idle, an interrupt)
	// for its --poll-timeout.
	pctx, cancelPolls := context.WithCancel(ctx)
	defer cancelPolls()
	var wg sync.WaitGroup
	for _, cl := range cls {
		wg.Go(func() { r.pollLoop(pctx, cl) })
	}
	idle := time.NewTicker(100 * time.Millisecond)
	var deadline <-chan time.Time
	if c.Duration > 0 {
		deadline = time.After(c.Duration)
	}
	var note string
wait:
	for {
		select {
		case <-r.done:
			note = r.reason
			break wait
		case <-ctx.Done():
			note = "interrupted"
			break wait
		case <-deadline:
			note = fmt.Sprintf("stopped at --duration %v", c.Duration)
			break wait
		case <-idle.C:
			if c.Idle > 0 && time.Since(time.Unix(0, r.lastData.Load())) > c.Idle {
				note = fmt.Sprintf("stopped after --idle %v without events", c.Idle)
				break wait
			}
		}
	}
	idle.Stop()
	r.stop.Store(true)
	cancelPolls()
	// Count the time until the last event, not the idle wait. Polls still
	// running now may bring events after it: they are counted, verified,
	// and the time runs to the last of them.
	end := time.Now()
	if last := time.Unix(0, r.lastData.Load()); last.After(r.start) {
		end = last
	}
	wg.Wait()
	if last := time.Unix(0, r.lastData.Load()); last.After(end) {
		end = last
	}
	elapsed := end.Sub(r.start)
	side := r.st.side(elapsed)
	close(stopProgress)
	pwg.Wait()
	gctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	for _, cl := range cls {
		cl.goodbye(gctx)
	}
	cancel()

	res := c.result()
	if a == nil {
		res.Run = "" // every run in the topic was checked (Verify.Runs)
	}
	res.Seconds = elapsed.Seconds()
	res.Consume = &side
	vr := v.result()
	// A run that stopped before it read everything (--count, --duration,
	// an interrupt; not --idle, which waited for events that did not come)
	// did not miss what it did not wait for.
	if stoppedEarly := note != "" && !strings.HasPrefix(note, "stopped after --idle"); stoppedEarly && vr.Missing > 0 {
		vr.Unread, vr.Missing = vr.Missing, 0
		res.Notes = append(res.Notes, fmt.Sprintf("%s expected events were not read (%s before they all arrived): not counted as missing", commas(vr.Unread), note))
	}
	if vr.Missing > 0 && c.Group != "" {
		res.Notes = append(res.Notes, fmt.Sprintf("--group %s resumes where it left off: if it read these events before, they are not read again (without --group, each run is a new group)", c.Group))
	}
	res.Verify = &vr
	res.setToolCost(cpu.stop())
	if note != "" {
		res.Notes = append(res.Notes, note)
	}
	if a == nil {
		res.Notes = append(res.Notes, "no --ack-file: checked each run's sequence numbers for holes only (events lost at the tail, or of failed requests, are not told apart)")
		if side.Events == 0 && note != "interrupted" {
			res.Notes = append(res.Notes, fmt.Sprintf("no event was read from topic %s: is --topic right?", c.Topic))
		}
	}
	return res, nil
}
