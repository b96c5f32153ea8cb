// Package broker holds the producer side of Floe's domain logic: topic names,
// the token ring that places events in sub-ranges, the splitting and
// validation of JSON and NDJSON bodies, and Produce, which appends a request
// atomically to its sub-range and answers once it is durable. It declares the
// few log methods it needs (Log) and knows nothing of HTTP or gRPC.
//
// Its sentinel errors (errors.go) are shared by the consumer-group package and
// converted to gRPC and HTTP statuses in one place, in package server.
package broker
