package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/store"
)

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// batchSeeds are messages the fast decoder must take (fast) or leave to
// proto (slow).
func batchSeeds(t testing.TB) (fast, slow [][]byte) {
	events := &floev1.ProduceStreamRequest{RequestId: 7, Topic: "orders", PartitionKey: "k",
		Events: []*floev1.Event{{Data: []byte(`{"a":1}`)}, {Data: []byte(`[2]`)}, {}}}
	body := &floev1.ProduceStreamRequest{RequestId: 1 << 40, Topic: "t",
		Body: &httpbody.HttpBody{ContentType: "application/x-ndjson", Data: []byte("{}\n{}\n")}}
	both := &floev1.ProduceStreamRequest{Topic: "t", Events: []*floev1.Event{{Data: []byte(`1`)}},
		Body: &httpbody.HttpBody{Data: []byte(`2`)}}
	fast = [][]byte{
		{},
		marshal(t, events),
		marshal(t, body),
		marshal(t, both),
		marshal(t, &floev1.ProduceStreamRequest{Body: &httpbody.HttpBody{}}),
		// Fields repeated: the last scalar wins, bodies merge.
		append(marshal(t, events), marshal(t, body)...),
		append(marshal(t, body), marshal(t, &floev1.ProduceStreamRequest{Body: &httpbody.HttpBody{Data: []byte("x")}})...),
		// An event whose data comes twice.
		protowire.AppendBytes(protowire.AppendTag(nil, streamLayout.events, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte("a")), 1, protowire.BytesType), []byte("b"))),
	}
	withExt := &floev1.ProduceStreamRequest{Body: &httpbody.HttpBody{Data: []byte("{}"), Extensions: []*anypb.Any{{TypeUrl: "x/y"}}}}
	slow = [][]byte{
		marshal(t, withExt),
		// An unknown field.
		protowire.AppendVarint(protowire.AppendTag(marshal(t, events), 99, protowire.VarintType), 1),
		// A known field number with another wire type.
		protowire.AppendVarint(protowire.AppendTag(nil, streamLayout.topic, protowire.VarintType), 3),
		protowire.AppendBytes(protowire.AppendTag(nil, streamLayout.requestID, protowire.BytesType), []byte("x")),
		// Invalid UTF-8 in a string: proto refuses it.
		protowire.AppendBytes(protowire.AppendTag(nil, streamLayout.topic, protowire.BytesType), []byte{0xff}),
		protowire.AppendBytes(protowire.AppendTag(nil, streamLayout.body, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(nil, fieldBodyContentType, protowire.BytesType), []byte{0xc3})),
		// Truncated.
		func() []byte { m := marshal(t, events); return m[:len(m)-1] }(),
		{0x80},
	}
	return fast, slow
}

func sameBatch(a, b *produceBatch) error {
	switch {
	case a.requestID != b.requestID:
		return fmt.Errorf("request id %d != %d", a.requestID, b.requestID)
	case a.topic != b.topic || a.key != b.key:
		return fmt.Errorf("topic, key %q %q != %q %q", a.topic, a.key, b.topic, b.key)
	case a.hasBody != b.hasBody || a.contentType != b.contentType || !bytes.Equal(a.body, b.body):
		return fmt.Errorf("body %v %q %q != %v %q %q", a.hasBody, a.contentType, a.body, b.hasBody, b.contentType, b.body)
	case !slices.EqualFunc(a.events, b.events, bytes.Equal):
		return fmt.Errorf("events %q != %q", a.events, b.events)
	}
	return nil
}

// checkDecode fails when the fast decoder takes a message that proto
// decodes differently or refuses.
func checkDecode(t *testing.T, l *batchLayout, msg []byte) (fast bool) {
	t.Helper()
	want, got := produceBatch{layout: l}, produceBatch{layout: l}
	protoErr := want.decodeCopy(msg)
	if !got.decode(msg) {
		return false
	}
	if protoErr != nil {
		t.Fatalf("%x: fast decoder took a message proto refuses: %v", msg, protoErr)
	}
	if err := sameBatch(&got, &want); err != nil {
		t.Fatalf("%x: fast decoder and proto differ: %v", msg, err)
	}
	return true
}

// unarySeeds are ProduceRequests, as batchSeeds.
func unarySeeds(t testing.TB) (fast, slow [][]byte) {
	fast = [][]byte{
		marshal(t, &floev1.ProduceRequest{Topic: "orders", PartitionKey: "k",
			Events: []*floev1.Event{{Data: []byte(`{"a":1}`)}, {Data: []byte(`[2]`)}}}),
		marshal(t, &floev1.ProduceRequest{Topic: "t",
			Body: &httpbody.HttpBody{ContentType: "application/json", Data: []byte(`{"b":2}`)}}),
	}
	slow = [][]byte{
		// ProduceStreamRequest's request_id (field 1 as a varint) is no
		// ProduceRequest field.
		marshal(t, &floev1.ProduceStreamRequest{RequestId: 1, Topic: "t"}),
		protowire.AppendVarint(protowire.AppendTag(nil, 5, protowire.BytesType), 1),
	}
	return fast, slow
}

