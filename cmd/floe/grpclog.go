package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"google.golang.org/grpc/grpclog"
)

// grpcLogger sends the log of gRPC and of the REST gateway's runtime (which
// logs through gRPC's, e.g. "Failed to write response" when a client stops
// reading) to the broker's logger, so that --log-format json gets JSON
// lines. Their errors are about one call or client (a write to a closed
// connection), not the broker: they are warnings. Their warnings (a client
// that went away) and info (connection state) are chatty: debug, as gRPC's
// own logger leaves them out by default.
//
// gRPC's own variables still choose what it says, as they do for its
// default logger: GRPC_GO_LOG_SEVERITY_LEVEL=info (or warning) brings its
// info and warnings (or warnings alone) up to the info level, where the
// broker's default --log-level shows them, and GRPC_GO_LOG_VERBOSITY_LEVEL=N
// turns on its verbose logs up to level N.
type grpcLogger struct {
	l         *slog.Logger
	info      slog.Level // level of gRPC's info lines
	warning   slog.Level // level of gRPC's warnings
	verbosity int
}

var _ grpclog.LoggerV2 = grpcLogger{}

// newGRPCLogger returns the logger for gRPC, set by gRPC's variables read
// with lookupEnv. An invalid value is logged and left out, as gRPC's own
// logger leaves it out.
func newGRPCLogger(l *slog.Logger, lookupEnv func(string) (string, bool)) grpcLogger {
	g := grpcLogger{l: l, info: slog.LevelDebug, warning: slog.LevelDebug}
	if v, ok := lookupEnv("GRPC_GO_LOG_SEVERITY_LEVEL"); ok && v != "" {
		switch strings.ToLower(v) {
		case "info":
			g.info, g.warning = slog.LevelInfo, slog.LevelInfo
		case "warning":
			g.warning = slog.LevelInfo
		case "error":
		default:
			l.Warn("GRPC_GO_LOG_SEVERITY_LEVEL is not info, warning or error: left out", "value", v)
		}
	}
	if v, ok := lookupEnv("GRPC_GO_LOG_VERBOSITY_LEVEL"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			l.Warn("GRPC_GO_LOG_VERBOSITY_LEVEL is not a level (0, 1, 2, ...): left out", "value", v)
		} else {
			g.verbosity = n
		}
	}
	return g
}

func (g grpcLogger) Info(args ...any)   { g.l.Log(context.Background(), g.info, fmt.Sprint(args...)) }
func (g grpcLogger) Infoln(args ...any) { g.l.Log(context.Background(), g.info, sprintln(args)) }
func (g grpcLogger) Warning(args ...any) {
	g.l.Log(context.Background(), g.warning, fmt.Sprint(args...))
}
func (g grpcLogger) Warningln(args ...any) { g.l.Log(context.Background(), g.warning, sprintln(args)) }
func (g grpcLogger) Infof(format string, args ...any) {
	g.l.Log(context.Background(), g.info, fmt.Sprintf(format, args...))
}
func (g grpcLogger) Warningf(format string, args ...any) {
	g.l.Log(context.Background(), g.warning, fmt.Sprintf(format, args...))
}
func (g grpcLogger) Error(args ...any)                 { g.l.Warn(fmt.Sprint(args...)) }
func (g grpcLogger) Errorln(args ...any)               { g.l.Warn(sprintln(args)) }
func (g grpcLogger) Errorf(format string, args ...any) { g.l.Warn(fmt.Sprintf(format, args...)) }
func (g grpcLogger) Fatal(args ...any)                 { g.l.Error(fmt.Sprint(args...)); os.Exit(1) }
func (g grpcLogger) Fatalln(args ...any)               { g.l.Error(sprintln(args)); os.Exit(1) }
func (g grpcLogger) Fatalf(format string, args ...any) {
	g.l.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}

// sprintln formats the operands of an ln method as fmt.Sprintln does, a
// space between each two, without its newline. gRPC's components log
// through them with their name first: "[core] Server created", not
// "[core]Server created" as fmt.Sprint would have it.
func sprintln(args []any) string { return strings.TrimSuffix(fmt.Sprintln(args...), "\n") }

// V reports whether verbosity level l is logged: up to
// GRPC_GO_LOG_VERBOSITY_LEVEL, 0 by default, as gRPC's default logger.
func (g grpcLogger) V(l int) bool { return l <= g.verbosity }
