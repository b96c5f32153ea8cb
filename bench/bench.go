package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Config is one run of produce, consume or e2e.
// DefaultLateLimit is --late-limit's default, which the matrix uses too.
const DefaultLateLimit = 5 * time.Second

type Config struct {
	Mode       string // produce, consume, e2e
	API        string // rest or grpc
	HTTPClient string // std (net/http) or raw
	Producer   string // host:port of the producer REST API
	Consumer   string // host:port of the consumer REST API
	GRPC       string // host:port of the gRPC API

	Topic            string
	Connections      int
	EventsPerRequest int
	EventSize        int
	Keys             int
	Count            uint64
	Duration         time.Duration
	Rate             float64 // events/s; 0: as fast as possible
	// LateLimit: with Rate and Duration, how long after Duration the run
	// may go on sending what was scheduled within it (--late-limit,
	// DefaultLateLimit).
	LateLimit  time.Duration
	GRPCStream bool
	GRPCBody   bool
	Inflight   int // batches in flight per gRPC stream

	Consumers    int
	Group        string
	From         string // earliest or latest
	PollTimeout  time.Duration
	PollMaxBytes int
	Idle         time.Duration // consume ends after this long without events
	Drain        time.Duration // e2e: how long consumers may catch up after producing

	AckFile  string
	Run      string
	Progress time.Duration
	Log      io.Writer // progress lines; nil: none
}

func (c *Config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.API == "rest" || c.API == "grpc", "--api: %q is not rest or grpc", c.API)
	check(c.HTTPClient == "std" || c.HTTPClient == "raw" || c.HTTPClient == "h2c", "--http-client: %q is not std, h2c or raw", c.HTTPClient)
	check(c.Connections > 0, "--connections: must be at least 1")
	check(c.EventsPerRequest > 0, "--events-per-request: must be at least 1")
	check(c.EventSize >= minEventSize, "--event-size: must be at least %d bytes", minEventSize)
	check(c.EventSize <= maxEventSize, "--event-size: must be at most %d bytes", maxEventSize)
	check(c.Keys >= 0, "--keys: must not be negative")
	check(c.Consumers > 0, "--consumers: must be at least 1")
	check(c.Inflight > 0, "--inflight: must be at least 1")
	check(c.From == "earliest" || c.From == "latest", "--from: %q is not earliest or latest", c.From)
	check(c.Topic != "", "--topic: must not be empty")
	check(c.Count > 0 || c.Duration > 0 || c.Mode == "consume", "set --count or --duration")
	switch {
	case math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0:
		check(false, "--rate: %v is not a number of events/s, 0 or more", c.Rate)
	case c.Rate > 0 && c.Connections > 0 && c.EventsPerRequest > 0:
		// Each connection sends one request per interval: it must be a
		// Duration a timer can wait for and the pacer can step by.
		iv := float64(c.Connections) * float64(c.EventsPerRequest) / c.Rate
		check(iv >= minPaceInterval.Seconds() && iv <= maxPaceInterval.Seconds(),
			"--rate: at %v events/s each of the %d connections sends one request of %d events every %.3gs; the tool paces between one request per %v and one per %v per connection (or --rate 0: as fast as possible)",
			c.Rate, c.Connections, c.EventsPerRequest, iv, minPaceInterval, maxPaceInterval)
	}
	check(c.LateLimit >= 0, "--late-limit must not be negative")
	check(c.Duration >= 0 && c.PollTimeout >= 0 && c.Idle >= 0 && c.Drain >= 0 && c.Progress >= 0,
		"--duration, --poll-timeout, --idle, --drain and --progress must not be negative")
	check(c.Mode != "consume" || c.Count > 0 || c.Duration > 0 || c.Idle > 0, "consume: set --count, --duration or --idle, or it never ends")
	check(c.API == "grpc" || !c.GRPCStream && !c.GRPCBody, "--grpc-stream and --grpc-body need --api grpc")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", errBadFlags, err)
	}
	return nil
}

// Bounds of the time between two requests of a paced connection (--rate).
const (
	minPaceInterval = time.Microsecond
	maxPaceInterval = time.Hour
)

// errReRegistered is the error key of a poll answered 409 (the member had
// expired): the tool registers again, and the run goes on.
const errReRegistered = "not registered (re-register)"

