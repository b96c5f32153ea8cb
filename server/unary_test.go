package server

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// A unary Produce holds its batch's bytes in the produce memory until the
// batch is stored. One that finds no room waits, then fails with
// Unavailable naming the setting, holding nothing; once the first is
// stored, the next one fits.
func TestUnaryProduceTakesProduceMemory(t *testing.T) {
	p := &storingProducing{slowProducing: slowProducing{release: make(chan struct{})}}
	pm := broker.NewProduceMemory(1 << 20)
	srv := NewProducer(p).WithMemory(pm, 0)
	srv.unaryMemoryWait = 50 * time.Millisecond
	const size = 700 << 10
	msg := marshal(t, &floev1.ProduceRequest{Topic: "t", Events: []*floev1.Event{{Data: bytes.Repeat([]byte("1"), size)}}})
	call := func() error {
		dec := func(v any) error { return NewCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, v) }
		_, err := produceHandler(srv, context.Background(), dec, nil)
		return err
	}

	first := make(chan error, 1)
	go func() { first <- call() }()
	for deadline := time.Now().Add(10 * time.Second); pm.Held() < size; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first call holds %d bytes of produce memory, want %d or more", pm.Held(), size)
		}
	}
	held := pm.Held()
	err := call()
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "produce-memory") {
		t.Fatalf("second call with no room: %v, want Unavailable naming produce-memory", err)
	}
	if pm.Held() != held || p.stored.Load() != 0 {
		t.Fatalf("after the refused call: %d bytes held (want the first call's %d), %d batches stored (want 0)", pm.Held(), held, p.stored.Load())
	}

	close(p.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if pm.Held() != 0 {
		t.Fatalf("the first call was stored and still holds %d bytes", pm.Held())
	}
	if err := call(); err != nil {
		t.Fatalf("a call with room: %v", err)
	}
	if p.stored.Load() != 2 || pm.Held() != 0 {
		t.Fatalf("%d batches stored, %d bytes held; want 2 and 0", p.stored.Load(), pm.Held())
	}
}

// limitedProducing is storingProducing with a request limit, which it
// enforces as the broker does.
type limitedProducing struct {
	*storingProducing
	max int
}

func (p limitedProducing) Limits() broker.Limits { return broker.Limits{MaxRequestBytes: p.max} }

func (p limitedProducing) Produce(ctx context.Context, topic, key string, events [][]byte) (broker.Ack, error) {
	if err := broker.ValidateEvents(events, p.Limits()); err != nil {
		return broker.Ack{}, err
	}
	return p.storingProducing.Produce(ctx, topic, key, events)
}

// A unary Produce over the request limit does not wait for produce memory:
// it gets the error that names the limit at once, even while the memory is
// full.
func TestUnaryProduceOverLimitTakesNoMemory(t *testing.T) {
	p := limitedProducing{&storingProducing{slowProducing: slowProducing{release: make(chan struct{})}}, 800 << 10}
	pm := broker.NewProduceMemory(1 << 20)
	srv := NewProducer(p).WithMemory(pm, p.max)
	srv.unaryMemoryWait = 10 * time.Second
	call := func(size int) error {
		msg := marshal(t, &floev1.ProduceRequest{Topic: "t", Events: []*floev1.Event{{Data: bytes.Repeat([]byte("1"), size)}}})
		dec := func(v any) error { return NewCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, v) }
		_, err := produceHandler(srv, context.Background(), dec, nil)
		return err
	}
	first := make(chan error, 1)
	go func() { first <- call(700 << 10) }()
	defer func() {
		close(p.release)
		if err := <-first; err != nil {
			t.Error(err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); pm.Held() < 700<<10; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first call holds %d bytes of produce memory", pm.Held())
		}
	}
	start := time.Now()
	err := call(900 << 10)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("a call over the limit: %v, want ResourceExhausted naming the limit", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the call over the limit waited %v for produce memory", took)
	}
}
