package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// grpcPool holds the client connections of a run: one per 4 workers (a
// connection multiplexes streams; a few spread the load over the broker's
// transport goroutines).
type grpcPool struct{ conns []*grpc.ClientConn }

func dialGRPC(addr string, workers int) (*grpcPool, error) {
	n := max(1, (workers+3)/4)
	p := &grpcPool{}
	for range n {
		cc, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
			grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(4<<20),
			grpc.WithReadBufferSize(64<<10), grpc.WithWriteBufferSize(64<<10))
		if err != nil {
			p.close()
			return nil, fmt.Errorf("grpc %s: %w", addr, err)
		}
		p.conns = append(p.conns, cc)
	}
	return p, nil
}

func (p *grpcPool) conn(i int) *grpc.ClientConn { return p.conns[i%len(p.conns)] }

// reachTimeout bounds the check that a run's broker answers at all.
const reachTimeout = 5 * time.Second

// reachable checks that the pool's first connection comes up, so that a
// run against a wrong or dead address fails at once, naming it, instead of
// counting one error per request for its whole duration.
func (p *grpcPool) reachable(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	cc := p.conns[0]
	cc.Connect()
	for {
		switch st := cc.GetState(); st {
		case connectivity.Ready:
			// An HTTP/2 server that is not gRPC (the broker's REST ports
			// speak h2c) connects too: one call tells. A gRPC server
			// without the Discovery service still answers in gRPC.
			// grpc-go turns an HTTP answer without a gRPC status (a 404, a
			// 415) into a code of its own, saying so in the message.
			_, err := floev1.NewDiscoveryClient(cc).Status(ctx, &floev1.StatusRequest{})
			msg := status.Convert(err).Message()
			notGRPC := strings.Contains(msg, "unexpected HTTP status code") || strings.Contains(msg, "unexpected content-type")
			switch status.Code(err) {
			case codes.OK, codes.Unimplemented, codes.Unavailable:
				if !notGRPC {
					return nil
				}
			}
			return fmt.Errorf("gRPC %s: not the broker's gRPC port: %s", addr, oneLine(msg))
		case connectivity.TransientFailure, connectivity.Shutdown:
			return fmt.Errorf("gRPC %s: cannot connect (is it the broker's gRPC port?)", addr)
		default:
			if !cc.WaitForStateChange(ctx, st) {
				return fmt.Errorf("gRPC %s: not connected after %v", addr, reachTimeout)
			}
		}
	}
}

// reachableTCP checks that something listens at addr (a REST port).
func reachableTCP(ctx context.Context, what, addr string) error {
	d := net.Dialer{Timeout: reachTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, addr, err)
	}
	return conn.Close()
}

func (p *grpcPool) close() {
	for _, c := range p.conns {
		c.Close()
	}
}

// grpcErrKey names a gRPC failure: by the broker's error code when its
// ErrorInfo says it (as a stream's answer does: "grpc INVALID_TOPIC"), else
// by the gRPC code.
func grpcErrKey(err error) string {
	s, ok := status.FromError(err)
	if !ok {
		return "grpc: " + shortErr(err)
	}
	for _, d := range s.Details() {
		if info, ok := d.(*floev1.ErrorInfo); ok && info.GetCode() != floev1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			return "grpc " + strings.TrimPrefix(info.GetCode().String(), "ERROR_CODE_")
		}
	}
	return "grpc " + s.Code().String()
}

// batch holds the events of one gRPC request, rebuilt in place.
type batch struct {
	buf    []byte
	offs   []int
	events []*floev1.Event
	body   httpbody.HttpBody
	size   int
	// wire is a ProduceStreamRequest in protobuf wire format (encodeStream).
	wire rawMsg
}

// rawMsg is a request already in protobuf wire format: wireCodec sends its
// bytes as they are.
type rawMsg struct{ b []byte }

