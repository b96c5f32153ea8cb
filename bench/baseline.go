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
	"syscall"
	"time"
)

// The baseline is a no-op HTTP server: it reads each request body whole and
// answers 200 with a body of the size of a produce answer. Loaded with the
// request shapes of the REST produce cases, it shows the machine's HTTP
// ceiling (net/http server, same client, same cores): how close Floe comes
// to it is the measure of the broker's own work (JSON checks, storage, fsync).
//
// The durable baseline is the same server with a log (SyncLog): each POST
// is answered once its body is written to a file and fdatasynced, in
// groups, as simply as that can be done. It is a reference for a server
// that acknowledges only what is on disk, as Floe does: on a disk whose
// fsync takes a few hundred microseconds, the fsync, not HTTP, bounds
// requests that each wait for their acknowledgement.

// noopAnswer has the size of Floe's produce answer.
var noopAnswer = []byte(`{"topic":"bench","token":"-9223372036854775808","rangeIndex":0,"version":1,"startOffset":"0","count":1}`)

var noopBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// NoopHandler reads the body and answers 200. With a log, it answers a
// POST once its body is durable in it (500 if that failed).
func NoopHandler(log *SyncLog) http.Handler {
	answerLen := strconv.Itoa(len(noopAnswer))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bp := noopBufs.Get().(*[]byte)
		b, err := readAllInto((*bp)[:0], r.Body)
		status := http.StatusBadRequest
		if err == nil && log != nil && r.Method == http.MethodPost {
			err, status = log.Append(b), http.StatusInternalServerError
		}
		*bp = b[:0]
		noopBufs.Put(bp)
		if err != nil {
			http.Error(w, err.Error(), status)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{answerLen}
		_, _ = w.Write(noopAnswer)
	})
}

// newNoopServer configures the server like the broker's gateway.
func newNoopServer(log *SyncLog) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           NoopHandler(log),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// ServeNoop serves the baseline on l until ctx is done; with a log, the
// durable baseline.
func ServeNoop(ctx context.Context, l net.Listener, log *SyncLog) error {
	srv := newNoopServer(log)
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
	syncPath := fs.String("fsync-file", "", "answer each request once its body is written to this file and fdatasynced (group commit): the durable baseline")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: floe bench noop-server [flags]\n\nAn HTTP server that reads each request's body and answers 200: the matrix's baseline.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "floe bench noop-server: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if _, port, err := net.SplitHostPort(*addr); err != nil {
		fmt.Fprintf(os.Stderr, "floe bench noop-server: bad flags: --addr: %v\n", err)
		return 2
	} else if _, err := strconv.ParseUint(port, 10, 16); port != "" && err != nil {
		fmt.Fprintf(os.Stderr, "floe bench noop-server: bad flags: --addr %s: the port must be a number from 0 to 65535\n", *addr)
		return 2
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floe bench noop-server:", err)
		return 1
	}
	var log *SyncLog
	if *syncPath != "" {
		if log, err = OpenSyncLog(*syncPath); err != nil {
			fmt.Fprintln(os.Stderr, "floe bench noop-server:", err)
			return 1
		}
		defer log.Close()
		fmt.Fprintln(os.Stderr, "noop server: answers once each body is fdatasynced to", *syncPath)
	}
	fmt.Fprintln(os.Stderr, "noop server on", l.Addr())
	if err := ServeNoop(ctx, l, log); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "floe bench noop-server:", err)
		return 1
	}
	return 0
}

// SyncLogSize is the size of a SyncLog's file, written over in a ring.
const SyncLogSize = 64 << 20

// SyncLog makes request bodies durable in groups, the simplest way it can
// be done: Append queues a body and waits; one goroutine takes every queued
// body, writes them with one write and fdatasyncs the file, then releases
// them. Bodies that arrive during an fdatasync make the next group. The
// file is allocated and synced when opened and written over in a ring, as
// a log that recycles its files is: an fdatasync that extends a file also
// commits its size, which costs 2-3× more (store/tuning.md, "The disk").
type SyncLog struct {
	f *os.File

	mu     sync.Mutex
	queue  []*syncWait
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

type syncWait struct {
	body []byte
	err  error
	done chan struct{}
}

// OpenSyncLog creates (or truncates) path, fills it with SyncLogSize bytes
// and syncs it.
func OpenSyncLog(path string) (*SyncLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	zeros := make([]byte, 1<<20)
	for range SyncLogSize / len(zeros) {
		if _, err := f.Write(zeros); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	l := &SyncLog{f: f, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go l.run()
	return l, nil
}

// Append returns once body is written and fdatasynced, or the error of the
// write or fdatasync that should have made it so.
func (l *SyncLog) Append(body []byte) error {
	if len(body) > SyncLogSize {
		return fmt.Errorf("a body of %d bytes does not fit the sync log (%d bytes)", len(body), SyncLogSize)
	}
	w := &syncWait{body: body, done: make(chan struct{})}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errors.New("sync log closed")
	}
	l.queue = append(l.queue, w)
	select {
	case l.wake <- struct{}{}: // under mu: Close closes wake
	default:
	}
	l.mu.Unlock()
	<-w.done
	return w.err
}

// Close stops the log after the groups already queued and closes its file.
// Later calls do nothing.
func (l *SyncLog) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.wake) // under mu: Append sends on it under mu
	l.mu.Unlock()
	<-l.done
	return l.f.Close()
}

func (l *SyncLog) run() {
	defer close(l.done)
	var buf []byte
	var off int64
	for range l.wake {
		for {
			// A group is what is queued, up to the file's size (a body
			// fits it: Append).
			l.mu.Lock()
			n, size := 0, 0
			for n < len(l.queue) && (n == 0 || size+len(l.queue[n].body) <= SyncLogSize) {
				size += len(l.queue[n].body)
				n++
			}
			group := l.queue[:n:n]
			l.queue = l.queue[n:]
			l.mu.Unlock()
			if len(group) == 0 {
				break
			}
			buf = buf[:0]
			for _, w := range group {
				buf = append(buf, w.body...)
			}
			if off+int64(len(buf)) > SyncLogSize {
				off = 0
			}
			_, err := l.f.WriteAt(buf, off)
			off += int64(len(buf))
			if err == nil {
				err = syscall.Fdatasync(int(l.f.Fd()))
			}
			for _, w := range group {
				w.err = err
				close(w.done)
			}
		}
	}
}