// errBadFlags marks an error of the flags (exit status 2), as against one
// of the run (1).
var errBadFlags = errors.New("bad flags")

const usage = `floe bench: load tool for a Floe broker.

Usage:
  floe bench produce [flags]   produce events; --ack-file records what was acknowledged
  floe bench consume [flags]   consume in a group and verify (--ack-file of a produce run)
  floe bench e2e [flags]       produce (at --rate) and consume at once: end-to-end latency
  floe bench matrix [flags]    start a broker, run the standard matrix, write BENCHMARKS.md
  floe bench noop-server [flags]  an HTTP server that reads each body and answers 200
                               (the matrix's baseline; --addr, default 127.0.0.1:9251;
                               --fsync-file F: answers once the body is fdatasynced to F)

Events are {"run":..,"seq":..,"ts":..,"sum":..,"pad":..} of exactly --event-size
bytes: a consumer counts missing, duplicated and malformed events (see --ack-file).
The run ends at --count events or after --duration, whichever comes first.

Flags of produce, consume and e2e:
`

// Main runs floe bench with args and returns the exit code.
func Main(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(usage)
		fs, _, _ := runFlags("produce")
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		fmt.Println("\nfloe bench matrix --help lists the flags of the matrix.")
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "produce", "consume", "e2e":
		return runCommand(ctx, args[0], args[1:])
	case "matrix":
		return runMatrixCommand(ctx, args[1:])
	case "noop-server":
		return runNoopServer(ctx, args[1:])
	}
	fmt.Fprintf(os.Stderr, "floe bench: unknown command %q (floe bench --help)\n", args[0])
	return 2
}

// runFlags declares the flags of produce, consume and e2e.
func runFlags(mode string) (*flag.FlagSet, *Config, *bool) {
	c := &Config{Mode: mode}
	fs := flag.NewFlagSet("floe bench "+mode, flag.ContinueOnError)
	fs.StringVar(&c.API, "api", "rest", "rest or grpc")
	fs.StringVar(&c.HTTPClient, "http-client", "raw", "REST client: std (net/http HTTP/1.1, keep-alive), h2c (net/http, HTTP/2 without TLS, requests multiplexed) or raw (minimal HTTP/1.1 client, cheaper for the tool)")
	fs.StringVar(&c.Producer, "producer", "localhost:9251", "producer REST API address")
	fs.StringVar(&c.Consumer, "consumer", "localhost:9252", "consumer REST API address")
	fs.StringVar(&c.GRPC, "grpc", "localhost:9249", "gRPC API address")
	fs.StringVar(&c.Topic, "topic", "bench", "topic (consume: default the ack file's)")
	fs.IntVar(&c.Connections, "connections", 16, "concurrent producer connections (gRPC: streams or unary callers)")
	fs.IntVar(&c.EventsPerRequest, "events-per-request", 1, "events per request: 1 sends application/json, more application/x-ndjson (gRPC: events per batch)")
	fs.IntVar(&c.EventSize, "event-size", 200, "bytes per event (100 to 1048576)")
	fs.IntVar(&c.Keys, "keys", 0, "partition keys used, round robin (0: no key)")
	fs.Uint64Var(&c.Count, "count", 0, "events to send, acknowledged or not (consume: to receive of the run, in whole polls: a few more); 0: no bound")
	fs.DurationVar(&c.Duration, "duration", 0, "time bound of the run (0: none; produce and e2e need --count or --duration)")
	fs.Float64Var(&c.Rate, "rate", 0, "target events/s (0: as fast as possible); e2e default 20000")
	fs.DurationVar(&c.LateLimit, "late-limit", DefaultLateLimit, "with --rate: how long after --duration the run may go on sending what was scheduled within it; still unsent then, it fails")
	fs.BoolVar(&c.GRPCStream, "grpc-stream", false, "gRPC (--api grpc): produce on ProduceStream instead of unary Produce")
	fs.BoolVar(&c.GRPCBody, "grpc-body", false, "gRPC (--api grpc): send each batch as one NDJSON body instead of typed events")
	fs.IntVar(&c.Inflight, "inflight", 16, "gRPC stream: batches in flight per stream")
	fs.IntVar(&c.Consumers, "consumers", 1, "consumers (each a member of --group)")
	fs.StringVar(&c.Group, "group", "", "consumer group (default: bench-<run>, a new group)")
	fs.StringVar(&c.From, "from", "", "where a new group starts: earliest or latest (default: consume earliest, e2e latest)")
	fs.DurationVar(&c.PollTimeout, "poll-timeout", 500*time.Millisecond, "long-poll timeout sent with each poll (?timeout=ms)")
	fs.IntVar(&c.PollMaxBytes, "poll-max-bytes", 0, "maxBytes sent with each poll (0: the broker's limit)")
	fs.DurationVar(&c.Idle, "idle", 5*time.Second, "consume: stop after this long without an event (0: never)")
	fs.DurationVar(&c.Drain, "drain", 10*time.Second, "e2e: how long consumers may catch up after the producers stop")
	fs.StringVar(&c.AckFile, "ack-file", "", "produce: write the acknowledged sequence ranges here; consume: verify against them")
	fs.StringVar(&c.Run, "run", "", "run id, 8 hex digits (default: random)")
	fs.DurationVar(&c.Progress, "progress", 2*time.Second, "progress line interval (0: none)")
	jsonOut := fs.Bool("json", false, "print the result as JSON on stdout (progress still goes to stderr)")
	return fs, c, jsonOut
}

