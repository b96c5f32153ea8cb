package floe

import (
	"errors"
	"fmt"
	"github.com/cockroachdb/pebble/v2/vfs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/gateway"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/store"
)

// Options configures a node. The zero value of a field means its default.
type Options struct {
	// Listen addresses (host:port; port 0 picks a free port).
	GRPCAddr      string // default ":9249"
	DiscoveryAddr string // default ":9250"
	ProducerAddr  string // default ":9251"
	ConsumerAddr  string // default ":9252"
	// MetricsAddr serves the Prometheus metrics at /metrics. Empty: no
	// metrics listener (cmd/floe defaults to ":9253"); the metrics are
	// still kept, see Node.Registry.
	MetricsAddr string
	// PprofAddr serves net/http/pprof at /debug/pprof/. Empty: off.
	PprofAddr string

	// DataDir holds the Pebble store and the lock file floe.lock (a second
	// node on the same directory fails with ErrDataDirInUse). Default
	// "./floe-data".
	DataDir string
	// AdvertisedHost is the name of this broker in GET /v1/brokers. Default:
	// the host name.
	AdvertisedHost string

	// ConsumerRanges is the number of sub-ranges of the token range. Default 4.
	ConsumerRanges int
	// MaxRequestBytes bounds a produce request (default 4 MiB);
	// MaxEventBytes one event (default 1 MiB, or MaxRequestBytes when that
	// is less).
	MaxRequestBytes int
	MaxEventBytes   int
	// ProduceMemory bounds the bytes of produce requests held at once (REST
	// bodies, gRPC batches) until they are stored: beyond it they
	// wait (broker.ProduceMemory). Default 64 MiB, or 4 × MaxRequestBytes
	// when that is more; at least MaxRequestBytes.
	ProduceMemory int64
	// MaxPollBytes bounds a poll answer (default 2 MiB); MaxPollWait caps the
	// long-poll timeout (default 30 s); MemberTimeout drops consumers that
	// stop polling (default 2 min).
	MaxPollBytes  int
	MaxPollWait   time.Duration
	MemberTimeout time.Duration
	// GroupOffsetRetention: the committed offsets of a group without
	// members are deleted this long after it lost its last member (for a
	// group that had members when the broker stopped: after its next
	// start); restarts do not reset the count (default 7 days; negative:
	// kept forever).
	GroupOffsetRetention time.Duration

	// RetentionMaxAge (default 7 days; negative: forever) and
	// RetentionMaxBytes (per topic; default 0: unlimited).
	RetentionMaxAge   time.Duration
	RetentionMaxBytes int64
	// CacheSize is the store's block cache. Default 64 MiB.
	CacheSize int64
	// PageCacheWindow is how many bytes of the newest flushed events the
	// store leaves in the OS page cache (store.Options.PageCacheWindow).
	// Default 1 GiB; negative: the kernel alone manages the page cache.
	PageCacheWindow int64
	// MinFreeDisk is the free space the broker keeps on the volume of its
	// data directory: below it, produce requests are refused (HTTP 507,
	// gRPC ResourceExhausted, DISK_FULL) until space comes back
	// (store.Options.MinFreeDiskBytes). Default 256 MiB; negative: off.
	MinFreeDisk int64
	// MaxTopics is how many topics the broker holds: a produce request that
	// would create one more is refused (HTTP 409, gRPC FailedPrecondition,
	// TOO_MANY_TOPICS) and stores nothing (store.Options.MaxTopics). Topics
	// are never removed. Default 10,000; negative: no limit.
	MaxTopics int

	// CORSOrigins are the origins whose pages may call the REST API from a
	// browser (CORS), such as an API portal's: "https://portal.example.com",
	// "https://*.example.com", or "*" for any. Empty (the default): none.
	CORSOrigins []string

	// ShutdownTimeout bounds the drain of a graceful shutdown (requests in
	// flight); closing the store then gets at most storeCloseGrace more.
	// Default 30 s.
	ShutdownTimeout time.Duration

	// Logger for the node. Default: discards.
	Logger *slog.Logger
	// StartupAttrs are added to the one startup log line that holds the
	// effective configuration (cmd/floe adds its own settings: config file,
	// log level and format).
	StartupAttrs []slog.Attr

	// storeFS is the store's filesystem; nil is the OS's. Tests inject
	// disk failures with it.
	storeFS vfs.FS
	// Set by tests; zero means the default: how long a gRPC connection
	// without calls (defaultGRPCMaxConnectionIdle) and a kept-alive
	// metrics or pprof connection (defaultAdminIdleTimeout) stay open, and
	// the file limit the listeners share (fileLimit).
	grpcMaxConnectionIdle time.Duration
	adminIdleTimeout      time.Duration
	fileLimit             func() uint64
}

