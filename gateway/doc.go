// Package gateway is Floe's HTTP side: the REST API of the PolarStreams
// contract, served on three listeners (discovery, producer, consumer) by the
// grpc-gateway handlers generated from proto/, calling the gRPC services in
// process (no second network hop). It owns what is HTTP only: the marshaler
// that passes raw event bodies through and renders the documented JSON
// shapes, status codes (204, 408, 409, 413, 415), the body limits and content
// encodings, the one JSON error shape, and the served OpenAPI document.
package gateway
