package server_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/server"
	"github.com/floe-streams/floe/store"
)

// serve serves srv on a free port until the test ends and returns a client
// connection to it.
func serve(t *testing.T, srv *grpc.Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// wantShuttingDown checks the error of a stream ended by a drain:
// Unavailable with the ErrorInfo of UNAVAILABLE.
func wantShuttingDown(t *testing.T, what string, err error) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		t.Fatalf("%s ended with %v, want Unavailable", what, err)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*floev1.ErrorInfo); ok {
			if info.GetCode() != floev1.ErrorCode_ERROR_CODE_UNAVAILABLE || info.GetHttpStatus() != 503 {
				t.Errorf("%s: ErrorInfo %v, want UNAVAILABLE/503", what, info)
			}
			return
		}
	}
	t.Errorf("%s: %v has no ErrorInfo detail", what, err)
}

// acking stores nothing and acknowledges every batch.
type acking struct{}

func (acking) Produce(_ context.Context, topic, _ string, events [][]byte) (broker.Ack, error) {
	return broker.Ack{Stream: store.Stream{Topic: topic}, Count: len(events)}, nil
}

func (acking) ProduceBody(context.Context, string, string, string, []byte) (broker.Ack, error) {
	return broker.Ack{}, errors.New("unexpected body")
}

