package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floe-streams/floe"
)

// startBroker runs an in-process broker on free ports.
func startBroker(t *testing.T) floe.Addrs {
	t.Helper()
	n, err := floe.New(floe.Options{
		GRPCAddr: "127.0.0.1:0", DiscoveryAddr: "127.0.0.1:0", ProducerAddr: "127.0.0.1:0", ConsumerAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("broker: %v", err)
		}
	})
	return n.Addrs()
}

func testConfig(mode string, a floe.Addrs, t *testing.T) *Config {
	return &Config{
		Mode: mode, API: "rest", HTTPClient: "std", Producer: a.Producer, Consumer: a.Consumer, GRPC: a.GRPC,
		Topic: "t-" + mode, Connections: 4, EventsPerRequest: 1, EventSize: 200, Consumers: 1, Inflight: 2, From: "earliest",
		PollTimeout: 200 * time.Millisecond, Idle: 3 * time.Second, Drain: 3 * time.Second, LateLimit: 5 * time.Second, Log: io.Discard,
	}
}

func checkVerify(t *testing.T, res *Result, wantDelivered uint64) {
	t.Helper()
	v := res.Verify
	if v == nil {
		t.Fatal("no verification")
	}
	if v.Missing != 0 || v.Duplicated != 0 || v.Malformed != 0 || v.Delivered != wantDelivered || v.Expected != wantDelivered {
		t.Errorf("verify %+v, want %d delivered and nothing missing, duplicated or malformed", *v, wantDelivered)
	}
}

