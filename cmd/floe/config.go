package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/floe-streams/floe"
)

const usageHeader = `floe: a durable event-streaming broker.

Usage:
  floe [flags]          run a broker
  floe bench --help     the load tool
  floe --version        the version, commit and Go version of this binary

Every setting can be given, from highest to lowest precedence:
  1. as a flag: --data-dir /var/lib/floe
  2. as an environment variable: FLOE_ and the name in upper case with '_'
     for '-': FLOE_DATA_DIR=/var/lib/floe (a variable set to "" sets "")
  3. in a YAML config file named by --config or FLOE_CONFIG, whose keys are
     the flag names: "data-dir: /var/lib/floe", "max-request-bytes: 4MiB",
     "max-poll-wait: 30s" (durations as Go durations: 500ms, 2m, 1h30m)
  4. by its default.
Unknown keys in the file and invalid values anywhere stop floe at startup,
naming the setting and where it came from.

Flags:
`

// config is everything the command line, the environment and the config
// file set.
type config struct {
	opts       floe.Options
	logLevel   string
	logFormat  string
	configFile string
	// memoryLimit is the Go runtime's soft memory limit (process-wide, so
	// set here and not in the library); 0 leaves it to GOMEMLIMIT.
	memoryLimit int64
	// goMaxProcs is the Go runtime's GOMAXPROCS (process-wide too); 0 is
	// auto (autoProcs).
	goMaxProcs int
	// from maps each setting that is not at its default to where it was
	// set: "--data-dir", "FLOE_DATA_DIR" or "floe.yaml:3".
	from map[string]string
}

// defaults are the defaults of the settings that are not strings, as
// documented (sizes with units, durations as Go durations).
var defaults = map[string]string{
	"consumer-ranges":   "4",
	"max-request-bytes": "4MiB", "max-event-bytes": "1MiB", "max-poll-bytes": "2MiB",
	"max-poll-wait": "30s", "member-timeout": "2m", "group-offset-retention": "168h", "retention-max-age": "168h",
	"retention-max-bytes": "0", "cache-size": "64MiB", "page-cache-window": "1GiB", "shutdown-timeout": "30s",
	"min-free-disk": "256MiB", "max-topics": "10000",
	"memory-limit": "200MiB", "gomaxprocs": "auto",
}

