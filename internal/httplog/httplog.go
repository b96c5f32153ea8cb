// Package httplog turns an http.Server's error log into slog records.
//
// net/http logs through Server.ErrorLog both what an operator must see (a
// handler that panicked, a listener that fails to accept) and what any
// client can cause at will (a connection reset during the HTTP/2 preface, a
// malformed request). The first kind is logged at error level, the rest at
// debug, so that clients cannot flood the log.
package httplog

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// serious are the prefixes of net/http's lines logged at error level.
var serious = []string{
	"http: panic serving",
	"http: Accept error",
	"http2: panic serving",
}

// ErrorLog returns a logger for http.Server.ErrorLog that writes to h.
func ErrorLog(h slog.Handler) *log.Logger {
	return log.New(writer{slog.New(h)}, "", 0)
}

type writer struct{ log *slog.Logger }

func (w writer) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelDebug
	for _, prefix := range serious {
		if strings.HasPrefix(msg, prefix) {
			level = slog.LevelError
			break
		}
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}
