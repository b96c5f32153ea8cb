package floe_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/floe-streams/floe"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// stopTimed stops a node in the background; the channel gets how long the
// stop took.
func stopTimed(stop func()) <-chan time.Duration {
	took := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		stop()
		took <- time.Since(start)
	}()
	return took
}

// An open health Watch stream (every gRPC client that checks health keeps
// one) does not hold a graceful stop: the watcher is told NOT_SERVING, then
// its stream ends with Unavailable, well before the shutdown timeout, and
// Run returns nil.
func TestGRPCShutdownEndsHealthWatch(t *testing.T) {
	_, a, stop := runNode(t, func(o *floe.Options) { o.ShutdownTimeout = 10 * time.Second })
	health := healthpb.NewHealthClient(dial(t, a.GRPC))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	type watcher struct {
		service string
		first   healthpb.HealthCheckResponse_ServingStatus
		stream  healthpb.Health_WatchClient
	}
	watchers := []*watcher{
		{service: "", first: healthpb.HealthCheckResponse_SERVING},
		{service: "floe.v1.Producer", first: healthpb.HealthCheckResponse_SERVING},
		{service: "no.such.Service", first: healthpb.HealthCheckResponse_SERVICE_UNKNOWN},
	}
	for _, w := range watchers {
		var err error
		if w.stream, err = health.Watch(ctx, &healthpb.HealthCheckRequest{Service: w.service}); err != nil {
			t.Fatal(err)
		}
		if resp, err := w.stream.Recv(); err != nil || resp.GetStatus() != w.first {
			t.Fatalf("watch %q: %v %v, want %v", w.service, resp, err, w.first)
		}
	}

	took := stopTimed(stop)
	for _, w := range watchers {
		var seen []healthpb.HealthCheckResponse_ServingStatus
		for {
			resp, err := w.stream.Recv()
			if err != nil {
				wantCode(t, err, codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, 503)
				break
			}
			seen = append(seen, resp.GetStatus())
		}
		if w.first == healthpb.HealthCheckResponse_SERVING &&
			(len(seen) == 0 || seen[len(seen)-1] != healthpb.HealthCheckResponse_NOT_SERVING) {
			t.Errorf("watch %q ended after %v, want NOT_SERVING before the end", w.service, seen)
		}
	}
	if d := <-took; d > 5*time.Second {
		t.Errorf("the stop took %v: the Watch streams held it", d)
	}
}

// The streams and long polls that a shutdown ends get Unavailable with
// its ErrorInfo, as every other gRPC error.
func TestGRPCShutdownErrorsHaveErrorInfo(t *testing.T) {
	_, a, stop := runNode(t, func(o *floe.Options) { o.ShutdownTimeout = 10 * time.Second })
	conn := dial(t, a.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A produce stream with one batch answered, kept open.
	stream, err := floev1.NewProducerClient(conn).ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &floev1.ProduceStreamRequest{RequestId: 1, Topic: "held", Events: []*floev1.Event{{Data: []byte(`{"n":1}`)}}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetAck() == nil {
		t.Fatalf("ack: %v %v", resp, err)
	}

	// A long poll waiting for events.
	consumer := floev1.NewConsumerClient(conn)
	if _, err := consumer.Register(ctx, &floev1.RegisterRequest{ConsumerId: "c", Topic: []string{"idle"}}); err != nil {
		t.Fatal(err)
	}
	polled := make(chan error, 1)
	go func() {
		_, err := consumer.Poll(ctx, &floev1.PollRequest{ConsumerId: "c", Timeout: 30000})
		polled <- err
	}()
	time.Sleep(500 * time.Millisecond) // the poll reaches the broker on the open connection

	took := stopTimed(stop)
	_, err = stream.Recv()
	wantCode(t, err, codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, 503)
	wantCode(t, <-polled, codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, 503)
	if d := <-took; d > 5*time.Second {
		t.Errorf("the stop took %v", d)
	}
}

// An open server reflection stream (grpcui and other browsing tools keep
// one for as long as their connection) does not hold a graceful stop: it
// answers its requests until then, and ends with Unavailable, v1 and
// v1alpha alike.
func TestGRPCShutdownEndsReflectionStreams(t *testing.T) {
	_, a, stop := runNode(t, func(o *floe.Options) { o.ShutdownTimeout = 10 * time.Second })
	conn := dial(t, a.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	v1, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := v1.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := v1.Recv(); err != nil || len(resp.GetListServicesResponse().GetService()) == 0 {
		t.Fatalf("v1 list services: %v %v", resp, err)
	}
	alpha, err := reflectionv1alpha.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alpha.Send(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := alpha.Recv(); err != nil || len(resp.GetListServicesResponse().GetService()) == 0 {
		t.Fatalf("v1alpha list services: %v %v", resp, err)
	}

	took := stopTimed(stop)
	_, err = v1.Recv()
	wantCode(t, err, codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, 503)
	_, err = alpha.Recv()
	wantCode(t, err, codes.Unavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE, 503)
	if d := <-took; d > 5*time.Second {
		t.Errorf("the stop took %v: the reflection streams held it", d)
	}
}
