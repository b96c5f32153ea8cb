package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A paced run (--rate with --duration) sends every request scheduled within
// --duration, even after it, for up to --late-limit (Config.LateLimit).
// Then it gives up: requests still unanswered are cancelled (each an
// error), and the sends still unmade count as unsent (the run fails), each
// recorded with the latency it had reached. A broker that stalls at the end
// of a run cannot hide it by leaving scheduled sends unmade.

// load is the producing side of a run: it hands out sequence numbers,
// paces the workers and records acks.
type load struct {
	c        *Config
	st       *stats
	acks     *acks
	e2e      *Histogram // e2e runs: unsent events are recorded here too
	next     atomic.Uint64
	stop     atomic.Bool   // no new request once set (halt)
	stopped  chan struct{} // closed by halt
	stopOnce sync.Once
	abortAt  atomic.Int64 // Unix ns at which a paced run gave up on its schedule; 0 if it did not
	start    time.Time
	end      time.Time     // paced runs with --duration: the schedule ends here
	elapsed  time.Duration // the run's time, once it ended
	// The workers' routes (REST) or partition keys (gRPC), one per key,
	// made once before the run's clock starts.
	paths, keys []string
}

// newLoad prepares a run's producing side; the routes (REST) or keys
// (gRPC) of --keys are made here, before the tool's CPU and allocations
// are measured.
func newLoad(c *Config) *load {
	l := &load{c: c, st: newStats(), acks: &acks{}, stopped: make(chan struct{})}
	if c.API == "grpc" {
		l.keys = grpcKeys(c.Keys)
	} else {
		l.paths = producePaths(c.Topic, c.Keys)
	}
	return l
}

// halt stops the run: no request starts after it.
func (l *load) halt() {
	l.stop.Store(true)
	l.stopOnce.Do(func() { close(l.stopped) })
}

// alloc reserves the sequence numbers of one request: n of them from base;
// ok is false when --count is reached or the run stops.
func (l *load) alloc(want int) (base uint64, n int, ok bool) {
	if l.stop.Load() {
		return 0, 0, false
	}
	base = l.next.Add(uint64(want)) - uint64(want)
	n = want
	if l.c.Count > 0 {
		if base >= l.c.Count {
			l.halt()
			return 0, 0, false
		}
		n = int(min(uint64(want), l.c.Count-base))
	}
	for {
		lim := l.acks.limit.Load()
		if base+uint64(n) <= lim || l.acks.limit.CompareAndSwap(lim, base+uint64(n)) {
			break
		}
	}
	return base, n, true
}

// pacer spaces the requests of one worker to reach --rate overall. The send
// time of a request is its scheduled time, not when it was really sent: a
// broker that falls behind shows in the latency rather than being hidden
// by a slower load (coordinated omission).
type pacer struct {
	next time.Time
	// The run's schedule is one request every step ns, request j at start
	// + j×step, rounded to the nearest ns; this worker sends requests
	// worker, worker+conns, ...: its send i is request worker+i×conns.
	// Computing each time from its index keeps a step that is not a whole
	// number of nanoseconds (--rate 30 over 16 connections) from drifting:
	// the schedule holds rate×duration requests, not one more.
	start         time.Time
	worker, conns int64
	step          float64 // ns
	i             int64
	interval      float64 // ns between two sends of this worker
}

// at is the time of this worker's send i.
func (p *pacer) at(i int64) time.Time {
	return p.start.Add(time.Duration(math.Round(float64(p.worker+i*p.conns) * p.step)))
}

func newPacer(l *load, worker int) *pacer {
	if l.c.Rate <= 0 {
		return nil
	}
	step := float64(l.c.EventsPerRequest) / l.c.Rate * float64(time.Second)
	p := &pacer{start: l.start, worker: int64(worker), conns: int64(l.c.Connections), step: step,
		interval: step * float64(l.c.Connections)}
	p.next = p.at(0)
	return p
}

