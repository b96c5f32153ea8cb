// Package floe assembles a Floe broker: the Pebble store, the producer and
// consumer-group domain, the gRPC services and the REST gateway, on their
// listeners. cmd/floe turns flags, FLOE_* variables and a config file into
// Options and calls New and Run.
//
//	n, err := floe.New(floe.Options{DataDir: "floe-data"})
//	if err != nil { ... }
//	err = n.Run(ctx) // until ctx is done, then a graceful shutdown
//
// Operability:
//   - New takes an exclusive lock on DataDir (floe.lock, with the holder's
//     pid) before it opens the store: a second node fails with
//     ErrDataDirInUse, naming the directory and the pid.
//   - Every node has its own Prometheus registry (Node.Registry), served at
//     /metrics on Options.MetricsAddr; package metrics describes the
//     metrics. Options.PprofAddr serves net/http/pprof on its own mux.
//   - Run logs one "floe started" line with the effective configuration and
//     the bound addresses, and shuts down in the order that Node.shutdown
//     documents: readiness off, long polls ended, REST and gRPC drained
//     within ShutdownTimeout, store closed last.
package floe

import _ "embed"

// OpenAPI is the OpenAPI 3.0 document of the REST API, generated from proto/ by
// `make generate`, served at GET /openapi.json on the discovery port.
//
//go:embed gen/openapiv3/floe.openapi.json
var OpenAPI []byte
