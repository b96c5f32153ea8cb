package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/floe-streams/floe"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// A paced run against a server that stops answering after 150 requests, in
// a run of 600 scheduled: what it scheduled and could not send counts as
// unsent, with the latency those sends had reached when the run gave up
// (--late-limit after the end), the requests left unanswered are errors,
// and the run fails.
func TestPacedRunCountsWhatItCouldNotSend(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n.Add(1) > 150 {
			<-r.Context().Done() // stalled until the client gives up
		}
	}))
	defer srv.Close()
	c := testConfig("produce", floe.Addrs{Producer: strings.TrimPrefix(srv.URL, "http://")}, t)
	c.Rate, c.Connections, c.Duration, c.LateLimit = 1000, 2, 600*time.Millisecond, 300*time.Millisecond
	start := time.Now()
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	p := res.Produce
	// 600 scheduled: 150 acknowledged, one more sent on each connection and
	// never answered, the rest never sent.
	if p.Events != 150 || p.Unsent != 448 {
		t.Errorf("acknowledged %d, unsent %d of 600 scheduled; want 150 and 448", p.Events, p.Unsent)
	}
	if p.Errors[errGaveUp] != 2 {
		t.Errorf("errors %v, want the 2 unanswered requests as %q", p.Errors, errGaveUp)
	}
	// The first send after the stall was due at about 150 ms, and the run
	// gave up at about 900 ms.
	if p.Latency.Max < 500 || p.Latency.P99 < 400 {
		t.Errorf("latency %+v: the unsent sends' waits are missing", p.Latency)
	}
	if why := res.failed(); !strings.Contains(why, "scheduled events not sent") {
		t.Errorf("failed() = %q", why)
	}
	if took > 5*time.Second {
		t.Errorf("the run took %v, with a late limit of 300 ms", took)
	}
}

// missed counts every send a paced worker still had to make, even a
// billion of them (--rate far beyond what the broker takes, 1 ns apart),
// in a bounded number of histogram updates, with the first one's latency as
// the maximum; a second call counts nothing.
func TestMissedSendsAreCountedAtOnce(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	l := newLoad(&Config{EventsPerRequest: 3})
	l.start, l.end = start, start.Add(time.Second)
	l.abortAt.Store(start.Add(1500 * time.Millisecond).UnixNano())
	p := &pacer{next: start, start: start, conns: 1, step: 1, interval: 1} // 1 ns apart
	began := time.Now()
	l.missed(p)
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("missed took %v for 1e9 sends", took)
	}
	if got := l.st.unsent.Load(); got != 3e9 {
		t.Errorf("unsent %d, want 3e9 (1e9 sends of 3 events)", got)
	}
	s := l.st.lat.Snapshot()
	if s.N != 1e9 {
		t.Errorf("%d latencies recorded, want one per send (1e9)", s.N)
	}
	if got := s.Max; got != uint64(1500*time.Millisecond) {
		t.Errorf("max latency %v, want the first send's 1.5s", time.Duration(got))
	}
	if mean := s.Mean(); mean < 990*time.Millisecond || mean > 1010*time.Millisecond {
		t.Errorf("mean latency %v, want about 1s (1.5s down to 0.5s)", mean)
	}
	l.missed(p)
	if got := l.st.unsent.Load(); got != 3e9 {
		t.Errorf("a second call counted %d more", got-3e9)
	}
}

// A paced run that keeps up sends its whole schedule: every event of it,
// nothing unsent, and the run passes.
func TestPacedRunSendsItsSchedule(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n.Add(1)
	}))
	defer srv.Close()
	c := testConfig("produce", floe.Addrs{Producer: strings.TrimPrefix(srv.URL, "http://")}, t)
	c.Rate, c.Connections, c.Duration, c.LateLimit = 500, 4, 400*time.Millisecond, 5*time.Second
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Produce; p.Events != 200 || p.Unsent != 0 || uint64(n.Load()) != p.Events {
		t.Errorf("acknowledged %d, unsent %d, server saw %d; want the 200 scheduled", p.Events, p.Unsent, n.Load())
	}
	if why := res.failed(); why != "" {
		t.Errorf("failed() = %q", why)
	}
}

// Failed requests count in the latency: a broker that answers 500 after
// 200 ms shows 200 ms, not nothing.
func TestFailedRequestsHaveLatency(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(200 * time.Millisecond)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	c := testConfig("produce", floe.Addrs{Producer: strings.TrimPrefix(srv.URL, "http://")}, t)
	c.Count, c.Connections = 3, 1
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if l := res.Produce.Latency; l.Count != 3 || l.P50 < 200 {
		t.Errorf("latency %+v, want 3 samples of at least 200 ms", l)
	}
}

// The empty long polls that end a consume run (waiting for --idle) are not
// counted: the polls and their latency are those of the events.
func TestConsumeDoesNotCountTheIdleEnd(t *testing.T) {
	a := startBroker(t)
	ctx := context.Background()
	p := testConfig("produce", a, t)
	p.Topic, p.Count, p.EventsPerRequest = "idle-end", 100, 10
	if _, err := Run(ctx, p); err != nil {
		t.Fatal(err)
	}
	c := testConfig("consume", a, t)
	c.Topic, c.PollTimeout, c.Idle = "idle-end", time.Second, 2500*time.Millisecond
	res, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	cs := res.Consume
	if cs.Events != 100 {
		t.Fatalf("consumed %d events, want 100", cs.Events)
	}
	// Each empty poll waits the whole second; polls with events answer at
	// once.
	if cs.Latency.Max >= 1000 || cs.Requests == 0 || cs.Requests > 10 {
		t.Errorf("%d polls, latency %+v: the idle polls at the end were counted", cs.Requests, cs.Latency)
	}
	if res.Seconds > 1 {
		t.Errorf("run of %.1f s: the idle wait was counted", res.Seconds)
	}
	if got := cs.EventsPerSec * res.Seconds; got < 99 || got > 101 {
		t.Errorf("%.0f events/s over %.3f s is %.1f events, want the run's 100", cs.EventsPerSec, res.Seconds, got)
	}
}

// stalledStream is a producer whose streams take one batch, answer none,
// and end cleanly.
type stalledStream struct {
	floev1.UnimplementedProducerServer
}

func (stalledStream) ProduceStream(s floev1.Producer_ProduceStreamServer) error {
	_, err := s.Recv()
	return err
}

// A gRPC stream that ends with batches unanswered fails them, each an
// error: the run does not pass as if nothing had happened.
func TestStreamEndedWithBatchesUnansweredFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	floev1.RegisterProducerServer(gs, stalledStream{})
	go func() { _ = gs.Serve(l) }()
	defer gs.Stop()
	c := testConfig("produce", floe.Addrs{GRPC: l.Addr().String()}, t)
	c.API, c.GRPCStream, c.Inflight, c.Connections, c.Count = "grpc", true, 2, 1, 10
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Produce
	if p.Events != 0 || p.Errors["grpc stream ended with the batch unanswered"] == 0 {
		t.Errorf("acknowledged %d, errors %v", p.Events, p.Errors)
	}
	if why := res.failed(); !strings.Contains(why, "produce requests failed") {
		t.Errorf("failed() = %q", why)
	}
}