func TestProduceConsumeE2E(t *testing.T) {
	a := startBroker(t)
	ctx := context.Background()
	ackFile := filepath.Join(t.TempDir(), "acks.json")

	for _, client := range []string{"std", "raw", "h2c"} {
		t.Run(client, func(t *testing.T) {
			// NDJSON with keys, then single events without: one run id, one ack file.
			c := testConfig("produce", a, t)
			c.HTTPClient, c.Topic = client, "t-"+client
			c.EventsPerRequest, c.Keys, c.Count, c.AckFile = 10, 3, 3000, ackFile
			res, err := Run(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			p := res.Produce
			if p.Events != 3000 || p.Requests != 300 || len(p.Errors) > 0 || p.Bytes != 3000*200 {
				t.Fatalf("produce: %+v", p)
			}
			if p.EventsPerSec <= 0 || p.Latency.P50 <= 0 || p.Latency.P50 > p.Latency.P99 || p.Latency.P99 > p.Latency.Max || p.Latency.Count != 300 {
				t.Errorf("summary not sane: %+v", p)
			}

			c = testConfig("consume", a, t)
			c.HTTPClient, c.Topic, c.AckFile, c.Consumers = client, "", ackFile, 2
			res, err = Run(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			checkVerify(t, res, 3000)
			if res.Consume.Events != 3000 || res.failed() != "" {
				t.Errorf("consume: %+v", res.Consume)
			}
		})
	}

	t.Run("e2e", func(t *testing.T) {
		c := testConfig("e2e", a, t)
		c.Duration, c.Rate, c.EventsPerRequest, c.Consumers, c.From = 1500*time.Millisecond, 4000, 5, 2, "latest"
		// A loaded 2-core machine sends the 1200 requests at a few hundred
		// a second: 5 s late was not enough. Neither bound slows a run
		// that keeps up.
		c.LateLimit, c.Drain = time.Minute, time.Minute
		res, err := Run(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		// The schedule holds 6000 events (1200 requests), every one of
		// them sent, late if the machine is slow (a race build), unless
		// the run is more than --late-limit behind.
		n := res.Produce.Events
		if n != 6000 || res.Produce.Unsent != 0 {
			t.Errorf("produced %d events (%d unsent) of the 6000 scheduled in 1.5 s at 4000/s", n, res.Produce.Unsent)
		}
		checkVerify(t, res, n)
		if e := res.E2E; e == nil || e.Count != n || e.P50 <= 0 || e.P99 < e.P50 {
			t.Errorf("e2e latency: %+v, produced %d", e, n)
		}
	})

	t.Run("grpc", func(t *testing.T) {
		for _, stream := range []bool{false, true} {
			c := testConfig("produce", a, t)
			c.API, c.GRPCStream, c.Topic, c.EventsPerRequest, c.Count = "grpc", stream, "t-grpc", 50, 5000
			c.AckFile = filepath.Join(t.TempDir(), "acks.json")
			res, err := Run(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if res.Produce.Events != 5000 || len(res.Produce.Errors) > 0 {
				t.Fatalf("stream %v: %+v", stream, res.Produce)
			}
		}
	})
}

func TestConsumeWithoutAckFile(t *testing.T) {
	a := startBroker(t)
	ctx := context.Background()
	c := testConfig("produce", a, t)
	c.EventsPerRequest, c.Count = 7, 700
	if _, err := Run(ctx, c); err != nil {
		t.Fatal(err)
	}
	cc := testConfig("consume", a, t)
	cc.Topic, cc.Count = c.Topic, 700
	// Long polls that outlive the run (waiting for events that will not
	// come) are not measured: every poll measured returned events at once.
	cc.Consumers, cc.PollTimeout = 3, 3*time.Second
	res, err := Run(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	if v := res.Verify; v.Mode != "contiguity" || v.Runs != 1 || v.Delivered != 700 || v.Missing != 0 || v.Malformed != 0 || v.Duplicated != 0 {
		t.Errorf("verify %+v", *v)
	}
	if l := res.Consume.Latency; l.Max >= 2000 {
		t.Errorf("poll latency %+v: long polls after the last event were measured", l)
	}
}

// consume --count counts the events of the run it verifies, not those of
// other runs in the topic; stopping there is not a loss (what it did not
// read is "unread", and the run passes); and every event received is both
// counted in the summary and verified, the polls that ended after the stop
// included.
func TestConsumeCountCountsTheRunOnly(t *testing.T) {
	a := startBroker(t)
	ctx := context.Background()
	ackFile := filepath.Join(t.TempDir(), "acks.json")
	for _, run := range []struct {
		id      string
		count   uint64
		ackFile string
	}{{"0000000b", 400, ""}, {"0000000a", 600, ackFile}, {"0000000c", 400, ""}} {
		c := testConfig("produce", a, t)
		c.Topic, c.Run, c.EventsPerRequest, c.Count, c.AckFile = "shared", run.id, 10, run.count, run.ackFile
		if _, err := Run(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	c := testConfig("consume", a, t)
	c.Topic, c.AckFile, c.Count, c.Consumers, c.PollMaxBytes = "", ackFile, 100, 2, 2000
	res, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	v := res.Verify
	ofRun := v.Delivered + v.Duplicated
	// Whole polls of at most 2000 bytes (9 events): the poll that reached
	// the count, and the other consumer's poll in flight.
	if ofRun < 100 || ofRun > 100+2*9 {
		t.Errorf("%d events of the run received (%+v), want 100 and at most two polls more", ofRun, *v)
	}
	if v.Missing != 0 || v.Unread != 600-v.Delivered || v.Malformed != 0 || v.Phantom != 0 {
		t.Errorf("verify %+v: want the %d not read as unread, none missing", *v, 600-v.Delivered)
	}
	if why := res.failed(); why != "" {
		t.Errorf("failed() = %q: stopping at --count is not a loss", why)
	}
	if !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "not counted as missing") }) {
		t.Errorf("notes %q: want one saying why events are unread", res.Notes)
	}
	received := v.Delivered + v.Duplicated + v.Malformed + v.Unacked + v.Phantom + v.Foreign
	if res.Consume.Events != received {
		t.Errorf("summary counts %d events, the verification %d", res.Consume.Events, received)
	}
}

// consume refuses an ack file with a --topic other than the file's, or
// with a new group starting from the latest event: either reads none of
// the file's events, and would report them all missing.
func TestConsumeAckFileRefusals(t *testing.T) {
	a := startBroker(t)
	ctx := context.Background()
	ackFile := filepath.Join(t.TempDir(), "acks.json")
	c := testConfig("produce", a, t)
	c.Count, c.AckFile = 10, ackFile
	if _, err := Run(ctx, c); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"another topic": func(c *Config) { c.Topic = "other" },
		"from latest":   func(c *Config) { c.From = "latest" },
	} {
		c := testConfig("consume", a, t)
		c.Topic, c.AckFile = "", ackFile
		mod(c)
		if _, err := Run(ctx, c); !errors.Is(err, errBadFlags) {
			t.Errorf("%s: %v, want a flag error", name, err)
		}
	}
}

// The broker's errors keep one key and their message whatever the API: a
// unary call and a stream's answer both say grpc INVALID_TOPIC, with the
// broker's words.
func TestErrorExamples(t *testing.T) {
	a := startBroker(t)
	for _, stream := range []bool{false, true} {
		c := testConfig("produce", a, t)
		c.API, c.GRPCStream, c.Topic, c.Count = "grpc", stream, "bad topic!", 5
		res, err := Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		p := res.Produce
		if p.Errors["grpc INVALID_TOPIC"] != 5 || !strings.Contains(p.ErrorExamples["grpc INVALID_TOPIC"], `"bad topic!"`) {
			t.Errorf("stream %v: errors %v %v", stream, p.Errors, p.ErrorExamples)
		}
	}
}

// A paced run with --duration lasts its schedule, even when its last send
// came early in it: its rates are over --duration.
func TestPacedRunLastsItsDuration(t *testing.T) {
	a := startBroker(t)
	c := testConfig("produce", a, t)
	c.Rate, c.Connections, c.Duration = 2, 1, 2*time.Second
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	// Sends at 0, 0.5, 1 and 1.5 s.
	if p := res.Produce; p.Events != 4 || res.Seconds != 2 || p.EventsPerSec != 2 {
		t.Errorf("%d events in %.3fs, %.2f events/s; want 4 in 2s, 2 events/s", p.Events, res.Seconds, p.EventsPerSec)
	}
}

// Requests an interrupt cancels are errors of their own, not silently
// counted requests.
func TestInterruptedRequestsAreErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done() // never answers
	}))
	defer srv.Close()
	c := testConfig("produce", floe.Addrs{Producer: strings.TrimPrefix(srv.URL, "http://")}, t)
	c.Duration, c.HTTPClient = 10*time.Second, "raw"
	c.AckFile = filepath.Join(t.TempDir(), "acks.json")
	// As a signal does: a cancel, no deadline.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(300*time.Millisecond, cancel)
	res, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Produce; p.Errors[errInterrupted] != uint64(c.Connections) || p.Events != 0 {
		t.Errorf("errors %v, events %d: want the %d requests in flight as %q", p.Errors, p.Events, c.Connections, errInterrupted)
	}
	// The ack file of an interrupted run adds up: every event handed out
	// is acknowledged or failed.
	if f, err := readAckFile(c.AckFile); err != nil || f.Sent != uint64(c.Connections) || len(f.FailedRanges) == 0 {
		t.Errorf("ack file %+v, %v: want the %d events in flight as failed", f, err, c.Connections)
	}
}