var layouts = map[string]*batchLayout{"ProduceStreamRequest": &streamLayout, "ProduceRequest": &unaryLayout}

func TestProduceBatchDecode(t *testing.T) {
	seeds := map[*batchLayout]func(testing.TB) ([][]byte, [][]byte){&streamLayout: batchSeeds, &unaryLayout: unarySeeds}
	for name, l := range layouts {
		fast, slow := seeds[l](t)
		for _, m := range fast {
			if !checkDecode(t, l, m) {
				t.Errorf("%s %x: fast decoder did not take a message it handles", name, m)
			}
		}
		for _, m := range slow {
			if checkDecode(t, l, m) {
				t.Errorf("%s %x: fast decoder took a message it must leave to proto", name, m)
			}
		}
	}
}

// FuzzProduceBatchDecode holds the fast decoder to proto, for both messages.
func FuzzProduceBatchDecode(f *testing.F) {
	for _, seeds := range []func(testing.TB) ([][]byte, [][]byte){batchSeeds, unarySeeds} {
		fast, slow := seeds(f)
		for _, m := range append(fast, slow...) {
			f.Add(m)
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkDecode(t, &streamLayout, msg)
		checkDecode(t, &unaryLayout, msg)
	})
}

// recyclingPool hands out buffers and, like a pool that reuses them at once,
// overwrites a buffer when it comes back.
type recyclingPool struct {
	mu  sync.Mutex
	put int
}

func (p *recyclingPool) Get(n int) *[]byte { b := make([]byte, n); return &b }

func (p *recyclingPool) Put(b *[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.put++
	for i := range *b {
		(*b)[i] = 'X'
	}
}

func (p *recyclingPool) puts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.put
}

// The batch keeps the received message until it is released, even though
// gRPC frees its own reference when Unmarshal returns.
func TestCodecHoldsMessageUntilRelease(t *testing.T) {
	req := &floev1.ProduceStreamRequest{RequestId: 3, Topic: "t",
		Events: []*floev1.Event{{Data: bytes.Repeat([]byte("1"), 6000)}, {Data: []byte(`{"b":2}`)}}}
	msg := marshal(t, req)
	for _, parts := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d buffers", parts), func(t *testing.T) {
			pool := &recyclingPool{}
			var data mem.BufferSlice
			for i := range parts {
				chunk := msg[i*len(msg)/parts : (i+1)*len(msg)/parts]
				data = append(data, mem.Copy(chunk, pool))
			}
			b := getBatch(&streamLayout)
			if err := NewCodec().Unmarshal(data, b); err != nil {
				t.Fatal(err)
			}
			data.Free() // as gRPC does once Unmarshal returned
			if b.buf == nil {
				t.Fatal("the batch was decoded by copying, not aliasing")
			}
			want := [][]byte{req.Events[0].Data, req.Events[1].Data}
			if !slices.EqualFunc(b.events, want, bytes.Equal) {
				t.Fatalf("events changed before release: %.20q", b.events)
			}
			if parts == 1 && pool.puts() != 0 {
				t.Fatalf("the message went back to the pool before release")
			}
			b.release()
			if pool.puts() != parts {
				t.Fatalf("%d buffers back in the pool after release, want %d", pool.puts(), parts)
			}
		})
	}
}

func TestCodecFallsBackToProto(t *testing.T) {
	_, slow := batchSeeds(t)
	pool := &recyclingPool{}
	b := getBatch(&streamLayout)
	data := mem.BufferSlice{mem.Copy(slow[0], pool)}
	if err := NewCodec().Unmarshal(data, b); err != nil {
		t.Fatal(err)
	}
	if b.buf != nil || !b.hasBody || string(b.body) != "{}" {
		t.Fatalf("got buf %v, body %v %q; want a copied body {}", b.buf, b.hasBody, b.body)
	}
	b.release()

	if err := NewCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer{0x80}}, getBatch(&streamLayout)); err == nil {
		t.Fatal("a truncated message decoded")
	}

	// Other messages go to proto.
	var req floev1.ProduceRequest
	in := &floev1.ProduceRequest{Topic: "t", Events: []*floev1.Event{{Data: []byte("1")}}}
	if err := NewCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(marshal(t, in))}, &req); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&req, in) {
		t.Fatalf("got %v, want %v", &req, in)
	}
}

