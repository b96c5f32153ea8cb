package gateway

import "net/http"

// NotFound answers 404 ROUTE_NOT_FOUND in the error shape of the REST API,
// for the broker's other HTTP ports (metrics, pprof): every port answers
// its errors in one shape.
func NotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, routingError(http.StatusNotFound, r.Method+" "+r.URL.Path))
}

// MethodNotAllowed answers 405 METHOD_NOT_ALLOWED with allow as the Allow
// header, in the error shape of the REST API, for the broker's other HTTP
// ports.
func MethodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, routingError(http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path))
	}
}
