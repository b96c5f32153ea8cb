package server

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sync"

	"google.golang.org/genproto/googleapis/api/httpbody"
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
	// streamWorkers is how many batches of one ProduceStream are in flight
	// at once (batches of one partition key always share a worker, in order).
	streamWorkers int
	seed          maphash.Seed
	draining      chan struct{}
	drainOnce     sync.Once
}

var _ floev1.ProducerServer = (*Producer)(nil)

// NewProducer serves p.
func NewProducer(p Producing) *Producer {
	return &Producer{p: p, streamWorkers: 8, seed: maphash.MakeSeed(), draining: make(chan struct{})}
}

// Produce stores a batch of events: the raw body (REST, or gRPC clients that
// send NDJSON) or typed events.
func (s *Producer) Produce(ctx context.Context, req *floev1.ProduceRequest) (*floev1.ProduceResponse, error) {
	ack, err := s.produce(ctx, req.GetTopic(), req.GetPartitionKey(), req.GetEvents(), req.GetBody())
	if err != nil {
		return nil, Status(err)
	}
	return ackResponse(ack), nil
}

// ProduceStream stores the batches of a stream. Batches are answered as they
// become durable, possibly out of order across partition keys; batches of the
// same topic and partition key are stored in the order they were sent. When
// the server drains (Drain), the stream stops taking batches, answers those
// it took, and ends with Unavailable: the client resends the rest elsewhere
// or after a restart.
func (s *Producer) ProduceStream(stream floev1.Producer_ProduceStreamServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	out := make(chan *floev1.ProduceStreamResponse, s.streamWorkers)
	workers := make([]chan *floev1.ProduceStreamRequest, s.streamWorkers)
	var wg sync.WaitGroup
	for i := range workers {
		in := make(chan *floev1.ProduceStreamRequest, 16)
		workers[i] = in
		wg.Go(func() {
			for req := range in {
				out <- s.produceOne(ctx, req)
			}
		})
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
		}
		sendErr <- err
	}()
	// Recv runs in its own goroutine so that a drain does not wait for the
	// client's next batch; it ends when the handler returns.
	recv := make(chan *floev1.ProduceStreamRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case recv <- req:
			case <-ctx.Done():
				return
			}
		}
	}()

	var (
		next uint64 // round-robin for batches without a key
		end  error
	)
loop:
	for {
		select {
		case req := <-recv:
			w := next
			if req.GetPartitionKey() != "" {
				w = maphash.String(s.seed, req.GetTopic()+"\x00"+req.GetPartitionKey())
			} else {
				next++
			}
			select {
			case workers[w%uint64(len(workers))] <- req:
			case <-s.draining:
				// Not taken: the client gets no answer for it, so it was not stored.
				end = status.Error(codes.Unavailable, "the broker is shutting down: batches not answered were not stored")
				break loop
			case <-ctx.Done():
				end = ctx.Err()
				break loop
			}
		case err := <-recvErr:
			if !errors.Is(err, io.EOF) {
				end = err
			}
			break loop
		case <-s.draining:
			end = status.Error(codes.Unavailable, "the broker is shutting down: batches not answered were not stored")
			break loop
		case <-ctx.Done():
			end = ctx.Err()
			break loop
		}
	}
	for _, in := range workers {
		close(in)
	}
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

// Drain makes produce streams stop taking batches and end once the batches
// they took are answered, so that a graceful stop does not wait for clients
// to close their streams. Unary calls are not affected.
func (s *Producer) Drain() {
	s.drainOnce.Do(func() { close(s.draining) })
}

func (s *Producer) produceOne(ctx context.Context, req *floev1.ProduceStreamRequest) *floev1.ProduceStreamResponse {
	ack, err := s.produce(ctx, req.GetTopic(), req.GetPartitionKey(), req.GetEvents(), req.GetBody())
	if err != nil {
		return &floev1.ProduceStreamResponse{
			RequestId: req.GetRequestId(),
			Result:    &floev1.ProduceStreamResponse_Error{Error: ErrorOf(err)},
		}
	}
	return &floev1.ProduceStreamResponse{
		RequestId: req.GetRequestId(),
		Result:    &floev1.ProduceStreamResponse_Ack{Ack: ackResponse(ack)},
	}
}

// produce stores typed events or a raw body (never both), for Produce and
// ProduceStream alike.
func (s *Producer) produce(ctx context.Context, topic, key string, events []*floev1.Event, body *httpbody.HttpBody) (broker.Ack, error) {
	switch {
	case body != nil && len(events) > 0:
		return broker.Ack{}, fmt.Errorf("%w: send either events or body, not both", broker.ErrInvalidParameter)
	case body != nil:
		return s.p.ProduceBody(ctx, topic, key, body.GetContentType(), body.GetData())
	}
	return s.p.Produce(ctx, topic, key, eventData(events))
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
