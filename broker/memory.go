package broker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// DefaultProduceMemory is the least default of the produce memory: 64 MiB,
// or four of the largest requests when that is more (DefaultProduceMemoryFor).
const DefaultProduceMemory = 64 << 20

// DefaultProduceMemoryFor is the default produce memory for a largest
// request of maxRequestBytes: 64 MiB, or four such requests.
func DefaultProduceMemoryFor(maxRequestBytes int64) int64 {
	return max(DefaultProduceMemory, 4*maxRequestBytes)
}

// ProduceMemory bounds the bytes of produce requests the broker holds at
// once: REST bodies from before they are read until they are answered, and
// ProduceStream batches from when they are taken until they are stored.
// Without it, a burst of large requests waiting for the store made the
// broker hold every one of them: 200 connections sending 4 MB bodies took
// 960 MiB. A request that does not fit waits, before its body is read, in
// arrival order: over HTTP/1.1 the client's bytes stay in the socket, over
// HTTP/2 up to its stream's flow-control window.
type ProduceMemory struct {
	sem     *semaphore.Weighted
	size    int64
	held    atomic.Int64
	waited  atomic.Uint64
	refused atomic.Uint64
}

// NewProduceMemory returns a bound of size bytes (at least 1).
func NewProduceMemory(size int64) *ProduceMemory {
	size = max(size, 1)
	return &ProduceMemory{sem: semaphore.NewWeighted(size), size: size}
}

// Size is the bound in bytes.
func (m *ProduceMemory) Size() int64 { return m.size }

// Held is the number of bytes held now.
func (m *ProduceMemory) Held() int64 { return m.held.Load() }

// Waited counts the acquisitions that had to wait; Refused those that
// waited longer than their bound.
func (m *ProduceMemory) Waited() uint64  { return m.waited.Load() }
func (m *ProduceMemory) Refused() uint64 { return m.refused.Load() }

// Acquire takes n bytes for a request, or the whole bound for a request
// larger than it, and returns how many it took, to give back with Release.
// It waits until they are free, in arrival order, for at most maxWait (0:
// no bound): then it fails with ErrUnavailable, naming the bound. It fails
// with ctx's error when ctx is done first.
func (m *ProduceMemory) Acquire(ctx context.Context, n int64, maxWait time.Duration) (int64, error) {
	if n, ok := m.TryAcquire(n); ok {
		return n, nil
	}
	n = min(max(n, 0), m.size)
	m.waited.Add(1)
	wctx := ctx
	if maxWait > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, maxWait)
		defer cancel()
	}
	if err := m.sem.Acquire(wctx, n); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			m.refused.Add(1)
			return 0, fmt.Errorf("%w: the broker holds produce requests up to its produce memory (%d bytes, setting produce-memory) and no room came free for this one (%d bytes) within %v: send it again later",
				ErrUnavailable, m.size, n, maxWait)
		}
		return 0, err
	}
	m.held.Add(n)
	return n, nil
}

// TryAcquire is Acquire without waiting: false when the bytes are not free
// now (nothing is taken then). A request of no bytes always succeeds: the
// semaphore would queue it behind the requests waiting.
func (m *ProduceMemory) TryAcquire(n int64) (int64, bool) {
	n = min(max(n, 0), m.size)
	if n == 0 {
		return 0, true
	}
	if !m.sem.TryAcquire(n) {
		return 0, false
	}
	m.held.Add(n)
	return n, true
}

// Release gives back n bytes taken by Acquire or TryAcquire.
func (m *ProduceMemory) Release(n int64) {
	if n == 0 {
		return
	}
	m.held.Add(-n)
	m.sem.Release(n)
}
