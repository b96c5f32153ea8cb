package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/server"
)

// registerBody is the JSON body form of register that PolarStreams clients
// send: {"id":"c1","group":"g","topics":["a","b"],"onNewGroup":"startFromEarliest"}.
type registerBody struct {
	ID         string   `json:"id"`
	ConsumerID string   `json:"consumerId"`
	Group      string   `json:"group"`
	Topics     []string `json:"topics"`
	Topic      []string `json:"topic"`
	OnNewGroup string   `json:"onNewGroup"`
}

// registerBodyShape is the body register expects, for error messages.
const registerBodyShape = `{"id":...,"group":...,"topics":[...],"onNewGroup":...}`

// maxRegisterBody is the largest JSON body register accepts: thousands of
// topic names, more than a registration may name (group.MaxTopics), so that
// the limit on topics is the one a client meets.
const maxRegisterBody = 1 << 20

// registerBodyToForm accepts the JSON body form of register (PUT or POST)
// by moving its fields to the request's parameters, which the generated
// handler reads. Parameters given in the query win. readTimeout is the
// server's, for the message of a body that does not arrive in time.
//
// The parameters go to r.Form, which the generated handler's ParseForm
// leaves as it is once set, rather than back into the URL: encoded there, a
// body of 10,000 topics or more would exceed net/url's limit on query
// parameters, and the client would get an error about a query it did not
// send instead of the limit on topics.
func registerBodyToForm(readTimeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/consumer/register" || (r.Method != http.MethodPost && r.Method != http.MethodPut) {
			next.ServeHTTP(w, r)
			return
		}
		data, err := io.ReadAll(io.LimitReader(r.Body, maxRegisterBody+1))
		if err != nil {
			writeError(w, readError(err, readTimeout))
			return
		}
		if len(data) > maxRegisterBody {
			writeError(w, newError(floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("register body too large: the limit is %d bytes", maxRegisterBody)))
			return
		}
		if isFormBody(r.Header.Get("Content-Type"), data) {
			// Parsed with the query by parseConsumerForm, as on the other
			// routes.
			r.Body = io.NopCloser(bytes.NewReader(data))
			r.ContentLength = int64(len(data))
			next.ServeHTTP(w, r)
			return
		}
		contentType := r.Header.Get("Content-Type")
		r.Body = http.NoBody
		r.ContentLength = 0
		r.Header.Del("Content-Type")
		if len(bytes.TrimSpace(data)) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		var rb registerBody
		if err := json.Unmarshal(data, &rb); err != nil {
			if !meantAsParameters(contentType, data) && queryNamesConsumer(r.URL.RawQuery) {
				// PolarStreams reads the query alone: a registration
				// complete in its query registers, whatever else it sends
				// in a body not meant to carry parameters.
				next.ServeHTTP(w, r)
				return
			}
			if mt, _, _ := mime.ParseMediaType(contentType); mt == "multipart/form-data" {
				writeError(w, newError(floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, http.StatusBadRequest,
					"register does not read a multipart/form-data body: give the parameters in the query, a form body (application/x-www-form-urlencoded) or a JSON body "+registerBodyShape))
				return
			}
			writeError(w, newError(floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, http.StatusBadRequest,
				registerBodyError(err)+"; expected "+registerBodyShape))
			return
		}
		if rb.ID != "" && rb.ConsumerID != "" && rb.ID != rb.ConsumerID {
			writeError(w, newError(floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, http.StatusBadRequest,
				fmt.Sprintf("register body: id %q and consumerId %q name different consumers; give one of them", rb.ID, rb.ConsumerID)))
			return
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			// The generated handler answers the query's own error.
			next.ServeHTTP(w, r)
			return
		}
		// A parameter given in the query, under either of its names, wins.
		setIfAbsent := func(key, v string) {
			if v != "" && q.Get(key) == "" && q.Get(snakeCase(key)) == "" {
				q.Set(key, v)
			}
		}
		setIfAbsent("consumerId", rb.ID)
		setIfAbsent("consumerId", rb.ConsumerID)
		setIfAbsent("group", rb.Group)
		setIfAbsent("onNewGroup", rb.OnNewGroup)
		// As for the others, a query topic wins, and an empty one (topic=)
		// is absent.
		if topics := append(rb.Topics, rb.Topic...); !slices.ContainsFunc(q["topic"], nonEmpty) && len(topics) > 0 {
			if slices.Contains(topics, "") {
				// As over gRPC: a body lists its topics, and an empty one
				// is not a topic left out (in the query, it would be).
				writeError(w, server.ErrorOf(broker.ValidateTopic("")))
				return
			}
			q["topic"] = topics
		}
		r.Form, r.PostForm = q, url.Values{}
		next.ServeHTTP(w, r)
	})
}

// isFormBody reports whether a register body is a form
// (application/x-www-form-urlencoded), as poll, commit and goodbye take. A
// body that starts with '{' or '[' is JSON whatever its type: curl -d sends
// JSON as a form unless told otherwise, and no parameter name starts with
// either, so read as a form such a body would be ignored (meantAsParameters).
func isFormBody(contentType string, data []byte) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return false
	}
	trimmed := bytes.TrimSpace(data)
	return len(trimmed) > 0 && trimmed[0] != '{' && trimmed[0] != '['
}

// isJSONType reports whether a Content-Type declares JSON
// (application/json or a +json type).
func isJSONType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// meantAsParameters reports whether a register body that does not decode
// as JSON object was still meant to carry the registration's parameters, so
// that ignoring it would register something else than the client asked for:
// a body declared as JSON, one shaped as JSON whatever its type ('{' or '['
// first: curl -d sends JSON as a form, and a misplaced comma must not drop
// the body's group), or a multipart form.
func meantAsParameters(contentType string, data []byte) bool {
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		return true
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	return isJSONType(contentType) || mt == "multipart/form-data"
}

// queryNamesConsumer reports whether a register query names its consumer,
// under either name of the parameter.
func queryNamesConsumer(rawQuery string) bool {
	q, err := url.ParseQuery(rawQuery)
	return err == nil && (q.Get("consumerId") != "" || q.Get(snakeCase("consumerId")) != "")
}

// registerBodyError says what is wrong with a register body that does not
// decode, in the API's terms: the JSON field and the type it must have, not
// encoding/json's Go types.
func registerBodyError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("the register body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	case !errors.As(err, &typ):
		return "the register body does not decode: " + err.Error()
	case typ.Field == "":
		return "the register body must be a JSON object, not " + jsonKind(typ.Value)
	case typ.Field == "topics" || typ.Field == "topic":
		if typ.Type != nil && typ.Type.Kind() == reflect.String {
			return fmt.Sprintf("register body: %s must be an array of strings: it holds %s", typ.Field, jsonKind(typ.Value))
		}
		return fmt.Sprintf("register body: %s must be an array of strings, not %s", typ.Field, jsonKind(typ.Value))
	}
	return fmt.Sprintf("register body: %s must be a string, not %s", typ.Field, jsonKind(typ.Value))
}

// jsonKind names a kind of JSON value as encoding/json's errors give it
// ("number", "bool", ...) with its article.
func jsonKind(v string) string {
	switch v {
	case "array", "object":
		return "an " + v
	case "bool":
		return "a boolean"
	case "":
		return "this value"
	}
	return "a " + v
}
