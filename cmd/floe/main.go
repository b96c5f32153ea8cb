// Command floe runs a Floe broker, or its load tool (floe bench).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/grpc/grpclog"

	"github.com/floe-streams/floe"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bench" {
		os.Exit(runBench(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// runEnviron is the environment run warns about (unknownEnv); a variable
// so that tests of run do not depend on theirs.
var runEnviron = os.Environ

// run is the broker command: settings, New, Run until SIGTERM, SIGINT or
// SIGHUP.
// It returns the exit code: 0 after a clean shutdown (or --help), 2 for an
// invalid setting, 1 when the broker cannot start or stop cleanly.
func run(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	if slices.Contains(args, "--version") || slices.Contains(args, "-version") {
		fmt.Fprintln(stdout, version())
		return 0
	}
	cfg, err := parseConfig(args, lookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "floe:", err)
		return 2
	}
	// Before any gRPC code runs, as grpclog requires.
	grpclog.SetLoggerV2(newGRPCLogger(cfg.opts.Logger.With("component", "grpc"), lookupEnv))
	for _, name := range unknownEnv(runEnviron()) {
		cfg.opts.Logger.Warn("environment variable ignored: no setting has this name (floe --help lists them)", "variable", name)
	}
	applyMemoryLimit(cfg.memoryLimit, lookupEnv)
	cfg.opts.StartupAttrs = effectiveMemoryLimit(cfg.opts.StartupAttrs, lookupEnv)
	cfg.opts.StartupAttrs = append(cfg.opts.StartupAttrs, applyGoMaxProcs(cfg.goMaxProcs, lookupEnv)...)
	cfg.opts.StartupAttrs = append(cfg.opts.StartupAttrs, slog.String("version", version()))
	// Once the logger exists, a broker that cannot start or stop says why
	// in its log format: with json, a plain line would be lost to a log
	// pipeline that parses records.
	fail := func(msg string, err error) int {
		if cfg.logFormat == "json" {
			cfg.opts.Logger.Error(msg, "err", err.Error())
		} else {
			fmt.Fprintln(stderr, "floe:", err)
		}
		return 1
	}
	n, err := floe.New(cfg.opts)
	if errors.Is(err, floe.ErrConsumerRangesChanged) {
		// The number to change may be in a file or a variable the
		// operator did not think of.
		err = fmt.Errorf("%w (this broker's consumer-ranges is %s)", err, cfg.origin("consumer-ranges"))
	}
	if err != nil {
		return fail("floe cannot start", err)
	}
	// SIGHUP (a closed terminal or SSH session) stops the broker as SIGTERM
	// does: Go's default would end it at once, without draining. Unless it
	// is ignored (nohup): asking for it would undo that.
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	go func() {
		// After the first signal, a second one kills the process at once.
		<-ctx.Done()
		stop()
	}()
	if err := n.Run(ctx); err != nil {
		return fail("floe failed", err)
	}
	return 0
}

// unknownEnv lists the FLOE_ variables of environ that name no setting (a
// misspelled FLOE_RETENTION_MAXAGE left retention at its default without a
// word), except those Kubernetes defines for a Service named floe
// (FLOE_SERVICE_HOST, FLOE_PORT, FLOE_PORT_9250_TCP_ADDR, ...).
func unknownEnv(environ []string) []string {
	known := map[string]bool{}
	newFlagSet(&config{}).VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = true })
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case !strings.HasPrefix(name, "FLOE_"), known[name],
			strings.HasPrefix(name, "FLOE_SERVICE_"), name == "FLOE_PORT", strings.HasPrefix(name, "FLOE_PORT_"):
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// applyMemoryLimit sets the runtime's soft memory limit, unless GOMEMLIMIT
// (which the runtime reads itself) is set. With CGO_ENABLED=0, Pebble's
// memtables and block cache are Go heap, which the GC lets grow to twice
// what is live; the limit keeps the broker near its memory budget (peak RSS
// 239 MB without it, 187 MB with 180 MiB, at the same throughput, when
// readers catch up from a cold cache while producers append: store/tuning.md).
func applyMemoryLimit(limit int64, lookupEnv func(string) (string, bool)) {
	if gomemlimitSet(lookupEnv) || limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
}

