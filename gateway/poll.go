package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/internal/reqbuf"
)

// Poll answers carry up to --max-poll-bytes of events, and each was
// allocated twice: once when the store copied the events out, once for the
// JSON answer. Under consume these two were two thirds of the bytes the
// broker allocated, and garbage collection about 45% of its CPU. A poll over
// HTTP/1.x now borrows a buffer for the events when it has some to read
// (group.PollRequest.Buffer) and one for an answer with events, from package
// reqbuf, and gives them back once the answer is written.
//
// HTTP/1.x writes the answer to the connection before Write returns. HTTP/2
// may still hold a DATA frame of a reset stream when the handler returns, so
// its polls allocate as before, as gRPC polls do.

// lendPollBuffers lends buffers to the polls it serves and takes them back
// after the answer is written.
func lendPollBuffers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/consumer/poll" || r.ProtoMajor != 1 {
			next.ServeHTTP(w, r)
			return
		}
		l := reqbuf.New()
		defer l.Release()
		next.ServeHTTP(w, r.WithContext(reqbuf.With(r.Context(), l)))
	})
}

// writeDeadlineKey holds, in a poll's context, the function that starts
// the poll's write deadline (pollWrites.bound).
type writeDeadlineKey struct{}

// pollWrites are the poll answers being written, with their deadlines, so
// that a shutdown can bring those deadlines forward.
type pollWrites struct {
	mu      sync.Mutex
	writing map[*pollWrite]struct{}
	cut     time.Time // set by a shutdown: no deadline is later
}

type pollWrite struct {
	rc       *http.ResponseController
	deadline time.Time
	// conn is an HTTP/2 answer's connection, which a shutdown closes at
	// its cut if the answer is still being written: the reset of the
	// stream that a stream deadline sends cannot reach a client that
	// stopped reading the socket, and the connection's own bound
	// (WriteByteTimeout) may be later than the shutdown's end.
	conn    net.Conn
	closeAt *time.Timer // that close, once scheduled
}

// connKey holds, in a request's context, its connection (Server.ConnContext).
type connKey struct{}

// setLocked gives pw the deadline d, or the shutdown's cut if earlier; an
// HTTP/2 answer is cut by closing its connection instead.
func (ws *pollWrites) setLocked(pw *pollWrite, d time.Time) {
	if !ws.cut.IsZero() && ws.cut.Before(d) {
		if pw.conn == nil {
			d = ws.cut
		} else if pw.closeAt == nil {
			pw.closeAt = time.AfterFunc(time.Until(ws.cut), func() {
				ws.mu.Lock()
				defer ws.mu.Unlock()
				if _, ok := ws.writing[pw]; ok {
					pw.conn.Close()
				}
			})
		}
	}
	pw.deadline = d
	// Both HTTP/1.x and HTTP/2 support it; an error leaves the answer
	// unbounded, as before.
	_ = pw.rc.SetWriteDeadline(d)
}

// cutAt brings every deadline, and those set later, forward to t at the
// latest.
func (ws *pollWrites) cutAt(t time.Time) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.cut = t
	for pw := range ws.writing {
		if pw.deadline.After(t) {
			ws.setLocked(pw, pw.deadline)
		}
	}
}

// bound gives each poll the means to bound the writing of its answer, from
// when the answer is ready (lendPollAnswer calls it with the answer's
// size): base, plus the time its size takes at rate bytes/s. The wait of a
// long poll is not counted.
func (ws *pollWrites) bound(base time.Duration, rate int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/consumer/poll" {
			next.ServeHTTP(w, r)
			return
		}
		pw := &pollWrite{rc: http.NewResponseController(w)}
		if r.ProtoMajor == 2 {
			pw.conn, _ = r.Context().Value(connKey{}).(net.Conn)
		}
		started := false
		start := func(size int) {
			timeout := base + time.Duration(float64(size)/float64(rate)*float64(time.Second))
			ws.mu.Lock()
			defer ws.mu.Unlock()
			ws.writing[pw] = struct{}{}
			ws.setLocked(pw, time.Now().Add(timeout))
			started = true
		}
		defer func() {
			if started {
				ws.mu.Lock()
				delete(ws.writing, pw)
				if pw.closeAt != nil {
					pw.closeAt.Stop()
				}
				ws.mu.Unlock()
			}
		}()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), writeDeadlineKey{}, start)))
	})
}

// pollAnswer is a poll answer to render into a lent buffer.
type pollAnswer struct {
	batches []*floev1.PollBatch
	lend    *reqbuf.Lender
}

// lendPollAnswer is the consumer API's forward-response rewriter: the answer
// of a poll with a lender and events is rendered into a lent buffer
// (marshaler.Marshal). An empty answer (204) borrows nothing.
// It also starts the poll's write deadline (pollWrites.bound).
func lendPollAnswer(ctx context.Context, resp proto.Message) (any, error) {
	var batches []*floev1.PollBatch
	if rb, ok := resp.(interface{ XXX_ResponseBody() any }); ok {
		batches, _ = rb.XXX_ResponseBody().([]*floev1.PollBatch)
	}
	if start, ok := ctx.Value(writeDeadlineKey{}).(func(int)); ok {
		size := 0
		for _, b := range batches {
			for _, v := range b.GetValues() {
				size += len(v)
			}
		}
		start(size)
	}
	if l := reqbuf.From(ctx); l != nil && len(batches) > 0 {
		return pollAnswer{batches: batches, lend: l}, nil
	}
	return resp, nil
}

// acceptJSON answers a poll whose Accept header does not allow
// application/json with 406 NOT_ACCEPTABLE: a poll is answered in JSON only.
// A client that asks for another format, such as PolarStreams' binary poll
// format, learns it at once instead of failing to read a JSON answer.
// Without an Accept header any format is acceptable.
func acceptJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/consumer/poll" && r.Method == http.MethodPost {
			if accept := r.Header.Values("Accept"); len(accept) > 0 && !acceptsJSON(accept) {
				writeError(w, newError(floev1.ErrorCode_ERROR_CODE_NOT_ACCEPTABLE, http.StatusNotAcceptable,
					fmt.Sprintf("a poll is answered in application/json only, which the Accept header %q does not allow",
						strings.Join(accept, ", "))))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// acceptsJSON reports whether the Accept header fields allow
// application/json: whether the most specific media range that matches it
// (application/json, application/*, */*) has a quality above 0 (RFC 9110,
// section 12.5.1). Fields that hold no media range at all accept anything.
func acceptsJSON(fields []string) bool {
	best, quality := -1, 1.0
	for _, field := range fields {
		for elem := range strings.SplitSeq(field, ",") {
			mediaRange, params, _ := strings.Cut(elem, ";")
			specificity := -1
			switch strings.ToLower(strings.TrimSpace(mediaRange)) {
			case "application/json":
				specificity = 2
			case "application/*":
				specificity = 1
			case "*/*":
				specificity = 0
			case "":
				continue
			}
			if specificity == -1 {
				if best == -1 {
					best = -2 // a media range was given, and it is not JSON's
				}
				continue
			}
			if specificity <= best {
				continue
			}
			best, quality = specificity, 1.0
			for param := range strings.SplitSeq(params, ";") {
				name, value, _ := strings.Cut(param, "=")
				if strings.EqualFold(strings.TrimSpace(name), "q") {
					if q, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
						quality = q
					}
				}
			}
		}
	}
	switch best {
	case -1:
		return true // no media range at all: "Accept: " or ","
	case -2:
		return false
	}
	return quality > 0
}
