package server

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// Producing is the domain side of the Producer service; *broker.Producer
// satisfies it.
type Producing interface {
	Produce(ctx context.Context, topic, key string, events [][]byte) (broker.Ack, error)
	ProduceBody(ctx context.Context, topic, key, contentType string, body []byte) (broker.Ack, error)
}

var _ Producing = (*broker.Producer)(nil)

// Producer implements floev1.ProducerServer.
type Producer struct {
	floev1.UnsafeProducerServer
	p Producing
	// streamWorkers is how many batches of one ProduceStream are stored at
	// once (batches of one partition key always share a worker, in order).
	streamWorkers int
	seed          maphash.Seed
	draining      *drainSignal
	// mem, if set, bounds the bytes of the batches that streams and unary
	// calls took and did not store yet, across calls (WithMemory).
	mem *broker.ProduceMemory
	// maxRequestBytes is the request limit: a unary batch over it takes
	// nothing from mem (WithMemory).
	maxRequestBytes int
	// unaryMemoryWait bounds the wait of a unary Produce for room in mem.
	unaryMemoryWait time.Duration
}

var _ floev1.ProducerServer = (*Producer)(nil)

// NewProducer serves p.
func NewProducer(p Producing) *Producer {
	return &Producer{p: p, streamWorkers: maxStreamInflight, seed: maphash.MakeSeed(), draining: newDrainSignal(), unaryMemoryWait: defaultUnaryMemoryWait}
}

// defaultUnaryMemoryWait is how long a unary Produce waits for room in the
// produce memory.
const defaultUnaryMemoryWait = time.Second

// WithMemory makes the streams of s take the bytes of each batch from mem
// until the batch is stored, and wait while it has no room: the budget of
// each stream bounds one client, mem all of them. Unary Produce calls take
// theirs too, and wait a second at most (see produceUnary), unless they are
// over maxRequestBytes (0: no limit), the request limit of the Producing,
// which refuses them. Call it before serving.
func (s *Producer) WithMemory(mem *broker.ProduceMemory, maxRequestBytes int) *Producer {
	s.mem = mem
	s.maxRequestBytes = maxRequestBytes
	return s
}

// takeMemory takes the share of mem of a batch of size bytes (see
// memShare), waiting while the stream lasts and the broker does not drain.
func (s *Producer) takeMemory(ctx context.Context, size int64) error {
	if s.mem == nil || size == 0 {
		return nil
	}
	if _, ok := s.mem.TryAcquire(size); ok {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.draining.Context(), cancel)()
	if _, err := s.mem.Acquire(ctx, size, 0); err != nil {
		if s.draining.Context().Err() != nil {
			return errStreamDrained
		}
		return err
	}
	return nil
}

// memorySize is what a batch takes from the produce memory: its size, or
// nothing for a batch over the request limit, which the Producing refuses
// at once (one waited for room, unbounded on a stream, to be refused).
func (s *Producer) memorySize(b *produceBatch) int64 {
	if s.overLimit(b) {
		return 0
	}
	return int64(b.size())
}

// giveMemory gives back what takeMemory took for a batch of size bytes.
func (s *Producer) giveMemory(size int64) {
	if s.mem != nil && size > 0 {
		s.mem.Release(min(size, s.mem.Size()))
	}
}

// Produce stores a batch of events: the raw body (REST, or gRPC clients that
// send NDJSON) or typed events. The REST gateway calls it; the gRPC server
// calls produceHandler instead (see ProducerServiceDesc).
func (s *Producer) Produce(ctx context.Context, req *floev1.ProduceRequest) (*floev1.ProduceResponse, error) {
	ack, err := s.produce(ctx, req.GetTopic(), req.GetPartitionKey(), req.GetEvents(), req.GetBody())
	if err != nil {
		return nil, Status(err)
	}
	return ackResponse(ack), nil
}

