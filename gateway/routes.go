package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/server"
)

// allowedMethods returns the methods a path of the REST API accepts, for the
// Allow header of a 405 answer; "" for a path it does not serve.
func allowedMethods(path string) string {
	switch path {
	case "/status", "/v1/brokers", "/openapi.json":
		return "GET, HEAD"
	case "/v1/consumer/register":
		return "PUT, POST"
	case "/v1/consumer/poll", "/v1/consumer/commit", "/v1/consumer/goodbye":
		return "POST"
	}
	if strings.HasPrefix(path, "/v1/topic/") && strings.HasSuffix(path, "/messages") {
		return "POST"
	}
	return ""
}

// headAsGet answers HEAD as GET. net/http drops the body of an answer to a
// HEAD request and keeps its headers, Content-Length included.
func headAsGet(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			get := *r
			get.Method = http.MethodGet
			r = &get
		}
		next.ServeHTTP(w, r)
	})
}

// checkTopicPath answers a produce path whose topic holds an encoded slash
// (/v1/topic/a%2Fb/messages) with the invalid-topic error, as any other bad
// character gets: routed as it is, the slash splits the topic into two path
// segments, and the answer would be a 404.
func checkTopicPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if raw := r.URL.RawPath; raw != "" && strings.HasPrefix(raw, "/v1/topic/") && strings.HasSuffix(raw, "/messages") {
			seg := strings.TrimSuffix(strings.TrimPrefix(raw, "/v1/topic/"), "/messages")
			if topic, err := url.PathUnescape(seg); err == nil && !strings.Contains(seg, "/") && strings.Contains(topic, "/") {
				writeError(w, server.ErrorOf(broker.ValidateTopic(topic)))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// queryParseError matches grpc-gateway's error for a query parameter that
// does not parse, which names the protobuf field (max_bytes) and Go's parser.
var queryParseError = regexp.MustCompile(`^parsing field "([a-z0-9_]+)": strconv\.Parse(Uint|Int|Bool|Float)?: parsing ("[^"]*"): (.*)$`)

// restParameterNames rewrites grpc-gateway's query parameter errors in the
// REST API's terms: the parameter as the API documents it (maxBytes), and
// what its value should be.
func restParameterNames(msg string) string {
	m := queryParseError.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	kind := map[string]string{"Uint": "a non-negative integer", "Int": "an integer", "Bool": "true or false", "Float": "a number"}[m[2]]
	if kind == "" {
		kind = "a valid value"
	}
	if m[4] == "value out of range" {
		return fmt.Sprintf("query parameter %s: %s is out of range", lowerCamel(m[1]), m[3])
	}
	return fmt.Sprintf("query parameter %s: %s is not %s", lowerCamel(m[1]), m[3], kind)
}

// lowerCamel turns a protobuf field name into its JSON name: max_bytes →
// maxBytes.
func lowerCamel(field string) string {
	var b strings.Builder
	up := false
	for _, c := range field {
		switch {
		case c == '_':
			up = true
		case up && c >= 'a' && c <= 'z':
			b.WriteRune(c - 'a' + 'A')
			up = false
		default:
			b.WriteRune(c)
			up = false
		}
	}
	return b.String()
}