// applyGoMaxProcs sets the runtime's GOMAXPROCS to n, or with n = 0 (auto)
// to autoProcs, unless GOMAXPROCS is set in the environment (as the runtime
// reads it: a whole number of at least 1). It returns the attributes of the
// startup line: the value in effect, and what set it when the environment
// did.
func applyGoMaxProcs(n int, lookupEnv func(string) (string, bool)) []slog.Attr {
	if v, ok := lookupEnv("GOMAXPROCS"); ok {
		if p, err := strconv.ParseInt(v, 10, 32); err == nil && p > 0 {
			return []slog.Attr{slog.Int("gomaxprocs", runtime.GOMAXPROCS(0)), slog.String("gomaxprocs-set-by", "GOMAXPROCS")}
		}
	}
	if n == 0 {
		// Start from the runtime's own choice, not from what an earlier
		// run in this process set (which auto would double again).
		runtime.SetDefaultGOMAXPROCS()
		chosen := runtime.GOMAXPROCS(0)
		limit, limited := cgroupCPULimit(rootFS)
		if n = autoProcs(chosen, runtime.NumCPU(), limit, limited); n == chosen {
			// Not set: the runtime keeps following the cgroup's limit
			// if it changes, which setting GOMAXPROCS would stop.
			return []slog.Attr{slog.Int("gomaxprocs", n)}
		}
	}
	runtime.GOMAXPROCS(n)
	return []slog.Attr{slog.Int("gomaxprocs", n)}
}

// autoProcs is --gomaxprocs auto: twice the CPUs the process may use, when
// the runtime chose them all (chosen == cpus) and no cgroup CPU limit under
// cpus (limit, when limited) holds the process, else what the runtime chose.
//
// Every commit waits for the WAL writer's fdatasync, and a goroutine that
// returns from a blocking system call while every P runs other goroutines
// waits in the global run queue behind them: Go's scheduler has no
// priorities, and the produce handlers keep both Ps of a 2-core machine
// busy. With more Ps than CPUs it finds an idle P, and the kernel, which
// favours a thread that slept, gives it a CPU at once. docs/performance.md
// ("Threads") has the measurements: on 2 cores, REST NDJSON +9-11% and
// gRPC +6% events/s, at about the same CPU per event.
//
// Under a cgroup CPU limit (a container's quota), more threads than the
// quota would spend it early in each period and be throttled for the rest
// of it, so the runtime's choice stays. chosen < cpus alone does not tell:
// the runtime rounds the limit up, to 2 at least, so a quota of 0.5 or 1.5
// CPU on a 2-CPU machine leaves chosen == cpus.
func autoProcs(chosen, cpus int, limit float64, limited bool) int {
	if chosen < cpus || limited && limit < float64(cpus) {
		return chosen
	}
	return 2 * chosen
}

// gomemlimitSet says whether GOMEMLIMIT sets the limit: the runtime takes
// an empty one as unset, and so does floe (it took it as set, and the
// broker ran without any limit).
func gomemlimitSet(lookupEnv func(string) (string, bool)) bool {
	v, ok := lookupEnv("GOMEMLIMIT")
	return ok && v != ""
}

// effectiveMemoryLimit makes the memory-limit of the startup line the limit
// in effect, which GOMEMLIMIT decides when it is set (the line then says
// so): 0 for none.
func effectiveMemoryLimit(attrs []slog.Attr, lookupEnv func(string) (string, bool)) []slog.Attr {
	limit := debug.SetMemoryLimit(-1) // reads it
	if limit == math.MaxInt64 {
		limit = 0
	}
	out := slices.Clone(attrs)
	for i, a := range out {
		if a.Key == "memory-limit" {
			out[i] = slog.Int64("memory-limit", limit)
		}
	}
	if gomemlimitSet(lookupEnv) {
		out = append(out, slog.String("memory-limit-set-by", "GOMEMLIMIT"))
	}
	return out
}
