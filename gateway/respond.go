package gateway

import (
	"context"
	"net/http"

	"google.golang.org/protobuf/proto"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// retryAfter is what a 204 advises before the next poll, in seconds.
const retryAfter = "1"

// setStatus picks the documented statuses the gateway cannot infer from a
// message: commit answers 204, and so does a poll with nothing to read.
func setStatus(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	switch t := m.(type) {
	case *floev1.CommitResponse:
		noContent(w)
	case interface{ XXX_ResponseBody() any }:
		if batches, ok := t.XXX_ResponseBody().([]*floev1.PollBatch); ok && len(batches) == 0 {
			noContent(w)
		}
	}
	return nil
}

// noContent answers 204 with no body; the marshaled body that follows is
// discarded by net/http.
func noContent(w http.ResponseWriter) {
	h := w.Header()
	h.Del("Content-Type")
	h.Set("Retry-After", retryAfter)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
