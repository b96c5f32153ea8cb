package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/metrics"
	"github.com/floe-streams/floe/store"
)

type fakeStore struct{ m store.Metrics }

func (f fakeStore) Metrics() store.Metrics { return f.m }

type fakeGroups struct{ s group.Stats }

func (f fakeGroups) Stats() group.Stats { return f.s }

func newMetrics(t *testing.T, opts metrics.Options) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, reg
}

// Two nodes in one process each have their own registry; registering twice
// on one registry is an error, not a panic.
func TestRegistriesAreIndependent(t *testing.T) {
	opts := metrics.Options{Store: fakeStore{}, Groups: fakeGroups{}}
	_, reg1 := newMetrics(t, opts)
	_, reg2 := newMetrics(t, opts)
	for _, reg := range []*prometheus.Registry{reg1, reg2} {
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("Gather: %v", err)
		}
	}
	if _, err := metrics.New(reg1, opts); err == nil {
		t.Fatal("New on a registry that already has the metrics: no error")
	}
}

func TestRoute(t *testing.T) {
	for path, want := range map[string]string{
		"/status":                               "/status",
		"/v1/brokers":                           "/v1/brokers",
		"/openapi.json":                         "/openapi.json",
		"/v1/topic/orders/messages":             "/v1/topic/{topic}/messages",
		"/v1/topic/a.b-c_d/messages":            "/v1/topic/{topic}/messages",
		"/v1/topic//messages":                   "other",
		"/v1/topic/a/b/messages":                "other",
		"/v1/topic/orders":                      "other",
		"/v1/consumer/register":                 "/v1/consumer/register",
		"/v1/consumer/poll":                     "/v1/consumer/poll",
		"/v1/consumer/commit":                   "/v1/consumer/commit",
		"/v1/consumer/goodbye":                  "/v1/consumer/goodbye",
		"/v1/consumer/poll/":                    "other",
		"/":                                     "other",
		"/wp-admin/" + strings.Repeat("x", 100): "other",
	} {
		if got := metrics.Route(path); got != want {
			t.Errorf("Route(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestWrapHTTP(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{NoRuntime: true})
	h := m.WrapHTTP("producer", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("answer") {
		case "413":
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		case "flush":
			w.(http.Flusher).Flush()
		case "none":
		default:
			_, _ = w.Write([]byte("{}"))
		}
	}))
	for _, target := range []string{
		"/v1/topic/t1/messages", "/v1/topic/t2/messages", "/v1/topic/t1/messages?answer=413",
		"/v1/topic/t1/messages?answer=flush", "/status?answer=none", "/nope/../x",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, strings.NewReader("{}")))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("PATCH", "/status", nil))

	want := map[string]uint64{
		`api="producer",code="200",method="POST",route="/v1/topic/{topic}/messages"`: 3,
		`api="producer",code="413",method="POST",route="/v1/topic/{topic}/messages"`: 1,
		`api="producer",code="200",method="POST",route="/status"`:                    1,
		`api="producer",code="200",method="POST",route="other"`:                      1,
		`api="producer",code="200",method="other",route="/status"`:                   1,
	}
	got := histogramCounts(t, reg, "floe_http_request_duration_seconds")
	if len(got) != len(want) {
		t.Errorf("series: got %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: count %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
	if v := gaugeValue(t, reg, "floe_http_requests_in_flight"); v != 0 {
		t.Errorf("in flight after the requests: %v", v)
	}
}

// The stats handler counts each call once, when it ends, under its method
// and the code sent; methods the server does not serve share one label.
func TestGRPCStatsHandler(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{NoRuntime: true})
	served := map[string]bool{"/floe.v1.Producer/Produce": true, "/floe.v1.Producer/ProduceStream": true}
	h := m.GRPCStatsHandler(func(method string) bool { return served[method] })
	call := func(method string, err error, took time.Duration) {
		ctx := h.TagRPC(context.Background(), &stats.RPCTagInfo{FullMethodName: method})
		begin := time.Now()
		h.HandleRPC(ctx, &stats.Begin{BeginTime: begin})
		h.HandleRPC(ctx, &stats.InPayload{})
		h.HandleRPC(ctx, &stats.End{Client: true, BeginTime: begin, EndTime: begin.Add(took)}) // a client's: not counted
		h.HandleRPC(ctx, &stats.End{BeginTime: begin, EndTime: begin.Add(took), Error: err})
	}
	call("/floe.v1.Producer/Produce", nil, time.Millisecond)
	call("/floe.v1.Producer/Produce", status.Error(codes.InvalidArgument, "bad"), time.Millisecond)
	call("/floe.v1.Producer/Produce", context.Canceled, time.Millisecond)
	call("/floe.v1.Producer/ProduceStream", nil, time.Minute)
	call("/floe.v1.Producer/Nope", status.Error(codes.Unimplemented, "unknown method"), 0)
	call("/no.such.Service/Call", status.Error(codes.Unimplemented, "unknown method"), 0)
	want := map[string]uint64{
		`code="OK",method="/floe.v1.Producer/Produce"`:              1,
		`code="InvalidArgument",method="/floe.v1.Producer/Produce"`: 1,
		`code="Canceled",method="/floe.v1.Producer/Produce"`:        1,
		`code="OK",method="/floe.v1.Producer/ProduceStream"`:        1,
		`code="Unimplemented",method="unknown"`:                     2,
	}
	got := histogramCounts(t, reg, "floe_grpc_request_duration_seconds")
	if len(got) != len(want) {
		t.Errorf("series: got %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: count %d, want %d", k, got[k], n)
		}
	}
}

