package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
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
// an Allow header, in the error shape. A path that is a served one once
// fixed (fixedPath: a trailing slash, an empty or dot segment, another
// case) is redirected to it, as PolarStreams' router (httprouter v1.3.0,
// with RedirectTrailingSlash and RedirectFixedPath) does: 301 for GET and
// HEAD, 307 (which keeps the method and body) for the others. 307 rather
// than 308: it is what PolarStreams answers, and HTTP clients that predate
// RFC 7538 follow it.
func routingErrorHandler(routes served) runtime.RoutingErrorHandlerFunc {
	return func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
		switch httpStatus {
		case http.StatusMethodNotAllowed:
			if allow := routes(r.URL.Path); allow != "" {
				w.Header().Set("Allow", allow)
			}
		case http.StatusNotFound:
			if location, ok := fixedPath(r.URL.EscapedPath(), routes); ok {
				redirect(w, r, location)
				return
			}
		}
		writeError(w, routingError(httpStatus, r.Method+" "+r.URL.Path))
	}
}

// routePatterns are the paths of the REST API's routes, on every port; "*"
// is a path parameter (one segment).
var routePatterns = [][]string{
	{"status"},
	{"openapi.json"},
	{"v1", "brokers"},
	{"v1", "topic", "*", "messages"},
	{"v1", "consumer", "register"},
	{"v1", "consumer", "poll"},
	{"v1", "consumer", "commit"},
	{"v1", "consumer", "goodbye"},
}

// fixedPath returns the served path that the escaped path p names once
// fixed as httprouter's RedirectTrailingSlash and RedirectFixedPath fix it:
// without a trailing slash, empty segments (//), . and .. segments, and
// with the case of the route's own segments (/V1/Brokers); a path
// parameter (the topic) keeps its case. ok is false when p is not one of
// routes' paths once fixed, or is already as fixed.
func fixedPath(p string, routes served) (location string, ok bool) {
	cleaned := path.Clean("/" + p)
	segments := strings.Split(strings.TrimPrefix(cleaned, "/"), "/")
patterns:
	for _, pattern := range routePatterns {
		if len(pattern) != len(segments) {
			continue
		}
		fixed := make([]string, len(segments))
		for i, seg := range pattern {
			switch {
			case seg == "*":
				fixed[i] = segments[i]
			case strings.EqualFold(seg, segments[i]):
				fixed[i] = seg
			default:
				continue patterns
			}
		}
		location = "/" + strings.Join(fixed, "/")
		unescaped, err := url.PathUnescape(location)
		if err != nil || location == p || routes(unescaped) == "" {
			return "", false
		}
		return location, true
	}
	return "", false
}

// redirect answers r with a redirect to location, the escaped path of one
// of this port's routes, keeping r's query.
func redirect(w http.ResponseWriter, r *http.Request, location string) {
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