// ProducerServiceDesc is floev1.Producer_ServiceDesc with a Produce handler
// that has Codec decode the request into a batch without copying its
// events, as ProduceStream does. Register s with it:
// grpcServer.RegisterService(ProducerServiceDesc(), s).
func ProducerServiceDesc() *grpc.ServiceDesc {
	return withHandler(&floev1.Producer_ServiceDesc, "Produce", produceHandler)
}

// produceHandler is the gRPC handler of Produce. Interceptors see the
// request as a *produceBatch, and must not keep it: it is released when the
// call returns.
func produceHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	b := getBatch(&unaryLayout)
	defer b.release()
	if err := dec(b); err != nil {
		return nil, err
	}
	s := srv.(*Producer)
	if interceptor == nil {
		return s.produceUnary(ctx, b)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: floev1.Producer_Produce_FullMethodName}
	return interceptor(ctx, b, info, func(ctx context.Context, req any) (any, error) {
		return s.produceUnary(ctx, req.(*produceBatch))
	})
}

// produceUnary stores the batch of a unary Produce, holding its bytes in
// the produce memory until it is stored. gRPC reads a unary request whole
// before the handler runs, so a batch that finds no room holds its message
// while it waits: it waits at most unaryMemoryWait, then fails with
// Unavailable and frees it, and the client sends it again later. A batch
// over the request limit takes no memory: the broker refuses it at once,
// with the error that names the limit.
func (s *Producer) produceUnary(ctx context.Context, b *produceBatch) (*floev1.ProduceResponse, error) {
	if size := s.memorySize(b); s.mem != nil && size > 0 {
		n, err := s.mem.Acquire(ctx, size, s.unaryMemoryWait)
		if err != nil {
			return nil, Status(err)
		}
		defer s.mem.Release(n)
	}
	ack, err := s.storeBatch(ctx, b)
	if err != nil {
		return nil, Status(err)
	}
	return ackResponse(ack), nil
}

// overLimit says whether the events or the body of b exceed the request
// limit given to WithMemory. It was asked of the Producing, which in the
// broker is wrapped by the metrics and did not say it, so that a batch over
// the limit waited for produce memory, then failed with Unavailable ("send
// it again later") instead of the error that names the limit.
func (s *Producer) overLimit(b *produceBatch) bool {
	if s.maxRequestBytes <= 0 {
		return false
	}
	n := len(b.body)
	for _, e := range b.events {
		n += len(e)
	}
	return n > s.maxRequestBytes
}

// Bounds of one ProduceStream: at most maxStreamInflight batches taken from
// the stream and not yet answered, and at most maxStreamInflightBytes of
// batches taken and not yet stored (one batch is always taken, whatever its
// size). At a bound the stream stops reading, and HTTP/2 flow control holds
// the client back: a client that sends faster than the store writes holds
// a bounded amount of the broker's memory, and one that stops reading its
// answers holds maxStreamInflight answers, its batches being stored and
// released meanwhile.
const (
	maxStreamInflight      = 64
	maxStreamInflightBytes = 16 << 20
)