// A produce stream that the server drains ends with Unavailable and its
// ErrorInfo, as every other gRPC error.
func TestProduceStreamDrainErrorInfo(t *testing.T) {
	p := server.NewProducer(acking{})
	srv := grpc.NewServer(grpc.ForceServerCodecV2(server.NewCodec()))
	srv.RegisterService(server.ProducerServiceDesc(), p)
	cc := serve(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	stream, err := floev1.NewProducerClient(cc).ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&floev1.ProduceStreamRequest{RequestId: 1, Topic: "t", Events: []*floev1.Event{{Data: []byte(`{}`)}}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetAck() == nil {
		t.Fatalf("ack: %v %v", resp, err)
	}
	p.Drain()
	_, err = stream.Recv()
	wantShuttingDown(t, "the produce stream", err)
}

// Health Watch streams end at a drain, each once its watcher was told the
// service is not serving (the broker drains them after the health server's
// Shutdown, but a watcher must never miss NOT_SERVING); other streams are
// not affected.
func TestHealthWatchesDrain(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	watches := server.NewHealthWatches()
	p := server.NewProducer(acking{})
	srv := grpc.NewServer(grpc.ForceServerCodecV2(server.NewCodec()), grpc.ChainStreamInterceptor(watches.StreamServerInterceptor()))
	healthpb.RegisterHealthServer(srv, hs)
	srv.RegisterService(server.ProducerServiceDesc(), p)
	cc := serve(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	watch := func(service string, want healthpb.HealthCheckResponse_ServingStatus) healthpb.Health_WatchClient {
		t.Helper()
		w, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := w.Recv(); err != nil || resp.GetStatus() != want {
			t.Fatalf("watch %q: %v %v, want %v", service, resp, err, want)
		}
		return w
	}
	serving := watch("svc", healthpb.HealthCheckResponse_SERVING)
	unknown := watch("unknown", healthpb.HealthCheckResponse_SERVICE_UNKNOWN)
	stream, err := floev1.NewProducerClient(cc).ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Drained before the health server's shutdown, a watcher last told
	// SERVING waits for the news: the broker never ends a watch on SERVING.
	watches.Drain()
	time.Sleep(50 * time.Millisecond)
	hs.Shutdown()
	if resp, err := serving.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch of svc after the drain: %v %v, want NOT_SERVING", resp, err)
	}
	_, err = serving.Recv()
	wantShuttingDown(t, "the watch of svc", err)
	_, err = unknown.Recv()
	wantShuttingDown(t, "the watch of an unknown service", err)
	// A watch opened after the drain is told, then ended.
	late := watch("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	_, err = late.Recv()
	wantShuttingDown(t, "a watch opened after the drain", err)

	// The produce stream is the Producer's to drain: it still works.
	if err := stream.Send(&floev1.ProduceStreamRequest{RequestId: 1, Topic: "t", Events: []*floev1.Event{{Data: []byte(`{}`)}}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetAck() == nil {
		t.Fatalf("produce stream after the health drain: %v %v", resp, err)
	}
}

// committing is a store whose writes, once begun, complete whatever the
// stream does meanwhile (as a write already in a commit does): each
// Produce signals started, waits for release, and counts the batch stored.
type committing struct {
	started chan struct{}
	release chan struct{}
	stored  chan struct{}
}

func (c committing) Produce(_ context.Context, topic, _ string, events [][]byte) (broker.Ack, error) {
	c.started <- struct{}{}
	<-c.release
	c.stored <- struct{}{}
	return broker.Ack{Stream: store.Stream{Topic: topic}, Count: len(events)}, nil
}

func (committing) ProduceBody(context.Context, string, string, string, []byte) (broker.Ack, error) {
	return broker.Ack{}, errors.New("unexpected body")
}

// rawMessage sends a message as the bytes given.
type rawMessage []byte

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*rawMessage), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*rawMessage) = append(rawMessage(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// A produce stream ended by a message that does not decode answers the
// batch it took before, as a drain does. One ended by gRPC's transport (a
// message over the size limit) ends at once: gRPC sends its status before
// the handler can answer, so a batch being stored meanwhile is stored but
// never answered, as README says.
func TestProduceStreamEndsByBadMessage(t *testing.T) {
	valid, err := proto.Marshal(&floev1.ProduceStreamRequest{RequestId: 1, Topic: "t", Events: []*floev1.Event{{Data: []byte(`{}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		bad    rawMessage
		code   codes.Code
		answer bool // batch 1 is answered before the stream ends
	}{
		{"a message that does not decode", rawMessage{0x12, 0x05, 'a'}, codes.InvalidArgument, true},
		{"a message over the size limit", make(rawMessage, 2048), codes.ResourceExhausted, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := committing{started: make(chan struct{}, 1), release: make(chan struct{}), stored: make(chan struct{}, 1)}
			srv := grpc.NewServer(grpc.ForceServerCodecV2(server.NewCodec()), grpc.MaxRecvMsgSize(1024))
			srv.RegisterService(server.ProducerServiceDesc(), server.NewProducer(c))
			cc := serve(t, srv)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stream, err := cc.NewStream(ctx, &floev1.Producer_ServiceDesc.Streams[0], floev1.Producer_ProduceStream_FullMethodName, grpc.ForceCodec(rawCodec{}))
			if err != nil {
				t.Fatal(err)
			}
			first := rawMessage(valid)
			if err := stream.SendMsg(&first); err != nil {
				t.Fatal(err)
			}
			<-c.started
			if err := stream.SendMsg(&tc.bad); err != nil {
				t.Fatal(err)
			}
			if !tc.answer {
				// gRPC ends the stream while batch 1 is being stored.
				var out rawMessage
				if err := stream.RecvMsg(&out); status.Code(err) != tc.code {
					t.Fatalf("stream: %v, want %v", err, tc.code)
				}
			}
			close(c.release)
			select {
			case <-c.stored:
			case <-time.After(5 * time.Second):
				t.Fatal("batch 1 was not stored")
			}
			var out rawMessage
			err = stream.RecvMsg(&out)
			if !tc.answer {
				if status.Code(err) != tc.code {
					t.Fatalf("after the end: %v, want %v", err, tc.code)
				}
				return
			}
			var resp floev1.ProduceStreamResponse
			if err != nil || proto.Unmarshal(out, &resp) != nil || resp.GetRequestId() != 1 || resp.GetAck() == nil {
				t.Fatalf("batch 1: %v %v, want its ack before the end", &resp, err)
			}
			if err := stream.RecvMsg(&out); status.Code(err) != tc.code {
				t.Fatalf("end: %v, want %v", err, tc.code)
			}
		})
	}
}