// wait sleeps until the next scheduled send and returns its time (without
// a pacer, now). ok is false when the run stopped, or when the schedule is
// over: the next send would be at or after the end of --duration.
func (p *pacer) wait(l *load) (t time.Time, ok bool) {
	if p == nil {
		return time.Now(), !l.stop.Load()
	}
	t = p.next
	if l.stop.Load() || (!l.end.IsZero() && !t.Before(l.end)) {
		return t, false
	}
	if d := time.Until(t); d > 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-l.stopped:
			return t, false
		}
	}
	p.i++
	p.next = p.at(p.i)
	return t, true
}

// gaveUpOn counts a request cancelled before its answer: because the run
// gave up on its schedule, or by an interrupt (its events may or may not
// have been stored: the ack file lists them as failed).
func (l *load) gaveUpOn() {
	if l.abortAt.Load() != 0 {
		l.st.addErr(errGaveUp)
	} else {
		l.st.addErr(errInterrupted)
	}
}

const (
	errGaveUp      = "unanswered when the run gave up on its schedule"
	errInterrupted = "unanswered when the run was interrupted"
)

// missed accounts for the sends of a paced worker still to make, up to the
// end of the run, when the run gave up on its schedule (--late-limit): each
// counts as unsent, with the latency it had reached then. It consumes them:
// a second call counts nothing.
//
// The k sends left are at next, next+interval, ... (before the end), so
// their latencies fall evenly from abort-next; the first is recorded alone
// (the maximum stays exact), the others in at most missedGroups groups of
// consecutive sends, each at its middle send's latency, so that a high --rate that fell far behind costs a few thousand
// histogram updates rather than one per send.
func (l *load) missed(p *pacer) {
	at := l.abortAt.Load()
	if p == nil || at == 0 || l.end.IsZero() || !p.next.Before(l.end) {
		return
	}
	abort := time.Unix(0, at)
	// Sends i, i+1, ... before the end.
	k := uint64(0)
	if left := float64(l.end.Sub(p.next)); left > 0 {
		k = uint64(math.Ceil(left / p.interval))
		for k > 0 && !p.at(p.i+int64(k)-1).Before(l.end) { // float rounding, either way
			k--
		}
		for p.at(p.i + int64(k)).Before(l.end) {
			k++
		}
	}
	if k == 0 {
		return
	}
	n := uint64(l.c.EventsPerRequest)
	// The first send alone, so that the maximum is exact; the others in
	// groups.
	record := func(lo, hi, at uint64) {
		lat := abort.Sub(p.at(p.i + int64(at)))
		l.st.lat.RecordN(lat, hi-lo)
		if l.e2e != nil {
			l.e2e.RecordN(lat, (hi-lo)*n)
		}
	}
	record(0, 1, 0)
	groups := min(k-1, missedGroups)
	for g := range groups {
		lo, hi := 1+g*(k-1)/groups, 1+(g+1)*(k-1)/groups
		record(lo, hi, (lo+hi-1)/2)
	}
	l.st.unsent.Add(k * n)
	p.i += int64(k)
	p.next = p.at(p.i)
}

// missedGroups bounds the histogram updates of missed per worker.
const missedGroups = 1024

// buildBody writes the events [base, base+n) as one JSON event or NDJSON
// lines; it returns the body and the bytes of events in it.
func buildBody(g *eventGen, b []byte, base uint64, n int, ts int64) ([]byte, int) {
	if n == 1 {
		b = g.appendEvent(b[:0], base, ts)
		return b, len(b)
	}
	b = g.appendEvents(b[:0], base, n, ts, '\n')
	return b, len(b) - n
}

func runProduce(ctx context.Context, c *Config) (*Result, error) {
	res, _, err := produce(ctx, c)
	return res, err
}

