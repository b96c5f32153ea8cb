package gateway

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
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

// checkQueryAliases answers 400 when a query gives one parameter under both
// of its names, as documented and as its protobuf field (consumerId and
// consumer_id): grpc-gateway's parser takes both, and which one wins would
// depend on map order. Only a query with an underscore, plain or encoded,
// can hold such a pair. It serves the routes whose parameters come from the
// query alone; the consumer routes, which also take form bodies, use
// checkFormAliases.
func checkQueryAliases(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if raw := r.URL.RawQuery; strings.IndexByte(raw, '_') >= 0 || strings.Contains(raw, "%5") {
			// A query that does not parse gets the generated handler's error.
			if q, err := url.ParseQuery(raw); err == nil {
				if err := aliasError(q); err != nil {
					writeError(w, server.ErrorOf(err))
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// checkFormAliases is checkQueryAliases for the routes whose parameters are
// r.Form: the query, a form body (application/x-www-form-urlencoded), and
// for register what registerBodyToForm moved there from a JSON body. It
// parses the form of a served route and method as the generated handler
// would (ParseForm, whose second call changes nothing), and answers a form
// that does not parse with the generated handler's error.
func checkFormAliases(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(allowedMethods(r.URL.Path), r.Method) {
			next.ServeHTTP(w, r) // a routing error
			return
		}
		if err := r.ParseForm(); err != nil {
			writeError(w, errorBodyOf(status.Errorf(codes.InvalidArgument, "%v", err)))
			return
		}
		if err := aliasError(r.Form); err != nil {
			writeError(w, server.ErrorOf(err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// paramNames maps both names of each field of the REST API's requests, the
// protobuf one (consumer_id) and the JSON one (consumerId), to the JSON
// name: grpc-gateway's parser takes either. Other keys it ignores.
var paramNames = func() map[string]string {
	names := map[string]string{}
	for _, file := range []protoreflect.FileDescriptor{
		floev1.File_floe_v1_consumer_proto, floev1.File_floe_v1_producer_proto, floev1.File_floe_v1_discovery_proto,
	} {
		services := file.Services()
		for i := range services.Len() {
			methods := services.Get(i).Methods()
			for j := range methods.Len() {
				fields := methods.Get(j).Input().Fields()
				for k := range fields.Len() {
					f := fields.Get(k)
					names[string(f.Name())] = f.JSONName()
					names[f.JSONName()] = f.JSONName()
				}
			}
		}
	}
	return names
}()

// aliasError names the first parameter, in sorted order, that form gives
// under both of its names.
func aliasError(form url.Values) error {
	// Without a protobuf name (clients use the documented ones) there is no
	// pair: skip the sorting.
	protoName := false
	for k := range form {
		if name, ok := paramNames[k]; ok && name != k {
			protoName = true
			break
		}
	}
	if !protoName {
		return nil
	}
	keys := slices.Sorted(maps.Keys(form))
	seen := make(map[string]string, len(keys))
	for _, k := range keys {
		name, ok := paramNames[k]
		if !ok {
			continue
		}
		if other, ok := seen[name]; ok {
			return fmt.Errorf("%w: query parameter %s is given twice, as %s and as %s; give it once",
				broker.ErrInvalidParameter, name, other, k)
		}
		seen[name] = k
	}
	return nil
}

// grpc-gateway's query parser names the protobuf field (max_bytes) in its
// errors:
var (
	// a value that does not parse, with Go's parser;
	queryParseError = regexp.MustCompile(`^parsing field "([a-z0-9_]+)": strconv\.Parse(Uint|Int|Bool|Float)?: parsing ("[^"]*"): (.*)$`)
	// a parameter of one value given more than once, with its values;
	queryRepeatedError = regexp.MustCompile(`^too many values for field "([a-z0-9_]+)": (.*)$`)
	// any other error of a field or list (a repeated field).
	queryFieldError = regexp.MustCompile(`^parsing (?:field|list) "([a-z0-9_]+)": (.*)$`)
)

// restParameterNames rewrites grpc-gateway's query parameter errors in the
// REST API's terms: the parameter as the API documents it (maxBytes), and
// what its value should be. errorBodyOf calls it on errors without ErrorInfo
// only: Floe's own messages already name parameters as documented, and may
// quote values that look like grpc-gateway's messages.
func restParameterNames(msg string) string {
	if m := queryParseError.FindStringSubmatch(msg); m != nil {
		kind := map[string]string{"Uint": "a non-negative integer", "Int": "an integer", "Bool": "true or false", "Float": "a number"}[m[2]]
		if kind == "" {
			kind = "a valid value"
		}
		if m[4] == "value out of range" {
			return fmt.Sprintf("query parameter %s: %s is out of range", lowerCamel(m[1]), m[3])
		}
		return fmt.Sprintf("query parameter %s: %s is not %s", lowerCamel(m[1]), m[3], kind)
	}
	if m := queryRepeatedError.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("query parameter %s: more than one value (%s); give it once", lowerCamel(m[1]), m[2])
	}
	if m := queryFieldError.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("query parameter %s: %s", lowerCamel(m[1]), m[2])
	}
	return msg
}

// utf8Producer checks what gRPC's decoding checks of a produce request and
// grpc-gateway's query parser does not: that its partition key is UTF-8, as
// every protobuf string must be. gRPC refuses such a request before it
// reaches the service (InvalidArgument); over REST it would be stored under
// a key no gRPC client can send. The topic is checked by the producer.
type utf8Producer struct {
	floev1.ProducerServer
}

func (p utf8Producer) Produce(ctx context.Context, req *floev1.ProduceRequest) (*floev1.ProduceResponse, error) {
	if key := req.GetPartitionKey(); !utf8.ValidString(key) {
		return nil, server.Status(fmt.Errorf("%w: partitionKey %q is not valid UTF-8", broker.ErrInvalidParameter, key))
	}
	return p.ProducerServer.Produce(ctx, req)
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

// snakeCase turns a JSON name into its protobuf field name: onNewGroup →
// on_new_group.
func snakeCase(name string) string {
	var b strings.Builder
	for _, c := range name {
		if c >= 'A' && c <= 'Z' {
			b.WriteByte('_')
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}
