package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// load is the producing side of a run: it hands out sequence numbers,
// paces the workers and records acks.
type load struct {
	c     *Config
	st    *stats
	acks  *acks
	next  atomic.Uint64
	stop  atomic.Bool // no new request once set
	start time.Time
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
			l.stop.Store(true)
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
	next     time.Time
	interval time.Duration
}

func newPacer(l *load, worker int) *pacer {
	if l.c.Rate <= 0 {
		return nil
	}
	perReq := float64(l.c.Connections*l.c.EventsPerRequest) / l.c.Rate
	iv := time.Duration(perReq * float64(time.Second))
	return &pacer{next: l.start.Add(iv * time.Duration(worker) / time.Duration(l.c.Connections)), interval: iv}
}

// wait sleeps until the next scheduled send and returns its time.
func (p *pacer) wait(l *load) time.Time {
	if p == nil {
		return time.Now()
	}
	t := p.next
	p.next = p.next.Add(p.interval)
	for d := time.Until(t); d > 0; d = time.Until(t) {
		if l.stop.Load() {
			break
		}
		time.Sleep(min(d, 100*time.Millisecond))
	}
	return t
}

// buildBody writes the events [base, base+n) as one JSON event or NDJSON
// lines; it returns the body and the bytes of events in it.
func buildBody(g *eventGen, b []byte, base uint64, n int, ts int64) ([]byte, int) {
	b = b[:0]
	size := 0
	for i := range n {
		l := len(b)
		b = g.appendEvent(b, base+uint64(i), ts)
		size += len(b) - l
		if n > 1 {
			b = append(b, '\n')
		}
	}
	return b, size
}

func runProduce(ctx context.Context, c *Config) (*Result, error) {
	res, _, err := produce(ctx, c)
	return res, err
}

// produce runs c and returns its result and acks.
func produce(ctx context.Context, c *Config) (*Result, *acks, error) {
	l := &load{c: c, st: newStats(), acks: &acks{}}
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
		res.Notes = append(res.Notes, fmt.Sprintf("%d requests failed: their events are not counted as acknowledged", fails))
	}
	return res, l.acks, nil
}

func (c *Config) result() *Result {
	r := &Result{
		Mode: c.Mode, API: c.API, Topic: c.Topic, Run: c.Run,
		EventSize: c.EventSize, Keys: c.Keys, Rate: c.Rate,
	}
	if c.Mode != "consume" {
		r.Connections, r.EventsPerRequest = c.Connections, c.EventsPerRequest
	}
	if c.Mode != "produce" {
		r.Consumers = c.Consumers
	}
	if c.API == "grpc" && c.GRPCStream {
		r.API = "grpc-stream"
	}
	return r
}

// run produces until --count or --duration (or ctx), showing progress with
// the extra sides given, and returns how long it produced.
func (l *load) run(ctx context.Context, extra []namedStats) (time.Duration, error) {
	c := l.c
	var worker func(ctx context.Context, i int) error
	var closeAll func()
	switch c.API {
	case "rest":
		tr := newTransport(c.HTTPClient, c.Connections)
		closeAll = tr.CloseIdleConnections
		worker = func(ctx context.Context, i int) error { return l.restWorker(ctx, i, tr) }
	case "grpc":
		pool, err := dialGRPC(c.GRPC, c.Connections)
		if err != nil {
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

	l.start = time.Now()
	stopProgress := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Go(func() {
		progress(c.Log, c.Progress, l.start, stopProgress, append([]namedStats{{name: "produce", s: l.st}}, extra...)...)
	})
	done := make(chan struct{})
	if c.Duration > 0 {
		go func() {
			select {
			case <-time.After(c.Duration):
			case <-done:
			case <-ctx.Done():
			}
			l.stop.Store(true)
		}()
	}
	go func() {
		select {
		case <-ctx.Done():
			l.stop.Store(true)
		case <-done:
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, c.Connections)
	for i := range c.Connections {
		wg.Go(func() { errs[i] = worker(ctx, i) })
	}
	wg.Wait()
	elapsed := time.Since(l.start)
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
	paths := producePaths(c.Topic, c.Keys)
	ct := "application/json"
	if c.EventsPerRequest > 1 {
		ct = "application/x-ndjson"
	}
	p := newPacer(l, i)
	var body []byte
	for req := uint64(i); ; req += uint64(c.Connections) {
		sendAt := p.wait(l)
		base, n, ok := l.alloc(c.EventsPerRequest)
		if !ok {
			return nil
		}
		var size int
		body, size = buildBody(g, body, base, n, sendAt.UnixNano())
		start := time.Now()
		status, _, err := doer.do(ctx, http.MethodPost, paths[req%uint64(len(paths))], ct, body)
		lat := time.Since(sendAt)
		if p == nil {
			lat = time.Since(start)
		}
		l.st.requests.Add(1)
		if err == nil && status == http.StatusOK {
			l.acks.ack(base, base+uint64(n))
			l.st.events.Add(uint64(n))
			l.st.bytes.Add(uint64(size))
			l.st.lat.Record(lat)
			continue
		}
		l.acks.fail(base, base+uint64(n))
		if ctx.Err() != nil {
			return nil
		}
		l.st.addErr(httpErrKey(status, err))
		if err != nil {
			// Do not spin on a dead broker.
			time.Sleep(10 * time.Millisecond)
		}
	}
}
