package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/store"
)

// scriptedStream is a ProduceStream whose client sends n batches, batch i
// with partition key key(i) and its number as its only event, calling
// pause(i) before each, then ends its side (io.EOF). It records the
// answers; SendMsg blocks while hold is non-nil and open.
type scriptedStream struct {
	grpc.ServerStream // not called
	ctx               context.Context
	n                 int
	key               func(i int) string
	pause             func(i int)
	hold              chan struct{}

	sent    int
	mu      sync.Mutex
	answers []*floev1.ProduceStreamResponse
}

func (s *scriptedStream) Context() context.Context { return s.ctx }

func (s *scriptedStream) RecvMsg(m any) error {
	if s.sent == s.n {
		return io.EOF
	}
	i := s.sent
	s.sent++
	if s.pause != nil {
		s.pause(i)
	}
	b := m.(*decodeTarget).msg.(*produceBatch)
	b.requestID = uint64(i)
	b.topic = "t"
	b.key = s.key(i)
	b.events = append(b.events, fmt.Appendf(nil, "%d", i))
	return nil
}

func (s *scriptedStream) SendMsg(m any) error {
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
	s.mu.Lock()
	s.answers = append(s.answers, m.(*floev1.ProduceStreamResponse))
	s.mu.Unlock()
	return nil
}

func (s *scriptedStream) Send(r *floev1.ProduceStreamResponse) error { return s.SendMsg(r) }
func (s *scriptedStream) Recv() (*floev1.ProduceStreamRequest, error) {
	return nil, errors.New("not used")
}

// keyLog records, per partition key, the batches Produce was called with, in
// call order, and fails the test when two calls for one key overlap. Each
// call takes a little while, so that batches of a key pile up behind it.
type keyLog struct {
	t     *testing.T
	mu    sync.Mutex
	busy  map[string]bool
	order map[string][]string
	delay func() time.Duration
}

func (l *keyLog) Produce(_ context.Context, topic, key string, events [][]byte) (broker.Ack, error) {
	l.mu.Lock()
	if l.busy[key] {
		l.t.Errorf("two batches of key %q stored at once", key)
	}
	l.busy[key] = true
	l.order[key] = append(l.order[key], string(events[0]))
	l.mu.Unlock()
	time.Sleep(l.delay())
	l.mu.Lock()
	l.busy[key] = false
	l.mu.Unlock()
	return broker.Ack{Stream: store.Stream{Topic: topic}, Count: len(events)}, nil
}

func (*keyLog) ProduceBody(context.Context, string, string, string, []byte) (broker.Ack, error) {
	return broker.Ack{}, errors.New("unexpected body")
}

func newKeyLog(t *testing.T, delay func() time.Duration) *keyLog {
	return &keyLog{t: t, busy: map[string]bool{}, order: map[string][]string{}, delay: delay}
}

// Batches of one partition key are stored one at a time, in the order sent,
// while their worker's goroutine ends and starts again: the client pauses
// now and then, long enough for every worker to run out of batches.
func TestProduceStreamKeepsKeyOrderAcrossIdleWorkers(t *testing.T) {
	const n = 600
	keys := []string{"a", "b", "c", "d", "e"}
	var calls atomic.Int64
	log := newKeyLog(t, func() time.Duration {
		if calls.Add(1)%3 == 0 {
			return 200 * time.Microsecond
		}
		return 0
	})
	s := &scriptedStream{
		ctx: context.Background(), n: n,
		key: func(i int) string { return keys[(i*7/3)%len(keys)] },
		pause: func(i int) {
			if i%50 == 49 {
				time.Sleep(5 * time.Millisecond)
			}
		},
	}
	if err := NewProducer(log).ProduceStream(s); err != nil {
		t.Fatal(err)
	}
	if len(s.answers) != n {
		t.Fatalf("%d answers, want %d", len(s.answers), n)
	}
	for _, k := range keys {
		var want []string
		for i := range n {
			if s.key(i) == k {
				want = append(want, fmt.Sprint(i))
			}
		}
		if got := log.order[k]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("key %q stored in the order %v, sent %v", k, got, want)
		}
	}
}

// Batches without a key are stored concurrently, up to every batch the
// stream holds (maxStreamInflight), not a fixed number of workers fewer.
func TestProduceStreamStoresEveryHeldBatchAtOnce(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int64
	p := &countingSlow{release: release, started: &started}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &scriptedStream{ctx: ctx, n: maxStreamInflight, key: func(int) string { return "" }}
	done := make(chan error, 1)
	go func() { done <- NewProducer(p).ProduceStream(s) }()
	deadline := time.Now().Add(10 * time.Second)
	for started.Load() < maxStreamInflight && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := started.Load(); got != maxStreamInflight {
		t.Errorf("%d batches being stored at once, want %d", got, maxStreamInflight)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(s.answers) != maxStreamInflight {
		t.Errorf("%d answers, want %d", len(s.answers), maxStreamInflight)
	}
}

// countingSlow counts the Produce calls in progress and acknowledges them
// once release is closed.
type countingSlow struct {
	release chan struct{}
	started *atomic.Int64
}

func (p *countingSlow) Produce(ctx context.Context, topic, _ string, events [][]byte) (broker.Ack, error) {
	p.started.Add(1)
	select {
	case <-p.release:
	case <-ctx.Done():
		return broker.Ack{}, ctx.Err()
	}
	return broker.Ack{Stream: store.Stream{Topic: topic}, Count: len(events)}, nil
}

func (*countingSlow) ProduceBody(context.Context, string, string, string, []byte) (broker.Ack, error) {
	return broker.Ack{}, errors.New("unexpected body")
}

// A stream that stays open after its batches were answered holds no worker
// goroutine: only its handler and its Recv and Send goroutines remain.
// Goroutines are counted by their stacks, not runtime.NumGoroutine: a
// goroutine of an earlier test still ending (the Send goroutine of a
// stream whose handler returned) made that count fall short, for good.
func TestProduceStreamIdleWorkersEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The client sends 200 batches of 40 keys, then waits (RecvMsg blocks
	// until the test ends) with the stream open.
	s := &scriptedStream{ctx: ctx, n: 201, key: func(i int) string { return fmt.Sprint(i % 40) }}
	s.pause = func(i int) {
		if i == 200 {
			<-ctx.Done()
		}
	}
	done := make(chan error, 1)
	go func() { done <- NewProducer(instant{}).ProduceStream(s) }()

	// The handler and the stream's Recv and Send goroutines.
	const want = 3
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		answered := len(s.answers)
		s.mu.Unlock()
		got := streamGoroutines()
		if answered == 200 && got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d answers, %d goroutines in ProduceStream (want 200 and %d)", answered, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

// streamGoroutines counts the goroutines running ProduceStream or one of
// the goroutines it started.
func streamGoroutines() int {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "(*Producer).ProduceStream") {
			count++
		}
	}
	return count
}