// ProduceStream stores the batches of a stream. Batches are answered as they
// become durable, possibly out of order across partition keys; batches of the
// same topic and partition key are stored in the order they were sent. When
// the server drains (Drain), the stream stops taking batches, answers those
// it took, and ends with Unavailable: the client resends the rest elsewhere
// or after a restart. At most maxStreamInflight batches, of at most
// maxStreamInflightBytes (one batch at least), are taken and unanswered at a
// time.
func (s *Producer) ProduceStream(stream floev1.Producer_ProduceStreamServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	// The budget: batches taken and not answered, bytes of batches taken
	// and not stored. The workers and the sender give back, and wake the
	// Recv goroutine if it waits for room (a wake-up sent before it waits
	// stays in the channel).
	var inflight, bytes atomic.Int64
	room := make(chan struct{}, 1)
	giveBack := func(batches, size int64) {
		inflight.Add(-batches)
		bytes.Add(-size)
		select {
		case room <- struct{}{}:
		default:
		}
	}
	// Never full: at most maxStreamInflight batches are in flight.
	out := make(chan *floev1.ProduceStreamResponse, maxStreamInflight)
	// A worker's goroutine runs only while the worker has batches: it
	// starts with the first one handed to it and ends once it stored the
	// last, so an idle stream costs three goroutines (the handler, Recv,
	// Send) and a busy one one more per worker with batches. The batches
	// wait in a queue that grows as needed and is dropped when empty: an
	// idle worker holds no memory, and handing a batch over never blocks.
	type worker struct {
		mu      sync.Mutex
		queue   []*produceBatch
		running bool // a goroutine stores the queue
	}
	workers := make([]worker, s.streamWorkers)
	var wg sync.WaitGroup
	// next takes the batch at the head of w's queue, or with none says the
	// goroutine ends: the handler starts another for the next batch.
	next := func(w *worker) *produceBatch {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.queue) == 0 {
			w.queue, w.running = nil, false
			return nil
		}
		b := w.queue[0]
		w.queue[0] = nil
		w.queue = w.queue[1:]
		return b
	}
	hand := func(w *worker, b *produceBatch) {
		w.mu.Lock()
		w.queue = append(w.queue, b)
		start := !w.running
		w.running = true
		w.mu.Unlock()
		if start {
			wg.Go(func() {
				for b := next(w); b != nil; b = next(w) {
					size, held := int64(b.size()), s.memorySize(b)
					out <- s.produceOne(ctx, b)
					s.giveMemory(held)
					giveBack(0, size)
				}
			})
		}
	}
	sendErr := make(chan error, 1)
	go func() {
		var err error
		for resp := range out {
			if err == nil {
				if err = stream.Send(resp); err != nil {
					cancel()
				}
			}
			giveBack(1, 0)
		}
		sendErr <- err
	}()
	// take waits until the budget has room for a batch of size, and takes
	// it; it fails when the stream ends or the broker drains meanwhile. Only
	// the Recv goroutine takes.
	take := func(size int64) error {
		for {
			n, b := inflight.Load(), bytes.Load()
			if n < maxStreamInflight && (b == 0 || b+size <= maxStreamInflightBytes) {
				break
			}
			select {
			case <-room:
			case <-s.draining.Done():
				return errStreamDrained
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		inflight.Add(1)
		bytes.Add(size)
		return nil
	}
	// Recv runs in its own goroutine so that a drain does not wait for the
	// client's next batch; it ends when the handler returns. Batches come
	// from RecvMsg into a produceBatch, which Codec decodes without copying
	// the events (floev1's Recv would allocate a ProduceStreamRequest and
	// copy every event).
	recv := make(chan *produceBatch)
	recvErr := make(chan error, 1)
	go func() {
		for {
			b := getBatch(&streamLayout)
			if err := recvMsg(stream, b); err != nil {
				b.release()
				recvErr <- err
				return
			}
			// The batch takes room in the stream's budget, then its bytes
			// from the produce memory, before the next message is read:
			// while there is no room, the stream holds this one message
			// beyond them, and the client's next ones wait in its
			// flow-control window. The budget comes first: a client that
			// stops reading its answers fills its budget for good, and the
			// batch waiting for it must not hold the produce memory of
			// every other producer meanwhile. (Not taken, or dropped
			// below: the client gets no answer for it, so it was not
			// stored; the budget no longer matters once the stream ends.)
			size, held := int64(b.size()), s.memorySize(b)
			if err := take(size); err != nil {
				b.release()
				recvErr <- err
				return
			}
			if err := s.takeMemory(ctx, held); err != nil {
				b.release()
				recvErr <- err
				return
			}
			select {
			case recv <- b:
			case <-s.draining.Done():
				s.giveMemory(held)
				b.release()
				recvErr <- errStreamDrained
				return
			case <-ctx.Done():
				s.giveMemory(held)
				b.release()
				return
			}
		}
	}()

	var (
		rr  uint64 // round-robin for batches without a key
		end error
	)
loop:
	for {
		select {
		case b := <-recv:
			// The batch holds its room in the budget and its share of the
			// produce memory (both taken by the Recv goroutine) until a
			// worker stored it, or until it is dropped here.
			w := rr
			if b.key != "" {
				w = maphash.String(s.seed, b.topic+"\x00"+b.key)
			} else {
				rr++
			}
			hand(&workers[w%uint64(len(workers))], b)
		case err := <-recvErr:
			if !errors.Is(err, io.EOF) {
				end = err
			}
			break loop
		case <-s.draining.Done():
			end = errStreamDrained
			break loop
		case <-ctx.Done():
			end = ctx.Err()
			break loop
		}
	}
	// Every batch handed over is stored and answered.
	wg.Wait()
	close(out)
	if err := <-sendErr; err != nil {
		return err
	}
	if end != nil {
		if _, ok := status.FromError(end); ok {
			return end
		}
		return status.Error(codes.Canceled, end.Error())
	}
	return nil
}

// errStreamDrained ends a produce stream at shutdown.
var errStreamDrained = shuttingDown("the broker is shutting down: batches not answered were not stored")

// Drain makes produce streams stop taking batches and end once the batches
// they took are answered, so that a graceful stop does not wait for clients
// to close their streams. Unary calls are not affected.
func (s *Producer) Drain() {
	s.draining.Drain()
}

// produceOne produces a batch of a stream and releases it.
func (s *Producer) produceOne(ctx context.Context, b *produceBatch) *floev1.ProduceStreamResponse {
	ack, err := s.storeBatch(ctx, b)
	id := b.requestID
	b.release() // the store no longer reads the events
	if err != nil {
		return &floev1.ProduceStreamResponse{
			RequestId: id,
			Result:    &floev1.ProduceStreamResponse_Error{Error: ErrorOf(err)},
		}
	}
	return &floev1.ProduceStreamResponse{
		RequestId: id,
		Result:    &floev1.ProduceStreamResponse_Ack{Ack: ackResponse(ack)},
	}
}

// storeBatch stores the typed events or the raw body (never both) of a
// batch.
func (s *Producer) storeBatch(ctx context.Context, b *produceBatch) (broker.Ack, error) {
	if b.hasBody {
		return s.produceBody(ctx, b.topic, b.key, len(b.events), b.contentType, b.body)
	}
	return s.p.Produce(ctx, b.topic, b.key, b.events)
}

// produce stores typed events or a raw body (never both), for Produce.
func (s *Producer) produce(ctx context.Context, topic, key string, events []*floev1.Event, body *httpbody.HttpBody) (broker.Ack, error) {
	if body != nil {
		return s.produceBody(ctx, topic, key, len(events), body.GetContentType(), body.GetData())
	}
	return s.p.Produce(ctx, topic, key, eventData(events))
}

// produceBody stores a raw body, refused when events came with it.
func (s *Producer) produceBody(ctx context.Context, topic, key string, events int, contentType string, body []byte) (broker.Ack, error) {
	if events > 0 {
		return broker.Ack{}, fmt.Errorf("%w: send either events or body, not both", broker.ErrInvalidParameter)
	}
	return s.p.ProduceBody(ctx, topic, key, contentType, body)
}

func eventData(events []*floev1.Event) [][]byte {
	out := make([][]byte, len(events))
	for i, e := range events {
		out[i] = e.GetData()
	}
	return out
}

func ackResponse(a broker.Ack) *floev1.ProduceResponse {
	return &floev1.ProduceResponse{
		Topic:       a.Stream.Topic,
		Token:       a.Stream.Token,
		RangeIndex:  a.Stream.RangeIndex,
		Version:     a.Stream.Version,
		StartOffset: a.Start,
		Count:       uint32(a.Count),
	}
}