// newFlagSet declares every setting, bound to c, with its default.
func newFlagSet(c *config) *flag.FlagSet {
	o := &c.opts
	fs := flag.NewFlagSet("floe", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.configFile, "config", "", "YAML file of settings (keys: the flag names)")
	fs.StringVar(&o.GRPCAddr, "grpc-addr", ":9249", "gRPC listen address")
	fs.StringVar(&o.DiscoveryAddr, "discovery-addr", ":9250", "discovery REST API listen address (also serves /openapi.json)")
	fs.StringVar(&o.ProducerAddr, "producer-addr", ":9251", "producer REST API listen address")
	fs.StringVar(&o.ConsumerAddr, "consumer-addr", ":9252", "consumer REST API listen address")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":9253", "Prometheus metrics listen address, served at /metrics (empty: off)")
	fs.StringVar(&o.PprofAddr, "pprof-addr", "", "net/http/pprof listen address, served at /debug/pprof/ (empty: off; keep it private)")
	fs.StringVar(&o.DataDir, "data-dir", "./floe-data", "directory of the event store (one floe process at a time)")
	fs.StringVar(&o.AdvertisedHost, "advertised-host", "", "host name of this broker in /v1/brokers (default: the host name)")
	fs.Var(integer{&o.ConsumerRanges}, "consumer-ranges", "sub-ranges of the token range: the unit of ordering and of consumer assignment")
	fs.Var(byteSize{&o.MaxRequestBytes}, "max-request-bytes", "largest produce request, e.g. 4MiB (413 beyond)")
	fs.Var(byteSize{&o.MaxEventBytes}, "max-event-bytes", "largest event, e.g. 1MiB (413 beyond) (default: 1MiB, or max-request-bytes when that is less)")
	fs.Var(byteSize64{&o.ProduceMemory}, "produce-memory", "produce requests held at once until stored (REST bodies, gRPC stream batches), e.g. 64MiB: beyond, a request waits before its body is read (REST: 503 after 30s) (default: 64MiB, or 4 × max-request-bytes when that is more; at least max-request-bytes)")
	fs.Var(byteSize{&o.MaxPollBytes}, "max-poll-bytes", "most bytes of events in a poll answer (the JSON around them is extra), e.g. 2MiB")
	fs.Var(duration{&o.MaxPollWait}, "max-poll-wait", "cap of the long-poll timeout")
	fs.Var(duration{&o.MemberTimeout}, "member-timeout", "a consumer that has not polled, committed or registered for this long leaves its group")
	fs.Var(duration{&o.GroupOffsetRetention}, "group-offset-retention", "delete the committed offsets of a group without members this long after it lost its last member (members at a stop: after the next start) (negative: keep forever)")
	fs.Var(duration{&o.RetentionMaxAge}, "retention-max-age", "delete events older than this (negative: keep forever)")
	fs.Var(byteSize64{&o.RetentionMaxBytes}, "retention-max-bytes", "keep at most this much per topic, e.g. 10GiB (0: unlimited)")
	fs.Var(byteSize64{&o.CacheSize}, "cache-size", "block cache of the store, e.g. 64MiB")
	fs.Var(byteSizeOrOff{&o.PageCacheWindow}, "page-cache-window", "newest flushed events left in the OS page cache, e.g. 1GiB; older blob files are dropped from it (off: the kernel decides; Linux only)")
	fs.Var(byteSizeOrOff{&o.MinFreeDisk}, "min-free-disk", "free space kept on the volume of data-dir: below it, produce requests get 507 until space comes back (at least 8 memtables: 2.5 × max-request-bytes each, 16MiB at least) (off: no guard; then a full disk stalls or crashes the store)")
	fs.Var(integerOrOff{&o.MaxTopics}, "max-topics", "most topics the broker holds: producing to a new topic beyond it gets 409 TOO_MANY_TOPICS; topics are never removed (off: no limit)")
	fs.Var(originList{&o.CORSOrigins}, "cors-origins", "origins whose pages may call the REST API from a browser (CORS), comma-separated, e.g. https://portal.example.com,http://localhost:8080; * for any (empty: none)")
	fs.Var(duration{&o.ShutdownTimeout}, "shutdown-timeout", "how long a graceful shutdown (SIGTERM, SIGINT) may wait for requests in flight")
	fs.Var(byteSize64{&c.memoryLimit}, "memory-limit", "soft memory limit of the Go runtime: the GC works harder near it (0: none; GOMEMLIMIT, if set, wins)")
	fs.Var(procsOrAuto{&c.goMaxProcs}, "gomaxprocs", "threads that run Go code at once (the Go runtime's GOMAXPROCS); auto: twice the CPUs available, so that the store's WAL writer gets a thread as soon as its fsync returns on a busy machine, or under a cgroup CPU limit the Go runtime's choice (GOMAXPROCS, if set, wins)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	for name, def := range defaults {
		f := fs.Lookup(name)
		if err := f.Value.Set(def); err != nil {
			panic(err) // a wrong literal above
		}
		f.DefValue = def
	}
	fs.Lookup("produce-memory").DefValue = "" // in its usage: it follows max-request-bytes
	fs.Lookup("max-event-bytes").DefValue = ""
	return fs
}