type fakeProducing struct{ err error }

func (f fakeProducing) Produce(_ context.Context, topic, _ string, events [][]byte) (broker.Ack, error) {
	return broker.Ack{Stream: store.Stream{Topic: topic}, Count: len(events)}, f.err
}

func (f fakeProducing) ProduceBody(_ context.Context, topic, _, _ string, body []byte) (broker.Ack, error) {
	return broker.Ack{Stream: store.Stream{Topic: topic}, Count: strings.Count(string(body), "\n") + 1}, f.err
}

type fakeConsuming struct{ batches []group.Batch }

func (fakeConsuming) Register(context.Context, group.Registration) error { return nil }
func (f fakeConsuming) Poll(context.Context, group.PollRequest) ([]group.Batch, error) {
	return f.batches, nil
}
func (fakeConsuming) Commit(context.Context, string) error        { return nil }
func (fakeConsuming) Goodbye(context.Context, string, bool) error { return nil }

func TestProducedAndConsumed(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{NoRuntime: true})
	ctx := context.Background()
	p := m.Producing(fakeProducing{})
	_, _ = p.Produce(ctx, "a", "", [][]byte{[]byte(`{"x":1}`), []byte(`2`)}) // 2 events, 8 bytes
	_, _ = p.ProduceBody(ctx, "a", "k", "application/x-ndjson", []byte("1\n2\n3"))
	_, _ = p.ProduceBody(ctx, "b", "", "application/json", []byte(`{}`))
	_, _ = m.Producing(fakeProducing{err: broker.ErrInvalidJSON}).ProduceBody(ctx, "a", "", "", []byte("x"))

	c := m.Consuming(fakeConsuming{batches: []group.Batch{
		{Stream: store.Stream{Topic: "a"}, Events: [][]byte{[]byte("1"), []byte("22")}},
		{Stream: store.Stream{Topic: "a", RangeIndex: 1}, Events: [][]byte{[]byte("333")}},
		{Stream: store.Stream{Topic: "b"}, Events: [][]byte{[]byte("{}")}},
	}})
	if _, err := c.Poll(ctx, group.PollRequest{}); err != nil {
		t.Fatal(err)
	}
	wantExposition(t, reg, `
# HELP floe_produced_events_total Events acknowledged to producers (durable), per topic.
# TYPE floe_produced_events_total counter
floe_produced_events_total{topic="a"} 5
floe_produced_events_total{topic="b"} 1
# HELP floe_consumed_events_total Events returned by polls, per topic (redeliveries count again).
# TYPE floe_consumed_events_total counter
floe_consumed_events_total{topic="a"} 3
floe_consumed_events_total{topic="b"} 1
# HELP floe_consumed_bytes_total Bytes of the events returned by polls, per topic.
# TYPE floe_consumed_bytes_total counter
floe_consumed_bytes_total{topic="a"} 6
floe_consumed_bytes_total{topic="b"} 2
`, "floe_produced_events_total", "floe_consumed_events_total", "floe_consumed_bytes_total")
	if got := counterValue(t, reg, "floe_produced_bytes_total", `topic="a"`); got != 8+5 {
		t.Errorf("produced bytes of a: %v, want 13", got)
	}
}