// wireCodec is gRPC's proto codec, except that it sends a *rawMsg as is. The
// stream workers encode their batches themselves: building Event messages
// for proto.Marshal to copy cost the load tool a fifth of its CPU.
type wireCodec struct{ encoding.CodecV2 }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawMsg); ok {
		return mem.BufferSlice{mem.SliceBuffer(r.b)}, nil
	}
	return c.CodecV2.Marshal(v)
}

// encodeStream writes the ProduceStreamRequest of the events [base,
// base+n) into b.wire, the way proto.Marshal writes the request fill makes
// (fields in number order, empty ones left out). Events are g.size bytes
// each, so the length prefixes are written before the events; it reports
// false, leaving b.wire unusable, if an event came out of another size.
func (b *batch) encodeStream(g *eventGen, id uint64, topic, key string, base uint64, n int, ts int64, asBody bool) bool {
	w := b.wire.b[:0]
	if id != 0 {
		w = protowire.AppendTag(w, 1, protowire.VarintType)
		w = protowire.AppendVarint(w, id)
	}
	if topic != "" {
		w = protowire.AppendTag(w, 2, protowire.BytesType)
		w = protowire.AppendString(w, topic)
	}
	if key != "" {
		w = protowire.AppendTag(w, 3, protowire.BytesType)
		w = protowire.AppendString(w, key)
	}
	size := uint64(g.size)
	if asBody {
		const contentType = "application/x-ndjson"
		data := uint64(n) * (size + 1)
		body := 1 + protowire.SizeBytes(len(contentType)) + 1 + protowire.SizeBytes(int(data))
		w = protowire.AppendTag(w, 5, protowire.BytesType)
		w = protowire.AppendVarint(w, uint64(body))
		w = protowire.AppendTag(w, 1, protowire.BytesType)
		w = protowire.AppendString(w, contentType)
		w = protowire.AppendTag(w, 2, protowire.BytesType)
		w = protowire.AppendVarint(w, data)
		start := len(w)
		w = g.appendEvents(w, base, n, ts, '\n')
		b.wire.b, b.size = w, n*g.size
		return uint64(len(w)-start) == data
	}
	var digits [20]byte
	tsDigits := strconv.AppendInt(digits[:0], ts, 10)
	event := uint64(1 + protowire.SizeBytes(g.size))
	w = slices.Grow(w, n*(2+protowire.SizeVarint(event)+int(event)))
	for i := range n {
		w = protowire.AppendTag(w, 4, protowire.BytesType)
		w = protowire.AppendVarint(w, event)
		w = protowire.AppendTag(w, 1, protowire.BytesType)
		w = protowire.AppendVarint(w, size)
		start := len(w)
		w = g.appendEventTS(w, base+uint64(i), ts, tsDigits)
		if uint64(len(w)-start) != size {
			b.wire.b = w
			return false
		}
	}
	b.wire.b, b.size = w, n*g.size
	return true
}

// fill sets the payload of a request: typed events, or (--grpc-body) one
// NDJSON body. It returns the events and the body, one of them nil.
func (b *batch) fill(g *eventGen, base uint64, n int, ts int64, asBody bool) ([]*floev1.Event, *httpbody.HttpBody) {
	if !asBody {
		return b.build(g, base, n, ts), nil
	}
	b.buf = g.appendEvents(b.buf[:0], base, n, ts, '\n')
	b.size = len(b.buf) - n
	b.body.ContentType, b.body.Data = "application/x-ndjson", b.buf
	return nil, &b.body
}

func (b *batch) build(g *eventGen, base uint64, n int, ts int64) []*floev1.Event {
	b.buf = b.buf[:0]
	offs := b.offs[:0]
	var digits [20]byte
	tsDigits := strconv.AppendInt(digits[:0], ts, 10)
	for i := range n {
		offs = append(offs, len(b.buf))
		b.buf = g.appendEventTS(b.buf, base+uint64(i), ts, tsDigits)
	}
	offs = append(offs, len(b.buf))
	b.offs = offs
	for len(b.events) < n {
		b.events = append(b.events, &floev1.Event{})
	}
	for i := range n {
		b.events[i].Data = b.buf[offs[i]:offs[i+1]]
	}
	b.size = len(b.buf)
	return b.events[:n]
}

