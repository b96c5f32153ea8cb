package metrics

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor measures unary calls per method and code.
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.observeGRPC(info.FullMethod, err, start)
		return resp, err
	}
}

// StreamServerInterceptor measures streams (their whole lifetime) per method
// and code.
func (m *Metrics) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		method := info.FullMethod
		if srv == nil {
			// The server's unknown-method handler (grpc.UnknownServiceHandler):
			// the name is the client's, of any number of values.
			method = UnknownMethod
		}
		m.observeGRPC(method, err, start)
		return err
	}
}

// UnknownMethod is the method label of calls of methods the server does not
// serve.
const UnknownMethod = "unknown"

// observeGRPC records a call. The method set is bounded: the server invokes
// interceptors only for registered methods and its unknown-method handler,
// which StreamServerInterceptor labels UnknownMethod.
func (m *Metrics) observeGRPC(fullMethod string, err error, start time.Time) {
	m.grpcDuration.WithLabelValues(fullMethod, code(err).String()).Observe(time.Since(start).Seconds())
}

// code is the code the client sees: a status error's code; a context error
// becomes Canceled or DeadlineExceeded, as the server sends it.
func code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	return status.FromContextError(err).Code()
}
