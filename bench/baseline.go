package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// The baseline is a no-op HTTP server: it reads each request body whole and
// answers 200 with a body of the size of a produce answer. Loaded with the
// request shapes of the REST produce cases, it shows the machine's HTTP
// ceiling (net/http server, same client, same cores): how close Floe comes
// to it is the measure of the broker's own work (JSON checks, storage, fsync).

// noopAnswer has the size of Floe's produce answer.
var noopAnswer = []byte(`{"topic":"bench","token":"-9223372036854775808","rangeIndex":0,"version":1,"startOffset":"0","count":1}`)

var noopBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// NoopHandler reads the body and answers 200.
func NoopHandler() http.Handler {
	answerLen := strconv.Itoa(len(noopAnswer))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bp := noopBufs.Get().(*[]byte)
		b, err := readAllInto((*bp)[:0], r.Body)
		*bp = b[:0]
		noopBufs.Put(bp)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{answerLen}
		_, _ = w.Write(noopAnswer)
	})
}

// newNoopServer configures the server like the broker's gateway.
func newNoopServer() *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           NoopHandler(),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// ServeNoop serves the baseline on l until ctx is done.
func ServeNoop(ctx context.Context, l net.Listener) error {
	srv := newNoopServer()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}

// runNoopServer is `floe bench noop-server --addr host:port`, which the
// matrix starts as a child process (so that it has its own runtime, as the
// broker does).
func runNoopServer(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("floe bench noop-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9251", "listen address")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floe bench noop-server:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "noop server on", l.Addr())
	if err := ServeNoop(ctx, l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "floe bench noop-server:", err)
		return 1
	}
	return 0
}