// A paced gRPC stream interrupted while nothing is in flight reports no
// error: every request it sent was answered.
func TestInterruptedIdleStreamHasNoErrors(t *testing.T) {
	a := startBroker(t)
	c := testConfig("produce", a, t)
	// Sends at 0, 0.5 and 1 s: the interrupt at 0.75 s finds none in
	// flight.
	c.API, c.GRPCStream, c.Rate, c.Connections, c.Duration = "grpc", true, 2, 1, 10*time.Second
	c.AckFile = filepath.Join(t.TempDir(), "acks.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(750*time.Millisecond, cancel)
	res, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Produce; len(p.Errors) != 0 || p.Events != p.Requests || p.Events == 0 {
		t.Errorf("%d of %d requests answered, errors %v: want every one answered and no error", p.Events, p.Requests, p.Errors)
	}
	if f, err := readAckFile(c.AckFile); err != nil || f.Acked != res.Produce.Events {
		t.Errorf("ack file %+v, %v", f, err)
	}
}

// A request cancelled while its body is being written returns at once,
// without waiting for an answer the server may have sent.
func TestRawClientCancelledWriteReturnsAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		time.Sleep(5 * time.Second) // reads nothing
	}()
	doer := newHTTPDoer("raw", l.Addr().String(), nil)
	defer doer.close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	if _, _, err := doer.do(ctx, http.MethodPost, "/", "application/json", make([]byte, 64<<20)); err == nil {
		t.Error("a cancelled request succeeded")
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("cancelled at 300 ms, returned after %v", took)
	}
}

