package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/floe-streams/floe"
)

const usageHeader = `floe: a durable event-streaming broker.

Usage:
  floe [flags]          run a broker
  floe bench --help     the load tool

Every flag can also be set by an environment variable: FLOE_ and the flag
name in upper case with '_' for '-' (--data-dir: FLOE_DATA_DIR). A flag on
the command line wins over the environment.

Flags:
`

// parseConfig turns the command line and the environment into Options. An
// invalid value is an error naming the flag or variable.
func parseConfig(args []string, getenv func(string) string) (floe.Options, error) {
	var (
		o         floe.Options
		logLevel  string
		logFormat string
	)
	fs := flag.NewFlagSet("floe", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.GRPCAddr, "grpc-addr", ":9249", "gRPC listen address")
	fs.StringVar(&o.DiscoveryAddr, "discovery-addr", ":9250", "discovery REST API listen address (also serves /openapi.json)")
	fs.StringVar(&o.ProducerAddr, "producer-addr", ":9251", "producer REST API listen address")
	fs.StringVar(&o.ConsumerAddr, "consumer-addr", ":9252", "consumer REST API listen address")
	fs.StringVar(&o.DataDir, "data-dir", "./floe-data", "directory of the event store")
	fs.StringVar(&o.AdvertisedHost, "advertised-host", "", "host name of this broker in /v1/brokers (default: the host name)")
	fs.IntVar(&o.ConsumerRanges, "consumer-ranges", 4, "sub-ranges of the token range: the unit of ordering and of consumer assignment")
	fs.Var(byteSize{&o.MaxRequestBytes}, "max-request-bytes", "largest produce request, e.g. 4MiB (413 beyond)")
	fs.Var(byteSize{&o.MaxEventBytes}, "max-event-bytes", "largest event, e.g. 1MiB (413 beyond)")
	fs.Var(byteSize{&o.MaxPollBytes}, "max-poll-bytes", "largest poll answer, e.g. 2MiB")
	fs.DurationVar(&o.MaxPollWait, "max-poll-wait", 30*time.Second, "cap of the long-poll timeout")
	fs.DurationVar(&o.MemberTimeout, "member-timeout", 2*time.Minute, "a consumer that has not polled for this long leaves its group")
	fs.DurationVar(&o.RetentionMaxAge, "retention-max-age", 7*24*time.Hour, "delete events older than this (negative: keep forever)")
	fs.Var(byteSize64{&o.RetentionMaxBytes}, "retention-max-bytes", "keep at most this much per topic, e.g. 10GiB (0: unlimited)")
	fs.Var(byteSize64{&o.CacheSize}, "cache-size", "block cache of the store, e.g. 64MiB")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "text or json")
	*byteSizeDefault(fs, "max-request-bytes") = "4MiB"
	*byteSizeDefault(fs, "max-event-bytes") = "1MiB"
	*byteSizeDefault(fs, "max-poll-bytes") = "2MiB"
	*byteSizeDefault(fs, "retention-max-bytes") = "0"
	*byteSizeDefault(fs, "cache-size") = "64MiB"

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(os.Stdout, fs)
			os.Exit(0)
		}
		return o, fmt.Errorf("%w (floe --help lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (floe --help lists the flags)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	logger, err := newLogger(logLevel, logFormat)
	if err != nil {
		return o, err
	}
	o.Logger = logger
	return o, o.Validate()
}

func envName(flagName string) string {
	return "FLOE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usageHeader)
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  --%s (%s)\n    \t%s", f.Name, envName(f.Name), f.Usage)
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level: %q is not debug, info, warn or error", level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, hopts)), nil
	}
	return nil, fmt.Errorf("log-format: %q is not text or json", format)
}

// byteSize is a flag of a size in bytes: a number with an optional unit
// (B, KB, MB, GB, KiB, MiB, GiB).
type byteSize struct{ p *int }

func (b byteSize) String() string {
	if b.p == nil {
		return ""
	}
	return strconv.Itoa(*b.p)
}

func (b byteSize) Set(s string) error {
	v, err := parseBytes(s)
	if err != nil {
		return err
	}
	if v > int64(^uint(0)>>1) {
		return fmt.Errorf("%q is too large", s)
	}
	*b.p = int(v)
	return nil
}

type byteSize64 struct{ p *int64 }

func (b byteSize64) String() string {
	if b.p == nil {
		return ""
	}
	return strconv.FormatInt(*b.p, 10)
}

func (b byteSize64) Set(s string) error {
	v, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b.p = v
	return nil
}

// byteSizeDefault points at the documented default of a size flag.
func byteSizeDefault(fs *flag.FlagSet, name string) *string { return &fs.Lookup(name).DefValue }

var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size: use a number of bytes, optionally with KiB, MiB or GiB", s)
	}
	if v > 0 && mult > (1<<62)/v {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return v * mult, nil
}
