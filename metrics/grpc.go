package metrics

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// GRPCStatsHandler measures every call per method and code, from the moment
// the server takes it to the status it sends (a stream: its whole
// lifetime). Unlike an interceptor, it also sees the calls refused before a
// handler runs: a request that does not decode, a message over the server's
// size limit. known reports whether the server serves a full method; calls
// of any other are labelled UnknownMethod, so that the label set stays
// bounded whatever names clients send.
func (m *Metrics) GRPCStatsHandler(known func(fullMethod string) bool) stats.Handler {
	return grpcStats{m: m, known: known}
}

// UnknownMethod is the method label of calls of methods the server does not
// serve.
const UnknownMethod = "unknown"

type grpcStats struct {
	m     *Metrics
	known func(string) bool
}

type methodKey struct{}

func (h grpcStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	method := info.FullMethodName
	if !h.known(method) {
		method = UnknownMethod
	}
	return context.WithValue(ctx, methodKey{}, method)
}

func (h grpcStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	end, ok := s.(*stats.End)
	if !ok || end.IsClient() {
		return
	}
	method, ok := ctx.Value(methodKey{}).(string)
	if !ok {
		method = UnknownMethod
	}
	h.m.grpcDuration.WithLabelValues(method, code(end.Error).String()).Observe(end.EndTime.Sub(end.BeginTime).Seconds())
}

func (grpcStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (grpcStats) HandleConn(context.Context, stats.ConnStats) {}

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
