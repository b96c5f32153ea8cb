package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/store"
)

// namespace prefixes every Floe metric.
const namespace = "floe"

// StoreSource is what the store collector reads; *store.Store satisfies it.
type StoreSource interface{ Metrics() store.Metrics }

// GroupSource is what the consumer-group collector reads;
// *group.Coordinator satisfies it.
type GroupSource interface{ Stats() group.Stats }

var (
	_ StoreSource = (*store.Store)(nil)
	_ GroupSource = (*group.Coordinator)(nil)
)

// Options configures New.
type Options struct {
	// Store, when set, is read at each scrape (floe_store_*).
	Store StoreSource
	// Groups, when set, is read at each scrape (floe_group_*).
	Groups GroupSource
	// ProduceMemory, when set, is read at each scrape
	// (floe_produce_memory_*).
	ProduceMemory *broker.ProduceMemory
	// NoRuntime leaves out the Go runtime, process and build-info
	// collectors (for a registry that already has them).
	NoRuntime bool
}

// Metrics holds the instruments of one node.
type Metrics struct {
	producedEvents *prometheus.CounterVec
	producedBytes  *prometheus.CounterVec
	consumedEvents *prometheus.CounterVec
	consumedBytes  *prometheus.CounterVec

	httpDuration *prometheus.HistogramVec
	httpInFlight *prometheus.GaugeVec
	grpcDuration *prometheus.HistogramVec
}

// latencyBuckets cover a produce (an fsync: milliseconds) up to a long poll
// (capped at 30 s by default).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// New creates the node's instruments and registers them, and the collectors
// of opts, on reg.
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	m := &Metrics{
		producedEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "produced_events_total",
			Help: "Events acknowledged to producers (durable), per topic.",
		}, []string{"topic"}),
		producedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "produced_bytes_total",
			Help: "Bytes of acknowledged produce requests, per topic: the request body for raw (REST) bodies, the sum of the events for typed gRPC events.",
		}, []string{"topic"}),
		consumedEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "consumed_events_total",
			Help: "Events returned by polls, per topic (redeliveries count again).",
		}, []string{"topic"}),
		consumedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "consumed_bytes_total",
			Help: "Bytes of the events returned by polls, per topic.",
		}, []string{"topic"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Latency of REST requests, from the request's headers to the handler's return, per API, method, route pattern and status code.",
			Buckets: latencyBuckets,
		}, []string{"api", "method", "route", "code"}),
		httpInFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "http_requests_in_flight",
			Help: "REST requests being served, per API.",
		}, []string{"api"}),
		grpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "grpc_request_duration_seconds",
			Help:    "Latency of gRPC calls (for streams: the stream's lifetime), per full method name and status code.",
			Buckets: latencyBuckets,
		}, []string{"method", "code"}),
	}
	cs := []prometheus.Collector{
		m.producedEvents, m.producedBytes, m.consumedEvents, m.consumedBytes,
		m.httpDuration, m.httpInFlight, m.grpcDuration,
	}
	if opts.Store != nil {
		cs = append(cs, newStoreCollector(opts.Store))
	}
	if opts.Groups != nil {
		cs = append(cs, newGroupCollector(opts.Groups))
	}
	if pm := opts.ProduceMemory; pm != nil {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Name: "produce_memory_bytes",
				Help: "Bytes of produce requests held (REST bodies from before they are read until answered, gRPC batches until stored), out of floe_produce_memory_limit_bytes.",
			}, func() float64 { return float64(pm.Held()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Name: "produce_memory_limit_bytes",
				Help: "The produce memory (--produce-memory): produce requests beyond it wait.",
			}, func() float64 { return float64(pm.Size()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: namespace, Name: "produce_memory_waits_total",
				Help: "Produce requests and gRPC batches that waited for room in the produce memory.",
			}, func() float64 { return float64(pm.Waited()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: namespace, Name: "produce_memory_refused_total",
				Help: "Produce requests refused because the produce memory had no room for them in time: REST answered 503 after half the read timeout, unary gRPC Produce UNAVAILABLE after 1 s.",
			}, func() float64 { return float64(pm.Refused()) }),
		)
	}
	if !opts.NoRuntime {
		cs = append(cs,
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			collectors.NewBuildInfoCollector(),
		)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// MaxScrapesInFlight is how many scrapes Handler serves at once; more get
// 503. A scrape reads every series, and with many topics or groups it takes
// seconds of CPU: scrapers in parallel would take the broker's CPU and
// memory from producers and consumers.
const MaxScrapesInFlight = 2

// Handler serves the metrics of reg in the Prometheus exposition formats.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, MaxRequestsInFlight: MaxScrapesInFlight})
}
