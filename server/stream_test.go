package server

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/store"
)

// fakeStream is a ProduceStream whose client sends batches of one event of
// eventSize bytes as fast as the server reads them, and reads the answers
// only once read is closed.
type fakeStream struct {
	grpc.ServerStream // not called
	ctx               context.Context
	event             []byte
	events            int // per batch; 1 if 0
	recvs             atomic.Int64
	read              chan struct{}
}

func (s *fakeStream) Context() context.Context { return s.ctx }

func (s *fakeStream) RecvMsg(m any) error {
	b := m.(*decodeTarget).msg.(*produceBatch)
	b.requestID = uint64(s.recvs.Add(1))
	b.topic = "t"
	for range max(s.events, 1) {
		b.events = append(b.events, s.event)
	}
	return nil
}

func (s *fakeStream) SendMsg(any) error {
	select {
	case <-s.read:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *fakeStream) Send(r *floev1.ProduceStreamResponse) error { return s.SendMsg(r) }
func (s *fakeStream) Recv() (*floev1.ProduceStreamRequest, error) {
	return nil, errors.New("not used")
}

// instant acknowledges every batch at once.
type instant struct{}

func (instant) Produce(_ context.Context, topic, _ string, events [][]byte) (broker.Ack, error) {
	return broker.Ack{Stream: store.Stream{Topic: topic}, Count: len(events)}, nil
}

func (instant) ProduceBody(context.Context, string, string, string, []byte) (broker.Ack, error) {
	return broker.Ack{}, errors.New("unexpected body")
}

// slowProducing acknowledges batches once release is closed.
type slowProducing struct{ release chan struct{} }

func (p slowProducing) Produce(ctx context.Context, topic, _ string, events [][]byte) (broker.Ack, error) {
	select {
	case <-p.release:
	case <-ctx.Done():
		return broker.Ack{}, ctx.Err()
	}
	return broker.Ack{Stream: store.Stream{Topic: topic}, Count: len(events)}, nil
}

func (slowProducing) ProduceBody(context.Context, string, string, string, []byte) (broker.Ack, error) {
	return broker.Ack{}, errors.New("unexpected body")
}

// runStuck runs ProduceStream over a client that does not read its answers,
// waits until the server stops reading batches, and returns how many it
// read. The stream ends with the test.
func runStuck(t *testing.T, p Producing, eventSize, events int) int64 {
	t.Helper()
	return runStuckOn(t, NewProducer(p), eventSize, events)
}

// runStuckOn is runStuck on the server srv.
func runStuckOn(t *testing.T, srv *Producer, eventSize, events int) int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &fakeStream{ctx: ctx, event: make([]byte, eventSize), events: events, read: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- srv.ProduceStream(s) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the stream did not end with its context")
		}
	})
	// Read until the count holds still for 200 ms (bounded: 10 s).
	last, still := int64(-1), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if n := s.recvs.Load(); n != last {
			last, still = n, time.Now()
		} else if time.Since(still) > 200*time.Millisecond {
			return n
		}
	}
	t.Fatalf("the server still reads batches after 10 s: %d", s.recvs.Load())
	return 0
}

// A client that stops reading its answers holds maxStreamInflight of them:
// the server then stops reading its batches.
func TestProduceStreamBoundsUnreadAnswers(t *testing.T) {
	const slack = 2 // the batch Recv holds, and the one waiting for room
	if n := runStuck(t, instant{}, 10, 1); n > maxStreamInflight+slack {
		t.Fatalf("the server read %d batches of a client that reads no answer, want at most %d", n, maxStreamInflight+slack)
	}
}

// Batches waiting for the store hold at most maxStreamInflightBytes (one
// batch more may wait for room).
func TestProduceStreamBoundsBytesWaiting(t *testing.T) {
	const size = 1 << 20
	p := slowProducing{release: make(chan struct{})}
	t.Cleanup(func() { close(p.release) })
	want := int64(maxStreamInflightBytes/size + 2)
	if n := runStuck(t, p, size, 1); n > want {
		t.Fatalf("the server read %d batches of %d bytes while the store wrote none, want at most %d", n, size, want)
	}
}