// parseConfig turns the command line, the environment (lookupEnv) and the
// config file into a config, with the precedence flags > environment > file
// > defaults. Logs go to logOut. An invalid setting is an error naming it
// and where it was set; --help returns flag.ErrHelp.
func parseConfig(args []string, lookupEnv func(string) (string, bool), logOut io.Writer) (*config, error) {
	c := &config{from: map[string]string{}}
	fs := newFlagSet(c)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w (floe --help lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (floe --help lists the flags)", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { c.from[f.Name] = "--" + f.Name })

	// The config file: named by --config, else by FLOE_CONFIG.
	if _, ok := c.from["config"]; !ok {
		if v, ok := lookupEnv(envName("config")); ok && v != "" {
			c.configFile, c.from["config"] = v, envName("config")
		}
	}
	var file *configFile
	if c.configFile != "" {
		var err error
		if file, err = readConfigFile(c.configFile, fs); err != nil {
			return nil, err
		}
	}

	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := c.from[f.Name]; ok || f.Name == "config" {
			return
		}
		if v, ok := lookupEnv(envName(f.Name)); ok {
			c.from[f.Name] = envName(f.Name)
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s=%q: %v", f.Name, envName(f.Name), v, err))
			}
			return
		}
		if e, ok := file.lookup(f.Name); ok {
			c.from[f.Name] = e.where
			if err := f.Value.Set(e.value); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %v", e.where, f.Name, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := c.checkZeros(); err != nil {
		return nil, err
	}
	if _, set := c.from["max-event-bytes"]; !set && c.opts.MaxEventBytes > c.opts.MaxRequestBytes {
		// The default follows a smaller request limit, as produce-memory
		// follows a larger one: --max-request-bytes 512KiB alone failed
		// with "max-event-bytes: 1048576 is over max-request-bytes".
		c.opts.MaxEventBytes = c.opts.MaxRequestBytes
	}
	if c.memoryLimit > 0 && c.memoryLimit < minMemoryLimit {
		// The GC would run without pause: --memory-limit 200, meant as
		// MiB, made 600 collections a second and halved produce.
		hint := ""
		if c.memoryLimit < 1<<20 {
			hint = fmt.Sprintf("; a size without a unit is in bytes: %dMiB?", c.memoryLimit)
		}
		return nil, c.blame(fmt.Errorf("memory-limit: %d bytes is less than the broker needs (at least %dMiB%s)",
			c.memoryLimit, minMemoryLimit>>20, hint))
	}
	logger, err := newLogger(c.logLevel, c.logFormat, logOut)
	if err != nil {
		return nil, c.blame(err)
	}
	c.opts.Logger = logger
	c.opts.StartupAttrs = c.startupAttrs()
	if err := c.opts.Validate(); err != nil {
		return nil, c.blame(err)
	}
	return c, nil
}

// minMemoryLimit is the smallest memory-limit: the store's memtables alone
// take 16 MiB each.
const minMemoryLimit = 64 << 20

// zeroMeaningless are the settings that 0 cannot mean anything sensible
// for; the library would read 0 as "the default", so a 0 set by the user
// is refused instead of silently replaced.
var zeroMeaningless = map[string]string{
	"consumer-ranges":        "use 1 to 1024",
	"max-request-bytes":      "use a size such as 4MiB",
	"max-event-bytes":        "use a size such as 1MiB",
	"max-poll-bytes":         "use a size such as 2MiB",
	"produce-memory":         "use a size such as 64MiB",
	"max-poll-wait":          "use a duration such as 30s",
	"member-timeout":         "use a duration such as 2m",
	"group-offset-retention": "it would forget a group as soon as its last member leaves; a negative value keeps offsets forever",
	"retention-max-age":      "it would delete every event at once; a negative value keeps events forever",
	"cache-size":             "use a size such as 64MiB",
	"page-cache-window":      "use a size such as 1GiB, or off",
	"min-free-disk":          "use a size such as 256MiB, or off",
	"max-topics":             "use a number such as 10000, or off",
	"shutdown-timeout":       "use a duration such as 30s",
}