func (l *load) grpcUnaryWorker(ctx context.Context, i int, cc *grpc.ClientConn) error {
	c := l.c
	client := floev1.NewProducerClient(cc)
	g := newEventGen(c.Run, c.EventSize)
	keys := l.keys
	p := newPacer(l, i)
	var b batch
	req := &floev1.ProduceRequest{Topic: c.Topic}
	for r := uint64(i); ; r += uint64(c.Connections) {
		sendAt, ok := p.wait(l)
		var base uint64
		var n int
		if ok {
			base, n, ok = l.alloc(c.EventsPerRequest)
		}
		if !ok {
			l.missed(p)
			return nil
		}
		req.Events, req.Body = b.fill(g, base, n, sendAt.UnixNano(), c.GRPCBody)
		req.PartitionKey = keys[r%uint64(len(keys))]
		start := time.Now()
		_, err := client.Produce(ctx, req)
		lat := time.Since(sendAt)
		if p == nil {
			lat = time.Since(start)
		}
		l.st.requests.Add(1)
		l.st.lat.Record(lat) // failed requests too
		if err == nil {
			l.acks.ack(base, base+uint64(n))
			l.st.events.Add(uint64(n))
			l.st.bytes.Add(uint64(b.size))
			continue
		}
		l.acks.fail(base, base+uint64(n))
		if ctx.Err() != nil {
			l.gaveUpOn()
			l.missed(p)
			return nil
		}
		l.st.addErrExample(grpcErrKey(err), status.Convert(err).Message())
		time.Sleep(10 * time.Millisecond)
	}
}

// grpcKeys are the partition keys of a run: "" alone without keys.
func grpcKeys(keys int) []string {
	if keys == 0 {
		return []string{""}
	}
	out := make([]string, keys)
	for k := range out {
		out[k] = "k" + strconv.Itoa(k)
	}
	return out
}

// inflight is one batch sent on a stream and not yet answered.
type inflight struct {
	req    floev1.ProduceStreamRequest
	b      batch
	base   uint64
	n      int
	sendAt time.Time
	start  time.Time
}

