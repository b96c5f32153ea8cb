package floe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	runtimepprof "runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	// Clients may compress their messages with gzip, as they may gzip REST
	// bodies; gRPC refuses them (Unimplemented) without a decompressor.
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/gateway"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/internal/httplog"
	"github.com/floe-streams/floe/metrics"
	"github.com/floe-streams/floe/server"
	"github.com/floe-streams/floe/store"
)

// storeCloseGrace bounds closing the store after the drain of a shutdown,
// and adminCloseGrace the stop of the metrics and pprof servers before it.
const (
	storeCloseGrace = 10 * time.Second
	adminCloseGrace = time.Second
)

// maxStreamsPerConn is how many calls one gRPC connection may have open at
// once; the client's next waits for one to end.
const maxStreamsPerConn = 256

// maxGRPCHeaderBytes bounds the headers (metadata) of one gRPC call, as
// the REST ports bound theirs: the server holds them for as long as the
// call, and gRPC's own bound, 16 MiB, let the 256 long polls or streams of
// one connection hold 4 GiB.
const maxGRPCHeaderBytes = 64 << 10

// defaultGRPCMaxConnectionIdle is how long a gRPC connection without calls
// stays open.
const defaultGRPCMaxConnectionIdle = 5 * time.Minute

// MaxShutdownOverrun is how much longer than Options.ShutdownTimeout a
// shutdown may take: the stop of the admin servers and the close of the
// store come after the drain. A supervisor should wait at least
// ShutdownTimeout plus this before it kills the process.
const MaxShutdownOverrun = adminCloseGrace + storeCloseGrace

// Node is one running broker.
type Node struct {
	opts     Options
	log      *slog.Logger
	lock     *dirLock
	store    *store.Store
	producer *broker.Producer
	groups   *group.Coordinator
	grpc     *grpc.Server
	health   *health.Server
	gateway  *gateway.Gateway
	// produceSrv, watches and reflections are drained at shutdown so that
	// open produce, health Watch and server reflection streams end.
	produceSrv  *server.Producer
	watches     *server.HealthWatches
	reflections *server.ReflectionStreams
	registry    *prometheus.Registry
	// admin serves /metrics and /debug/pprof on their own listeners.
	admin []adminServer

	lis listeners
	// connLimit is how many connections each listener accepts at once (0:
	// no limit); see connsPerListener.
	connLimit int
	ready     atomic.Bool
	stopping  atomic.Bool
}

type listeners struct{ grpc, discovery, producer, consumer, metrics, pprof net.Listener }

type adminServer struct {
	srv *http.Server
	lis net.Listener
}

// Addrs are the addresses a node listens on. Metrics and Pprof are empty
// when those listeners are off.
type Addrs struct{ GRPC, Discovery, Producer, Consumer, Metrics, Pprof string }

// New takes the data directory's lock, opens the store and binds the
// listeners; Run serves them. A data directory that another node holds is
// refused with an error wrapping ErrDataDirInUse.
func New(opts Options) (*Node, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	n := &Node{opts: opts, log: opts.Logger, registry: prometheus.NewRegistry()}
	if err := n.init(); err != nil {
		n.closeAll()
		return nil, err
	}
	return n, nil
}