func BenchmarkProduceBatchDecode(b *testing.B) {
	events := make([]*floev1.Event, 100)
	for i := range events {
		events[i] = &floev1.Event{Data: bytes.Repeat([]byte("a"), 200)}
	}
	cases := map[string]*floev1.ProduceStreamRequest{
		"events": {RequestId: 1, Topic: "bench", Events: events},
		"body": {RequestId: 1, Topic: "bench", Body: &httpbody.HttpBody{ContentType: "application/x-ndjson",
			Data: bytes.Repeat(append(bytes.Repeat([]byte("a"), 199), '\n'), 100)}},
	}
	for name, req := range cases {
		msg := marshal(b, req)
		b.Run(name+"/alias", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				batch := getBatch(&streamLayout)
				if !batch.decode(msg) {
					b.Fatal("not decoded")
				}
				batch.release()
			}
		})
		b.Run(name+"/proto", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				var r floev1.ProduceStreamRequest
				if err := proto.Unmarshal(msg, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fakeProducing records what it was asked to store.
type fakeProducing struct {
	first  []*byte  // the first byte of each event, as passed
	copied [][]byte // copies made during the call
}

func (f *fakeProducing) Produce(_ context.Context, topic, key string, events [][]byte) (broker.Ack, error) {
	for _, e := range events {
		f.first = append(f.first, &e[0])
		f.copied = append(f.copied, bytes.Clone(e))
	}
	return broker.Ack{Stream: store.Stream{Topic: topic}, Count: len(events)}, nil
}

func (f *fakeProducing) ProduceBody(context.Context, string, string, string, []byte) (broker.Ack, error) {
	return broker.Ack{}, errors.New("unexpected body")
}

// A unary Produce reads its events from the received message, through the
// interceptors, and releases the message when it returns.
func TestUnaryProduceAliasesAndReleases(t *testing.T) {
	req := &floev1.ProduceRequest{Topic: "t", PartitionKey: "k",
		Events: []*floev1.Event{{Data: bytes.Repeat([]byte("7"), 6000)}, {Data: []byte(`{"b":2}`)}}}
	pool := &recyclingPool{}
	data := mem.BufferSlice{mem.Copy(marshal(t, req), pool)}
	dec := func(v any) error { return NewCodec().Unmarshal(data, v) }
	fake := &fakeProducing{}
	intercepted := false
	interceptor := func(ctx context.Context, r any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		intercepted = info.FullMethod == floev1.Producer_Produce_FullMethodName
		return h(ctx, r)
	}
	resp, err := produceHandler(NewProducer(fake), context.Background(), dec, interceptor)
	data.Free() // as gRPC does
	if err != nil || !intercepted {
		t.Fatalf("err %v, intercepted %v", err, intercepted)
	}
	if r := resp.(*floev1.ProduceResponse); r.GetTopic() != "t" || r.GetCount() != 2 {
		t.Fatalf("response %v", r)
	}
	want := [][]byte{req.Events[0].Data, req.Events[1].Data}
	if !slices.EqualFunc(fake.copied, want, bytes.Equal) {
		t.Fatalf("the producer got %.20q", fake.copied)
	}
	if pool.puts() != 1 {
		t.Fatalf("%d buffers back in the pool after the call, want 1", pool.puts())
	}
	// The events the producer was given were the message's bytes, which
	// the pool has since recycled: no copy was made.
	if *fake.first[0] != 'X' {
		t.Fatal("the producer got a copy of the events, not the message's bytes")
	}
}

// gRPC decodes a second message of a unary call into the same value before
// failing the call: the batch then holds only the second, and the first
// message goes back to its pool.
func TestBatchDecodedTwice(t *testing.T) {
	pool := &recyclingPool{}
	first := marshal(t, &floev1.ProduceRequest{Topic: "a", Events: []*floev1.Event{{Data: bytes.Repeat([]byte("1"), 2000)}}})
	second := marshal(t, &floev1.ProduceRequest{Topic: "b", Events: []*floev1.Event{{Data: bytes.Repeat([]byte("2"), 2000)}}})
	b := getBatch(&unaryLayout)
	for _, msg := range [][]byte{first, second} {
		data := mem.BufferSlice{mem.Copy(msg, pool)}
		if err := NewCodec().Unmarshal(data, b); err != nil {
			t.Fatal(err)
		}
		data.Free()
	}
	if pool.puts() != 1 {
		t.Fatalf("%d buffers back in the pool, want the first message's", pool.puts())
	}
	if b.topic != "b" || len(b.events) != 1 || b.events[0][0] != '2' {
		t.Fatalf("batch holds topic %q and %d events, want the second message only", b.topic, len(b.events))
	}
	b.release()
	if pool.puts() != 2 {
		t.Fatalf("%d buffers back in the pool after release, want 2", pool.puts())
	}
}