func (o Options) withDefaults() Options {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.GRPCAddr, ":9249")
	def(&o.DiscoveryAddr, ":9250")
	def(&o.ProducerAddr, ":9251")
	def(&o.ConsumerAddr, ":9252")
	def(&o.DataDir, "floe-data")
	if o.AdvertisedHost == "" {
		o.AdvertisedHost, _ = os.Hostname()
		def(&o.AdvertisedHost, "localhost")
	}
	if o.ConsumerRanges == 0 {
		o.ConsumerRanges = broker.DefaultConsumerRanges
	}
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = gateway.DefaultMaxRequestBytes
	}
	if o.MaxEventBytes == 0 {
		// The default follows a smaller request limit, as cmd/floe's.
		o.MaxEventBytes = min(broker.DefaultMaxEventBytes, o.MaxRequestBytes)
	}
	if o.ProduceMemory == 0 {
		o.ProduceMemory = broker.DefaultProduceMemoryFor(int64(o.MaxRequestBytes))
	}
	if o.MaxPollBytes == 0 {
		o.MaxPollBytes = group.DefaultMaxPollBytes
	}
	if o.MaxPollWait == 0 {
		o.MaxPollWait = group.DefaultMaxPollWait
	}
	if o.MemberTimeout == 0 {
		o.MemberTimeout = group.DefaultMemberTimeout
	}
	if o.GroupOffsetRetention == 0 {
		o.GroupOffsetRetention = group.DefaultOffsetRetention
	}
	if o.RetentionMaxAge == 0 {
		o.RetentionMaxAge = store.DefaultRetentionMaxAge
	}
	if o.CacheSize == 0 {
		o.CacheSize = store.DefaultCacheSize
	}
	if o.PageCacheWindow == 0 {
		o.PageCacheWindow = store.DefaultPageCacheWindow
	}
	if o.MaxTopics == 0 {
		o.MaxTopics = store.DefaultMaxTopics
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.grpcMaxConnectionIdle == 0 {
		o.grpcMaxConnectionIdle = defaultGRPCMaxConnectionIdle
	}
	if o.adminIdleTimeout == 0 {
		o.adminIdleTimeout = defaultAdminIdleTimeout
	}
	if o.fileLimit == nil {
		o.fileLimit = fileLimit
	}
	return o
}

