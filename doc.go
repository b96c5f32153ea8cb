// Package floe assembles a Floe broker: the Pebble store, the producer and
// consumer-group domain, the gRPC services and the REST gateway, on their
// listeners. cmd/floe turns flags into Options and calls New and Run.
//
//	n, err := floe.New(floe.Options{DataDir: "floe-data"})
//	if err != nil { ... }
//	err = n.Run(ctx) // until ctx is done, then a graceful shutdown
package floe

import _ "embed"

// OpenAPI is the OpenAPI document of the REST API, generated from proto/ by
// `make generate`, served at GET /openapi.json on the discovery port.
//
//go:embed gen/openapiv2/floe.swagger.json
var OpenAPI []byte
