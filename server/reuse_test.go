package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/internal/bufpool"
	"github.com/floe-streams/floe/internal/testlog"
	"github.com/floe-streams/floe/store"
)

// poisonPool is the server's buffer pool, except that a buffer coming back
// is overwritten at once: a reader of a released message sees 'X'.
type poisonPool struct{ bufpool.Pool }

func (p *poisonPool) Put(b *[]byte) {
	for i := range *b {
		(*b)[i] = 'X'
	}
	p.Pool.Put(b)
}

// Events decoded without copies reach the store intact, while the server
// recycles every received buffer as soon as it is released: neither the
// broker nor the store holds an event past its produce call. Batches span
// several HTTP/2 frames, streams and unary calls run at once.
func TestProducedEventsSurviveBufferReuse(t *testing.T) {
	st, err := store.Open("db", store.Options{FS: vfs.NewMem(), Logger: testlog.New(t), RetentionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bp, err := broker.NewProducer(st, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The same poisoned pool receives the frames and the messages that
	// span several of them.
	pool := &poisonPool{}
	codec := NewCodec()
	codec.pool = pool
	srv := grpc.NewServer(grpc.ForceServerCodecV2(codec), experimental.BufferPool(pool))
	srv.RegisterService(ProducerServiceDesc(), NewProducer(bp))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := floev1.NewProducerClient(cc)

	// event i of batch b of worker w: JSON padded to a size that varies.
	event := func(w, b, i int) []byte {
		return fmt.Appendf(nil, `{"w":%d,"b":%d,"i":%d,"p":%q}`, w, b, i, strings.Repeat("abcdefgh", 1+(w*7+b*3+i)%300))
	}
	type sent struct {
		ack    *floev1.ProduceResponse
		events [][]byte
	}
	var mu sync.Mutex
	var all []sent
	record := func(ack *floev1.ProduceResponse, events [][]byte) {
		mu.Lock()
		all = append(all, sent{ack, events})
		mu.Unlock()
	}
	const workers, batches, perBatch = 4, 40, 20
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { // a stream, alternating typed events and NDJSON bodies
			stream, err := client.ProduceStream(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			want := map[uint64][][]byte{}
			for b := range batches {
				req := &floev1.ProduceStreamRequest{RequestId: uint64(b), Topic: "reuse", PartitionKey: fmt.Sprint("k", w)}
				var evs [][]byte
				var body bytes.Buffer
				for i := range perBatch {
					ev := event(w, b, i)
					evs = append(evs, ev)
					if b%2 == 0 {
						req.Events = append(req.Events, &floev1.Event{Data: ev})
					} else {
						body.Write(ev)
						body.WriteByte('\n')
					}
				}
				if b%2 == 1 {
					req.Body = &httpbody.HttpBody{ContentType: broker.ContentTypeNDJSON, Data: body.Bytes()}
				}
				want[req.RequestId] = evs
				if err := stream.Send(req); err != nil {
					t.Error(err)
					return
				}
			}
			_ = stream.CloseSend()
			for range batches {
				resp, err := stream.Recv()
				if err != nil {
					t.Error(err)
					return
				}
				if resp.GetAck() == nil {
					t.Errorf("batch %d: %v", resp.GetRequestId(), resp.GetError())
					continue
				}
				record(resp.GetAck(), want[resp.GetRequestId()])
			}
		})
		wg.Go(func() { // unary calls
			for b := range batches / 4 {
				req := &floev1.ProduceRequest{Topic: "reuse", PartitionKey: fmt.Sprint("u", w)}
				var evs [][]byte
				for i := range perBatch {
					ev := event(w+workers, b, i)
					evs = append(evs, ev)
					req.Events = append(req.Events, &floev1.Event{Data: ev})
				}
				ack, err := client.Produce(ctx, req)
				if err != nil {
					t.Error(err)
					return
				}
				record(ack, evs)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if want := workers * (batches + batches/4); len(all) != want {
		t.Fatalf("%d batches acknowledged, want %d", len(all), want)
	}
	for _, s := range all {
		a := s.ack
		stream := store.Stream{Topic: a.GetTopic(), Token: a.GetToken(), RangeIndex: a.GetRangeIndex(), Version: a.GetVersion()}
		got, err := st.Read(stream, a.GetStartOffset(), 0, int(a.GetCount()))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Events) != len(s.events) {
			t.Fatalf("%s @%d: %d events stored, want %d", stream, a.GetStartOffset(), len(got.Events), len(s.events))
		}
		for i := range s.events {
			if !bytes.Equal(got.Events[i], s.events[i]) {
				t.Fatalf("%s @%d event %d: stored %.40q, sent %.40q", stream, a.GetStartOffset(), i, got.Events[i], s.events[i])
			}
		}
	}
}
