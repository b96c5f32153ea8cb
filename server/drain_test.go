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