func (n *Node) init() (err error) {
	opts := n.opts

	// Our own lock before Pebble's: its LOCK error does not say who holds
	// the directory.
	if n.lock, err = lockDataDir(opts.DataDir); err != nil {
		return err
	}
	// Health exists before the store, which reports a failed disk to it.
	n.health = health.NewServer()
	so := storeOptions(opts)
	so.FS = opts.storeFS
	so.OnWriteFailure = n.storeFailed
	n.store, err = store.Open(opts.DataDir, so)
	if err != nil {
		return err
	}
	if err := checkConsumerRanges(n.store, opts.DataDir, opts.ConsumerRanges, n.log); err != nil {
		return err
	}
	ring := broker.NewRing(opts.ConsumerRanges)
	n.groups, err = group.New(n.store, group.Options{
		Streams:         ring.Streams,
		MaxPollBytes:    opts.MaxPollBytes,
		MaxPollWait:     opts.MaxPollWait,
		MemberTimeout:   opts.MemberTimeout,
		OffsetRetention: opts.GroupOffsetRetention,
		Logger:          opts.Logger.With("component", "groups"),
	})
	if err != nil {
		return err
	}
	n.producer, err = broker.NewProducer(n.store, broker.Options{
		ConsumerRanges: opts.ConsumerRanges,
		Limits:         broker.Limits{MaxRequestBytes: opts.MaxRequestBytes, MaxEventBytes: opts.MaxEventBytes},
		OnAppend:       n.groups.Notify,
	})
	if err != nil {
		return err
	}
	mem := broker.NewProduceMemory(opts.ProduceMemory)
	m, err := metrics.New(n.registry, metrics.Options{Store: n.store, Groups: n.groups, ProduceMemory: mem})
	if err != nil {
		return err
	}
	if err := n.listen(); err != nil {
		return err
	}

	discovery := server.NewDiscovery(n.topology, n.readiness)
	producer := server.NewProducer(m.Producing(n.producer)).WithMemory(mem, n.producer.Limits().MaxRequestBytes)
	n.produceSrv = producer
	consumer := server.NewConsumer(m.Consuming(n.groups))
	n.watches = server.NewHealthWatches()
	n.reflections = server.NewReflectionStreams()

	n.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(opts.MaxRequestBytes+1<<20),
		// HTTP/2's usual bound (Go's own HTTP/2 server allows 250): each
		// stream holds goroutines and buffers.
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		grpc.MaxHeaderListSize(maxGRPCHeaderBytes),
		// A connection without calls is closed (GOAWAY; clients connect
		// again when they need to), as the REST ports close idle ones:
		// otherwise each holds its goroutines, buffers and file
		// descriptor for as long as its client keeps it.
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: opts.grpcMaxConnectionIdle}),
		grpc.ForceServerCodecV2(server.NewCodec()),
		experimental.BufferPool(server.BufferPool()),
		// The services are all registered below before the server serves.
		grpc.StatsHandler(m.GRPCStatsHandler(servedMethods(func() map[string]grpc.ServiceInfo { return n.grpc.GetServiceInfo() }))),
		grpc.UnknownServiceHandler(server.UnknownMethod(sync.OnceValue(func() []string {
			return slices.Sorted(maps.Keys(n.grpc.GetServiceInfo()))
		}))),
		grpc.ChainStreamInterceptor(n.watches.StreamServerInterceptor(), n.reflections.StreamServerInterceptor()),
	)
	// Every service answers a message that does not decode with
	// InvalidArgument, not gRPC's Internal.
	reg := server.DecodeErrorsRegistrar{Server: n.grpc}
	reg.RegisterService(&floev1.Discovery_ServiceDesc, discovery)
	reg.RegisterService(server.ProducerServiceDesc(), producer)
	reg.RegisterService(server.ConsumerServiceDesc(), consumer)
	healthpb.RegisterHealthServer(reg, n.health)
	reflection.Register(reg)

	n.gateway, err = gateway.New(gateway.Services{Discovery: discovery, Producer: producer, Consumer: consumer},
		gateway.Options{
			MaxRequestBytes: int64(opts.MaxRequestBytes),
			ProduceMemory:   mem,
			OpenAPI:         OpenAPI,
			Logger:          opts.Logger.With("component", "gateway"),
			Wrap:            m.WrapHTTP,
			CORSOrigins:     opts.CORSOrigins,
		})
	if err != nil {
		return err
	}
	n.admin = n.adminServers()
	return nil
}

func (n *Node) listen() error {
	bind := func(name, addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return l, nil
	}
	var err error
	if n.lis.grpc, err = bind("grpc-addr", n.opts.GRPCAddr); err != nil {
		return err
	}
	if n.lis.discovery, err = bind("discovery-addr", n.opts.DiscoveryAddr); err != nil {
		return err
	}
	if n.lis.producer, err = bind("producer-addr", n.opts.ProducerAddr); err != nil {
		return err
	}
	if n.lis.consumer, err = bind("consumer-addr", n.opts.ConsumerAddr); err != nil {
		return err
	}
	if n.lis.metrics, err = bind("metrics-addr", n.opts.MetricsAddr); err != nil {
		return err
	}
	if n.lis.pprof, err = bind("pprof-addr", n.opts.PprofAddr); err != nil {
		return err
	}
	ls := []*net.Listener{&n.lis.grpc, &n.lis.discovery, &n.lis.producer, &n.lis.consumer, &n.lis.metrics, &n.lis.pprof}
	bound := 0
	for _, l := range ls {
		if *l != nil {
			bound++
		}
	}
	n.connLimit = connsPerListener(bound, n.opts.fileLimit())
	limitConns(n.connLimit, ls...)
	return nil
}