// checkZeros refuses 0 for the settings of zeroMeaningless that were set,
// and an empty data-dir or API listener address (metrics-addr and
// pprof-addr may be empty: off).
func (c *config) checkZeros() error {
	o := c.opts
	values := map[string]int64{
		"consumer-ranges": int64(o.ConsumerRanges), "max-request-bytes": int64(o.MaxRequestBytes),
		"max-event-bytes": int64(o.MaxEventBytes), "max-poll-bytes": int64(o.MaxPollBytes),
		"produce-memory": o.ProduceMemory,
		"max-poll-wait":  int64(o.MaxPollWait), "member-timeout": int64(o.MemberTimeout),
		"group-offset-retention": int64(o.GroupOffsetRetention),
		"retention-max-age":      int64(o.RetentionMaxAge), "cache-size": o.CacheSize,
		"page-cache-window": o.PageCacheWindow, "min-free-disk": o.MinFreeDisk,
		"max-topics":       int64(o.MaxTopics),
		"shutdown-timeout": int64(o.ShutdownTimeout),
	}
	var errs []error
	// The library reads "" as the default: a mistyped variable would write
	// events into ./floe-data, or open a listener on every interface.
	for _, e := range []struct{ name, value, use string }{
		{"data-dir", o.DataDir, "an empty path is not allowed: name a directory"},
		{"grpc-addr", o.GRPCAddr, "an empty address is not allowed: use host:port, e.g. :9249"},
		{"discovery-addr", o.DiscoveryAddr, "an empty address is not allowed: use host:port, e.g. :9250"},
		{"producer-addr", o.ProducerAddr, "an empty address is not allowed: use host:port, e.g. :9251"},
		{"consumer-addr", o.ConsumerAddr, "an empty address is not allowed: use host:port, e.g. :9252"},
	} {
		if where, set := c.from[e.name]; set && strings.TrimSpace(e.value) == "" {
			errs = append(errs, fmt.Errorf("%s: %s (set by %s)", e.name, e.use, where))
		}
	}
	for _, name := range sortedKeys(zeroMeaningless) {
		if where, set := c.from[name]; set && values[name] == 0 {
			errs = append(errs, fmt.Errorf("%s: 0 is not allowed: %s (set by %s)", name, zeroMeaningless[name], where))
		}
	}
	return errors.Join(errs...)
}

// origin says where setting name got its value, for a message: "set by
// --consumer-ranges", "set by FLOE_CONSUMER_RANGES", "set by floe.yaml:3" or
// "the default".
func (c *config) origin(name string) string {
	if w, set := c.from[name]; set {
		return "set by " + w
	}
	return "the default"
}

// blame appends where the setting was set to each error that starts with a
// setting's name ("max-event-bytes: ..."), and where any other setting the
// error checks it against was set ("... is over max-request-bytes 100"):
// that one may be the setting to change.
func (c *config) blame(err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = e
		name, rest, ok := strings.Cut(e.Error(), ":")
		if !ok {
			continue
		}
		var where []string
		if w, set := c.from[name]; set {
			where = append(where, "set by "+w)
		}
		for _, other := range sortedKeys(c.from) {
			if other != name && strings.Contains(rest+" ", " "+other+" ") {
				where = append(where, other+" set by "+c.from[other])
			}
		}
		if len(where) > 0 {
			out[i] = fmt.Errorf("%w (%s)", e, strings.Join(where, "; "))
		}
	}
	return errors.Join(out...)
}

// startupAttrs are the settings of the command itself for the node's
// startup line, and where each non-default setting came from.
func (c *config) startupAttrs() []slog.Attr {
	var from []any
	for _, name := range sortedKeys(c.from) {
		from = append(from, name, c.from[name])
	}
	return []slog.Attr{
		slog.String("config", c.configFile),
		slog.String("log-level", c.logLevel),
		slog.String("log-format", c.logFormat),
		slog.Int64("memory-limit", c.memoryLimit),
		slog.Group("set-by", from...),
	}
}

func envName(flagName string) string {
	return "FLOE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func printUsage(w io.Writer) {
	fs := newFlagSet(&config{})
	fmt.Fprint(w, usageHeader)
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  --%s (%s)\n    \t%s", f.Name, envName(f.Name), f.Usage)
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

func newLogger(level, format string, out io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level: %q is not debug, info, warn or error", level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(out, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(out, hopts)), nil
	}
	return nil, fmt.Errorf("log-format: %q is not text or json", format)
}