// Validate checks the options, naming the bad setting.
func (o Options) Validate() error {
	var errs []error
	for _, a := range []struct{ name, addr string }{
		{"grpc-addr", o.GRPCAddr}, {"discovery-addr", o.DiscoveryAddr},
		{"producer-addr", o.ProducerAddr}, {"consumer-addr", o.ConsumerAddr},
		{"metrics-addr", o.MetricsAddr}, {"pprof-addr", o.PprofAddr},
	} {
		if a.addr == "" {
			continue
		}
		_, port, err := net.SplitHostPort(a.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port: %w", a.name, a.addr, err))
			continue
		}
		// A port name (":http") would be looked up; a number out of range
		// would fail at listen, after the store was opened and recovered.
		if _, err := strconv.ParseUint(port, 10, 16); err != nil && port != "" {
			errs = append(errs, fmt.Errorf("%s: %q: the port must be a number from 0 to 65535", a.name, a.addr))
		}
	}
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.ConsumerRanges >= 0 && o.ConsumerRanges <= 1024, "consumer-ranges: %d not in [1, 1024]", o.ConsumerRanges)
	check(o.MaxRequestBytes >= 0, "max-request-bytes: %d is negative", o.MaxRequestBytes)
	check(o.MaxEventBytes >= 0, "max-event-bytes: %d is negative", o.MaxEventBytes)
	check(o.MaxEventBytes == 0 || o.MaxRequestBytes == 0 || o.MaxEventBytes <= o.MaxRequestBytes,
		"max-event-bytes: %d is over max-request-bytes %d", o.MaxEventBytes, o.MaxRequestBytes)
	check(o.MaxRequestBytes <= 64<<20, "max-request-bytes: %d is over 64 MiB", o.MaxRequestBytes)
	maxRequest := int64(o.MaxRequestBytes)
	if maxRequest == 0 {
		maxRequest = gateway.DefaultMaxRequestBytes
	}
	check(o.ProduceMemory == 0 || o.ProduceMemory >= maxRequest,
		"produce-memory: %d is less than max-request-bytes %d: the largest request would not fit", o.ProduceMemory, maxRequest)
	check(o.MaxPollBytes >= 0, "max-poll-bytes: %d is negative", o.MaxPollBytes)
	check(o.MaxPollWait >= 0, "max-poll-wait: %v is negative", o.MaxPollWait)
	check(o.MemberTimeout >= 0, "member-timeout: %v is negative", o.MemberTimeout)
	check(o.RetentionMaxBytes >= 0, "retention-max-bytes: %d is negative", o.RetentionMaxBytes)
	check(o.CacheSize >= 0, "cache-size: %d is negative", o.CacheSize)
	check(o.ShutdownTimeout >= 0, "shutdown-timeout: %v is negative", o.ShutdownTimeout)
	for _, origin := range o.CORSOrigins {
		if err := gateway.CheckCORSOrigin(origin); err != nil {
			errs = append(errs, fmt.Errorf("cors-origins: %w", err))
		}
	}
	return errors.Join(errs...)
}

// sizeOrOff is a size for the startup line: "off", as the flag says it,
// for a negative one.
func sizeOrOff(n int64) any {
	if n < 0 {
		return "off"
	}
	return n
}

// logAttrs are the effective settings, named as cmd/floe's flags, for the
// startup log line: min-free-disk is the store's, raised to its floor.
func (o Options) logAttrs() []any {
	return []any{
		"grpc-addr", o.GRPCAddr, "discovery-addr", o.DiscoveryAddr, "producer-addr", o.ProducerAddr,
		"consumer-addr", o.ConsumerAddr, "metrics-addr", o.MetricsAddr, "pprof-addr", o.PprofAddr,
		"data-dir", o.DataDir, "advertised-host", o.AdvertisedHost, "consumer-ranges", o.ConsumerRanges,
		"max-request-bytes", o.MaxRequestBytes, "max-event-bytes", o.MaxEventBytes, "produce-memory", o.ProduceMemory,
		"max-poll-bytes", o.MaxPollBytes, "max-poll-wait", o.MaxPollWait.String(),
		"member-timeout", o.MemberTimeout.String(), "group-offset-retention", o.GroupOffsetRetention.String(),
		"retention-max-age", o.RetentionMaxAge.String(),
		"retention-max-bytes", o.RetentionMaxBytes, "cache-size", o.CacheSize,
		"page-cache-window", sizeOrOff(o.PageCacheWindow), "min-free-disk", sizeOrOff(storeOptions(o).EffectiveMinFreeDisk()),
		"max-topics", sizeOrOff(int64(o.MaxTopics)),
		"shutdown-timeout", o.ShutdownTimeout.String(), "cors-origins", strings.Join(o.CORSOrigins, ","),
	}
}
