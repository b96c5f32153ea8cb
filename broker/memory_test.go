package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Requests take their bytes in arrival order, wait while there is no room,
// and a request larger than the whole memory takes all of it.
func TestProduceMemory(t *testing.T) {
	m := NewProduceMemory(100)
	ctx := context.Background()
	a, err := m.Acquire(ctx, 60, 0)
	if err != nil || a != 60 || m.Held() != 60 {
		t.Fatalf("first: took %d, %v; held %d", a, err, m.Held())
	}
	got := make(chan int64, 2)
	go func() {
		n, err := m.Acquire(ctx, 50, 0) // waits for the first
		if err != nil {
			t.Error(err)
		}
		got <- n
	}()
	deadline := time.Now().Add(5 * time.Second)
	for m.Waited() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second request did not wait")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case n := <-got:
		t.Fatalf("the second request took %d bytes while the first held 60 of 100", n)
	case <-time.After(20 * time.Millisecond):
	}
	m.Release(a)
	if n := <-got; n != 50 || m.Held() != 50 {
		t.Fatalf("second: took %d, held %d", n, m.Held())
	}
	m.Release(50)

	if n, err := m.Acquire(ctx, 1000, 0); err != nil || n != 100 || m.Held() != 100 {
		t.Fatalf("a request over the whole memory: took %d, %v; held %d", n, err, m.Held())
	}
	// A bounded wait fails with ErrUnavailable, naming the memory.
	_, err = m.Acquire(ctx, 1, 30*time.Millisecond)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "its produce memory (100 bytes, setting produce-memory)") || m.Refused() != 1 {
		t.Fatalf("bounded wait: %v (refused %d)", err, m.Refused())
	}
	// The caller's context ending wins over the bound, and is not a refusal.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Acquire(cctx, 1, time.Second); !errors.Is(err, context.Canceled) || m.Refused() != 1 {
		t.Fatalf("canceled: %v (refused %d)", err, m.Refused())
	}
	m.Release(100)
	if m.Held() != 0 {
		t.Fatalf("held %d after every release", m.Held())
	}
}

// A request of no bytes (an empty body) takes nothing and never waits, not
// even behind requests waiting for room: the semaphore queued it behind
// them, so that an empty POST got 503 after half the read timeout rather
// than its 400 at once.
func TestProduceMemoryEmptyRequestDoesNotWait(t *testing.T) {
	m := NewProduceMemory(100)
	ctx := context.Background()
	if _, err := m.Acquire(ctx, 100, 0); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _, _ = m.Acquire(wctx, 10, 0) }() // waits
	deadline := time.Now().Add(5 * time.Second)
	for m.Waited() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second request did not wait")
		}
		time.Sleep(time.Millisecond)
	}
	if n, ok := m.TryAcquire(0); !ok || n != 0 {
		t.Errorf("TryAcquire(0) behind a waiting request: %d, %v; want 0, true", n, ok)
	}
	if n, err := m.Acquire(ctx, 0, 30*time.Millisecond); err != nil || n != 0 || m.Waited() != 1 {
		t.Errorf("Acquire(0) behind a waiting request: %d, %v (waited %d); want 0 at once", n, err, m.Waited())
	}
}
