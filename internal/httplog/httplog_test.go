package httplog_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/floe-streams/floe/internal/httplog"
)

// A handler that panics is logged at error level: at the default level,
// info, it was not logged at all. What clients cause stays at debug.
func TestErrorLogLevels(t *testing.T) {
	var out bytes.Buffer
	h := slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	srv.Config.ErrorLog = httplog.ErrorLog(h)
	srv.Start()
	defer srv.Close()
	if resp, err := http.Get(srv.URL); err == nil {
		resp.Body.Close()
	}
	// A request that does not parse: net/http answers 400 itself.
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n"))
	buf := make([]byte, 512)
	c.Read(buf)
	c.Close()
	srv.Close() // waits for the handlers, and their log lines

	levels := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		levels[rec.Msg] = rec.Level
	}
	var panicked bool
	for msg, level := range levels {
		if strings.HasPrefix(msg, "http: panic serving") {
			panicked = true
			if level != "ERROR" {
				t.Errorf("%q at %s, want ERROR", msg, level)
			}
		} else if level != "DEBUG" {
			t.Errorf("%q at %s, want DEBUG", msg, level)
		}
	}
	if !panicked {
		t.Errorf("no line for the panic in %v", levels)
	}
}
