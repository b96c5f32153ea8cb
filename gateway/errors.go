package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/status"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/server"
)

// handleError writes every error of the REST API in one shape: the HTTP
// status and error code come from the ErrorInfo detail the services attach
// (server.Status), or from the gRPC code.
func handleError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	writeError(w, errorBodyOf(err))
}

func errorBodyOf(err error) *floev1.Error {
	var herr *runtime.HTTPStatusError
	if errors.As(err, &herr) {
		if herr.HTTPStatus == http.StatusNotFound || herr.HTTPStatus == http.StatusMethodNotAllowed {
			return routingError(herr.HTTPStatus, "")
		}
		e := errorBodyOf(herr.Err)
		e.Status = int32(herr.HTTPStatus)
		return e
	}
	st, ok := status.FromError(err)
	if !ok {
		return server.ErrorOf(err)
	}
	e := server.ErrorFromStatus(st)
	if !hasErrorInfo(st) {
		e.Message = restParameterNames(e.GetMessage())
	}
	return e
}

// hasErrorInfo tells Floe's own errors (server.Status) from those of
// grpc-gateway's runtime, such as its query parser.
func hasErrorInfo(st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(*floev1.ErrorInfo); ok {
			return true
		}
	}
	return false
}

// routingErrorHandler answers, on a port that serves the paths of routes,
// unknown paths with 404 and known paths with the wrong method with 405 and
// an Allow header, in the error shape. A served path with a trailing slash
// added is redirected to the path without it, as PolarStreams' router
// (httprouter v1.3.0) does: 301 for GET and HEAD, 307 (which keeps the
// method and body) for the others. 307 rather than 308: it is what
// PolarStreams answers, and HTTP clients that predate RFC 7538 follow it.
func routingErrorHandler(routes served) runtime.RoutingErrorHandlerFunc {
	return func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
		switch httpStatus {
		case http.StatusMethodNotAllowed:
			if allow := routes(r.URL.Path); allow != "" {
				w.Header().Set("Allow", allow)
			}
		case http.StatusNotFound:
			if path, ok := strings.CutSuffix(r.URL.Path, "/"); ok && routes(path) != "" {
				redirect(w, r)
				return
			}
		}
		writeError(w, routingError(httpStatus, r.Method+" "+r.URL.Path))
	}
}

// redirect answers r with a redirect to its path without the trailing
// slash, keeping its query. Only served paths get here, so the Location is
// always one of this port's routes.
func redirect(w http.ResponseWriter, r *http.Request) {
	location := strings.TrimSuffix(r.URL.EscapedPath(), "/")
	if r.URL.RawQuery != "" {
		location += "?" + r.URL.RawQuery
	}
	code := http.StatusTemporaryRedirect
	if r.Method == http.MethodGet {
		code = http.StatusMovedPermanently // HEAD is served as GET
	}
	h := w.Header()
	h.Set("Location", location)
	h.Set("Content-Length", "0")
	w.WriteHeader(code)
}

func routingError(httpStatus int, what string) *floev1.Error {
	switch httpStatus {
	case http.StatusNotFound:
		return newError(floev1.ErrorCode_ERROR_CODE_ROUTE_NOT_FOUND, httpStatus, fmt.Sprintf("no route for %s on this port", what))
	case http.StatusMethodNotAllowed:
		return newError(floev1.ErrorCode_ERROR_CODE_METHOD_NOT_ALLOWED, httpStatus, fmt.Sprintf("method not allowed: %s", what))
	}
	return newError(floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, httpStatus, fmt.Sprintf("bad request: %s", what))
}

func newError(code floev1.ErrorCode, httpStatus int, msg string) *floev1.Error {
	return &floev1.Error{Status: int32(httpStatus), Code: int32(code), Error: server.ErrorName(code), Message: msg}
}

func writeError(w http.ResponseWriter, e *floev1.Error) {
	body := marshalError(e)
	h := w.Header()
	h.Del("Grpc-Metadata-Content-Type")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(int(e.GetStatus()))
	_, _ = w.Write(body)
}
