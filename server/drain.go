package server

import "context"

// drainSignal tells the streams of a service that the broker is shutting
// down: Done is closed by the first Drain.
type drainSignal struct {
	ctx   context.Context
	drain context.CancelFunc
}

func newDrainSignal() *drainSignal {
	ctx, cancel := context.WithCancel(context.Background())
	return &drainSignal{ctx: ctx, drain: cancel}
}

// Drain closes Done; later calls do nothing.
func (d *drainSignal) Drain() { d.drain() }

// Done is closed once the broker drains.
func (d *drainSignal) Done() <-chan struct{} { return d.ctx.Done() }

// Context is done once the broker drains.
func (d *drainSignal) Context() context.Context { return d.ctx }
