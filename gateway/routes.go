package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/server"
)

// served returns the methods one API serves on a path, for the Allow header
// of a 405 answer; "" for a path it does not serve. There is one for each
// port: a path of another API is not served on this one.
type served func(path string) string

func discoveryRoutes(path string) string {
	switch path {
	case "/status", "/v1/brokers", "/openapi.json":
		return "GET, HEAD"
	}
	return ""
}

func producerRoutes(path string) string {
	if path == "/status" {
		return "GET, HEAD"
	}
	if topic, ok := strings.CutPrefix(path, "/v1/topic/"); ok {
		if topic, ok = strings.CutSuffix(topic, "/messages"); ok && topic != "" && !strings.Contains(topic, "/") {
			return "POST"
		}
	}
	return ""
}

func consumerRoutes(path string) string {
	switch path {
	case "/status":
		return "GET, HEAD"
	case "/v1/consumer/register":
		return "PUT, POST"
	case "/v1/consumer/poll", "/v1/consumer/commit", "/v1/consumer/goodbye":
		return "POST"
	}
	return ""
}

// statusRoutes are those of the mux that serves GET /status on the producer
// and consumer ports.
func statusRoutes(path string) string {
	if path == "/status" {
		return "GET, HEAD"
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

// maxFormBody is the largest form body (application/x-www-form-urlencoded)
// the consumer API reads, as for register's JSON body: a few parameters, or
// the topics of a registration.
const maxFormBody = maxRegisterBody

// parseConsumerForm parses the parameters of the consumer API's routes as
// the generated handler would (ParseForm, whose second call changes
// nothing): the query, a form body (application/x-www-form-urlencoded), and
// for register what registerBodyToForm moved there from a JSON body. It
// answers what the generated handler could only answer vaguely: a form body
// over maxFormBody (413; ParseForm's own limit is 10 MB), a body that does not
// arrive (408), a query or body that does not parse, naming which, and a
// parameter given under both of its names (checkQueryAliases). readTimeout
// is the server's, for the message of a body that does not arrive in time.
func parseConsumerForm(readTimeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(consumerRoutes(r.URL.Path), r.Method) {
			next.ServeHTTP(w, r) // a routing error
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := r.ParseForm(); err != nil {
			writeError(w, formError(err, r.URL.RawQuery, readTimeout))
			return
		}
		keepKnownParams(r.Form)
		if err := aliasError(r.Form); err != nil {
			writeError(w, server.ErrorOf(err))
			return
		}
		if err := repeatedInBoth(r); err != nil {
			writeError(w, server.ErrorOf(err))
			return
		}
		dropEmptyValues(r.Form)
		if err := unreadBodyError(r); err != nil {
			writeError(w, server.ErrorOf(err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// unreadBodyError explains a missing consumerId on poll, commit and
// goodbye when the request carries a body those routes do not read (any
// but a form: JSON above all, since register takes it): the client gave
// the parameter, in the wrong place, and "consumerId is required" alone
// would say it did not. A request that names its consumer is served
// whatever its body holds, as PolarStreams reads the query alone.
func unreadBodyError(r *http.Request) error {
	if r.URL.Path == "/v1/consumer/register" || r.Form.Get("consumerId") != "" || r.Form.Get(snakeCase("consumerId")) != "" {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		return nil // read by ParseForm
	}
	var b [1]byte
	if n, _ := io.ReadFull(r.Body, b[:]); n == 0 {
		return nil // no body: the parameter is just missing
	}
	body := "a body without a Content-Type"
	if ct := r.Header.Get("Content-Type"); ct != "" {
		body = fmt.Sprintf("a body of type %q", ct)
	}
	return fmt.Errorf("%w: consumerId is required: %s reads its parameters from the query or a form body (application/x-www-form-urlencoded), not from %s",
		broker.ErrInvalidParameter, strings.TrimPrefix(r.URL.Path, "/v1/consumer/"), body)
}

// valueParams are the parameters of the REST API's requests that are not
// strings (commit, maxBytes, timeout, ...), under both of their names.
var valueParams = func() map[string]bool {
	params := map[string]bool{}
	forEachRequestField(func(f protoreflect.FieldDescriptor) {
		if f.Kind() != protoreflect.StringKind {
			params[string(f.Name())] = true
			params[f.JSONName()] = true
		}
	})
	return params
}()

// dropEmptyValues removes from form the boolean and integer parameters
// given with an empty value only (goodbye?commit=, poll?timeout=): such a
// parameter is taken as absent, as an empty string parameter already is
// (group= is the default group), rather than refused as a value that does
// not parse. PolarStreams skips the commit of a goodbye only for
// commit=false, so commit= commits there too. The empty values of a
// parameter that may be repeated (topic=a&topic=) are dropped too: topic=
// alone is a missing topic, not a topic with an empty name.
func dropEmptyValues(form url.Values) {
	for k, vs := range form {
		switch {
		case repeatedParams[k]:
			if vs = slices.DeleteFunc(vs, func(v string) bool { return v == "" }); len(vs) == 0 {
				delete(form, k)
			} else {
				form[k] = vs
			}
		case valueParams[k] && !slices.ContainsFunc(vs, func(v string) bool { return v != "" }):
			delete(form, k)
		}
	}
}

func nonEmpty(v string) bool { return v != "" }

// repeatedParams are the parameters that may be given several times
// (topic), under both of their names.
var repeatedParams = func() map[string]bool {
	params := map[string]bool{}
	forEachRequestField(func(f protoreflect.FieldDescriptor) {
		if f.IsList() && f.Kind() != protoreflect.MessageKind {
			params[string(f.Name())] = true
			params[f.JSONName()] = true
		}
	})
	return params
}()

// knownParams are the parameters of the REST API's requests, under both of
// their names: the fields of its requests that are not messages.
var knownParams = func() map[string]bool {
	params := map[string]bool{}
	forEachRequestField(func(f protoreflect.FieldDescriptor) {
		if f.Kind() != protoreflect.MessageKind {
			params[string(f.Name())] = true
			params[f.JSONName()] = true
		}
	})
	return params
}()

// keepKnownParams removes from form the parameters that no route takes.
// PolarStreams ignores them, and so did grpc-gateway's parser, except for
// names shaped like the protobuf requests (events=x, topic.name=b), which
// got its own wording: "invalid path: \"topic\" is not a message".
func keepKnownParams(form url.Values) {
	for k := range form {
		if !knownParams[k] {
			delete(form, k)
		}
	}
}

// repeatedInBoth refuses, on register, a parameter that may be repeated
// (topic) given both in the query and in a form body, as any other
// parameter given in both is: the values were added up, where a JSON
// body's give way to the query's. Empty values (topic=) are absent, and the
// other routes take no topic.
func repeatedInBoth(r *http.Request) error {
	if len(r.PostForm) == 0 || r.URL.Path != "/v1/consumer/register" {
		return nil
	}
	query := r.URL.Query()
	given := func(vs url.Values, k string) bool {
		return slices.ContainsFunc(vs[k], nonEmpty) || slices.ContainsFunc(vs[lowerCamel(k)], nonEmpty) || slices.ContainsFunc(vs[snakeCase(k)], nonEmpty)
	}
	for k := range r.PostForm {
		if repeatedParams[k] && given(r.PostForm, k) && given(query, k) {
			return fmt.Errorf("%w: parameter %s is given both in the query and in the form body; give it in one of them",
				broker.ErrInvalidParameter, paramNames[k])
		}
	}
	return nil
}

// formError is the answer to a request whose ParseForm failed with err.
func formError(err error, rawQuery string, readTimeout time.Duration) *floev1.Error {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return newError(floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("form body too large: the limit is %d bytes", tooLarge.Limit))
	case errors.Is(err, os.ErrDeadlineExceeded):
		return readError(err, readTimeout)
	}
	invalid := func(msg string) *floev1.Error {
		return newError(floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, http.StatusBadRequest, msg)
	}
	var escape url.EscapeError
	switch _, qerr := url.ParseQuery(rawQuery); {
	case qerr != nil:
		return invalid("the query string does not parse: " + qerr.Error())
	case strings.HasPrefix(err.Error(), "mime: "):
		return invalid("the Content-Type header does not parse: " + err.Error())
	case errors.As(err, &escape) || strings.Contains(err.Error(), "semicolon"):
		return invalid("the form body does not parse: " + err.Error())
	}
	return readError(err, readTimeout)
}

// paramNames maps both names of each field of the REST API's requests, the
// protobuf one (consumer_id) and the JSON one (consumerId), to the JSON
// name: grpc-gateway's parser takes either. Other keys it ignores.
var paramNames = func() map[string]string {
	names := map[string]string{}
	forEachRequestField(func(f protoreflect.FieldDescriptor) {
		names[string(f.Name())] = f.JSONName()
		names[f.JSONName()] = f.JSONName()
	})
	return names
}()

// paramRanges gives the values each integer parameter takes, by JSON name,
// for the message of a value out of range.
var paramRanges = func() map[string]string {
	ranges := map[string]string{}
	forEachRequestField(func(f protoreflect.FieldDescriptor) {
		switch f.Kind() {
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			ranges[f.JSONName()] = fmt.Sprintf("at most %d", uint32(math.MaxUint32))
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			ranges[f.JSONName()] = fmt.Sprintf("at most %d", uint64(math.MaxUint64))
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			ranges[f.JSONName()] = fmt.Sprintf("from %d to %d", math.MinInt32, math.MaxInt32)
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			ranges[f.JSONName()] = fmt.Sprintf("from %d to %d", math.MinInt64, math.MaxInt64)
		}
	})
	return ranges
}()

// forEachRequestField calls fn with each field of the requests of the REST
// API's services.
func forEachRequestField(fn func(protoreflect.FieldDescriptor)) {
	for _, file := range []protoreflect.FileDescriptor{
		floev1.File_floe_v1_consumer_proto, floev1.File_floe_v1_producer_proto, floev1.File_floe_v1_discovery_proto,
	} {
		services := file.Services()
		for i := range services.Len() {
			methods := services.Get(i).Methods()
			for j := range methods.Len() {
				fields := methods.Get(j).Input().Fields()
				for k := range fields.Len() {
					fn(fields.Get(k))
				}
			}
		}
	}
}

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
			return fmt.Errorf("%w: parameter %s is given twice, as %s and as %s; give it once",
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
			name := lowerCamel(m[1])
			if r := paramRanges[name]; r != "" {
				return fmt.Sprintf("parameter %s: %s is out of range: it must be %s", name, m[3], r)
			}
			return fmt.Sprintf("parameter %s: %s is out of range", name, m[3])
		}
		return fmt.Sprintf("parameter %s: %s is not %s", lowerCamel(m[1]), m[3], kind)
	}
	if m := queryRepeatedError.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("parameter %s: more than one value (%s); give it once", lowerCamel(m[1]), m[2])
	}
	if m := queryFieldError.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("parameter %s: %s", lowerCamel(m[1]), m[2])
	}
	// net/url's errors, from the generated handler's ParseForm on the routes
	// whose parameters come from the query alone (the consumer API's routes
	// parse theirs in parseConsumerForm).
	if strings.HasPrefix(msg, "invalid URL escape ") || strings.HasPrefix(msg, "invalid semicolon separator") {
		return "the query string does not parse: " + msg
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
