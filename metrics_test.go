package floe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floe-streams/floe"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/metrics"
)

// Two nodes in one process each serve their own metrics: what one node
// counts does not show on the other.
func TestMetricsEndpointPerNode(t *testing.T) {
	withMetrics := func(o *floe.Options) { o.MetricsAddr, o.PprofAddr = "127.0.0.1:0", "127.0.0.1:0" }
	_, a := startNode(t, withMetrics)
	_, b := startNode(t, withMetrics)

	// Node a: 3 REST produce requests (4 events), a 404, a consumer that
	// reads them, and one gRPC call.
	for _, body := range []string{`{"n":1}`, `{"n":2}`, "{\"n\":3}\n{\"n\":4}"} {
		ct := "application/json"
		if strings.Contains(body, "\n") {
			ct = "application/x-ndjson"
		}
		resp := statusOf(t, http.MethodPost, "http://"+a.Producer+"/v1/topic/metered/messages", ct, body)
		if resp != http.StatusOK {
			t.Fatalf("produce: %d", resp)
		}
	}
	if code := statusOf(t, http.MethodPost, "http://"+a.Producer+"/no/such/path", "application/json", "{}"); code != http.StatusNotFound {
		t.Fatalf("unknown path: %d", code)
	}
	consumer := "http://" + a.Consumer + "/v1/consumer/"
	if code := statusOf(t, http.MethodPut, consumer+"register?consumerId=c1&group=g1&topic=metered&onNewGroup=startFromEarliest", "", ""); code != http.StatusOK {
		t.Fatalf("register: %d", code)
	}
	if code := statusOf(t, http.MethodPost, consumer+"poll?consumerId=c1", "", ""); code != http.StatusOK {
		t.Fatalf("poll: %d", code)
	}
	if _, err := floev1.NewDiscoveryClient(dial(t, a.GRPC)).Brokers(context.Background(), &floev1.BrokersRequest{}); err != nil {
		t.Fatalf("gRPC Brokers: %v", err)
	}

	ma := scrapeUntil(t, a.Metrics, `floe_grpc_request_duration_seconds_count{code="OK",method="/floe.v1.Discovery/Brokers"} 1`)
	for _, want := range []string{
		`floe_produced_events_total{topic="metered"} 4`,
		`floe_consumed_events_total{topic="metered"} 4`,
		`floe_http_request_duration_seconds_count{api="producer",code="200",method="POST",route="/v1/topic/{topic}/messages"} 3`,
		`floe_http_request_duration_seconds_count{api="producer",code="404",method="POST",route="other"} 1`,
		`floe_http_request_duration_seconds_count{api="consumer",code="200",method="PUT",route="/v1/consumer/register"} 1`,
		`floe_grpc_request_duration_seconds_count{code="OK",method="/floe.v1.Discovery/Brokers"} 1`,
		`floe_store_appends_total 3`,
		`floe_store_events_total 4`,
		`floe_group_members{group="g1"} 1`,
		`floe_group_consumers 1`,
		`floe_store_commit_duration_seconds_count`,
		`floe_store_wal_fsync_duration_seconds_count`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(ma, want) {
			t.Errorf("node a's metrics lack %s", want)
		}
	}
	// The group's series exist per sub-range that holds events (those
	// without any have none): their high watermarks add up to the 4
	// events, and each has a lag series.
	hwms := grep(ma, `floe_group_high_watermark{group="g1",`)
	series, sum := 0, 0
	for line := range strings.Lines(hwms) {
		var v int
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil || v <= 0 {
			t.Errorf("high watermark series %q", line)
		}
		series, sum = series+1, sum+v
	}
	if series == 0 || series > 4 || sum != 4 || strings.Count(ma, `floe_group_lag_events{group="g1",range=`) != series {
		t.Errorf("want a series per sub-range with events, 4 events in all:\n%s%s", hwms, grep(ma, "floe_group_lag_events"))
	}

	mb := scrape(t, b.Metrics)
	for _, absent := range []string{`topic="metered"`, `floe_store_appends_total 3`, `group="g1"`} {
		if strings.Contains(mb, absent) {
			t.Errorf("node b's metrics show node a's %s", absent)
		}
	}

	// pprof has its own listener; the metrics one does not serve it.
	if code := statusOf(t, http.MethodGet, "http://"+a.Pprof+"/debug/pprof/cmdline", "", ""); code != http.StatusOK {
		t.Errorf("pprof cmdline: %d", code)
	}
	if code := statusOf(t, http.MethodGet, "http://"+a.Metrics+"/debug/pprof/", "", ""); code != http.StatusNotFound {
		t.Errorf("pprof on the metrics port: %d, want 404", code)
	}
}

