package floe_test

import (
	"bytes"
	gzipcodec "compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/genproto/googleapis/api/httpbody"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/floe-streams/floe"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// wantCode checks a gRPC error: its code and the ErrorInfo detail.
func wantCode(t testing.TB, err error, code codes.Code, ec floev1.ErrorCode, httpStatus int32) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("error %v, want code %v", err, code)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*floev1.ErrorInfo); ok {
			if info.GetCode() != ec || info.GetHttpStatus() != httpStatus {
				t.Errorf("ErrorInfo %v, want %v/%d", info, ec, httpStatus)
			}
			return
		}
	}
	t.Errorf("error %v has no ErrorInfo detail", err)
}

func TestGRPCEveryRPC(t *testing.T) {
	_, a := startNode(t, nil)
	conn := dial(t, a.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	disc := floev1.NewDiscoveryClient(conn)
	prod := floev1.NewProducerClient(conn)
	cons := floev1.NewConsumerClient(conn)

	b, err := disc.Brokers(ctx, &floev1.BrokersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetLength() != 1 || !slices.Equal(b.GetNames(), []string{"floe-test"}) || b.GetProducerPort() == 0 || b.GetConsumerPort() == 0 {
		t.Errorf("Brokers: %v", b)
	}
	if s, err := disc.Status(ctx, &floev1.StatusRequest{}); err != nil || s.GetStatus() != "ok" {
		t.Errorf("Status: %v %v", s, err)
	}

	if _, err := cons.Register(ctx, &floev1.RegisterRequest{ConsumerId: "g1", Group: "grp", Topic: []string{"orders"}, OnNewGroup: "startFromEarliest"}); err != nil {
		t.Fatal(err)
	}
	// Typed events, and a raw NDJSON body.
	ack, err := prod.Produce(ctx, &floev1.ProduceRequest{Topic: "orders", PartitionKey: "k", Events: []*floev1.Event{{Data: []byte(`{"n":1}`)}, {Data: []byte(`{"n":2}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	if ack.GetStartOffset() != 0 || ack.GetCount() != 2 || ack.GetTopic() != "orders" || ack.GetVersion() != 1 {
		t.Errorf("Produce ack %v", ack)
	}
	ack2, err := prod.Produce(ctx, &floev1.ProduceRequest{Topic: "orders", PartitionKey: "k", Body: &httpbody.HttpBody{ContentType: "application/x-ndjson", Data: []byte("{\"n\":3}\n{\"n\":4}\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if ack2.GetStartOffset() != 2 || ack2.GetCount() != 2 || ack2.GetRangeIndex() != ack.GetRangeIndex() {
		t.Errorf("Produce (body) ack %v after %v", ack2, ack)
	}

	// Streaming produce: every batch answered, rejects do not end the stream.
	stream, err := prod.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		req := &floev1.ProduceStreamRequest{RequestId: uint64(i), Topic: "orders", PartitionKey: "k", Events: []*floev1.Event{{Data: fmt.Appendf(nil, `{"n":%d}`, 5+i)}}}
		if i == 4 {
			req.Events[0].Data = []byte(`{not json`)
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseSend()
	seen := map[uint64]bool{}
	var lastOffset int64 = -1
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[resp.GetRequestId()] = true
		if resp.GetRequestId() == 4 {
			if e := resp.GetError(); e == nil || e.GetCode() != int32(floev1.ErrorCode_ERROR_CODE_INVALID_JSON) || e.GetStatus() != 400 {
				t.Errorf("batch 4: %v, want an INVALID_JSON error", resp)
			}
			continue
		}
		if resp.GetAck() == nil {
			t.Fatalf("batch %d: %v", resp.GetRequestId(), resp)
		}
		// Same key, same stream: acknowledged in the order sent.
		if off := resp.GetAck().GetStartOffset(); off <= lastOffset {
			t.Errorf("batch %d at offset %d after %d: out of order", resp.GetRequestId(), off, lastOffset)
		} else {
			lastOffset = off
		}
	}
	if len(seen) != 10 {
		t.Errorf("answers for %d batches, want 10", len(seen))
	}

	// Poll: typed batches with the raw events.
	pr, err := cons.Poll(ctx, &floev1.PollRequest{ConsumerId: "g1"})
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, b := range pr.GetBatches() {
		if b.GetTopic() != "orders" || b.GetVersion() != 1 || b.GetStartOffset() != 0 {
			t.Errorf("batch %v", b)
		}
		for _, v := range b.GetValues() {
			values = append(values, string(v))
		}
	}
	want := []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`, `{"n":5}`, `{"n":6}`, `{"n":7}`, `{"n":8}`, `{"n":10}`, `{"n":11}`, `{"n":12}`, `{"n":13}`, `{"n":14}`}
	if !slices.Equal(values, want) {
		t.Errorf("polled %q\nwant %q", values, want)
	}
	if _, err := cons.Commit(ctx, &floev1.CommitRequest{ConsumerId: "g1"}); err != nil {
		t.Error(err)
	}
	// Long poll: an event produced while waiting is returned well before
	// the timeout.
	start := time.Now()
	go func() {
		time.Sleep(100 * time.Millisecond)
		prod.Produce(ctx, &floev1.ProduceRequest{Topic: "orders", PartitionKey: "k", Events: []*floev1.Event{{Data: []byte(`{"late":true}`)}}})
	}()
	pr, err = cons.Poll(ctx, &floev1.PollRequest{ConsumerId: "g1", Timeout: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.GetBatches()) != 1 || string(pr.GetBatches()[0].GetValues()[0]) != `{"late":true}` {
		t.Errorf("long poll: %v", pr)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("long poll returned after %v, the event came after 100ms", waited)
	}
	noCommit := false
	if _, err := cons.Goodbye(ctx, &floev1.GoodbyeRequest{ConsumerId: "g1", Commit: &noCommit}); err != nil {
		t.Error(err)
	}

	// Errors carry codes and ErrorInfo.
	_, err = cons.Poll(ctx, &floev1.PollRequest{ConsumerId: "g1"})
	wantCode(t, err, codes.FailedPrecondition, floev1.ErrorCode_ERROR_CODE_CONSUMER_NOT_REGISTERED, 409)
	// The broker cannot tell a consumer it forgot from one that never
	// registered: the message names both, and what to do.
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "never registered, said goodbye") || !strings.HasSuffix(msg, "; register it") {
		t.Errorf("poll after goodbye: message %q", msg)
	}
	_, err = prod.Produce(ctx, &floev1.ProduceRequest{Topic: "bad topic", Events: []*floev1.Event{{Data: []byte(`{}`)}}})
	wantCode(t, err, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_TOPIC, 400)
	_, err = prod.Produce(ctx, &floev1.ProduceRequest{Topic: "t"})
	wantCode(t, err, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_EMPTY_BODY, 400)
	_, err = prod.Produce(ctx, &floev1.ProduceRequest{Topic: "t", Body: &httpbody.HttpBody{ContentType: "text/csv", Data: []byte("a,b")}})
	wantCode(t, err, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE, 415)
	_, err = prod.Produce(ctx, &floev1.ProduceRequest{Topic: "t", Body: &httpbody.HttpBody{ContentType: "application/json; charset=latin1", Data: []byte(`{}`)}})
	wantCode(t, err, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE, 415)
	_, err = cons.Register(ctx, &floev1.RegisterRequest{Topic: []string{"t"}})
	wantCode(t, err, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, 400)
}

func TestGRPCHealthAndReflection(t *testing.T) {
	_, a := startNode(t, nil)
	conn := dial(t, a.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, svc := range []string{"", "floe.v1.Discovery", "floe.v1.Producer", "floe.v1.Consumer"} {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q: %v %v", svc, resp, err)
		}
	}
	rs, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"floe.v1.Discovery", "floe.v1.Producer", "floe.v1.Consumer", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}

func TestGRPCProduceStreamBody(t *testing.T) {
	_, a := startNode(t, nil)
	conn := dial(t, a.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := floev1.NewProducerClient(conn).ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ndjson := &httpbody.HttpBody{ContentType: "application/x-ndjson", Data: []byte("{\"n\":1}\n{\"n\":2}\n")}
	reqs := []*floev1.ProduceStreamRequest{
		{RequestId: 1, Topic: "s", PartitionKey: "k", Body: ndjson},
		{RequestId: 2, Topic: "s", PartitionKey: "k", Body: ndjson, Events: []*floev1.Event{{Data: []byte(`{}`)}}},
		{RequestId: 3, Topic: "s", PartitionKey: "k", Body: &httpbody.HttpBody{ContentType: "application/x-ndjson", Data: []byte("{\"n\":3}\n[oops\n")}},
	}
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseSend()
	got := map[uint64]*floev1.ProduceStreamResponse{}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[resp.GetRequestId()] = resp
	}
	if ack := got[1].GetAck(); ack.GetCount() != 2 || ack.GetStartOffset() != 0 {
		t.Errorf("NDJSON body batch: %v", got[1])
	}
	if e := got[2].GetError(); e.GetCode() != int32(floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER) {
		t.Errorf("events and body together: %v, want INVALID_PARAMETER", got[2])
	}
	if e := got[3].GetError(); e.GetCode() != int32(floev1.ErrorCode_ERROR_CODE_INVALID_JSON) || !strings.Contains(e.GetMessage(), "line 2") {
		t.Errorf("invalid second line: %v, want INVALID_JSON naming line 2", got[3])
	}
}

// A gRPC Poll without max_bytes fits the 4 MiB that gRPC clients receive by
// default, even when --max-poll-bytes allows more: a larger answer failed on
// the client after the broker counted its events as read, and the next poll
// committed past them.
func TestGRPCPollFitsTheDefaultReceiveLimit(t *testing.T) {
	_, a := startNode(t, func(o *floe.Options) { o.MaxPollBytes = 8 << 20 })
	c := restClient{t: t, producer: a.Producer, consumer: a.Consumer}
	const events, size = 6, 1_000_000
	for i := range events {
		c.produce("big", "one-key", fmt.Sprintf(`{"i":%d,"pad":%q}`, i, strings.Repeat("x", size)))
	}
	cons := floev1.NewConsumerClient(dial(t, a.GRPC)) // the default receive limit
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cons.Register(ctx, &floev1.RegisterRequest{ConsumerId: "big", Topic: []string{"big"}, OnNewGroup: "startFromEarliest"}); err != nil {
		t.Fatal(err)
	}
	var next int64
	for polls := 0; next < events && polls < 10; polls++ {
		resp, err := cons.Poll(ctx, &floev1.PollRequest{ConsumerId: "big", Timeout: 100})
		if err != nil {
			t.Fatalf("poll %d: %v", polls, err)
		}
		for _, b := range resp.GetBatches() {
			if b.GetStartOffset() != next {
				t.Fatalf("poll %d starts at offset %d, want %d: events were skipped", polls, b.GetStartOffset(), next)
			}
			next += int64(len(b.GetValues()))
		}
	}
	if next != events {
		t.Fatalf("received %d events of %d", next, events)
	}
}

// rawCodec sends and receives messages as the bytes given, so that a test
// can send what no generated client would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// A request message that does not decode is a bad request
// (InvalidArgument, INVALID_PARAMETER), not an internal error that a client
// would retry forever.
func TestGRPCMessagesThatDoNotDecode(t *testing.T) {
	_, a := startNode(t, func(o *floe.Options) { o.MetricsAddr = "127.0.0.1:0" })
	conn := dial(t, a.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	badUTF8 := []byte{0x0a, 0x01, 0xff}  // field 1, a string of one byte 0xff
	truncated := []byte{0x0a, 0x05, 'a'} // field 1 announces 5 bytes, has 1
	for _, method := range []string{
		floev1.Consumer_Register_FullMethodName, floev1.Consumer_Poll_FullMethodName,
		floev1.Consumer_Commit_FullMethodName, floev1.Producer_Produce_FullMethodName,
		healthpb.Health_Check_FullMethodName,
	} {
		for _, msg := range [][]byte{badUTF8, truncated} {
			var out []byte
			err := conn.Invoke(ctx, method, &msg, &out, grpc.ForceCodec(rawCodec{}))
			wantCode(t, err, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, 400)
		}
	}
	// On a stream, the batch that does not decode ends it with the same
	// error.
	stream, err := conn.NewStream(ctx, &floev1.Producer_ServiceDesc.Streams[0], floev1.Producer_ProduceStream_FullMethodName, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte{0x12, 0x05, 'a'} // field 2 (topic) announces 5 bytes, has 1
	if err := stream.SendMsg(&msg); err != nil {
		t.Fatal(err)
	}
	var out []byte
	err = stream.RecvMsg(&out)
	wantCode(t, err, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, 400)

	// The streams of the services registered by their own packages too.
	for _, tc := range []struct {
		desc   *grpc.StreamDesc
		method string
	}{
		{&healthpb.Health_ServiceDesc.Streams[0], healthpb.Health_Watch_FullMethodName},
		{&reflectionpb.ServerReflection_ServiceDesc.Streams[0], reflectionpb.ServerReflection_ServerReflectionInfo_FullMethodName},
	} {
		stream, err := conn.NewStream(ctx, tc.desc, tc.method, grpc.ForceCodec(rawCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.SendMsg(&badUTF8); err != nil {
			t.Fatal(err)
		}
		var out []byte
		err = stream.RecvMsg(&out)
		wantCode(t, err, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, 400)
	}

	// A message over the server's limit is refused by gRPC's transport
	// before any handler runs.
	huge := make([]byte, 6<<20)
	var hugeOut []byte
	err = conn.Invoke(ctx, floev1.Producer_Produce_FullMethodName, &huge, &hugeOut, grpc.ForceCodec(rawCodec{}))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a 6 MiB message: %v, want ResourceExhausted", err)
	}

	// The metrics count every one of these calls, though none reached a
	// handler.
	wants := []string{
		`floe_grpc_request_duration_seconds_count{code="InvalidArgument",method="/floe.v1.Consumer/Register"} 2`,
		`floe_grpc_request_duration_seconds_count{code="InvalidArgument",method="/floe.v1.Consumer/Poll"} 2`,
		`floe_grpc_request_duration_seconds_count{code="InvalidArgument",method="/floe.v1.Consumer/Commit"} 2`,
		`floe_grpc_request_duration_seconds_count{code="InvalidArgument",method="/floe.v1.Producer/Produce"} 2`,
		`floe_grpc_request_duration_seconds_count{code="InvalidArgument",method="/floe.v1.Producer/ProduceStream"} 1`,
		`floe_grpc_request_duration_seconds_count{code="ResourceExhausted",method="/floe.v1.Producer/Produce"} 1`,
	}
	m := scrapeUntil(t, a.Metrics, wants...)
	for _, want := range wants {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grep(m, "floe_grpc_request_duration_seconds_count"))
		}
	}
}

// A call of a method the broker does not serve gets Unimplemented with its
// ErrorInfo and the list of the services it does serve; the metrics count
// such calls under one label, whatever the names clients send.
func TestGRPCUnknownMethod(t *testing.T) {
	_, a := startNode(t, func(o *floe.Options) { o.MetricsAddr = "127.0.0.1:0" })
	conn := dial(t, a.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, method := range []string{"/floe.v1.Producer/Nope", "/no.such.Service/Call", "/x/y"} {
		err := conn.Invoke(ctx, method, &floev1.BrokersRequest{}, &floev1.BrokersResponse{})
		wantCode(t, err, codes.Unimplemented, floev1.ErrorCode_ERROR_CODE_ROUTE_NOT_FOUND, 404)
		want := "unknown method " + method + ": this port serves floe.v1.Consumer, floe.v1.Discovery, floe.v1.Producer, grpc.health.v1.Health, grpc.reflection.v1.ServerReflection, grpc.reflection.v1alpha.ServerReflection"
		if msg := status.Convert(err).Message(); msg != want {
			t.Errorf("%s: %q, want %q", method, msg, want)
		}
	}
	// A stream call too.
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/floe.v1.Producer/NopeStream")
	if err != nil {
		t.Fatal(err)
	}
	err = stream.RecvMsg(&floev1.BrokersResponse{})
	wantCode(t, err, codes.Unimplemented, floev1.ErrorCode_ERROR_CODE_ROUTE_NOT_FOUND, 404)

	want := `floe_grpc_request_duration_seconds_count{code="Unimplemented",method="unknown"} 4`
	m := scrapeUntil(t, a.Metrics, want)
	if !strings.Contains(m, want) {
		t.Errorf("metrics lack %s:\n%s", want, grep(m, "floe_grpc_request_duration_seconds_count"))
	}
	if strings.Contains(m, "Nope") || strings.Contains(m, "no.such") {
		t.Errorf("metrics carry a client's method name:\n%s", grep(m, "floe_grpc_request_duration_seconds_count"))
	}
}

// A client may gzip its messages, as it may gzip REST bodies. The binary
// is tested: gRPC's codecs are registered per process, and this test's
// client registers gzip in its own.
func TestGRPCGzipRequests(t *testing.T) {
	p := startFloe(t, floeBinary(t), t.TempDir())
	if p.grpc == "" {
		t.Fatalf("no gRPC address in the startup line:\n%s", p.tail())
	}
	prod := floev1.NewProducerClient(dial(t, p.grpc))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := prod.Produce(ctx, &floev1.ProduceRequest{Topic: "gz", Events: []*floev1.Event{{Data: []byte(`{"a":1}`)}}},
		grpc.UseCompressor(gzip.Name))
	if err != nil || resp.GetCount() != 1 {
		t.Fatalf("gzipped Produce: %v %v", resp, err)
	}
}

// One connection has at most 256 calls open at once: the next waits for
// one of them to end.
func TestGRPCStreamsPerConnection(t *testing.T) {
	_, a := startNode(t, nil)
	conn := dial(t, a.GRPC)
	prod := floev1.NewProducerClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams := make([]floev1.Producer_ProduceStreamClient, 256)
	for i := range streams {
		s, err := prod.ProduceStream(ctx)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		streams[i] = s
	}
	// Streams start lazily on the client: make each reach the server.
	for i, s := range streams {
		if err := s.Send(&floev1.ProduceStreamRequest{RequestId: 1, Topic: "s", Events: []*floev1.Event{{Data: []byte("1")}}}); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if r, err := s.Recv(); err != nil || r.GetAck() == nil {
			t.Fatalf("stream %d: %v %v", i, r, err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if _, err := floev1.NewDiscoveryClient(conn).Brokers(short, &floev1.BrokersRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a 257th call: %v, want it to wait (DeadlineExceeded)", err)
	}
	if err := streams[0].CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := streams[0].Recv(); err != io.EOF {
		t.Fatalf("closing a stream: %v", err)
	}
	if _, err := floev1.NewDiscoveryClient(conn).Brokers(ctx, &floev1.BrokersRequest{}); err != nil {
		t.Fatalf("a call once a stream ended: %v", err)
	}
}

// A produce body's content type is judged by one function whichever the
// API: REST and gRPC refuse the same content types with the same message.
// Register and produce refuse an invalid topic name with one message.
func TestInvalidTopicErrorsMatch(t *testing.T) {
	_, a := startNode(t, nil)
	conn := dial(t, a.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, perr := floev1.NewProducerClient(conn).Produce(ctx, &floev1.ProduceRequest{Topic: "bad topic", Events: []*floev1.Event{{Data: []byte(`{}`)}}})
	_, rerr := floev1.NewConsumerClient(conn).Register(ctx, &floev1.RegisterRequest{ConsumerId: "c", Topic: []string{"bad topic"}})
	wantCode(t, perr, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_TOPIC, 400)
	wantCode(t, rerr, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_INVALID_TOPIC, 400)
	if p, r := status.Convert(perr).Message(), status.Convert(rerr).Message(); p != r || !strings.Contains(p, `"bad topic"`) {
		t.Errorf("produce: %s\nregister: %s\nwant one message naming the topic", p, r)
	}
}

// A produce body over the limit gets the same message over both APIs
// (REST with a Content-Length, so that the size is known).
func TestBodyTooLargeErrorsMatch(t *testing.T) {
	_, a := startNode(t, func(o *floe.Options) { o.MaxRequestBytes, o.MaxEventBytes = 1000, 1000 })
	prod := floev1.NewProducerClient(dial(t, a.GRPC))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := []byte(`{"a":"` + strings.Repeat("x", 2000) + `"}`)
	_, err := prod.Produce(ctx, &floev1.ProduceRequest{Topic: "t", Body: &httpbody.HttpBody{ContentType: "application/json", Data: body}})
	wantCode(t, err, codes.ResourceExhausted, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, 413)
	grpcMsg := status.Convert(err).Message()
	code, _, got, err := produceHTTP(ctx, newHTTPClient(), a.Producer, "t", "", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Message string }
	if err := json.Unmarshal(got, &e); err != nil || code != 413 {
		t.Fatalf("REST %d %s, want 413 and an error body", code, got)
	}
	want := "request body too large: 2008 bytes, the limit is 1000 bytes"
	if e.Message != want || grpcMsg != want {
		t.Errorf("REST: %s\ngRPC: %s\nwant: %s", e.Message, grpcMsg, want)
	}
}

// overLimitWithMemoryFull starts a node with a request limit and a produce
// memory of 1 MiB, all of it held by a REST request that announces 1 MiB and
// sends none of it, and returns its addresses and a batch of 1.2 MiB.
func overLimitWithMemoryFull(t *testing.T) (floe.Addrs, []*floev1.Event) {
	t.Helper()
	const limit = 1 << 20
	_, a := startNode(t, func(o *floe.Options) {
		o.MaxRequestBytes, o.MaxEventBytes, o.ProduceMemory = limit, limit, limit
		o.MetricsAddr = "127.0.0.1:0"
	})
	conn, err := net.Dial("tcp", a.Producer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v1/topic/t/messages HTTP/1.1\r\nHost: floe\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", limit)
	const held = "floe_produce_memory_bytes 1.048576e+06"
	if m := scrapeUntil(t, a.Metrics, held); !strings.Contains(m, held) {
		t.Fatalf("the REST request does not hold the produce memory: %s", grep(m, "floe_produce_memory_bytes"))
	}
	ev := []byte(`{"a":"` + strings.Repeat("x", 200<<10) + `"}`)
	var events []*floev1.Event
	for range 6 { // 1.2 MiB
		events = append(events, &floev1.Event{Data: ev})
	}
	return a, events
}

// A unary Produce over the request limit fails at once with the error that
// names the limit, even while the produce memory is full. In the broker,
// where the metrics wrap the producer, it waited a second for memory and got
// UNAVAILABLE ("send it again later"), which a client would retry forever.
func TestUnaryProduceOverLimitDoesNotWaitForMemory(t *testing.T) {
	a, events := overLimitWithMemoryFull(t)
	prod := floev1.NewProducerClient(dial(t, a.GRPC))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := prod.Produce(ctx, &floev1.ProduceRequest{Topic: "t", Events: events})
	wantCode(t, err, codes.ResourceExhausted, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, 413)
	if took := time.Since(start); took >= time.Second {
		t.Errorf("refused after %v: it waited for produce memory", took)
	}
}

// The same on ProduceStream: a batch over the request limit took produce
// memory, waiting (7 s here) for room it did not need before it was refused.
func TestStreamBatchOverLimitDoesNotWaitForMemory(t *testing.T) {
	a, events := overLimitWithMemoryFull(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := floev1.NewProducerClient(dial(t, a.GRPC)).ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := stream.Send(&floev1.ProduceStreamRequest{RequestId: 1, Topic: "t", Events: events}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || resp.GetError().GetError() != "BODY_TOO_LARGE" {
		t.Fatalf("a stream batch over the limit: %v %v, want its BODY_TOO_LARGE answer", resp, err)
	}
	if took := time.Since(start); took >= time.Second {
		t.Errorf("refused after %v: it waited for produce memory", took)
	}
}

func TestContentTypeErrorsMatch(t *testing.T) {
	_, a := startNode(t, nil)
	prod := floev1.NewProducerClient(dial(t, a.GRPC))
	client := newHTTPClient()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ct := range []string{
		"text/plain",
		"application/jsonl",
		"application/json;;;",
		"application/json; charset=iso-8859-1",
		`application/x-ndjson; charset=""`,
	} {
		_, err := prod.Produce(ctx, &floev1.ProduceRequest{Topic: "t", Body: &httpbody.HttpBody{ContentType: ct, Data: []byte(`{}`)}})
		wantCode(t, err, codes.InvalidArgument, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE, 415)
		grpcMsg := status.Convert(err).Message()
		code, _, body, err := produceHTTP(ctx, client, a.Producer, "t", "", ct, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Message string }
		if err := json.Unmarshal(body, &e); err != nil || code != 415 {
			t.Fatalf("%q: REST %d %s, want 415 and an error body", ct, code, body)
		}
		if e.Message != grpcMsg {
			t.Errorf("%q:\nREST: %s\ngRPC: %s", ct, e.Message, grpcMsg)
		}
	}
}

// h2cCall makes one gRPC call of method over HTTP/2 without TLS, with the
// headers given and body as the request's frames, so that a test can send
// what gRPC clients never do; it returns the call's status.
func h2cCall(t *testing.T, addr, method string, header map[string]string, body []byte) *status.Status {
	t.Helper()
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+method, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	get := func(k string) string { return resp.Trailer.Get(k) + resp.Header.Get(k) }
	code, err := strconv.Atoi(get("Grpc-Status"))
	if err != nil {
		t.Fatalf("%s: HTTP %d without a grpc-status", method, resp.StatusCode)
	}
	msg, _ := url.PathUnescape(get("Grpc-Message"))
	p := &spb.Status{Code: int32(code), Message: msg}
	if d := get("Grpc-Status-Details-Bin"); d != "" {
		raw, err := base64.RawStdEncoding.DecodeString(d)
		if err != nil || proto.Unmarshal(raw, p) != nil {
			t.Fatalf("%s: grpc-status-details-bin %q does not decode", method, d)
		}
	}
	return status.FromProto(p)
}

// grpcFrame is one gRPC message frame.
func grpcFrame(compressed bool, msg []byte) []byte {
	out := make([]byte, 5, 5+len(msg))
	if compressed {
		out[0] = 1
	}
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	return append(out, msg...)
}

// Requests that gRPC's transport refuses before any handler runs get its
// own answers, without ErrorInfo, which README lists under Errors.
func TestGRPCTransportAnswersWithoutErrorInfo(t *testing.T) {
	_, a := startNode(t, nil)
	msg, err := proto.Marshal(&floev1.ProduceRequest{Topic: "t", Events: []*floev1.Event{{Data: []byte(`{}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzipcodec.NewWriter(&gz)
	zw.Write(msg)
	zw.Close()
	gzipped := map[string]string{"Grpc-Encoding": "gzip"}
	produce := floev1.Producer_Produce_FullMethodName
	for _, tc := range []struct {
		name   string
		header map[string]string
		body   []byte
		code   codes.Code
		prefix string
	}{
		{"a unary call without a message", nil, nil, codes.Internal, "cardinality violation"},
		{"a unary call with two messages", nil, append(grpcFrame(false, msg), grpcFrame(false, msg)...), codes.Internal, "cardinality violation"},
		{"a frame shorter than announced", nil, grpcFrame(false, msg)[:6], codes.Internal, "unexpected EOF"},
		{"gzip that does not decompress", gzipped, grpcFrame(true, []byte("not gzip")), codes.Internal, "grpc: failed to decompress"},
		{"gzip cut short", gzipped, grpcFrame(true, gz.Bytes()[:gz.Len()-8]), codes.Internal, "grpc: failed to read decompressed data"},
		{"a compressed message without an encoding", nil, grpcFrame(true, gz.Bytes()), codes.Internal, "grpc: compressed flag set"},
	} {
		st := h2cCall(t, a.GRPC, produce, tc.header, tc.body)
		if st.Code() != tc.code || !strings.HasPrefix(st.Message(), tc.prefix) || len(st.Details()) != 0 {
			t.Errorf("%s: %v %q %v, want gRPC's own %v %q...", tc.name, st.Code(), st.Message(), st.Details(), tc.code, tc.prefix)
		}
	}
	// The same message, well sent, is stored.
	if st := h2cCall(t, a.GRPC, produce, gzipped, grpcFrame(true, gz.Bytes())); st.Code() != codes.OK {
		t.Fatalf("a gzipped message: %v", st.Err())
	}
}

// A stream's message over the gRPC transport's limit (--max-request-bytes
// plus 1 MiB) ends the stream with gRPC's own ResourceExhausted, without
// ErrorInfo, as README says: grpc-go's server stream writes the status of a
// failed receive itself, before the handler sees the error. The batch
// answered before it stays stored.
func TestProduceStreamOversizedMessage(t *testing.T) {
	_, a := startNode(t, func(o *floe.Options) { o.MaxRequestBytes, o.MaxEventBytes = 1000, 1000 })
	conn := dial(t, a.GRPC)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := floev1.NewProducerClient(conn).ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	small := &floev1.ProduceStreamRequest{RequestId: 1, Topic: "t", Events: []*floev1.Event{{Data: []byte(`{"n":1}`)}}}
	if err := stream.Send(small); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || resp.GetAck() == nil {
		t.Fatalf("first batch: %v %v", resp, err)
	}
	huge := &floev1.ProduceStreamRequest{RequestId: 2, Topic: "t", Events: []*floev1.Event{{Data: []byte(`"` + strings.Repeat("x", 1100<<10) + `"`)}}}
	if err := stream.Send(huge); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	for {
		resp, err = stream.Recv()
		if err != nil {
			break
		}
		t.Errorf("answer after the oversized message: %v", resp)
	}
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted ||
		!strings.HasPrefix(st.Message(), "grpc: received message larger than max") || len(st.Details()) != 0 {
		t.Errorf("stream ended with %v %q %v, want gRPC's own ResourceExhausted", st.Code(), st.Message(), st.Details())
	}

	// Only the first batch was stored.
	cons := floev1.NewConsumerClient(conn)
	if _, err := cons.Register(ctx, &floev1.RegisterRequest{Group: "g", ConsumerId: "c", Topic: []string{"t"}, OnNewGroup: "startFromEarliest"}); err != nil {
		t.Fatal(err)
	}
	var events int
	for range 3 {
		p, err := cons.Poll(ctx, &floev1.PollRequest{ConsumerId: "c"})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range p.GetBatches() {
			events += len(b.GetValues())
		}
	}
	if events != 1 {
		t.Errorf("%d events stored, want the first batch's 1", events)
	}
}

// A call's metadata is at most 64 KiB, as the REST ports' headers are: the
// server holds a call's metadata for as long as the call (a long poll, a
// stream), and gRPC's own bound, 16 MiB, let one connection's 256 calls hold
// 4 GiB. The server says so in its HTTP/2 settings, which gRPC clients
// check before they send, and resets a call whose headers are larger.
func TestGRPCMetadataLimit(t *testing.T) {
	_, a := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	disc := floev1.NewDiscoveryClient(dial(t, a.GRPC))
	small := metadata.AppendToOutgoingContext(ctx, "x-small", strings.Repeat("a", 32<<10))
	if _, err := disc.Status(small, &floev1.StatusRequest{}); err != nil {
		t.Fatalf("32 KiB of metadata: %v", err)
	}
	large := metadata.AppendToOutgoingContext(ctx, "x-large", strings.Repeat("a", 100<<10))
	if _, err := disc.Status(large, &floev1.StatusRequest{}); err == nil {
		t.Fatal("100 KiB of metadata: the call was served")
	}

	// A client that does not check gets its call reset (a single header
	// over the bound closes the connection: HPACK's string limit).
	c, err := net.Dial("tcp", a.GRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":authority", Value: a.GRPC},
		{Name: ":path", Value: floev1.Discovery_Status_FullMethodName},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
		{Name: "x-large-1", Value: strings.Repeat("a", 40<<10)},
		{Name: "x-large-2", Value: strings.Repeat("a", 40<<10)},
	} {
		if err := enc.WriteField(f); err != nil {
			t.Fatal(err)
		}
	}
	const frameSize = 16 << 10
	b := block.Bytes()
	first := b[:frameSize]
	b = b[frameSize:]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true}); err != nil {
		t.Fatal(err)
	}
	for len(b) > 0 {
		n := min(len(b), frameSize)
		if err := fr.WriteContinuation(1, n == len(b), b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("80 KiB of headers: %v, want the call reset", err)
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return
			}
		case *http2.HeadersFrame:
			if f.StreamID == 1 {
				t.Fatal("80 KiB of headers: the server answered the call, want it reset")
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
