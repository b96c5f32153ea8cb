package server

import (
	"sync/atomic"

	"google.golang.org/grpc"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// ReflectionStreams ends the server reflection streams at shutdown. Tools
// that browse a server (grpcui, Postman, a grpcurl session) keep one open
// for as long as their connection, and a graceful stop waits for every
// stream. The reflection service's handler waits for the client's next
// request in RecvMsg, which no context ends: Drain makes that RecvMsg
// return instead. Install StreamServerInterceptor on the server that serves
// reflection.
type ReflectionStreams struct {
	draining *drainSignal
}

// NewReflectionStreams returns a ReflectionStreams that has not drained.
func NewReflectionStreams() *ReflectionStreams {
	return &ReflectionStreams{draining: newDrainSignal()}
}

// errReflectionDrained ends a reflection stream at shutdown.
var errReflectionDrained = shuttingDown("the broker is shutting down")

// Drain ends every reflection stream, open or opened later, with
// Unavailable the next time it waits for a request. A request being
// answered is answered first.
func (r *ReflectionStreams) Drain() {
	r.draining.Drain()
}

// StreamServerInterceptor ties the reflection streams (v1 and v1alpha) to
// Drain; other streams pass through.
func (r *ReflectionStreams) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		switch info.FullMethod {
		case reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName,
			reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName:
		default:
			return handler(srv, ss)
		}
		rs := &reflectionStream{ServerStream: ss, draining: r.draining.Done()}
		err := handler(srv, rs)
		if rs.drained.Load() {
			return errReflectionDrained
		}
		return err
	}
}

// reflectionStream is a reflection stream whose RecvMsg returns at Drain.
type reflectionStream struct {
	grpc.ServerStream
	draining <-chan struct{}
	drained  atomic.Bool
}

// RecvMsg waits for the next request in a goroutine of its own, so that
// Drain can end the wait. A goroutine left waiting ends with the stream,
// when the handler has returned: gRPC then ends the stream and its
// RecvMsg returns. It never runs beside another RecvMsg of the stream: the
// handler returns on the error of a drained RecvMsg.
func (s *reflectionStream) RecvMsg(m any) error {
	select {
	case <-s.draining:
		s.drained.Store(true)
		return errReflectionDrained
	default:
	}
	done := make(chan error, 1)
	go func() { done <- s.ServerStream.RecvMsg(m) }()
	select {
	case err := <-done:
		return err
	case <-s.draining:
		s.drained.Store(true)
		return errReflectionDrained
	}
}
