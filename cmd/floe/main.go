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
	"runtime/debug"
	"slices"
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

// run is the broker command: settings, New, Run until SIGTERM or SIGINT.
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
	applyMemoryLimit(cfg.memoryLimit, lookupEnv)
	cfg.opts.StartupAttrs = effectiveMemoryLimit(cfg.opts.StartupAttrs, lookupEnv)
	cfg.opts.StartupAttrs = append(cfg.opts.StartupAttrs, slog.String("version", version()))
	n, err := floe.New(cfg.opts)
	if err != nil {
		fmt.Fprintln(stderr, "floe:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one kills the process at once.
		<-ctx.Done()
		stop()
	}()
	if err := n.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "floe:", err)
		return 1
	}
	return 0
}

// applyMemoryLimit sets the runtime's soft memory limit, unless GOMEMLIMIT
// (which the runtime reads itself) is set. With CGO_ENABLED=0, Pebble's
// memtables and block cache are Go heap, which the GC lets grow to twice
// what is live; the limit keeps the broker near its memory budget (peak RSS
// 239 MB without it, 187 MB with 180 MiB, at the same throughput, when
// readers catch up from a cold cache while producers append: store/tuning.md).
func applyMemoryLimit(limit int64, lookupEnv func(string) (string, bool)) {
	if _, set := lookupEnv("GOMEMLIMIT"); set || limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
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
	if _, set := lookupEnv("GOMEMLIMIT"); set {
		out = append(out, slog.String("memory-limit-set-by", "GOMEMLIMIT"))
	}
	return out
}