// defaultAdminIdleTimeout closes the metrics and pprof ports' keep-alive
// connections that stay idle this long, as the REST ports do.
const defaultAdminIdleTimeout = 2 * time.Minute

// adminServers are the HTTP servers of the metrics and pprof listeners
// that are on, each on a mux of its own (never http.DefaultServeMux). Their
// 404 and 405 answers have the error shape of the REST API.
func (n *Node) adminServers() []adminServer {
	var out []adminServer
	newServer := func(l net.Listener, h http.Handler) {
		if l != nil {
			out = append(out, adminServer{lis: l, srv: &http.Server{
				Handler: h, ReadHeaderTimeout: 10 * time.Second,
				// Without it a kept-alive connection that sends nothing
				// more is held for ever, with its goroutine and file
				// descriptor: a client could pile them up until the
				// process runs out of descriptors (and Pebble fails to
				// open its next file). No ReadTimeout: it would cancel a
				// pprof profile that runs longer.
				IdleTimeout: n.opts.adminIdleTimeout,
				ErrorLog:    httplog.ErrorLog(n.log.Handler()),
			}})
		}
	}
	mmux := http.NewServeMux()
	mmux.Handle("GET /metrics", metrics.Handler(n.registry))
	mmux.Handle("/metrics", gateway.MethodNotAllowed("GET, HEAD"))
	mmux.HandleFunc("/", gateway.NotFound)
	newServer(n.lis.metrics, mmux)

	pmux := http.NewServeMux()
	pmux.HandleFunc("/debug/pprof/", pprofIndex)
	pmux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	pmux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	pmux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	pmux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	pmux.HandleFunc("/", gateway.NotFound)
	newServer(n.lis.pprof, pmux)
	return out
}

// pprofIndex is pprof.Index, with an unknown profile answered as an
// unknown route.
func pprofIndex(w http.ResponseWriter, r *http.Request) {
	if name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name != "" && runtimepprof.Lookup(name) == nil {
		gateway.NotFound(w, r)
		return
	}
	pprof.Index(w, r)
}

// Registry is the node's Prometheus registry: every metric of the node,
// whether or not MetricsAddr serves it.
func (n *Node) Registry() *prometheus.Registry { return n.registry }

// Addrs are the addresses the node listens on (with the ports chosen for
// port 0).
func (n *Node) Addrs() Addrs {
	addr := func(l net.Listener) string {
		if l == nil {
			return ""
		}
		return l.Addr().String()
	}
	return Addrs{
		GRPC:      addr(n.lis.grpc),
		Discovery: addr(n.lis.discovery),
		Producer:  addr(n.lis.producer),
		Consumer:  addr(n.lis.consumer),
		Metrics:   addr(n.lis.metrics),
		Pprof:     addr(n.lis.pprof),
	}
}

func (n *Node) topology() server.Topology {
	return server.Topology{
		Names:        []string{n.opts.AdvertisedHost},
		ProducerPort: port(n.lis.producer),
		ConsumerPort: port(n.lis.consumer),
	}
}

func port(l net.Listener) int {
	_, p, _ := net.SplitHostPort(l.Addr().String())
	v, _ := strconv.Atoi(p)
	return v
}

// grpcServices are the services whose health the gRPC health service reports.
var grpcServices = []string{"floe.v1.Discovery", "floe.v1.Producer", "floe.v1.Consumer"}

