package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/internal/httplog"
)

// Services are the gRPC services the gateway calls in process.
type Services struct {
	Discovery floev1.DiscoveryServer
	Producer  floev1.ProducerServer
	Consumer  floev1.ConsumerServer
}

// Options configures the gateway.
type Options struct {
	// MaxRequestBytes bounds produce bodies, on the wire and decompressed
	// (413 beyond). Default 4 MiB.
	MaxRequestBytes int64
	// PollWriteTimeout bounds the writing of a poll's answer, from when it
	// is ready, with the time its events take at PollWriteRate bytes/s
	// added: a client that stops reading it (the answer is larger than the
	// connection's buffers) does not hold the poll's buffers and the
	// server's shutdown for ever. Its events are then lost to the
	// consumer, as any answer lost on the way. Defaults
	// DefaultPollWriteTimeout and DefaultPollWriteRate.
	PollWriteTimeout time.Duration
	PollWriteRate    int64
	// ReadTimeout bounds the reading of a whole request, headers and body
	// (4 MiB at 70 KB/s in the default): a stalled upload does not hold its
	// buffer forever, and gets 408. Long polls have no body and are not
	// affected. Default DefaultReadTimeout.
	ReadTimeout time.Duration
	// OpenAPI is the OpenAPI 3.0 document served at GET /openapi.json on
	// the discovery port (gen/openapiv3), with its servers' ports set to
	// those of the listeners (see openapi.go). Without it, that path
	// answers 404.
	OpenAPI []byte
	// Logger receives server errors. Default: discards.
	Logger *slog.Logger
	// Wrap, when set, wraps each API's handler (metrics); api is
	// "discovery", "producer" or "consumer".
	Wrap func(api string, h http.Handler) http.Handler
	// ProduceMemory, if set, bounds the bytes of produce requests held at
	// once (see limitBody); nil: no bound.
	ProduceMemory *broker.ProduceMemory
	// CORSOrigins are the origins whose pages may call the three APIs from
	// a browser (see withCORS; CheckCORSOrigin says what each may be).
	// Empty: none.
	CORSOrigins []string
}

// Defaults of Options.
const (
	DefaultMaxRequestBytes  = 4 << 20
	DefaultReadTimeout      = 60 * time.Second
	DefaultPollWriteTimeout = 10 * time.Second
	DefaultPollWriteRate    = 1 << 20
)

// Gateway serves the three REST APIs.
type Gateway struct {
	opts      Options
	discovery http.Handler
	producer  http.Handler
	consumer  http.Handler

	openAPI atomic.Pointer[openAPIDoc]

	mu      sync.Mutex
	servers []*http.Server
	// shutDown is set by Shutdown: a later Serve serves nothing.
	shutDown bool
	polls    pollWrites
}

