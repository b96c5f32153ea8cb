// Package server implements Floe's gRPC services (Discovery, Producer,
// Consumer) over the domain packages: each method validates its request,
// calls one domain interface, converts the error, and returns. Errors are
// converted to gRPC statuses in exactly one place (errors.go), with an
// ErrorInfo detail that carries the stable error code and the HTTP status the
// REST gateway answers with. HealthWatches ends the gRPC health service's
// Watch streams at shutdown, and ReflectionStreams the server reflection
// streams, as Producer.Drain ends the produce streams.
package server
