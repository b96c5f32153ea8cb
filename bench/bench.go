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
	"slices"
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
	produces, consumes := c.Mode != "consume", c.Mode != "produce"
	check(c.API == "rest" || c.API == "grpc", "--api: %q is not rest or grpc", c.API)
	check(c.HTTPClient == "std" || c.HTTPClient == "raw" || c.HTTPClient == "h2c", "--http-client: %q is not std, h2c or raw", c.HTTPClient)
	check(c.Topic != "", "--topic: must not be empty")
	check(c.Duration >= 0, "--duration: must not be negative")
	check(c.Progress >= 0, "--progress: must not be negative")
	if produces {
		check(c.Connections > 0, "--connections: must be at least 1")
		check(c.EventsPerRequest > 0, "--events-per-request: must be at least 1")
		check(c.EventSize >= minEventSize && c.EventSize <= maxEventSize, "--event-size: must be between %d and %d bytes", minEventSize, maxEventSize)
		check(c.Keys >= 0 && c.Keys <= maxKeys, "--keys: must be between 0 and %d", maxKeys)
		check(c.Inflight > 0, "--inflight: must be at least 1")
		check(c.LateLimit >= 0, "--late-limit: must not be negative")
		check(c.Count > 0 || c.Duration != 0, "set --count or --duration, or the run never ends")
		check(c.API == "grpc" || !c.GRPCStream && !c.GRPCBody, "--grpc-stream and --grpc-body need --api grpc")
		switch {
		case math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0:
			check(false, "--rate: %v is not a number of events/s, 0 or more", c.Rate)
		case c.Rate > 0 && c.Connections > 0 && c.EventsPerRequest > 0:
			// Each connection sends one request per interval: it must be a
			// Duration a timer can wait for and the pacer can step by.
			iv := float64(c.Connections) * float64(c.EventsPerRequest) / c.Rate
			check(iv >= minPaceInterval.Seconds() && iv <= maxPaceInterval.Seconds(),
				"--rate: at %v events/s, each of the %d connections would send a request of %d event(s) every %.3g s; the tool paces one request per connection every %v to %v (or --rate 0: as fast as possible)",
				c.Rate, c.Connections, c.EventsPerRequest, iv, minPaceInterval, maxPaceInterval)
		}
	}
	if consumes {
		check(c.Consumers > 0, "--consumers: must be at least 1")
		check(c.From == "earliest" || c.From == "latest", "--from: %q is not earliest or latest", c.From)
		// A poll without a timeout is answered at once, events or not: the
		// consumers would spin on an empty topic.
		check(c.PollTimeout >= time.Millisecond && c.PollTimeout%time.Millisecond == 0,
			"--poll-timeout: %v is not a whole number of milliseconds, at least 1ms (the poll's timeout parameter is in ms)", c.PollTimeout)
		check(c.PollMaxBytes >= 0 && int64(c.PollMaxBytes) <= math.MaxUint32,
			"--poll-max-bytes: must be between 0 (the broker's limit) and %d", uint32(math.MaxUint32))
	}
	switch c.Mode {
	case "consume":
		check(c.Idle >= 0, "--idle: must not be negative")
		check(c.Count > 0 || c.Duration != 0 || c.Idle > 0, "set --count, --duration or --idle, or the run never ends")
	case "e2e":
		check(c.Drain >= 0, "--drain: must not be negative")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", errBadFlags, err)
	}
	return nil
}

// maxKeys bounds --keys: the tool makes each key's route (or key) once,
// about 60 bytes each.
const maxKeys = 1_000_000

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
Exit status: 0 passed, 1 failed (requests failed, events missing or
malformed, a target missed), 2 bad flags, 130 interrupted (SIGINT or
SIGTERM: the summary covers what ran until then).