// New builds the handlers of the three APIs over svc.
func New(svc Services, opts Options) (*Gateway, error) {
	if err := errors.Join(
		withDefault(&opts.MaxRequestBytes, DefaultMaxRequestBytes, "MaxRequestBytes"),
		withDefault(&opts.ReadTimeout, DefaultReadTimeout, "ReadTimeout"),
		withDefault(&opts.PollWriteTimeout, DefaultPollWriteTimeout, "PollWriteTimeout"),
		withDefault(&opts.PollWriteRate, DefaultPollWriteRate, "PollWriteRate"),
	); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx := context.Background()
	g := &Gateway{opts: opts, polls: pollWrites{writing: map[*pollWrite]struct{}{}}}
	if len(opts.OpenAPI) > 0 {
		doc, err := newOpenAPIDoc(opts.OpenAPI, nil)
		if err != nil {
			return nil, err
		}
		g.openAPI.Store(doc)
	}

	// Every port answers GET /status with the generated Discovery.Status
	// handler, from a mux that serves nothing else.
	statusMux := newMux(statusRoutes)
	if err := floev1.RegisterDiscoveryHandlerServer(ctx, statusMux, svc.Discovery); err != nil {
		return nil, err
	}
	status := func(w http.ResponseWriter, r *http.Request, _ map[string]string) { statusMux.ServeHTTP(w, r) }

	dmux := newMux(discoveryRoutes)
	if err := floev1.RegisterDiscoveryHandlerServer(ctx, dmux, svc.Discovery); err != nil {
		return nil, err
	}
	if err := dmux.HandlePath(http.MethodGet, "/openapi.json", g.serveOpenAPI); err != nil {
		return nil, err
	}

	pmux := newMux(producerRoutes)
	if err := floev1.RegisterProducerHandlerServer(ctx, pmux, utf8Producer{svc.Producer}); err != nil {
		return nil, err
	}
	if err := pmux.HandlePath(http.MethodGet, "/status", status); err != nil {
		return nil, err
	}

	cmux := newMux(consumerRoutes, runtime.WithForwardResponseRewriter(lendPollAnswer))
	if err := floev1.RegisterConsumerHandlerServer(ctx, cmux, svc.Consumer); err != nil {
		return nil, err
	}
	if err := cmux.HandlePath(http.MethodGet, "/status", status); err != nil {
		return nil, err
	}

	for _, o := range opts.CORSOrigins {
		if err := CheckCORSOrigin(o); err != nil {
			return nil, fmt.Errorf("gateway: CORSOrigins: %w", err)
		}
	}
	// Preflight requests are answered before the metrics see them.
	g.discovery = withCORS(opts.CORSOrigins, g.wrap("discovery", headAsGet(checkQueryAliases(dmux))))
	g.producer = withCORS(opts.CORSOrigins, g.wrap("producer", headAsGet(checkQueryAliases(checkTopicPath(limitBody(opts.MaxRequestBytes, opts.ReadTimeout, opts.ProduceMemory, pmux))))))
	g.consumer = withCORS(opts.CORSOrigins, g.wrap("consumer", headAsGet(g.polls.bound(opts.PollWriteTimeout, opts.PollWriteRate, lendPollBuffers(acceptJSON(decodeConsumerBody(opts.ReadTimeout, registerBodyToForm(opts.ReadTimeout, parseConsumerForm(opts.ReadTimeout, cmux)))))))))
	return g, nil
}

// withDefault sets a zero option to def, and refuses a negative one.
func withDefault[T int64 | time.Duration](v *T, def T, name string) error {
	if *v == 0 {
		*v = def
	}
	if *v < 0 {
		return fmt.Errorf("gateway: %s %v is negative", name, *v)
	}
	return nil
}

func (g *Gateway) wrap(api string, h http.Handler) http.Handler {
	if g.opts.Wrap != nil {
		return g.opts.Wrap(api, h)
	}
	return h
}

// newMux returns a ServeMux for the API that serves routes.
func newMux(routes served, opts ...runtime.ServeMuxOption) *runtime.ServeMux {
	m := newMarshaler()
	return runtime.NewServeMux(append([]runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, m),
		runtime.WithErrorHandler(handleError),
		runtime.WithRoutingErrorHandler(routingErrorHandler(routes)),
		runtime.WithForwardResponseOption(setStatus),
		runtime.WithWriteContentLength(),
		// Server metadata is not echoed as Grpc-Metadata-* headers.
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		// No handler reads incoming gRPC metadata, so request headers are
		// not copied into it (grpc-gateway still adds Authorization and the
		// X-Forwarded-* pair). AnnotateIncomingContext took 4.4% of the
		// broker's CPU under REST NDJSON produce, mostly turning headers
		// into metadata pairs; without them a request makes 74 allocations
		// instead of 81 (BenchmarkProduceHandler).
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithDisablePathLengthFallback(),
	}, opts...)...)
}

// Discovery is the handler of the discovery API.
func (g *Gateway) Discovery() http.Handler { return g.discovery }

// Producer is the handler of the producer API.
func (g *Gateway) Producer() http.Handler { return g.producer }

// Consumer is the handler of the consumer API.
func (g *Gateway) Consumer() http.Handler { return g.consumer }

