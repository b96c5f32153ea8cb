package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// runE2E produces at --rate while the consumers long-poll the same topic,
// and measures the end-to-end latency of every event: receive time minus
// the time its request was scheduled to be sent (so a producer that falls
// behind its rate counts against the latency).
//
// The consumers are registered, and poll once, before producing starts, so
// that a group starting from latest misses nothing of the run. After the
// producers stop, the consumers get up to --drain to receive every
// acknowledged event; what they have not received then is missing.
func runE2E(ctx context.Context, c *Config) (*Result, error) {
	l := newLoad(c)
	v := newVerifier(c.Run, l.acks)
	v.e2e = &Histogram{}
	l.e2e = v.e2e
	r := newReaders(c, v)
	cls, closeAll, err := r.clients(ctx)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	// With --from latest, one poll each places the new group at the
	// latest offset before the first event is produced (its events, of
	// earlier runs, are dropped). From earliest the group reads the
	// topic's backlog too, every event of other runs counted as foreign.
	if c.From == "latest" {
		for _, cl := range cls {
			if err := cl.prime(ctx); err != nil {
				return nil, fmt.Errorf("first poll: %w", err)
			}
		}
	}

	cpu := startCPU()
	r.start = time.Now()
	pctx, cancelPolls := context.WithCancel(ctx) // see runConsume
	defer cancelPolls()
	var wg sync.WaitGroup
	for _, cl := range cls {
		wg.Go(func() { r.pollLoop(pctx, cl) })
	}
	elapsed, err := l.run(ctx, []namedStats{{name: "consume", s: r.st, e2e: v.e2e}})
	if err != nil {
		r.stop.Store(true)
		cancelPolls()
		wg.Wait()
		return nil, err
	}
	// The consuming side's time starts with producing, not with the
	// producers' setup (their connections, the reachability check).
	r.start = l.start
	// Let the consumers catch up.
	var note string
	drain := time.After(c.Drain)
	tick := time.NewTicker(10 * time.Millisecond)
	drained := false
wait:
	for !v.complete() {
		select {
		case <-tick.C:
		case <-drain:
			drained = true
			break wait
		case <-ctx.Done():
			note = "interrupted"
			break wait
		}
	}
	tick.Stop()
	r.stop.Store(true)
	cancelPolls()
	wg.Wait()
	// The consuming side's rate is over the time until its last event.
	cElapsed := elapsed
	if last := time.Unix(0, r.lastData.Load()); last.After(r.start) {
		cElapsed = last.Sub(r.start)
	}
	cs := r.st.side(cElapsed)
	gctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	for _, cl := range cls {
		cl.goodbye(gctx)
	}
	cancel()

	res := c.result()
	res.Seconds = elapsed.Seconds()
	ps := l.st.side(elapsed)
	res.Produce, res.Consume = &ps, &cs
	e2e := v.e2e.Snapshot().Summary()
	res.E2E = &e2e
	vr := v.result()
	res.Verify = &vr
	res.setToolCost(cpu.stop())
	if drained && vr.Missing > 0 {
		note = fmt.Sprintf("consumers had not received %s acknowledged events %v after producing stopped (--drain)", commas(vr.Missing), c.Drain)
	}
	if note == "interrupted" && vr.Missing > 0 {
		// It did not wait for them (see runConsume).
		vr.Unread, vr.Missing = vr.Missing, 0
		res.Notes = append(res.Notes, fmt.Sprintf("%s acknowledged events were not read (interrupted before they all arrived): not counted as missing", commas(vr.Unread)))
	}
	if note != "" {
		res.Notes = append(res.Notes, note)
	}
	res.Notes = append(res.Notes, l.rateNotes(ps)...)
	return res, nil
}
