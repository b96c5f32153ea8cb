// Package metrics exports the metrics of a Floe node to Prometheus.
//
// Nothing is registered globally: New registers its collectors on the
// registry it is given, so two nodes in one process (tests) each have their
// own. What it measures:
//
//   - produced and consumed events and bytes per topic, by wrapping the
//     domain interfaces the servers call (Producing, Consuming);
//   - request latency per route and status: WrapHTTP wraps each REST API's
//     handler (it fits gateway.Options.Wrap) and maps the path to a fixed
//     set of route patterns; GRPCStatsHandler labels every gRPC call by
//     method and code;
//   - the store and the consumer groups, read from their snapshots
//     (store.Metrics, group.Stats) at scrape time by custom collectors;
//   - the Go runtime and the process.
//
// The node serves Handler(registry) at /metrics on --metrics-addr.
package metrics
