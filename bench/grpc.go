package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

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

func (p *grpcPool) close() {
	for _, c := range p.conns {
		c.Close()
	}
}

// grpcErrKey names a gRPC failure by its code.
func grpcErrKey(err error) string {
	if s, ok := status.FromError(err); ok {
		return "grpc " + s.Code().String()
	}
	return "grpc: " + shortErr(err)
}

// batch holds the events of one gRPC request, rebuilt in place.
type batch struct {
	buf    []byte
	offs   []int
	events []*floev1.Event
	body   httpbody.HttpBody
	size   int
}

// fill sets the payload of a request: typed events, or (--grpc-body) one
// NDJSON body. It returns the events and the body, one of them nil.
func (b *batch) fill(g *eventGen, base uint64, n int, ts int64, asBody bool) ([]*floev1.Event, *httpbody.HttpBody) {
	if !asBody {
		return b.build(g, base, n, ts), nil
	}
	b.buf = b.buf[:0]
	for i := range n {
		b.buf = g.appendEvent(b.buf, base+uint64(i), ts)
		b.buf = append(b.buf, '\n')
	}
	b.size = len(b.buf) - n
	b.body.ContentType, b.body.Data = "application/x-ndjson", b.buf
	return nil, &b.body
}

func (b *batch) build(g *eventGen, base uint64, n int, ts int64) []*floev1.Event {
	b.buf = b.buf[:0]
	offs := b.offs[:0]
	for i := range n {
		offs = append(offs, len(b.buf))
		b.buf = g.appendEvent(b.buf, base+uint64(i), ts)
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
	keys := grpcKeys(c.Keys)
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
		l.st.addErr(grpcErrKey(err))
		time.Sleep(10 * time.Millisecond)
	}
}

func grpcKeys(keys int) []string {
	if keys == 0 {
		return []string{""}
	}
	out := make([]string, keys)
	for k := range out {
		out[k] = fmt.Sprintf("k%d", k)
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
	keys := grpcKeys(c.Keys)
	p := newPacer(l, i)
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
		stream, err := client.ProduceStream(sctx)
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
					l.st.addErr(fmt.Sprintf("grpc %s", e.GetError()))
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
			f.req.RequestId = r
			f.req.PartitionKey = keys[r%uint64(len(keys))]
			f.req.Events, f.req.Body = f.b.fill(g, base, n, sendAt.UnixNano(), c.GRPCBody)
			mu.Lock()
			pending[r] = s
			mu.Unlock()
			r++
			f.start = time.Now()
			if err := stream.Send(&f.req); err != nil {
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
		var key string
		switch {
		case gaveUp:
			key = errGaveUp
		case ctx.Err() != nil:
		case errors.Is(sendErr, io.EOF):
			key = "grpc stream ended with the batch unanswered"
		default:
			key = grpcErrKey(sendErr)
		}
		mu.Lock()
		unanswered := len(pending)
		for id, s := range pending {
			f := &slots[s]
			lat := time.Since(f.sendAt)
			if p == nil {
				lat = time.Since(f.start)
			}
			l.acks.fail(f.base, f.base+uint64(f.n))
			l.st.requests.Add(1)
			l.st.lat.Record(lat)
			if key != "" {
				l.st.addErr(key)
			}
			delete(pending, id)
			free <- s
		}
		mu.Unlock()
		if unanswered == 0 && key != "" && !gaveUp && !errors.Is(sendErr, io.EOF) {
			l.st.addErr(key) // the stream broke with nothing in flight
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
