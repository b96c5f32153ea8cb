package main

import (
	"fmt"
	"log/slog"
	"os"
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
type grpcLogger struct{ l *slog.Logger }

var _ grpclog.LoggerV2 = grpcLogger{}

func (g grpcLogger) Info(args ...any)                    { g.l.Debug(fmt.Sprint(args...)) }
func (g grpcLogger) Infoln(args ...any)                  { g.l.Debug(sprintln(args)) }
func (g grpcLogger) Infof(format string, args ...any)    { g.l.Debug(fmt.Sprintf(format, args...)) }
func (g grpcLogger) Warning(args ...any)                 { g.l.Debug(fmt.Sprint(args...)) }
func (g grpcLogger) Warningln(args ...any)               { g.l.Debug(sprintln(args)) }
func (g grpcLogger) Warningf(format string, args ...any) { g.l.Debug(fmt.Sprintf(format, args...)) }
func (g grpcLogger) Error(args ...any)                   { g.l.Warn(fmt.Sprint(args...)) }
func (g grpcLogger) Errorln(args ...any)                 { g.l.Warn(sprintln(args)) }
func (g grpcLogger) Errorf(format string, args ...any)   { g.l.Warn(fmt.Sprintf(format, args...)) }
func (g grpcLogger) Fatal(args ...any)                   { g.l.Error(fmt.Sprint(args...)); os.Exit(1) }
func (g grpcLogger) Fatalln(args ...any)                 { g.l.Error(sprintln(args)); os.Exit(1) }
func (g grpcLogger) Fatalf(format string, args ...any) {
	g.l.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}

// sprintln formats the operands of an ln method as fmt.Sprintln does, a
// space between each two, without its newline. gRPC's components log
// through them with their name first: "[core] Server created", not
// "[core]Server created" as fmt.Sprint would have it.
func sprintln(args []any) string { return strings.TrimSuffix(fmt.Sprintln(args...), "\n") }

// V reports whether verbosity level l is logged: gRPC's verbose logs are
// off, as its default logger has them.
func (g grpcLogger) V(l int) bool { return l <= 0 }
