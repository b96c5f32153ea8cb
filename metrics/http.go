package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// WrapHTTP wraps the handler of one REST API ("discovery", "producer" or
// "consumer") to measure its requests; it fits gateway.Options.Wrap. The
// route label is one of the documented route patterns, or "other" (unknown
// paths: 404s), so that arbitrary paths cannot grow the label set.
func (m *Metrics) WrapHTTP(api string, h http.Handler) http.Handler {
	inFlight := m.httpInFlight.WithLabelValues(api)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		inFlight.Inc()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			inFlight.Dec()
			code := sw.code
			if code == 0 {
				// Nothing written: net/http answers 200 (or the client went
				// away before anything was written).
				code = http.StatusOK
			}
			m.httpDuration.WithLabelValues(api, method(r.Method), Route(r.URL.Path), strconv.Itoa(code)).
				Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(sw, r)
	})
}

// Route maps a request path to the route pattern that serves it, or
// "other".
func Route(path string) string {
	switch path {
	case "/status", "/v1/brokers", "/openapi.json",
		"/v1/consumer/register", "/v1/consumer/poll", "/v1/consumer/commit", "/v1/consumer/goodbye":
		return path
	}
	if rest, ok := strings.CutPrefix(path, "/v1/topic/"); ok {
		if topic, ok := strings.CutSuffix(rest, "/messages"); ok && topic != "" && !strings.Contains(topic, "/") {
			return "/v1/topic/{topic}/messages"
		}
	}
	return "other"
}

// method bounds the method label to the methods the APIs use.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodHead:
		return m
	}
	return "other"
}

// statusWriter records the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush keeps http.Flusher working through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.code == 0 {
			w.code = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