// Failed polls keep the broker's message, as produce requests do.
func TestPollErrorExamples(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/consumer/poll") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":503,"error":"UNAVAILABLE","message":"broker overloaded, retry"}`)
		}
	}))
	defer srv.Close()
	c := testConfig("consume", floe.Addrs{Consumer: strings.TrimPrefix(srv.URL, "http://")}, t)
	c.Topic, c.Duration, c.Idle = "t", 300*time.Millisecond, 0
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Consume; s.Errors["http 503"] == 0 || s.ErrorExamples["http 503"] != "broker overloaded, retry" {
		t.Errorf("errors %v, examples %v", s.Errors, s.ErrorExamples)
	}
}

// A paced run sends exactly its schedule, however the interval between a
// connection's requests rounds to nanoseconds (--rate 30 over 16
// connections is 533,333,333.3 ns).
func TestPacedRunSendsExactlyItsSchedule(t *testing.T) {
	a := startBroker(t)
	for _, conns := range []int{1, 16} {
		c := testConfig("produce", a, t)
		c.Rate, c.Connections, c.Duration = 30, conns, time.Second
		res, err := Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if res.Produce.Events != 30 {
			t.Errorf("--rate 30 over 1 s with %d connections sent %d events", conns, res.Produce.Events)
		}
	}
}

// consume and e2e: events of other runs already in the topic are counted
// as foreign, every one of them (e2e from earliest reads the backlog too);
// a consume that reads no event at all, without an ack file, fails; and
// over gRPC, a REST port given as --grpc is refused at once.
func TestConsumeEdges(t *testing.T) {
	a := startBroker(t)
	ctx := context.Background()
	c := testConfig("produce", a, t)
	c.Topic, c.Count, c.EventsPerRequest = "backlog", 500, 10
	if _, err := Run(ctx, c); err != nil {
		t.Fatal(err)
	}
	e := testConfig("e2e", a, t)
	e.Topic, e.Rate, e.Count, e.From = "backlog", 1000, 100, "earliest"
	res, err := Run(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if v := res.Verify; v.Foreign != 500 || v.Delivered != 100 {
		t.Errorf("e2e from earliest: %+v, want the 500 events of the backlog as foreign", *v)
	}

	empty := testConfig("consume", a, t)
	empty.Topic, empty.Idle = "nosuchtopic", 500*time.Millisecond
	res, err = Run(ctx, empty)
	if err != nil {
		t.Fatal(err)
	}
	if why := res.failed(); why != "no event read" {
		t.Errorf("consume of an empty topic: failed() = %q", why)
	}

	g := testConfig("consume", a, t)
	g.API, g.GRPC, g.Topic = "grpc", a.Consumer, "backlog"
	if _, err := Run(ctx, g); err == nil || !strings.Contains(err.Error(), a.Consumer) {
		t.Errorf("consume over gRPC at the consumer REST port: %v", err)
	}
}

// An interrupted consume's rates end at its last event, as any other
// consume's do, not when the user pressed Ctrl-C.
func TestInterruptedConsumeEndsAtItsLastEvent(t *testing.T) {
	a := startBroker(t)
	c := testConfig("produce", a, t)
	c.Topic, c.Count, c.EventsPerRequest = "read", 2000, 100
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	cc := testConfig("consume", a, t)
	cc.Topic, cc.Duration, cc.Idle = "read", time.Minute, 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(1500*time.Millisecond, cancel)
	res, err := Run(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	if res.Consume.Events != 2000 || res.Seconds >= 1 {
		t.Errorf("%d events over %.2fs: want the 2,000 events over the time until the last of them, not the 1.5 s until the interrupt", res.Consume.Events, res.Seconds)
	}
}

// A long poll in flight does not hold the end of a run: consume stops at
// --duration, and e2e neither waits a poll timeout before producing nor
// after the last event, whatever --poll-timeout is.
func TestLongPollsDoNotHoldTheEnd(t *testing.T) {
	a := startBroker(t)
	ctx := context.Background()
	for _, tc := range []struct{ api, client string }{{"rest", "raw"}, {"rest", "std"}, {"grpc", "raw"}} {
		c := testConfig("consume", a, t)
		c.API, c.HTTPClient, c.Topic, c.PollTimeout, c.Duration, c.Idle = tc.api, tc.client, "empty", 8*time.Second, time.Second, 0
		start := time.Now()
		if _, err := Run(ctx, c); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("consume %s/%s with 8 s polls and --duration 1s took %v", tc.api, tc.client, took)
		}
	}
	c := testConfig("e2e", a, t)
	c.Rate, c.Duration, c.PollTimeout, c.From = 200, time.Second, 8*time.Second, "latest"
	start := time.Now()
	res, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("e2e of 1 s with 8 s polls took %v", took)
	}
	checkVerify(t, res, 200)
}

func TestGRPCConsume(t *testing.T) {
	// Typed events and NDJSON bodies (--grpc-body) must arrive intact.
	for _, body := range []bool{false, true} {
		t.Run(fmt.Sprintf("body=%v", body), func(t *testing.T) {
			a := startBroker(t)
			ctx := context.Background()
			ackFile := filepath.Join(t.TempDir(), "acks.json")
			c := testConfig("produce", a, t)
			c.API, c.GRPCStream, c.GRPCBody, c.EventsPerRequest, c.Count, c.AckFile = "grpc", true, body, 50, 5000, ackFile
			res, err := Run(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if res.Produce.Events != 5000 || len(res.Produce.Errors) > 0 {
				t.Fatalf("produce: %+v", res.Produce)
			}
			c = testConfig("consume", a, t)
			c.API, c.Topic, c.AckFile, c.Consumers = "grpc", "", ackFile, 2
			res, err = Run(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			checkVerify(t, res, 5000)
		})
	}
}

func TestConsumeFindsMissingEvents(t *testing.T) {
	a := startBroker(t)
	ctx := context.Background()
	c := testConfig("produce", a, t)
	c.EventsPerRequest, c.Count = 10, 500
	_, acked, err := produceCase(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	// Pretend 100 more events were acknowledged: the consumer must miss them.
	acked.ack(500, 600)
	acked.limit.Store(600)
	cc := testConfig("consume", a, t)
	cc.Topic, cc.Run, cc.Idle = c.Topic, c.Run, 500*time.Millisecond
	res, err := runConsume(ctx, cc, acked)
	if err != nil {
		t.Fatal(err)
	}
	if v := res.Verify; v.Missing != 100 || v.Delivered != 500 || res.failed() == "" {
		t.Errorf("verify %+v, want 100 missing", *v)
	}
}

// serveNoop serves the baseline (durable with a log) on a free port until
// the test ends, and returns its address.
func serveNoop(t *testing.T, log *SyncLog) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeNoop(ctx, l, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return l.Addr().String()
}

func TestBaselineServer(t *testing.T) {
	addr := serveNoop(t, nil)
	ctx := context.Background()
	for _, client := range []string{"std", "raw", "h2c"} {
		c := testConfig("produce", floe.Addrs{Producer: addr}, t)
		c.HTTPClient, c.EventsPerRequest, c.Duration = client, 100, 300*time.Millisecond
		res, err := Run(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if p := res.Produce; p.Events == 0 || p.Events%100 != 0 || len(p.Errors) > 0 || p.Bytes != p.Events*200 {
			t.Errorf("%s: %+v", client, p)
		}
	}
}

// The durable baseline answers a request once its body is in the file,
// under load too.
func TestDurableBaselineServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	log, err := OpenSyncLog(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := log.Close(); err != nil {
			t.Error(err)
		}
	})
	addr := serveNoop(t, log) // stops before the log closes (cleanups run last first)
	ctx := context.Background()

	body := `{"first":"body"}`
	resp, err := http.Post("http://"+addr+"/v1/topic/t/messages", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(body))
	if _, err := io.ReadFull(f, got); err != nil || string(got) != body {
		t.Fatalf("the file starts with %q (%v), want the acknowledged body %q", got, err, body)
	}

	c := testConfig("produce", floe.Addrs{Producer: addr}, t)
	c.Connections, c.Duration = 8, 300*time.Millisecond
	res, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Produce; p.Events == 0 || len(p.Errors) > 0 {
		t.Errorf("%+v", p)
	}
}

// SyncLog releases each Append once its group is written, and reports a
// failed write to every Append of the group; Append after Close fails.
func TestSyncLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	log, err := OpenSyncLog(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	if st, err := os.Stat(path); err != nil || st.Size() != SyncLogSize {
		t.Fatalf("log file: %v, %v; want %d bytes", st, err, SyncLogSize)
	}
	appendAll := func(n int) []error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = log.Append(fmt.Appendf(nil, "<%03d>", i)) })
		}
		wg.Wait()
		return errs
	}
	for i, err := range appendAll(50) {
		if err != nil {
			t.Errorf("append %d: %v", i, err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if want := fmt.Sprintf("<%03d>", i); !bytes.Contains(data[:250], []byte(want)) {
			t.Errorf("%s acknowledged, not in the log", want)
		}
	}
	if err := log.Append(make([]byte, SyncLogSize+1)); err == nil {
		t.Error("a body larger than the log: no error")
	}

	log.f.Close() // the next writes fail
	for i, err := range appendAll(20) {
		if err == nil {
			t.Errorf("append %d to a closed file: no error", i)
		}
	}
	_ = log.Close()
	if err := log.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := log.Append([]byte("y")); err == nil {
		t.Error("append after Close: no error")
	}
}

// A run whose requests failed is a failed run (exit status 1), even when
// it verified nothing: a produce run against no broker acknowledged nothing.
func TestRunWithFailedRequestsFails(t *testing.T) {
	// A server that takes each connection and closes it at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	c := testConfig("produce", floe.Addrs{Producer: l.Addr().String()}, t)
	c.Count = 20
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if why := res.failed(); why != "20 produce requests failed" {
		t.Fatalf("a run of 20 failed requests: failed() = %q", why)
	}
}

// A request over the broker's limit gets 413 with every client, the raw
// one included: the broker answers before it has read the body and closes
// the connection, so the raw client's write fails, and it reads the answer
// that arrived rather than report the reset.
func TestOversizedRequestGets413(t *testing.T) {
	a := startBroker(t)
	for _, client := range []string{"raw", "std", "h2c"} {
		c := testConfig("produce", a, t)
		c.HTTPClient, c.Connections, c.EventsPerRequest, c.Count = client, 1, 30000, 60000 // 6 MB bodies
		res, err := Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if e := res.Produce.Errors; len(e) != 1 || e["http 413"] != 2 || !strings.Contains(res.Produce.ErrorExamples["http 413"], "too large") {
			t.Errorf("%s: errors %v %v, want http 413 twice with the broker's message", client, e, res.Produce.ErrorExamples)
		}
	}
}

// A run against an address where no broker answers fails at once, naming
// the address, instead of counting an error per request for its duration:
// nothing listening (REST and gRPC), a gRPC run pointed at a REST port, and
// a REST run pointed at the consumer port (404 on the produce route).
func TestRunAgainstNoBrokerFailsAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	a := startBroker(t)
	for _, tc := range []struct {
		name, api, producer, grpc string
	}{
		{"REST, nothing listening", "rest", dead, a.GRPC},
		{"gRPC, nothing listening", "grpc", a.Producer, dead},
		{"gRPC at the producer port", "grpc", a.Producer, a.Producer},
		{"gRPC at the consumer port", "grpc", a.Producer, a.Consumer},
		{"REST at the consumer port", "rest", a.Consumer, a.GRPC},
	} {
		c := testConfig("produce", floe.Addrs{Producer: tc.producer, GRPC: tc.grpc}, t)
		c.API, c.Duration = tc.api, 30*time.Second
		start := time.Now()
		_, err := Run(context.Background(), c)
		want := tc.producer
		if tc.api == "grpc" {
			want = tc.grpc
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, want)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: failed after %v", tc.name, took)
		}
	}
}

// Flags that cannot work together are refused before anything runs, as
// errors of the flags.
func TestBadFlagsAreRefused(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"gRPC stream over REST":        func(c *Config) { c.GRPCStream = true },
		"gRPC body over REST":          func(c *Config) { c.GRPCBody = true },
		"negative duration":            func(c *Config) { c.Duration = -time.Second },
		"consume that never ends":      func(c *Config) { c.Mode, c.Count, c.Duration, c.Idle = "consume", 0, 0, 0 },
		"negative poll timeout":        func(c *Config) { c.Mode, c.PollTimeout = "consume", -1 },
		"no poll timeout":              func(c *Config) { c.Mode, c.PollTimeout = "consume", 0 },
		"sub-millisecond poll timeout": func(c *Config) { c.Mode, c.PollTimeout = "e2e", 500*time.Microsecond },
		"negative poll max bytes":      func(c *Config) { c.Mode, c.PollMaxBytes = "consume", -5 },
		"poll max bytes over 32 bits":  func(c *Config) { c.Mode, c.PollMaxBytes = "consume", 1<<32 },
		"too many keys":                func(c *Config) { c.Keys = maxKeys + 1 },
		"run id not hex":               func(c *Config) { c.Run = "xyz" },
		"run id upper case":            func(c *Config) { c.Run = "ABCDEF12" },
		"produce without any bound":    func(c *Config) { c.Count, c.Duration = 0, 0 },
		"infinite rate":                func(c *Config) { c.Rate = math.Inf(1) },
		"rate not a number":            func(c *Config) { c.Rate = math.NaN() },
		"rate too low to pace":         func(c *Config) { c.Rate = 1e-9 },
		"rate too high to pace":        func(c *Config) { c.Rate = 1e12 },
	} {
		c := testConfig("produce", floe.Addrs{Producer: "127.0.0.1:1"}, t)
		c.Count = 10
		mod(c)
		if _, err := Run(context.Background(), c); !errors.Is(err, errBadFlags) {
			t.Errorf("%s: %v, want a flag error", name, err)
		}
	}
}

// Each command takes only the flags that apply to it (and the broker's
// addresses): one that does not, or a value that cannot work, exits 2
// before anything runs, instead of being ignored or replaced by a default.
func TestCommandLineRefusals(t *testing.T) {
	for _, args := range [][]string{
		{"consume", "--rate", "5", "--idle", "1s"},
		{"consume", "--connections", "3", "--idle", "1s"},
		{"consume", "--grpc-stream", "--idle", "1s"},
		{"consume", "--run", "00000000", "--idle", "1s"},
		{"e2e", "--ack-file", "x.json", "--duration", "1s"},
		{"e2e", "--idle", "1s", "--duration", "1s"},
		{"produce", "--consumers", "5", "--count", "5"},
		{"produce", "--drain", "1s", "--count", "5"},
		{"produce", "--topic=", "--count", "5"},
		{"produce", "--duration", "3"},
		{"produce", "--rate", "Inf", "--duration", "1s"},
		{"consume", "--poll-timeout", "0", "--idle", "1s"},
		{"noop-server", "extra"},
		{"noop-server", "--addr", "bogus"},
		{"noop-server", "--addr", "127.0.0.1:99999"},
		{"produce", "--inflight", "4", "--count", "5"},
		{"produce", "--api", "grpc", "--http-client", "std", "--count", "5"},
		{"produce", "--late-limit", "1s", "--count", "5"},
		{},
	} {
		if code := Main(args); code != 2 {
			t.Errorf("floe bench %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
}

// --help exits 0 on every command, and an unknown flag 2.
func TestHelpExitCodes(t *testing.T) {
	for _, cmd := range []string{"produce", "consume", "e2e", "matrix", "noop-server"} {
		if code := Main([]string{cmd, "--help"}); code != 0 {
			t.Errorf("floe bench %s --help: exit %d, want 0", cmd, code)
		}
		if code := Main([]string{cmd, "--no-such-flag"}); code != 2 {
			t.Errorf("floe bench %s --no-such-flag: exit %d, want 2", cmd, code)
		}
	}
}