Each command's --help lists its flags: floe bench produce --help.
`

// Main runs floe bench with args and returns the exit code.
func Main(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(usage)
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

// runFlags declares the flags of produce, consume or e2e: only those that
// apply to the mode, so that one that does not (consume --rate) is refused
// as unknown rather than ignored.
func runFlags(mode string) (*flag.FlagSet, *Config, *bool) {
	c := &Config{Mode: mode, Connections: 16, EventsPerRequest: 1, EventSize: 200, Consumers: 1, Inflight: 16,
		LateLimit: DefaultLateLimit, PollTimeout: 500 * time.Millisecond}
	produces, consumes := mode != "consume", mode != "produce"
	fs := flag.NewFlagSet("floe bench "+mode, flag.ContinueOnError)
	dur := fs.DurationVar
	fs.StringVar(&c.API, "api", "rest", "rest or grpc")
	fs.StringVar(&c.HTTPClient, "http-client", "raw", "REST client: std (net/http HTTP/1.1, keep-alive), h2c (net/http, HTTP/2 without TLS, requests multiplexed) or raw (minimal HTTP/1.1 client, cheaper for the tool)")
	// The broker's addresses are accepted by every command, so that one
	// set of them serves all three.
	fs.StringVar(&c.Producer, "producer", "localhost:9251", "producer REST API address (produce and e2e over REST)")
	fs.StringVar(&c.Consumer, "consumer", "localhost:9252", "consumer REST API address (consume and e2e over REST)")
	fs.StringVar(&c.GRPC, "grpc", "localhost:9249", "gRPC API address (every command with --api grpc)")
	if mode == "consume" {
		fs.StringVar(&c.Topic, "topic", "", "topic (default: the ack file's, else bench)")
	} else {
		fs.StringVar(&c.Topic, "topic", "bench", "topic")
	}
	switch mode {
	case "produce":
		fs.Uint64Var(&c.Count, "count", 0, "events to send, acknowledged or not; 0: no bound (set --count or --duration)")
		dur(&c.Duration, "duration", 0, "time bound of the run (0: none; set --count or --duration)")
	case "consume":
		fs.Uint64Var(&c.Count, "count", 0, "stop once this many events of the run arrived (whole polls: a few more); 0: no bound")
		dur(&c.Duration, "duration", 0, "time bound of the run (0: none)")
	case "e2e":
		fs.Uint64Var(&c.Count, "count", 0, "events to send, acknowledged or not; 0: no bound (set --count or --duration)")
		dur(&c.Duration, "duration", 0, "time bound of producing (0: none; set --count or --duration)")
	}
	if produces {
		fs.IntVar(&c.Connections, "connections", c.Connections, "concurrent producer connections (gRPC: streams or unary callers)")
		fs.IntVar(&c.EventsPerRequest, "events-per-request", c.EventsPerRequest, "events per request: 1 sends application/json, more application/x-ndjson (gRPC: events per batch)")
		fs.IntVar(&c.EventSize, "event-size", c.EventSize, fmt.Sprintf("bytes per event (%d to %d)", minEventSize, maxEventSize))
		fs.IntVar(&c.Keys, "keys", 0, fmt.Sprintf("partition keys used, round robin (0: no key; at most %d)", maxKeys))
		rateHelp := "target events/s (0: as fast as possible)"
		if mode == "e2e" {
			c.Rate, rateHelp = 20000, "target events/s (0: as fast as possible)"
		}
		fs.Float64Var(&c.Rate, "rate", c.Rate, rateHelp)
		dur(&c.LateLimit, "late-limit", c.LateLimit, "with --rate: how long after --duration the run may go on sending what was scheduled within it; still unsent then, it fails")
		fs.BoolVar(&c.GRPCStream, "grpc-stream", false, "gRPC (--api grpc): produce on ProduceStream instead of unary Produce")
		fs.BoolVar(&c.GRPCBody, "grpc-body", false, "gRPC (--api grpc): send each batch as one NDJSON body instead of typed events")
		fs.IntVar(&c.Inflight, "inflight", c.Inflight, "gRPC stream: batches in flight per stream")
		fs.StringVar(&c.Run, "run", "", "run id of the events, 8 hex digits (default: random)")
	}
	if consumes {
		fs.IntVar(&c.Consumers, "consumers", c.Consumers, "consumers (each a member of --group)")
		fs.StringVar(&c.Group, "group", "", "consumer group (default: bench-<random>, a new group)")
		fromDefault := "earliest"
		if mode == "e2e" {
			fromDefault = "latest"
		}
		fs.StringVar(&c.From, "from", fromDefault, "where a new group starts: earliest or latest")
		dur(&c.PollTimeout, "poll-timeout", c.PollTimeout, "long-poll timeout sent with each poll (?timeout=ms): whole milliseconds, at least 1ms")
		fs.IntVar(&c.PollMaxBytes, "poll-max-bytes", 0, "maxBytes sent with each poll (0: the broker's limit)")
	}
	switch mode {
	case "produce":
		fs.StringVar(&c.AckFile, "ack-file", "", "write the acknowledged sequence ranges here, for consume --ack-file")
	case "consume":
		fs.StringVar(&c.AckFile, "ack-file", "", "verify against the ack file of a produce run (without it: each run's sequence numbers are checked for holes)")
		dur(&c.Idle, "idle", 5*time.Second, "stop after this long without an event (0: never)")
	case "e2e":
		dur(&c.Drain, "drain", 10*time.Second, "how long consumers may catch up after the producers stop")
	}
	dur(&c.Progress, "progress", 2*time.Second, "progress line interval (0: none)")
	jsonOut := fs.Bool("json", false, "print the result as JSON on stdout (progress still goes to stderr)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: floe bench %s [flags]\n\nFlags:\n", mode)
		fs.PrintDefaults()
	}
	return fs, c, jsonOut
}

// parseFlags parses args. On --help it prints the flags to stdout (exit
// 0); on an error, the error alone, with what a duration looks like when
// one did not parse (flag says only "parse error"), and where the flags
// are listed (exit 2). ok is false in both cases.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(os.Stdout)
		fs.Usage()
		return 0, false
	}
	msg := err.Error()
	fs.VisitAll(func(f *flag.Flag) {
		if _, isDur := f.Value.(interface{ Get() any }).Get().(time.Duration); isDur && strings.Contains(msg, "flag -"+f.Name+":") {
			msg += " (a duration has a unit: 10s, 500ms, 2m)"
		}
	})
	fmt.Fprintf(os.Stderr, "%s: %s\n%s --help lists the flags.\n", fs.Name(), msg, fs.Name())
	return 2, false
}

func runCommand(ctx context.Context, mode string, args []string) int {
	fs, c, jsonOut := runFlags(mode)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "floe bench %s: unexpected argument %q\n", mode, fs.Arg(0))
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["topic"] && c.Topic == "" {
		fmt.Fprintf(os.Stderr, "floe bench %s: bad flags: --topic: must not be empty\n", mode)
		return 2
	}
	if mode == "consume" && !set["topic"] {
		c.Topic = "" // the ack file's
	}
	// Flags of this command that would do nothing with the others given.
	for _, dep := range []struct {
		flag string
		ok   bool
		why  string
	}{
		{"inflight", c.GRPCStream, "needs --grpc-stream (batches in flight on a stream)"},
		{"http-client", c.API == "rest", "is the REST client: not used with --api grpc"},
		{"late-limit", c.Rate > 0, "needs --rate (how late a paced run may go on sending)"},
	} {
		if set[dep.flag] && !dep.ok {
			fmt.Fprintf(os.Stderr, "floe bench %s: bad flags: --%s %s\n", mode, dep.flag, dep.why)
			return 2
		}
	}
	c.Log = os.Stderr
	began := time.Now()
	res, err := Run(ctx, c)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, errBadFlags) {
			// Interrupted while it set up: nothing ran.
			fmt.Fprintf(os.Stderr, "floe bench %s: interrupted before the run started\n", mode)
			return 130
		}
		fmt.Fprintf(os.Stderr, "floe bench %s: %v\n", mode, err)
		if errors.Is(err, errBadFlags) {
			return 2
		}
		return 1
	}
	interrupted := ctx.Err() != nil
	if interrupted && !slices.Contains(res.Notes, "interrupted") {
		res.Notes = append(res.Notes, "interrupted")
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printSummary(os.Stdout, res)
	}
	if interrupted {
		// SIGINT or SIGTERM: the summary covers what ran until then.
		fmt.Fprintf(os.Stderr, "floe bench %s: interrupted after %.1fs\n", mode, time.Since(began).Seconds())
		return 130
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
		why = append(why, fmt.Sprintf("%s %s requests failed", commas(n), side.name))
	}
	if p := r.Produce; p != nil && p.Unsent > 0 {
		why = append(why, fmt.Sprintf("%s scheduled events not sent", commas(p.Unsent)))
	}
	if r.Mode == "consume" && r.Consume != nil && r.Consume.Events == 0 && r.Verify != nil && r.Verify.Mode == "contiguity" {
		why = append(why, "no event read")
	}
	if v := r.Verify; v != nil && (v.Missing > 0 || v.Malformed > 0 || v.Phantom > 0) {
		msg := fmt.Sprintf("%s events missing, %s malformed", commas(v.Missing), commas(v.Malformed))
		if v.Phantom > 0 {
			msg += fmt.Sprintf(", %s never sent (phantom)", commas(v.Phantom))
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
		return nil, fmt.Errorf("%w: --run: %q is not %d lower-case hex digits", errBadFlags, c.Run, runIDLen)
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
			return nil, fmt.Errorf("%w: --ack-file: %w", errBadFlags, err)
		}
		switch {
		case c.Topic == "":
			c.Topic = f.Topic
		case c.Topic != f.Topic:
			return nil, fmt.Errorf("%w: --topic %s is not the ack file's topic %s: its events are not there", errBadFlags, c.Topic, f.Topic)
		}
		if c.From == "latest" {
			return nil, fmt.Errorf("%w: --from latest with --ack-file: a new group starting after the newest event reads none of the file's", errBadFlags)
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