// grpcStreamWorker produces on one ProduceStream with up to --inflight
// batches unanswered. A slot (its request and buffers) is reused only after
// its answer arrived. A stream that breaks, or ends, with batches unanswered
// fails them (each an error) and is opened again. When a paced run gives up
// on its schedule (--late-limit), the stream is cancelled: its unanswered
// batches fail with the latency they had reached.
func (l *load) grpcStreamWorker(ctx context.Context, i int, cc *grpc.ClientConn) error {
	c := l.c
	client := floev1.NewProducerClient(cc)
	g := newEventGen(c.Run, c.EventSize)
	keys := l.keys
	p := newPacer(l, i)
	codec := wireCodec{encoding.GetCodecV2("proto")}
	slots := make([]inflight, c.Inflight)
	free := make(chan int, c.Inflight)
	for s := range slots {
		slots[s].req.Topic = c.Topic
		free <- s
	}
	r := uint64(i)
	finished := false // the worker's share of the run is sent
	for !finished && !l.stop.Load() {
		sctx, cancel := context.WithCancel(ctx)
		stream, err := client.ProduceStream(sctx, grpc.ForceCodecV2(codec))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			l.st.addErr(grpcErrKey(err))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var mu sync.Mutex
		pending := map[uint64]int{} // request id -> slot
		recvDone := make(chan error, 1)
		go func() {
			for {
				resp, err := stream.Recv()
				if err != nil {
					recvDone <- err
					return
				}
				mu.Lock()
				s, ok := pending[resp.GetRequestId()]
				delete(pending, resp.GetRequestId())
				mu.Unlock()
				if !ok {
					continue
				}
				f := &slots[s]
				lat := time.Since(f.sendAt)
				if p == nil {
					lat = time.Since(f.start)
				}
				l.st.requests.Add(1)
				l.st.lat.Record(lat) // failed batches too
				if e := resp.GetError(); e != nil {
					l.acks.fail(f.base, f.base+uint64(f.n))
					l.st.addErrExample(fmt.Sprintf("grpc %s", e.GetError()), e.GetMessage())
				} else {
					l.acks.ack(f.base, f.base+uint64(f.n))
					l.st.events.Add(uint64(f.n))
					l.st.bytes.Add(uint64(f.b.size))
				}
				free <- s
			}
		}()
		var sendErr error
	send:
		for {
			var s int
			select {
			case s = <-free:
			case sendErr = <-recvDone:
				break send
			case <-l.stopped:
				break send
			}
			sendAt, ok := p.wait(l)
			var base uint64
			var n int
			if ok {
				base, n, ok = l.alloc(c.EventsPerRequest)
			}
			if !ok {
				l.missed(p)
				free <- s
				finished = true
				break
			}
			f := &slots[s]
			f.base, f.n, f.sendAt = base, n, sendAt
			key := keys[r%uint64(len(keys))]
			var msg any = &f.b.wire
			if !f.b.encodeStream(g, r, c.Topic, key, base, n, sendAt.UnixNano(), c.GRPCBody) {
				f.req.RequestId, f.req.PartitionKey = r, key
				f.req.Events, f.req.Body = f.b.fill(g, base, n, sendAt.UnixNano(), c.GRPCBody)
				msg = &f.req
			}
			mu.Lock()
			pending[r] = s
			mu.Unlock()
			r++
			f.start = time.Now()
			if err := stream.SendMsg(msg); err != nil {
				// The reason comes from Recv.
				break
			}
		}
		if sendErr == nil {
			// When the run gives up on its schedule, ctx is cancelled and
			// so is the stream: Recv does not wait for a broker that far
			// behind.
			_ = stream.CloseSend()
			sendErr = <-recvDone
		}
		cancel()
		gaveUp := l.abortAt.Load() != 0
		// Whatever is unanswered failed, each batch an error, except when
		// the run was interrupted.
		var key, keyMsg string
		switch {
		case gaveUp:
			key = errGaveUp
		case ctx.Err() != nil:
			key = errInterrupted
		case errors.Is(sendErr, io.EOF):
			key = "grpc stream ended with the batch unanswered"
		default:
			key, keyMsg = grpcErrKey(sendErr), status.Convert(sendErr).Message()
		}
		mu.Lock()
		unanswered := len(pending)
		for id, s := range pending {
			f := &slots[s]
			// gRPC may still hold the encoded batch of a broken stream:
			// the slot encodes its next one into a new buffer.
			f.b.wire.b = nil
			lat := time.Since(f.sendAt)
			if p == nil {
				lat = time.Since(f.start)
			}
			l.acks.fail(f.base, f.base+uint64(f.n))
			l.st.requests.Add(1)
			l.st.lat.Record(lat)
			if key != "" {
				l.st.addErrExample(key, keyMsg)
			}
			delete(pending, id)
			free <- s
		}
		mu.Unlock()
		// An interrupt with nothing in flight failed nothing.
		if unanswered == 0 && key != "" && !gaveUp && ctx.Err() == nil && !errors.Is(sendErr, io.EOF) {
			l.st.addErrExample(key, keyMsg) // the stream broke with nothing in flight
		}
		if finished || l.stop.Load() || ctx.Err() != nil {
			l.missed(p)
			return nil
		}
		if !errors.Is(sendErr, io.EOF) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}