// produce runs c and returns its result and acks.
func produce(ctx context.Context, c *Config) (*Result, *acks, error) {
	l := newLoad(c)
	// A run that does not finish leaves an ack file marked incomplete,
	// which consume refuses, not the file of an earlier run.
	if err := prepareAckFile(c.AckFile); err != nil {
		return nil, nil, fmt.Errorf("%w: --ack-file: %w", errBadFlags, err)
	}
	cpu := startCPU()
	elapsed, err := l.run(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	res := c.result()
	res.Seconds = elapsed.Seconds()
	side := l.st.side(elapsed)
	res.Produce = &side
	res.setToolCost(cpu.stop())
	if c.AckFile != "" {
		if err := writeAckFile(c.AckFile, l.acks.file(c.Run, c.Topic, c.EventSize)); err != nil {
			return nil, nil, fmt.Errorf("--ack-file: %w", err)
		}
	}
	if fails := l.st.errCount(); fails > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%s requests failed: their events are not counted as acknowledged", commas(fails)))
	}
	res.Notes = append(res.Notes, l.rateNotes(side)...)
	return res, l.acks, nil
}

func (c *Config) result() *Result {
	r := &Result{Mode: c.Mode, API: c.API, Topic: c.Topic, Run: c.Run, Rate: c.Rate}
	if c.Mode != "consume" { // the producing side's shape
		r.Connections, r.EventsPerRequest, r.EventSize, r.Keys = c.Connections, c.EventsPerRequest, c.EventSize, c.Keys
	}
	if c.Mode != "produce" {
		r.Consumers = c.Consumers
	}
	if c.API == "grpc" && c.GRPCStream {
		r.API = "grpc-stream"
	}
	r.GRPCBody = c.API == "grpc" && c.GRPCBody && c.Mode != "consume"
	return r
}

// rateNotes tells how a paced run kept to its schedule.
func (l *load) rateNotes(side Side) []string {
	var notes []string
	if side.Unsent > 0 {
		notes = append(notes, fmt.Sprintf("%s scheduled events were not sent: the run was still behind its schedule %v after --duration (--late-limit)", commas(side.Unsent), l.c.LateLimit))
	}
	// A run of less than a second (a small --count) ends with the answer
	// of its last request, which its rate cannot absorb.
	if r := l.c.Rate; r > 0 && side.EventsPerSec < 0.95*r && l.elapsed >= time.Second {
		notes = append(notes, fmt.Sprintf("produced %s events/s, below the target rate %s", rateCommas(side.EventsPerSec), fmtRate(r)))
	}
	return notes
}