func TestStoreCollector(t *testing.T) {
	_, reg := newMetrics(t, metrics.Options{NoRuntime: true, Store: fakeStore{store.Metrics{
		Appends: 10, Events: 100, EventBytes: 1000, Chunks: 6, Commits: 4, CommitLatency: 2 * time.Second,
		AckLatency: 5 * time.Second, WALSyncs: 3, WALSyncLatency: 30 * time.Millisecond,
		ChunksDeleted: 7, BytesDeleted: 700, RetentionRuns: 2, DiskBytes: 12345, Streams: 8,
	}}})
	wantExposition(t, reg, `
# HELP floe_store_appends_total Acknowledged appends (produce requests made durable).
# TYPE floe_store_appends_total counter
floe_store_appends_total 10
# HELP floe_store_chunks_total Chunks committed: the appends to one stream in one commit share chunks (one key each) of up to 128 KiB (a larger append is a chunk of its own).
# TYPE floe_store_chunks_total counter
floe_store_chunks_total 6
# HELP floe_store_commit_duration_seconds Group commits: time from a batch's write to its durability (the fsync wait). Count and sum only, no quantiles.
# TYPE floe_store_commit_duration_seconds summary
floe_store_commit_duration_seconds_sum 2
floe_store_commit_duration_seconds_count 4
# HELP floe_store_wal_fsync_duration_seconds Fsyncs of the WAL (one may cover several commits). Count and sum only, no quantiles.
# TYPE floe_store_wal_fsync_duration_seconds summary
floe_store_wal_fsync_duration_seconds_sum 0.03
floe_store_wal_fsync_duration_seconds_count 3
# HELP floe_store_retention_chunks_deleted_total Chunks deleted by retention.
# TYPE floe_store_retention_chunks_deleted_total counter
floe_store_retention_chunks_deleted_total 7
# HELP floe_store_disk_bytes What the store's files occupy on the disk, as du counts it (allocated blocks, on Linux).
# TYPE floe_store_disk_bytes gauge
floe_store_disk_bytes 12345
`, "floe_store_appends_total", "floe_store_commit_duration_seconds", "floe_store_wal_fsync_duration_seconds",
		"floe_store_chunks_total", "floe_store_retention_chunks_deleted_total", "floe_store_disk_bytes")
}

func TestGroupCollector(t *testing.T) {
	st := func(topic string, r uint32) store.Stream {
		return store.Stream{Topic: topic, RangeIndex: r, Version: 1}
	}
	_, reg := newMetrics(t, metrics.Options{NoRuntime: true, Groups: fakeGroups{group.Stats{
		Members: 2, Rebalances: 5,
		Groups: []group.GroupStats{{
			Group:   "g1",
			Members: []group.MemberStats{{ConsumerID: "c1"}, {ConsumerID: "c2"}},
			Streams: []group.StreamStats{
				{Stream: st("t", 0), Owner: "c1", Committed: 5, HighWatermark: 12, Lag: 7},
				{Stream: st("t", 1), Committed: -1, HighWatermark: 3},
				// A sub-range that never held an event has no series.
				{Stream: st("t", 2), Owner: "c2", Committed: 0},
				{Stream: st("nothing", 0), Committed: 0},
			},
		}},
	}}})
	wantExposition(t, reg, `
# HELP floe_group_members Members of the group.
# TYPE floe_group_members gauge
floe_group_members{group="g1"} 2
# HELP floe_group_lag_events Events the group has still to read in the sub-range: after its committed offset, or after the earliest event kept if later (0 while no offset is known).
# TYPE floe_group_lag_events gauge
floe_group_lag_events{group="g1",range="0",topic="t"} 7
floe_group_lag_events{group="g1",range="1",topic="t"} 0
# HELP floe_group_committed_offset The group's committed offset in the sub-range (absent while unknown).
# TYPE floe_group_committed_offset gauge
floe_group_committed_offset{group="g1",range="0",topic="t"} 5
# HELP floe_group_range_assigned 1 when a member of the group reads the sub-range, else 0.
# TYPE floe_group_range_assigned gauge
floe_group_range_assigned{group="g1",range="0",topic="t"} 1
floe_group_range_assigned{group="g1",range="1",topic="t"} 0
# HELP floe_group_rebalances_total Group rebalances since start.
# TYPE floe_group_rebalances_total counter
floe_group_rebalances_total 5
`, "floe_group_members", "floe_group_lag_events", "floe_group_committed_offset", "floe_group_range_assigned",
		"floe_group_rebalances_total")
}

