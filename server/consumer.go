package server

import (
	"cmp"
	"context"
	"slices"
	"time"

	"google.golang.org/grpc"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/internal/reqbuf"
)

// Consuming is the domain side of the Consumer service; *group.Coordinator
// satisfies it.
type Consuming interface {
	Register(ctx context.Context, r group.Registration) error
	Poll(ctx context.Context, r group.PollRequest) ([]group.Batch, error)
	Commit(ctx context.Context, consumerID string) error
	Goodbye(ctx context.Context, consumerID string, commit bool) error
}

var _ Consuming = (*group.Coordinator)(nil)

// Consumer implements floev1.ConsumerServer.
type Consumer struct {
	floev1.UnsafeConsumerServer
	c Consuming
}

var _ floev1.ConsumerServer = (*Consumer)(nil)

// NewConsumer serves c.
func NewConsumer(c Consuming) *Consumer { return &Consumer{c: c} }

// Register adds a consumer to its group.
func (s *Consumer) Register(ctx context.Context, req *floev1.RegisterRequest) (*floev1.RegisterResponse, error) {
	start, err := group.ParseStartPosition(req.GetOnNewGroup())
	if err != nil {
		return nil, Status(err)
	}
	reg := group.Registration{
		ConsumerID: req.GetConsumerId(),
		Group:      req.GetGroup(),
		Topics:     req.GetTopic(),
		OnNewGroup: start,
	}
	if err := s.c.Register(ctx, reg); err != nil {
		return nil, Status(err)
	}
	return &floev1.RegisterResponse{ConsumerId: reg.ConsumerID, Group: cmp.Or(reg.Group, group.DefaultGroup)}, nil
}

// Poll reads the next events of the consumer.
func (s *Consumer) Poll(ctx context.Context, req *floev1.PollRequest) (*floev1.PollResponse, error) {
	pr := group.PollRequest{
		ConsumerID: req.GetConsumerId(),
		MaxBytes:   int(req.GetMaxBytes()),
		MaxEvents:  int(req.GetMaxEvents()),
		Wait:       time.Duration(req.GetTimeout()) * time.Millisecond,
	}
	if l := reqbuf.From(ctx); l != nil {
		// The events are read into a buffer taken back once the answer
		// is written (REST: the gateway) or encoded (gRPC: Codec).
		pr.Buffer = l.Get
	}
	batches, err := s.c.Poll(ctx, pr)
	if err != nil {
		return nil, Status(err)
	}
	resp := &floev1.PollResponse{Batches: make([]*floev1.PollBatch, len(batches))}
	for i, b := range batches {
		resp.Batches[i] = &floev1.PollBatch{
			Topic:       b.Stream.Topic,
			Token:       b.Stream.Token,
			RangeIndex:  b.Stream.RangeIndex,
			Version:     b.Stream.Version,
			StartOffset: b.Start,
			Values:      b.Events,
		}
	}
	return resp, nil
}

// ConsumerServiceDesc is floev1.Consumer_ServiceDesc with a Poll handler
// that reads the events into buffers lent for the call (pollHandler).
// Register s with it: grpcServer.RegisterService(ConsumerServiceDesc(), s),
// and install Codec, which takes the buffers back.
func ConsumerServiceDesc() *grpc.ServiceDesc {
	return withHandler(&floev1.Consumer_ServiceDesc, "Poll", pollHandler)
}

// withHandler returns a copy of desc whose method handles with h.
func withHandler(desc *grpc.ServiceDesc, method string, h grpc.MethodHandler) *grpc.ServiceDesc {
	out := *desc
	out.Methods = slices.Clone(desc.Methods)
	for i := range out.Methods {
		if out.Methods[i].MethodName == method {
			out.Methods[i].Handler = h
		}
	}
	return &out
}

// lentPoll is the reply of a gRPC Poll whose events live in buffers lent by
// lender. Codec encodes resp, which copies the events into the message
// sent, and then takes the buffers back: nothing reads them afterwards.
type lentPoll struct {
	resp   *floev1.PollResponse
	lender *reqbuf.Lender
}

// pollHandler is the gRPC handler of Poll: Poll with a Lender in its
// context, so that the events are read into pooled buffers instead of
// memory allocated for each call. Interceptors see the reply as a
// *lentPoll. On an error there is no reply to encode, and the buffers go
// back at once.
func pollHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := new(floev1.PollRequest)
	if err := dec(req); err != nil {
		return nil, err
	}
	s := srv.(*Consumer)
	call := func(ctx context.Context, req any) (any, error) {
		l := reqbuf.New()
		resp, err := s.Poll(reqbuf.With(ctx, l), fitDefaultReceiveLimit(req.(*floev1.PollRequest)))
		if err != nil {
			l.Release()
			return nil, err
		}
		return &lentPoll{resp: resp, lender: l}, nil
	}
	if interceptor == nil {
		return call(ctx, req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: floev1.Consumer_Poll_FullMethodName}
	return interceptor(ctx, req, info, call)
}

// A gRPC client receives messages of at most 4 MiB unless it raises its
// limit (grpc-go's MaxCallRecvMsgSize, and the same default in the other
// languages' libraries). A Poll whose answer is larger fails on the client,
// after the broker counted its events as read: the next poll commits past
// them. So a gRPC Poll that sets no max_bytes reads at most
// grpcPollBytes of events, and at most grpcPollEvents events (protobuf
// frames each event in up to 4 bytes: 0.8 MiB). That leaves 1.2 MiB for the
// batches' headers (about 32 bytes and the topic name each, one per
// sub-range read): over 4,000 sub-ranges with 249-character topics.
const (
	grpcPollBytes  = 2 << 20
	grpcPollEvents = 200_000
)

// fitDefaultReceiveLimit bounds a Poll without max_bytes so that its answer
// fits the default receive limit of gRPC clients (unless one event is
// larger). A client that sets max_bytes gets what it asks for, up to
// --max-poll-bytes.
func fitDefaultReceiveLimit(req *floev1.PollRequest) *floev1.PollRequest {
	if req.GetMaxBytes() != 0 {
		return req
	}
	req.MaxBytes = grpcPollBytes
	if req.GetMaxEvents() == 0 || req.GetMaxEvents() > grpcPollEvents {
		req.MaxEvents = grpcPollEvents
	}
	return req
}

// Commit commits the position reached by the previous poll.
func (s *Consumer) Commit(ctx context.Context, req *floev1.CommitRequest) (*floev1.CommitResponse, error) {
	if err := s.c.Commit(ctx, req.GetConsumerId()); err != nil {
		return nil, Status(err)
	}
	return &floev1.CommitResponse{}, nil
}

// Goodbye commits (unless commit is false) and unregisters the consumer.
func (s *Consumer) Goodbye(ctx context.Context, req *floev1.GoodbyeRequest) (*floev1.GoodbyeResponse, error) {
	commit := req.Commit == nil || req.GetCommit()
	if err := s.c.Goodbye(ctx, req.GetConsumerId(), commit); err != nil {
		return nil, Status(err)
	}
	return &floev1.GoodbyeResponse{}, nil
}
