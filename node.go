package floe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/gateway"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/server"
	"github.com/floe-streams/floe/store"
)

// Node is one running broker.
type Node struct {
	opts     Options
	log      *slog.Logger
	store    *store.Store
	producer *broker.Producer
	groups   *group.Coordinator
	grpc     *grpc.Server
	health   *health.Server
	gateway  *gateway.Gateway

	lis      listeners
	ready    atomic.Bool
	stopping atomic.Bool
}

type listeners struct{ grpc, discovery, producer, consumer net.Listener }

// Addrs are the addresses a node listens on.
type Addrs struct{ GRPC, Discovery, Producer, Consumer string }

// New opens the store and binds the listeners; Run serves them.
func New(opts Options) (*Node, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	n := &Node{opts: opts, log: opts.Logger}
	if err := n.init(); err != nil {
		n.closeAll()
		return nil, err
	}
	return n, nil
}

func (n *Node) init() (err error) {
	opts := n.opts

	n.store, err = store.Open(opts.DataDir, store.Options{
		Logger:            opts.Logger.With("component", "store"),
		CacheSize:         opts.CacheSize,
		RetentionMaxAge:   opts.RetentionMaxAge,
		RetentionMaxBytes: opts.RetentionMaxBytes,
	})
	if err != nil {
		return err
	}
	ring := broker.NewRing(opts.ConsumerRanges)
	n.groups, err = group.New(n.store, group.Options{
		Streams:       ring.Streams,
		MaxPollBytes:  opts.MaxPollBytes,
		MaxPollWait:   opts.MaxPollWait,
		MemberTimeout: opts.MemberTimeout,
		Logger:        opts.Logger.With("component", "groups"),
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
	if err := n.listen(); err != nil {
		return err
	}

	discovery := server.NewDiscovery(n.topology, n.readiness)
	producer := server.NewProducer(n.producer)
	consumer := server.NewConsumer(n.groups)

	n.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(opts.MaxRequestBytes + 1<<20))
	floev1.RegisterDiscoveryServer(n.grpc, discovery)
	floev1.RegisterProducerServer(n.grpc, producer)
	floev1.RegisterConsumerServer(n.grpc, consumer)
	n.health = health.NewServer()
	healthpb.RegisterHealthServer(n.grpc, n.health)
	reflection.Register(n.grpc)

	n.gateway, err = gateway.New(gateway.Services{Discovery: discovery, Producer: producer, Consumer: consumer},
		gateway.Options{MaxRequestBytes: int64(opts.MaxRequestBytes), OpenAPI: OpenAPI, Logger: opts.Logger.With("component", "gateway")})
	return err
}

func (n *Node) listen() error {
	bind := func(name, addr string) (net.Listener, error) {
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
	n.lis.consumer, err = bind("consumer-addr", n.opts.ConsumerAddr)
	return err
}

// Addrs are the addresses the node listens on (with the ports chosen for
// port 0).
func (n *Node) Addrs() Addrs {
	return Addrs{
		GRPC:      n.lis.grpc.Addr().String(),
		Discovery: n.lis.discovery.Addr().String(),
		Producer:  n.lis.producer.Addr().String(),
		Consumer:  n.lis.consumer.Addr().String(),
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

func (n *Node) readiness() error {
	if !n.ready.Load() {
		return fmt.Errorf("%w: the broker is starting or shutting down", broker.ErrUnavailable)
	}
	return nil
}

// Run serves until ctx is done, then shuts down gracefully: it stops
// accepting, lets requests in flight finish (each answered after a durable
// write, or with an error), and closes the store. It returns nil after a
// clean shutdown.
func (n *Node) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- n.gateway.Serve(n.lis.discovery, n.lis.producer, n.lis.consumer) }()
	go func() { errc <- n.grpc.Serve(n.lis.grpc) }()
	n.ready.Store(true)
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, svc := range []string{"floe.v1.Discovery", "floe.v1.Producer", "floe.v1.Consumer"} {
		n.health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
	n.log.Info("floe started", "addrs", n.Addrs(), "data_dir", n.opts.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		n.log.Error("server failed", "err", runErr)
	}
	if err := n.shutdown(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

func (n *Node) shutdown() error {
	if !n.stopping.CompareAndSwap(false, true) {
		return nil
	}
	start := time.Now()
	n.ready.Store(false)
	n.health.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.ShutdownTimeout)
	defer cancel()

	// Long polls end now (answered empty), so that HTTP and gRPC shutdowns
	// only wait for requests that are doing work.
	n.groups.Close()
	var errs []error
	if err := n.gateway.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("gateway shutdown: %w", err))
	}
	stopped := make(chan struct{})
	go func() { n.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		n.grpc.Stop()
		errs = append(errs, errors.New("grpc shutdown: timed out, connections closed"))
	}
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store close: %w", err))
	}
	n.log.Info("floe stopped", "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

// closeAll releases what New acquired, after a failed New.
func (n *Node) closeAll() {
	for _, l := range []net.Listener{n.lis.grpc, n.lis.discovery, n.lis.producer, n.lis.consumer} {
		if l != nil {
			l.Close()
		}
	}
	if n.groups != nil {
		n.groups.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
}