func runCommand(ctx context.Context, mode string, args []string) int {
	fs, c, jsonOut := runFlags(mode)
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "floe bench %s: unexpected argument %q\n", mode, fs.Arg(0))
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if mode == "e2e" && !set["rate"] {
		c.Rate = 20000
	}
	if mode == "consume" && !set["topic"] {
		c.Topic = ""
	}
	c.Log = os.Stderr
	res, err := Run(ctx, c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "floe bench %s: %v\n", mode, err)
		if errors.Is(err, errBadFlags) {
			return 2
		}
		return 1
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printSummary(os.Stdout, res)
	}
	if why := res.failed(); why != "" {
		fmt.Fprintf(os.Stderr, "floe bench %s: failed: %s\n", mode, why)
		return 1
	}
	return 0
}

// failed says why a run failed: requests that failed, missing, malformed or
// phantom events; "" when it did not.
func (r *Result) failed() string {
	var why []string
	for _, side := range []struct {
		name string
		s    *Side
	}{{"produce", r.Produce}, {"poll", r.Consume}} {
		if side.s == nil || len(side.s.Errors) == 0 {
			continue
		}
		var n uint64
		for k, c := range side.s.Errors {
			if k != errReRegistered { // recovered: the member registered again
				n += c
			}
		}
		if n == 0 {
			continue
		}
		why = append(why, fmt.Sprintf("%d %s requests failed", n, side.name))
	}
	if p := r.Produce; p != nil && p.Unsent > 0 {
		why = append(why, fmt.Sprintf("%d scheduled events not sent", p.Unsent))
	}
	if v := r.Verify; v != nil && (v.Missing > 0 || v.Malformed > 0 || v.Phantom > 0) {
		msg := fmt.Sprintf("%d events missing, %d malformed", v.Missing, v.Malformed)
		if v.Phantom > 0 {
			msg += fmt.Sprintf(", %d never sent (phantom)", v.Phantom)
		}
		why = append(why, msg)
	}
	return strings.Join(why, "; ")
}

// Run runs c (produce, consume or e2e) and returns its result.
func Run(ctx context.Context, c *Config) (*Result, error) {
	if c.Run == "" {
		c.Run = newRunID()
	}
	if len(c.Run) != runIDLen || strings.Trim(c.Run, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("--run: %q is not %d hex digits", c.Run, runIDLen)
	}
	if c.From == "" {
		c.From = "earliest"
		if c.Mode == "e2e" {
			c.From = "latest"
		}
	}
	var a *acks
	if c.Mode == "consume" && c.AckFile != "" {
		f, err := readAckFile(c.AckFile)
		if err != nil {
			return nil, err
		}
		if c.Topic == "" {
			c.Topic = f.Topic
		}
		c.Run = f.Run
		a = f.toAcks()
	}
	if c.Topic == "" {
		c.Topic = "bench"
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	switch c.Mode {
	case "produce":
		return runProduce(ctx, c)
	case "consume":
		return runConsume(ctx, c, a)
	case "e2e":
		return runE2E(ctx, c)
	}
	return nil, fmt.Errorf("unknown mode %q", c.Mode)
}