// Serve serves the three APIs on their listeners (HTTP/1.1 and HTTP/2
// without TLS, as PolarStreams clients use) until Shutdown. It returns the
// first error of a server, nil after Shutdown. Called after Shutdown, it
// closes the listeners and returns nil at once.
func (g *Gateway) Serve(discovery, producer, consumer net.Listener) error {
	type api struct {
		l net.Listener
		h http.Handler
	}
	if err := g.serveOpenAPIWith(discovery, producer, consumer); err != nil {
		return err
	}
	apis := []api{{discovery, g.discovery}, {producer, g.producer}, {consumer, g.consumer}}
	errc := make(chan error, len(apis))
	g.mu.Lock()
	if g.shutDown {
		// Shutdown ran first and stopped no server: a broker stopped as
		// soon as it started, while Serve's goroutine was not yet here.
		g.mu.Unlock()
		for _, a := range apis {
			_ = a.l.Close()
		}
		return nil
	}
	for _, a := range apis {
		srv := g.newServer(a.h)
		if a.l == producer && g.opts.ProduceMemory != nil {
			boundProduceStreams(srv.HTTP2)
		}
		g.servers = append(g.servers, srv)
		go func() { errc <- srv.Serve(a.l) }()
	}
	g.mu.Unlock()
	var first error
	for range apis {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && first == nil {
			first = err
			go g.Shutdown(context.Background()) //nolint:errcheck // the first error is returned
		}
	}
	return first
}

func (g *Gateway) newServer(h http.Handler) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         &protocols,
		ReadHeaderTimeout: min(10*time.Second, g.opts.ReadTimeout),
		ReadTimeout:       g.opts.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// An HTTP/2 stream's write deadline (a poll's, pollWrites.bound)
		// resets the stream with a frame, which a connection whose client
		// stopped reading the socket never gets to send: such a
		// connection is closed once it has taken no byte for this long.
		HTTP2:    &http.HTTP2Config{WriteByteTimeout: g.opts.PollWriteTimeout},
		ErrorLog: httplog.ErrorLog(g.opts.Logger.Handler()),
		// A shutdown closes the HTTP/2 connection of a poll answer still
		// being written at its cut (pollWrites.setLocked).
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
}

// Over HTTP/2, the produce requests of a connection share its flow-control
// window, which the server gives back only as handlers read their bodies: a
// request that waits for the produce memory, its body unread, holds what
// the client sent of it. With HTTP/2's usual windows in net/http (1 MiB per
// stream and per connection) one waiting request held the whole window, and
// the request of the same connection that held the memory could not read
// the rest of its body: both waited until the waiting one got 503. So the
// producer's connections carry at most maxProduceStreams requests at once,
// whose windows together fit in the connection's (net/http's 1 MiB): the
// requests that wait never hold all of it, and a connection buffers no more
// unread body than before.
const (
	maxProduceStreams   = 16
	produceStreamWindow = 64 << 10 // HTTP/2's own initial window
	produceConnWindow   = maxProduceStreams * produceStreamWindow
)

// boundProduceStreams sets the HTTP/2 limits of the producer's server when
// its requests wait for the produce memory (see maxProduceStreams).
func boundProduceStreams(c *http.HTTP2Config) {
	c.MaxConcurrentStreams = maxProduceStreams
	c.MaxReceiveBufferPerStream = produceStreamWindow
	c.MaxReceiveBufferPerConnection = produceConnWindow
}

// shutdownWriteMargin is how long before ctx's deadline Shutdown cuts the
// answers still being written, so that their handlers return in time:
// http.Server.Shutdown looks for idle connections every 500 ms, and a
// loaded machine takes a while to wake the handlers.
const shutdownWriteMargin = 2 * time.Second

// Shutdown stops accepting requests and waits for those in flight to be
// answered, or for ctx to end. Poll answers still being written get until
// shutdownWriteMargin before ctx's deadline, at the latest: a client that
// stopped reading one does not hold the stop. Over HTTP/2 the answer's
// connection is closed then, with any other request on it. When ctx ends
// before the requests are answered, Shutdown closes their connections and
// returns ctx's error.
func (g *Gateway) Shutdown(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		g.polls.cutAt(d.Add(-min(shutdownWriteMargin, time.Until(d)/2)))
	}
	g.mu.Lock()
	g.shutDown = true
	servers := g.servers
	g.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(servers))
	for i, s := range servers {
		wg.Go(func() {
			if errs[i] = s.Shutdown(ctx); errs[i] != nil {
				// ctx ended first: the connections still open are closed,
				// so that none outlives the gateway (and the store behind
				// it).
				_ = s.Close()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