// The metrics and pprof ports answer unknown routes and methods in the
// error shape of the REST API, as every port does.
func TestMetricsPortErrors(t *testing.T) {
	_, a := startNode(t, func(o *floe.Options) { o.MetricsAddr, o.PprofAddr = "127.0.0.1:0", "127.0.0.1:0" })
	for _, tc := range []struct {
		method, url  string
		status, code int
		allow        string
	}{
		{http.MethodGet, "http://" + a.Metrics + "/foo", http.StatusNotFound, 3001, ""},
		{http.MethodGet, "http://" + a.Metrics + "/", http.StatusNotFound, 3001, ""},
		{http.MethodGet, "http://" + a.Metrics + "/metrics/x", http.StatusNotFound, 3001, ""},
		{http.MethodGet, "http://" + a.Metrics + "/debug/pprof/", http.StatusNotFound, 3001, ""},
		{http.MethodPost, "http://" + a.Metrics + "/metrics", http.StatusMethodNotAllowed, 3002, "GET, HEAD"},
		{http.MethodDelete, "http://" + a.Metrics + "/metrics", http.StatusMethodNotAllowed, 3002, "GET, HEAD"},
		{http.MethodGet, "http://" + a.Pprof + "/metrics", http.StatusNotFound, 3001, ""},
		{http.MethodGet, "http://" + a.Pprof + "/debug/pprof/no-such-profile", http.StatusNotFound, 3001, ""},
	} {
		ex := do(t, nil, tc.method, tc.url, "", nil, "", nil)
		errorShape(t, ex, tc.status, tc.code)
		if got := ex.resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.url, got, tc.allow)
		}
	}
	// What the ports serve is unchanged.
	for _, url := range []string{
		"http://" + a.Metrics + "/metrics",
		"http://" + a.Pprof + "/debug/pprof/",
		"http://" + a.Pprof + "/debug/pprof/heap?debug=1",
		"http://" + a.Pprof + "/debug/pprof/cmdline",
	} {
		if code := statusOf(t, http.MethodGet, url, "", ""); code != http.StatusOK {
			t.Errorf("GET %s: %d", url, code)
		}
	}
	if code := statusOf(t, http.MethodHead, "http://"+a.Metrics+"/metrics", "", ""); code != http.StatusOK {
		t.Errorf("HEAD /metrics: %d", code)
	}
}

// Every route of the OpenAPI document has its own route label: a new
// route in proto/ must be added to metrics.Route (or it is "other").
func TestMetricsRouteCoversOpenAPI(t *testing.T) {
	var doc struct{ Paths map[string]any }
	if err := json.Unmarshal(floe.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Paths) == 0 {
		t.Fatal("no paths in the OpenAPI document")
	}
	for p := range doc.Paths {
		concrete := strings.ReplaceAll(p, "{topic}", "some-topic")
		if got := metrics.Route(concrete); got != p {
			t.Errorf("metrics.Route(%q) = %q, want %q", concrete, got, p)
		}
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(body)
}

// scrapeUntil scrapes addr until its metrics hold every line of want, for
// up to 10 s, and returns the last scrape: a gRPC call is counted once the
// server has sent its status, which the client may see first.
func scrapeUntil(t *testing.T, addr string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrape(t, addr)
		missing := slices.IndexFunc(want, func(w string) bool { return !strings.Contains(m, w) })
		if missing < 0 || time.Now().After(deadline) {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func grep(text, prefix string) string {
	var out []string
	for l := range strings.Lines(text) {
		if strings.HasPrefix(l, prefix) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}

// statusOf sends a request and returns the status of its answer.
func statusOf(t *testing.T, method, url, contentType, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(fmt.Errorf("%s %s: %w", method, url, err))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