// run produces until --count or --duration (or ctx), showing progress with
// the extra sides given, and returns how long it produced.
func (l *load) run(ctx context.Context, extra []namedStats) (time.Duration, error) {
	c := l.c
	var worker func(ctx context.Context, i int) error
	var closeAll func()
	switch c.API {
	case "rest":
		if err := reachableTCP(ctx, "producer", c.Producer); err != nil {
			return 0, err
		}
		tr := newTransport(c.HTTPClient, c.Connections)
		closeAll = tr.CloseIdleConnections
		worker = func(ctx context.Context, i int) error { return l.restWorker(ctx, i, tr) }
	case "grpc":
		pool, err := dialGRPC(c.GRPC, c.Connections)
		if err != nil {
			return 0, err
		}
		if err := pool.reachable(ctx, c.GRPC); err != nil {
			pool.close()
			return 0, err
		}
		closeAll = pool.close
		worker = func(ctx context.Context, i int) error {
			if c.GRPCStream {
				return l.grpcStreamWorker(ctx, i, pool.conn(i))
			}
			return l.grpcUnaryWorker(ctx, i, pool.conn(i))
		}
	}
	defer closeAll()

	// wctx ends the workers' requests when the run gives up on its schedule.
	wctx, giveUp := context.WithCancel(ctx)
	defer giveUp()
	padPool([]byte(c.Run)) // made once per run, before its clock starts
	l.start = time.Now()
	stopProgress := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Go(func() {
		progress(c.Log, c.Progress, l.start, stopProgress, append([]namedStats{{name: "produce", s: l.st}}, extra...)...)
	})
	done := make(chan struct{})
	if c.Duration > 0 {
		limit, paced := c.Duration, c.Rate > 0
		if paced {
			// The schedule ends at --duration; sending it may take longer.
			l.end = l.start.Add(c.Duration)
			limit += c.LateLimit
		}
		go func() {
			select {
			case <-time.After(limit):
				if paced {
					l.abortAt.Store(time.Now().UnixNano())
					giveUp()
				}
			case <-done:
			case <-ctx.Done():
			}
			l.halt()
		}()
	}
	go func() {
		select {
		case <-ctx.Done():
			l.halt()
		case <-done:
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, c.Connections)
	for i := range c.Connections {
		wg.Go(func() { errs[i] = worker(wctx, i) })
	}
	wg.Wait()
	elapsed := time.Since(l.start)
	// A paced run's schedule is --duration long even when its last send
	// came early in it (--rate 1 sends at 0 s and 1 s of a 2 s run): its
	// rates are over the schedule, unless --count ended it first.
	if !l.end.IsZero() && elapsed < c.Duration && (c.Count == 0 || l.next.Load() < c.Count) && ctx.Err() == nil {
		elapsed = c.Duration
	}
	l.elapsed = elapsed
	close(done)
	close(stopProgress)
	pwg.Wait()
	for _, err := range errs {
		if err != nil {
			return elapsed, err
		}
	}
	return elapsed, nil
}

// producePath is the produce route of the topic, with the partition key of
// request number i.
func producePaths(topic string, keys int) []string {
	base := "/v1/topic/" + url.PathEscape(topic) + "/messages"
	if keys == 0 {
		return []string{base}
	}
	out := make([]string, keys)
	for k := range out {
		out[k] = base + "?partitionKey=k" + strconv.Itoa(k)
	}
	return out
}

func (l *load) restWorker(ctx context.Context, i int, tr *http.Transport) error {
	c := l.c
	doer := newHTTPDoer(c.HTTPClient, c.Producer, tr)
	defer doer.close()
	g := newEventGen(c.Run, c.EventSize)
	paths := l.paths
	ct := "application/json"
	if c.EventsPerRequest > 1 {
		ct = "application/x-ndjson"
	}
	p := newPacer(l, i)
	var body []byte
	for req := uint64(i); ; req += uint64(c.Connections) {
		sendAt, ok := p.wait(l)
		var base uint64
		var n int
		if ok {
			base, n, ok = l.alloc(c.EventsPerRequest)
		}
		if !ok {
			l.missed(p)
			return nil
		}
		var size int
		body, size = buildBody(g, body, base, n, sendAt.UnixNano())
		start := time.Now()
		status, answer, err := doer.do(ctx, http.MethodPost, paths[req%uint64(len(paths))], ct, body)
		lat := time.Since(sendAt)
		if p == nil {
			lat = time.Since(start)
		}
		l.st.requests.Add(1)
		l.st.lat.Record(lat) // failed requests too: a stall that ends in an error is still a stall
		if err == nil && status == http.StatusOK {
			l.acks.ack(base, base+uint64(n))
			l.st.events.Add(uint64(n))
			l.st.bytes.Add(uint64(size))
			continue
		}
		l.acks.fail(base, base+uint64(n))
		if ctx.Err() != nil {
			l.gaveUpOn()
			l.missed(p)
			return nil
		}
		if err != nil {
			l.st.addErr(httpErrKey(status, err))
		} else {
			l.st.addErrExample(httpErrKey(status, err), errorMessage(answer))
		}
		if err == nil && status == http.StatusNotFound {
			// The broker's producer port always has the produce route:
			// this is another port (or another server). The run stops.
			l.halt()
			return fmt.Errorf("producer %s: http 404 on the produce route (%s): is it the broker's producer port?", c.Producer, errorMessage(answer))
		}
		if err != nil {
			// Do not spin on a dead broker.
			time.Sleep(10 * time.Millisecond)
		}
	}
}
