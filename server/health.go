package server

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// HealthWatches ends the grpc.health.v1.Health/Watch streams at shutdown.
// gRPC clients that check health keep a Watch stream open for as long as
// their connection, and a graceful stop waits for every stream: without
// Drain, each stop would last the whole shutdown timeout. Install
// StreamServerInterceptor on the server that serves the health service.
type HealthWatches struct {
	draining *drainSignal
}

// NewHealthWatches returns a HealthWatches that has not drained.
func NewHealthWatches() *HealthWatches {
	return &HealthWatches{draining: newDrainSignal()}
}

// errWatchDrained ends a health Watch stream at shutdown.
var errWatchDrained = shuttingDown("the broker is shutting down")

// Drain ends every Watch stream, open or opened later, with Unavailable
// once its watcher was sent a status other than SERVING. Call it after the
// health server's Shutdown (which turns every service NOT_SERVING), so
// that watchers learn it before their stream ends.
func (h *HealthWatches) Drain() {
	h.draining.Drain()
}

// StreamServerInterceptor ties the Watch streams to Drain; other streams
// pass through.
func (h *HealthWatches) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod != healthpb.Health_Watch_FullMethodName {
			return handler(srv, ss)
		}
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		w := &watchStream{ServerStream: ss, ctx: ctx, cancel: cancel}
		go func() {
			select {
			case <-h.draining.Done():
				w.drain()
			case <-ctx.Done():
			}
		}()
		err := handler(srv, w)
		if w.drained() && ss.Context().Err() == nil {
			// The health server answers its context's end with Canceled,
			// which would read as the client's own doing.
			return errWatchDrained
		}
		return err
	}
}

// watchStream is a Watch stream whose context Drain cancels: the health
// server then ends the stream.
type watchStream struct {
	grpc.ServerStream
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	notServing bool // the last status sent is not SERVING
	draining   bool
	ended      bool // cancel was called by drain or SendMsg
}

func (w *watchStream) Context() context.Context { return w.ctx }

// SendMsg sends a status; once the broker drains, the stream ends after
// the first status other than SERVING.
func (w *watchStream) SendMsg(m any) error {
	err := w.ServerStream.SendMsg(m)
	if r, ok := m.(*healthpb.HealthCheckResponse); ok && err == nil {
		w.mu.Lock()
		w.notServing = r.GetStatus() != healthpb.HealthCheckResponse_SERVING
		w.endLocked()
		w.mu.Unlock()
	}
	return err
}

// drain ends the stream now if its watcher knows the service is not
// serving, else after the next status sent (the health server's Shutdown
// queued NOT_SERVING for it).
func (w *watchStream) drain() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.draining = true
	w.endLocked()
}

func (w *watchStream) endLocked() {
	if w.draining && w.notServing && !w.ended {
		w.ended = true
		w.cancel()
	}
}

func (w *watchStream) drained() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ended
}
