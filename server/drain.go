package server

import "sync"

// drainSignal tells the streams of a service that the broker is shutting
// down: Done is closed by the first Drain.
type drainSignal struct {
	done chan struct{}
	once sync.Once
}

func newDrainSignal() *drainSignal {
	return &drainSignal{done: make(chan struct{})}
}

// Drain closes Done; later calls do nothing.
func (d *drainSignal) Drain() { d.once.Do(func() { close(d.done) }) }

// Done is closed once the broker drains.
func (d *drainSignal) Done() <-chan struct{} { return d.done }