// The metric names and help follow the Prometheus conventions, and the
// runtime collectors are there.
func TestLintAndRuntime(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{Store: fakeStore{}, Groups: fakeGroups{group.Stats{
		Groups: []group.GroupStats{{Group: "g", Streams: []group.StreamStats{{Stream: store.Stream{Topic: "t"}, Committed: 1}}}},
	}}})
	// Give the vectors a child so that they are gathered and linted.
	_, _ = m.Producing(fakeProducing{}).Produce(context.Background(), "t", "", [][]byte{[]byte("1")})
	_, _ = m.Consuming(fakeConsuming{}).Poll(context.Background(), group.PollRequest{})
	m.WrapHTTP("discovery", http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/status", nil))
	h := m.GRPCStatsHandler(func(string) bool { return true })
	h.HandleRPC(h.TagRPC(context.Background(), &stats.RPCTagInfo{FullMethodName: "/x/Y"}), &stats.End{Error: errors.New("x")})

	for _, p := range lint(t, reg) {
		if strings.HasPrefix(p.Metric, "floe_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	for _, name := range []string{"go_goroutines", "go_build_info", "floe_store_appends_total", "floe_group_consumers"} {
		if n := seriesCount(t, reg, name); n == 0 {
			t.Errorf("%s: no series", name)
		}
	}
}

// histogramCounts maps the labels of each series of a histogram to its
// sample count.
func histogramCounts(t *testing.T, reg *prometheus.Registry, name string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, m := range family(t, reg, name) {
		out[labelString(m.GetLabel())] = m.GetHistogram().GetSampleCount()
	}
	return out
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, labels string) float64 {
	t.Helper()
	for _, m := range family(t, reg, name) {
		if labelString(m.GetLabel()) == labels {
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("%s{%s}: no such series", name, labels)
	return 0
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	var sum float64
	for _, m := range family(t, reg, name) {
		sum += m.GetGauge().GetValue()
	}
	return sum
}

// blockingCollector holds each Collect until release is closed.
type blockingCollector struct {
	collecting chan struct{}
	release    chan struct{}
}

func (c blockingCollector) Describe(chan<- *prometheus.Desc) {}

func (c blockingCollector) Collect(chan<- prometheus.Metric) {
	c.collecting <- struct{}{}
	<-c.release
}

// Scrapes beyond MaxScrapesInFlight get 503 rather than a share of the
// broker's CPU.
func TestHandlerLimitsScrapes(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := blockingCollector{collecting: make(chan struct{}, 8), release: make(chan struct{})}
	reg.MustRegister(c)
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	codes := make(chan int, metrics.MaxScrapesInFlight)
	for range metrics.MaxScrapesInFlight {
		go func() {
			resp, err := http.Get(srv.URL)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
		<-c.collecting
	}
	client := &http.Client{Timeout: 5 * time.Second}
	if resp, err := client.Get(srv.URL); err != nil {
		t.Errorf("scrape %d while %d are in flight: %v, want 503", metrics.MaxScrapesInFlight+1, metrics.MaxScrapesInFlight, err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("scrape %d while %d are in flight: %d, want 503", metrics.MaxScrapesInFlight+1, metrics.MaxScrapesInFlight, resp.StatusCode)
		}
	}
	close(c.release)
	for range metrics.MaxScrapesInFlight {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("a scrape in flight got %d", code)
		}
	}
}
