package gateway

import (
	"context"
	"net/http"

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

// pollAnswer is a poll answer to render into a lent buffer.
type pollAnswer struct {
	batches []*floev1.PollBatch
	lend    *reqbuf.Lender
}

// lendPollAnswer is the consumer API's forward-response rewriter: the answer
// of a poll with a lender and events is rendered into a lent buffer
// (marshaler.Marshal). An empty answer (204) borrows nothing.
func lendPollAnswer(ctx context.Context, resp proto.Message) (any, error) {
	l := reqbuf.From(ctx)
	if l == nil {
		return resp, nil
	}
	if rb, ok := resp.(interface{ XXX_ResponseBody() any }); ok {
		if batches, ok := rb.XXX_ResponseBody().([]*floev1.PollBatch); ok && len(batches) > 0 {
			return pollAnswer{batches: batches, lend: l}, nil
		}
	}
	return resp, nil
}