// readiness is nil when the broker serves: GET /status answers 200. It is
// an error while starting or stopping, and for good once a disk write failed
// (the store then refuses writes until floe restarts, so liveness probes on
// /status restart it).
func (n *Node) readiness() error {
	if !n.ready.Load() {
		return fmt.Errorf("%w: the broker is starting or shutting down", broker.ErrUnavailable)
	}
	if err := n.store.WriteErr(); err != nil {
		return fmt.Errorf("%w: a disk write failed and the broker refuses writes until it restarts: %w", broker.ErrUnavailable, err)
	}
	return nil
}

// storeFailed is called once by the store when a commit failed inside
// Pebble: gRPC health turns NOT_SERVING (GET /status already answers 503).
func (n *Node) storeFailed(err error) {
	n.log.Error("a disk write failed: produce requests fail until floe restarts; restart it once the disk is fixed", "err", err.Error())
	for _, svc := range append([]string{""}, grpcServices...) {
		n.health.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	}
}

// Run serves until ctx is done, then shuts down gracefully: it stops
// accepting, lets requests in flight finish (each answered after a durable
// write, or with an error), and closes the store. It returns nil after a
// clean shutdown.
func (n *Node) Run(ctx context.Context) error {
	errc := make(chan error, 2+len(n.admin))
	go func() { errc <- n.gateway.Serve(n.lis.discovery, n.lis.producer, n.lis.consumer) }()
	go func() { errc <- n.grpc.Serve(n.lis.grpc) }()
	for _, a := range n.admin {
		go func() {
			if err := a.srv.Serve(a.lis); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	n.ready.Store(true)
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, svc := range grpcServices {
		n.health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
	n.logStarted()
	// A retention pass now, not one interval later: events that expired
	// while the broker was down are not served (and a broker restarted
	// more often than the interval would never apply retention). Not at
	// the store's Open: a start refused after it (another
	// --consumer-ranges, a port in use) must not have deleted anything.
	go func() {
		if _, err := n.store.ApplyRetention(); err != nil && !errors.Is(err, store.ErrClosed) {
			n.log.Error("store: retention", "err", err)
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
		n.log.Info("floe stopping", "cause", context.Cause(ctx).Error(), "shutdown-timeout", n.opts.ShutdownTimeout.String())
	case runErr = <-errc:
		if runErr == nil || n.stopping.Load() {
			return nil // Close was called
		}
		n.log.Error("server failed", "err", runErr)
	}
	if err := n.shutdown(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// Close shuts the node down as Run does when its context ends; it also
// releases a node that New returned and that never ran.
func (n *Node) Close() error {
	err := n.shutdown()
	n.closeListeners()
	return err
}

// logStarted writes the one startup line: the effective configuration and
// the bound addresses.
func (n *Node) logStarted() {
	a := n.Addrs()
	listening := slog.Group("listening", "grpc", a.GRPC, "discovery", a.Discovery, "producer", a.Producer,
		"consumer", a.Consumer, "metrics", a.Metrics, "pprof", a.Pprof)
	n.log.Info("floe started", listening, "max-connections-per-port", n.connLimit,
		slog.Group("config", append(n.opts.logAttrs(), attrsAny(n.opts.StartupAttrs)...)...))
}

func attrsAny(attrs []slog.Attr) []any {
	out := make([]any, len(attrs))
	for i, a := range attrs {
		out[i] = a
	}
	return out
}

// shutdown stops the node, in this order:
//  1. readiness turns false (GET /status 503, gRPC health NOT_SERVING), so
//     balancers stop sending;
//  2. the consumer groups close: long polls end at once (with 503 /
//     Unavailable), as do later consumer calls; open produce streams and
//     gRPC health Watch streams end (with Unavailable; a Watch once it sent
//     NOT_SERVING);
//  3. the REST servers and the gRPC server stop accepting and drain, in
//     parallel: every request in flight is answered (a produce only after
//     its durable write, or with an error), within ShutdownTimeout; past it,
//     gRPC connections are closed;
//  4. the metrics and pprof servers stop;
//  5. the store closes (bounded by storeCloseGrace), then the data
//     directory's lock is released.
func (n *Node) shutdown() error {
	if !n.stopping.CompareAndSwap(false, true) {
		return nil
	}
	start := time.Now()
	n.ready.Store(false)
	n.health.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.ShutdownTimeout)
	defer cancel()

	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	if err := n.groups.Close(); err != nil {
		errs = append(errs, fmt.Errorf("consumer groups: %w", err))
	}
	// Open produce streams stop taking batches and end once those they took
	// are answered, health Watch streams end once they sent NOT_SERVING, and
	// reflection streams end while they wait for a request: GracefulStop
	// waits for streams.
	n.produceSrv.Drain()
	n.watches.Drain()
	n.reflections.Drain()
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	wg.Go(func() {
		if err := n.gateway.Shutdown(ctx); err != nil {
			fail(fmt.Errorf("rest shutdown: %w", err))
		}
	})
	wg.Go(func() {
		stopped := make(chan struct{})
		go func() { n.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			n.grpc.Stop()
			fail(errors.New("grpc shutdown: timed out, connections closed"))
		}
	})
	wg.Wait()
	// Scrapes are short; a CPU profile in progress is cut.
	actx, acancel := context.WithTimeout(context.Background(), adminCloseGrace)
	for _, a := range n.admin {
		wg.Go(func() {
			if err := a.srv.Shutdown(actx); err != nil {
				a.srv.Close()
			}
		})
	}
	wg.Wait()
	acancel()

	closed := make(chan error, 1)
	go func() { closed <- n.store.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			errs = append(errs, fmt.Errorf("store close: %w", err))
		}
		if err := n.lock.release(); err != nil {
			errs = append(errs, fmt.Errorf("data-dir unlock: %w", err))
		}
	case <-time.After(storeCloseGrace):
		// Acknowledged writes are durable in the WAL already; the lock is
		// kept (Pebble is still open) until the process exits.
		errs = append(errs, fmt.Errorf("store close: not done after %v", storeCloseGrace))
	}
	err := errors.Join(errs...)
	if err != nil {
		n.log.Error("floe stopped", "took", time.Since(start).Round(time.Millisecond).String(), "err", err)
	} else {
		n.log.Info("floe stopped", "took", time.Since(start).Round(time.Millisecond).String())
	}
	return err
}

// closeListeners closes the listeners that no server closed (a node that
// never ran); closing one twice is harmless.
func (n *Node) closeListeners() {
	for _, l := range []net.Listener{n.lis.grpc, n.lis.discovery, n.lis.producer, n.lis.consumer, n.lis.metrics, n.lis.pprof} {
		if l != nil {
			l.Close()
		}
	}
}

// closeAll releases what New acquired, after a failed New.
func (n *Node) closeAll() {
	n.closeListeners()
	if n.groups != nil {
		n.groups.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
	n.lock.release()
}

// servedMethods reports whether a full method (/floe.v1.Producer/Produce)
// is one of the services', read once, at the first call: the services are
// all registered before the server serves.
func servedMethods(services func() map[string]grpc.ServiceInfo) func(string) bool {
	set := sync.OnceValue(func() map[string]bool {
		methods := map[string]bool{}
		for name, svc := range services() {
			for _, m := range svc.Methods {
				methods["/"+name+"/"+m.Name] = true
			}
		}
		return methods
	})
	return func(fullMethod string) bool { return set()[fullMethod] }
}

// storeOptions sizes the store for the request limit: a request is one
// chunk of 24 bytes, 4 bytes per event and the events, so a body of L bytes
// encodes to at most 2.5 L + 24 (one-byte events with their newlines). The
// memtable and the append queue grow past their defaults only for request
// limits over 6 MiB.
func storeOptions(opts Options) store.Options {
	maxAppend := int64(opts.MaxRequestBytes)*5/2 + 1<<10
	return store.Options{
		Logger:            opts.Logger.With("component", "store"),
		CacheSize:         opts.CacheSize,
		PageCacheWindow:   opts.PageCacheWindow,
		MinFreeDiskBytes:  opts.MinFreeDisk,
		MaxTopics:         opts.MaxTopics,
		RetentionMaxAge:   opts.RetentionMaxAge,
		RetentionMaxBytes: opts.RetentionMaxBytes,
		MaxAppendBytes:    int(maxAppend),
		MemTableSize:      max(store.DefaultMemTableSize, maxAppend),
		MaxQueuedBytes:    max(store.DefaultMaxQueuedBytes, 2*maxAppend),
	}
}