// The broker's produce memory bounds the batches of all streams: with room
// for 4 batches, a stream whose batches the store does not write holds 4,
// and reads one more, which waits for room; a second stream then reads one,
// which waits too. Once stored, the batches give their bytes back.
func TestProduceStreamTakesProduceMemory(t *testing.T) {
	const size = 1 << 20
	p := &storingProducing{slowProducing: slowProducing{release: make(chan struct{})}}
	// A batch holds its event and 24 bytes per slot of its events slice.
	mem := broker.NewProduceMemory(4*size + 4096)
	srv := NewProducer(p).WithMemory(mem, 0)
	if n := runStuckOn(t, srv, size, 1); n != 5 {
		t.Fatalf("the server read %d batches of %d bytes with room for 4 in its produce memory, want 5", n, size)
	}
	if n := runStuckOn(t, srv, size, 1); n != 1 {
		t.Fatalf("a second stream read %d batches while the first held the produce memory, want 1 (waiting for room)", n)
	}
	if held := mem.Held(); held <= 4*size || held > mem.Size() {
		t.Fatalf("produce memory held %d bytes, want 4 batches of %d", held, size)
	}
	// The store writes: the batches stored give their bytes back, and the
	// streams go on until each has as many answers unread as it may (their
	// clients read none). Each then holds one batch, received and waiting
	// for room in its own budget, outside the produce memory.
	close(p.release)
	deadline := time.Now().Add(10 * time.Second)
	for p.stored.Load() < 2*maxStreamInflight || mem.Held() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the store wrote: %d batches stored, produce memory held %d bytes; want %d stored and none held",
				p.stored.Load(), mem.Held(), 2*maxStreamInflight)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// storingProducing is slowProducing that counts the batches it stored.
type storingProducing struct {
	slowProducing
	stored atomic.Int64
}

func (p *storingProducing) Produce(ctx context.Context, topic, key string, events [][]byte) (broker.Ack, error) {
	ack, err := p.slowProducing.Produce(ctx, topic, key, events)
	if err == nil {
		p.stored.Add(1)
	}
	return ack, err
}

// The budget counts what a batch holds, the slice of its events included:
// for events of a byte, 24 bytes each.
func TestProduceStreamBudgetCountsEventSlices(t *testing.T) {
	const events = 100_000
	p := slowProducing{release: make(chan struct{})}
	t.Cleanup(func() { close(p.release) })
	perBatch := events * (1 + 24)
	want := int64(maxStreamInflightBytes/perBatch + 2)
	if n := runStuck(t, p, 1, events); n > want {
		t.Fatalf("the server read %d batches of %d one-byte events while the store wrote none, want at most %d", n, events, want)
	}
}

// size counts what a batch decoded by the server's codec holds: the
// message's buffer at its capacity (a message in several pieces is copied
// into a buffer of the pool's size class), the key decoded out of it, and
// 24 bytes per event.
func TestBatchSizeCountsWhatItHolds(t *testing.T) {
	const events = 100_000
	req := &floev1.ProduceStreamRequest{RequestId: 1, Topic: "t", PartitionKey: strings.Repeat("k", 1000)}
	for range events {
		req.Events = append(req.Events, &floev1.Event{Data: []byte("1")})
	}
	raw, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	half := len(raw) / 2
	for _, data := range []mem.BufferSlice{
		{mem.SliceBuffer(raw)},
		{mem.SliceBuffer(raw[:half]), mem.SliceBuffer(raw[half:])}, // two HTTP/2 frames
	} {
		b := getBatch(&streamLayout)
		if err := NewCodec().Unmarshal(data, b); err != nil {
			t.Fatal(err)
		}
		if b.buf == nil {
			t.Fatal("the batch was decoded by copy, not from the message")
		}
		want := cap(b.buf.ReadOnlyData()) + len(b.key) + 24*cap(b.events)
		if got := b.size(); got < want || cap(b.buf.ReadOnlyData()) < len(raw) {
			t.Errorf("%d pieces: size %d, want at least %d (message %d bytes, buffer %d)", len(data), got, want, len(raw), cap(b.buf.ReadOnlyData()))
		}
		b.release()
	}
}

// A stream whose client stops reading its answers holds none of the produce
// memory: its batches are stored, and the one it received beyond its
// budget waits for room in the budget before it takes the memory. Else a
// few such clients held the whole produce memory for as long as they kept
// their streams open, and every other producer, REST requests and streams,
// waited for it (REST requests got 503).
func TestProduceStreamUnreadAnswersHoldNoProduceMemory(t *testing.T) {
	const size = 1 << 20
	mem := broker.NewProduceMemory(4*size + 4096)
	srv := NewProducer(instant{}).WithMemory(mem, 0)
	for range 2 {
		if n := runStuckOn(t, srv, size, 1); n > maxStreamInflight+2 {
			t.Fatalf("the server read %d batches of a client that reads no answer, want at most %d", n, maxStreamInflight+2)
		}
	}
	if held := mem.Held(); held != 0 {
		t.Fatalf("two streams whose clients read no answer hold %d bytes of the produce memory, want 0 (their batches are stored)", held)
	}
}
