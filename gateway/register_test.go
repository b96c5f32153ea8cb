package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// registerResult is what registerBodyToForm passed on, or answered.
type registerResult struct {
	called  bool
	query   url.Values // the parameters, as the generated handler reads them
	formErr error      // ParseForm's error, which the generated handler answers
	body    []byte
	ct      string
	length  int64
	status  int
	answer  []byte
}

func runRegister(t testing.TB, method, target, ct, body string) registerResult {
	t.Helper()
	var res registerResult
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res.called = true
		// As the generated handler: ParseForm, then r.Form.
		res.formErr = r.ParseForm()
		res.query = r.Form
		res.ct = r.Header.Get("Content-Type")
		res.length = r.ContentLength
		res.body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusOK)
	})
	path, rawQuery, _ := strings.Cut(target, "?")
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.URL.RawQuery = rawQuery // as sent, whatever it holds
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	rec := httptest.NewRecorder()
	registerBodyToForm(testReadTimeout, next).ServeHTTP(rec, req)
	res.status, res.answer = rec.Code, rec.Body.Bytes()
	return res
}

func TestRegisterBodyToForm(t *testing.T) {
	const reg = "/v1/consumer/register"
	for _, tc := range []struct {
		name, method, target, body string
		want                       url.Values
	}{
		{"query only (the seed's curl)", "PUT", reg + "?consumerId=1&group=product-stock-updater&topic=product-stock", "",
			url.Values{"consumerId": {"1"}, "group": {"product-stock-updater"}, "topic": {"product-stock"}}},
		{"PolarStreams client body", "POST", reg, `{"id":"c1","group":"g","topics":["a","b"],"onNewGroup":"startFromEarliest"}`,
			url.Values{"consumerId": {"c1"}, "group": {"g"}, "topic": {"a", "b"}, "onNewGroup": {"startFromEarliest"}}},
		{"consumerId and topic fields", "PUT", reg, `{"consumerId":"c2","topic":["x"]}`,
			url.Values{"consumerId": {"c2"}, "topic": {"x"}}},
		{"topics and topic together", "PUT", reg, `{"id":"c","topics":["a"],"topic":["b"]}`,
			url.Values{"consumerId": {"c"}, "topic": {"a", "b"}}},
		{"query wins", "POST", reg + "?consumerId=q&group=qg&topic=qt&onNewGroup=startFromLatest",
			`{"id":"b","group":"bg","topics":["bt"],"onNewGroup":"startFromEarliest"}`,
			url.Values{"consumerId": {"q"}, "group": {"qg"}, "topic": {"qt"}, "onNewGroup": {"startFromLatest"}}},
		{"consumer_id alias wins over the body", "POST", reg + "?consumer_id=q", `{"id":"b","topics":["t"]}`,
			url.Values{"consumer_id": {"q"}, "topic": {"t"}}},
		{"blank body", "PUT", reg + "?consumerId=1&topic=t", " \r\n",
			url.Values{"consumerId": {"1"}, "topic": {"t"}}},
		{"null body", "PUT", reg + "?consumerId=1&topic=t", "null",
			url.Values{"consumerId": {"1"}, "topic": {"t"}}},
		{"unknown fields ignored", "PUT", reg, `{"id":"c","topics":["t"],"extra":{"x":1}}`,
			url.Values{"consumerId": {"c"}, "topic": {"t"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runRegister(t, tc.method, tc.target, "application/json", tc.body)
			if !res.called {
				t.Fatalf("answered %d %s", res.status, res.answer)
			}
			if res.formErr != nil || !equalValues(res.query, tc.want) {
				t.Errorf("query %v (%v), want %v", res.query, res.formErr, tc.want)
			}
			if len(res.body) != 0 || res.length != 0 || res.ct != "" {
				t.Errorf("the body reached the handler: %q (length %d, type %q)", res.body, res.length, res.ct)
			}
		})
	}
	// Invalid JSON: 400 in the error shape, saying what is wrong in the
	// API's terms (not encoding/json's Go types) and the expected form.
	for _, tc := range []struct{ body, want string }{
		{`{"id":`, "the register body is not valid JSON: unexpected end of JSON input (at byte 6)"},
		{`{"id":"a"} x`, "the register body is not valid JSON: invalid character 'x' after top-level value (at byte 12)"},
		{`{"topics":"a"}`, "register body: topics must be an array of strings, not a string"},
		{`{"topics":{"a":1}}`, "register body: topics must be an array of strings, not an object"},
		{`{"topics":["a",1]}`, "register body: topics must be an array of strings: it holds a number"},
		{`{"topic":[["a"]]}`, "register body: topic must be an array of strings: it holds an array"},
		{`{"id":1}`, "register body: id must be a string, not a number"},
		{`{"consumerId":true}`, "register body: consumerId must be a string, not a boolean"},
		{`{"group":["g"]}`, "register body: group must be a string, not an array"},
		{`{"onNewGroup":{}}`, "register body: onNewGroup must be a string, not an object"},
		{`[1]`, "the register body must be a JSON object, not an array"},
		{`"c1"`, "the register body must be a JSON object, not a string"},
	} {
		res := runRegister(t, "PUT", reg, "application/json", tc.body)
		if res.called || res.status != 400 {
			t.Errorf("body %s: called %v, %d %s; want 400", tc.body, res.called, res.status, res.answer)
			continue
		}
		var e map[string]any
		if err := json.Unmarshal(res.answer, &e); err != nil || e["code"] != float64(1001) {
			t.Errorf("body %s: error %s", tc.body, res.answer)
			continue
		}
		want := tc.want + `; expected {"id":...,"group":...,"topics":[...],"onNewGroup":...}`
		if msg := e["message"].(string); msg != want {
			t.Errorf("body %s: message\n %s\nwant\n %s", tc.body, msg, want)
		}
	}
	// A body that names two consumers is refused; the same one twice is not.
	res := runRegister(t, "POST", reg, "application/json", `{"id":"a","consumerId":"b","topics":["t"]}`)
	if res.called || res.status != 400 || !strings.Contains(string(res.answer),
		`register body: id \"a\" and consumerId \"b\" name different consumers; give one of them`) {
		t.Errorf("id and consumerId differ: called %v, %d %s", res.called, res.status, res.answer)
	}
	if res := runRegister(t, "POST", reg, "application/json", `{"id":"a","consumerId":"a","topics":["t"]}`); !res.called || res.query.Get("consumerId") != "a" {
		t.Errorf("id and consumerId agree: called %v, %d %s, query %v", res.called, res.status, res.answer, res.query)
	}
	// A form body (curl --data) is parsed with the query, as on the other
	// consumer routes; one that starts with '{' or '[' is JSON sent as a form.
	for _, tc := range []struct {
		name, ct, target, body string
		want                   url.Values
	}{
		{"form", "application/x-www-form-urlencoded", reg, "consumerId=f&topic=a&topic=b",
			url.Values{"consumerId": {"f"}, "topic": {"a", "b"}}},
		{"form with a charset, and a query", "application/x-www-form-urlencoded; charset=utf-8", reg + "?group=g", "consumerId=f&topic=a",
			url.Values{"consumerId": {"f"}, "topic": {"a"}, "group": {"g"}}},
		{"JSON sent as a form", "application/x-www-form-urlencoded", reg, ` {"id":"j","topics":["t"]}`,
			url.Values{"consumerId": {"j"}, "topic": {"t"}}},
	} {
		res := runRegister(t, "PUT", tc.target, tc.ct, tc.body)
		if !res.called || res.formErr != nil || !equalValues(res.query, tc.want) {
			t.Errorf("%s: called %v, %d %s, query %v (%v), want %v", tc.name, res.called, res.status, res.answer, res.query, res.formErr, tc.want)
		}
	}
	// A body that is not JSON, sent without a JSON type, is ignored when the
	// query names the consumer, as PolarStreams reads the query alone; as
	// JSON, or without a consumer in the query, it is an error. So is a body
	// meant to carry parameters: JSON that does not decode whatever its type
	// (curl -d sends it as a form), or a multipart form. Ignored, they would
	// register in the default group rather than the body's.
	for _, tc := range []struct {
		ct, target, body string
		called           bool
		answer           string
	}{
		{"text/plain", reg + "?consumerId=1&topic=t", "hello", true, ""},
		{"application/octet-stream", reg + "?consumer_id=1&topic=t", "hello", true, ""},
		{"", reg + "?consumerId=1&topic=t", "hello", true, ""},
		{"text/plain", reg + "?consumerId=1&topic=t", "group=g", true, ""},
		{"application/json", reg + "?consumerId=1&topic=t", "hello", false, "not valid JSON"},
		{"application/vnd.api+json", reg + "?consumerId=1&topic=t", "hello", false, "not valid JSON"},
		{"text/plain", reg + "?topic=t", "hello", false, "not valid JSON"},
		{"application/x-www-form-urlencoded", reg + "?consumerId=1&topic=t", `{"group":"g",}`, false, "not valid JSON"},
		{"text/plain", reg + "?consumerId=1&topic=t", ` {"group":5}`, false, "group must be a string"},
		{"text/json", reg + "?consumerId=1&topic=t", `["t"]`, false, "must be a JSON object"},
		{"application/x-www-form-urlencoded", reg + "?consumerId=1&topic=t", ` ["t"]`, false, "must be a JSON object"},
		{"application/x-www-form-urlencoded", reg + "?consumerId=1&topic=t", `[{"group":"g"}`, false, "not valid JSON"},
		{"multipart/form-data; boundary=b", reg + "?consumerId=1&topic=t", "--b\r\nContent-Disposition: form-data; name=\"group\"\r\n\r\ng\r\n--b--\r\n", false, "multipart/form-data"},
	} {
		res := runRegister(t, "PUT", tc.target, tc.ct, tc.body)
		if res.called != tc.called || (!tc.called && (res.status != 400 || !strings.Contains(string(res.answer), tc.answer))) {
			t.Errorf("body %q, type %q, %s: called %v, %d %s; want called %v", tc.body, tc.ct, tc.target, res.called, res.status, res.answer, tc.called)
		}
		if res.called && (len(res.body) != 0 || res.query.Get("topic") != "t" || res.query.Get("group") != "") {
			t.Errorf("body %q, type %q, %s: body %q reached the handler, query %v", tc.body, tc.ct, tc.target, res.body, res.query)
		}
	}
	// More topics than net/url parses in a query (10,000): they reach the
	// handler, which says how many a registration may name, rather than
	// an error about a query the client did not send.
	topics := make([]string, 20_000)
	for i := range topics {
		topics[i] = fmt.Sprintf("t%d", i)
	}
	body, _ := json.Marshal(map[string]any{"id": "c", "topics": topics})
	if res := runRegister(t, "POST", reg, "application/json", string(body)); !res.called || res.formErr != nil ||
		!slices.Equal(res.query["topic"], topics) || res.query.Get("consumerId") != "c" {
		t.Errorf("a body of %d topics: called %v, %d %s, form error %v, %d topics", len(topics), res.called, res.status, res.answer, res.formErr, len(res.query["topic"]))
	}
	// A query that does not parse is left to the generated handler, which
	// answers its error, body or not.
	for _, body := range []string{"", `{"id":"c","topics":["t"]}`} {
		if res := runRegister(t, "POST", reg+"?consumerId=%zz", "application/json", body); !res.called || res.formErr == nil {
			t.Errorf("query consumerId=%%zz, body %q: called %v, form error %v", body, res.called, res.formErr)
		}
	}
	// Other routes and methods are untouched.
	for _, tc := range []struct{ method, target string }{
		{"POST", "/v1/consumer/poll?consumerId=1"},
		{"GET", reg + "?consumerId=1"},
	} {
		res := runRegister(t, tc.method, tc.target, "text/plain", "raw")
		if !res.called || string(res.body) != "raw" || res.ct != "text/plain" {
			t.Errorf("%s %s: body %q type %q", tc.method, tc.target, res.body, res.ct)
		}
	}
}

func equalValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// FuzzRegisterBody: any query and body either get a 400 in the error shape
// or reach the handler with no body and a query that keeps every parameter
// of the original query and takes from the JSON body only what the query
// lacks.
func FuzzRegisterBody(f *testing.F) {
	f.Add("consumerId=1&group=g&topic=product-stock", "")
	f.Add("", `{"id":"c1","group":"g","topics":["a","b"],"onNewGroup":"startFromEarliest"}`)
	f.Add("consumerId=q&topic=x", `{"id":"b","topics":["y"]}`)
	f.Add("consumer_id=q", `{"consumerId":"b","topic":["y"],"group":""}`)
	f.Add("topic=&consumerId=", `{"id":"\u00e9\ud800","topics":[]}`)
	f.Add("a=%zz&consumerId=1", `{"id":"2"}`)
	f.Add("", `{"id":`)
	f.Add("", `null`)
	f.Add("", `{"id":"a","consumerId":"b"}`)
	f.Fuzz(func(t *testing.T, rawQuery, body string) {
		orig, queryErr := url.ParseQuery(rawQuery) // what the handler sees
		res := runRegister(t, "POST", "/v1/consumer/register?"+rawQuery, "application/json", body)
		if !res.called {
			var e map[string]any
			if res.status != 400 || json.Unmarshal(res.answer, &e) != nil || e["code"] != float64(1001) {
				t.Fatalf("answered %d %s, want 400 INVALID_PARAMETER", res.status, res.answer)
			}
			if msg, _ := e["message"].(string); strings.Contains(msg, "registerBody") || strings.Contains(msg, "Go ") {
				t.Fatalf("message %q names Go types", msg)
			}
			var rb registerBody
			if strings.TrimSpace(body) == "" || json.Unmarshal([]byte(body), &rb) == nil && !(rb.ID != "" && rb.ConsumerID != "" && rb.ID != rb.ConsumerID) {
				t.Fatalf("refused a body that decodes: %q", body)
			}
			return
		}
		if len(res.body) != 0 || res.length != 0 {
			t.Fatalf("the body reached the handler: %q", res.body)
		}
		if queryErr != nil {
			// The handler answers the query's error.
			if res.formErr == nil {
				t.Fatalf("query %q does not parse (%v), and the handler got no error", rawQuery, queryErr)
			}
			return
		}
		if res.formErr != nil {
			t.Fatalf("query %q parses, and the handler got %v", rawQuery, res.formErr)
		}
		if len(strings.TrimSpace(body)) == 0 {
			if !equalValues(res.query, orig) {
				t.Fatalf("query %v changed to %v without a body", orig, res.query)
			}
			return
		}
		var rb registerBody
		if err := json.Unmarshal([]byte(body), &rb); err != nil {
			t.Fatalf("passed on a body that does not decode: %q: %v", body, err)
		}
		for k, v := range orig {
			if k == "topic" && len(v) > 0 || slices.ContainsFunc(v, func(s string) bool { return s != "" }) {
				if k == "consumerId" || k == "group" || k == "onNewGroup" {
					if res.query.Get(k) != orig.Get(k) && orig.Get(k) != "" {
						t.Fatalf("%s=%q of the query became %q", k, orig.Get(k), res.query.Get(k))
					}
				} else if !slices.Equal(res.query[k], v) {
					t.Fatalf("%s=%q of the query became %q", k, v, res.query[k])
				}
			}
		}
		want := func(key string, fromBody ...string) {
			if orig.Get(key) != "" {
				return
			}
			if key == "consumerId" && orig.Get("consumer_id") != "" {
				if res.query.Get(key) != orig.Get(key) {
					t.Fatalf("consumerId %q set from the body over consumer_id=%q", res.query.Get(key), orig.Get("consumer_id"))
				}
				return
			}
			w := ""
			for _, v := range fromBody {
				if v != "" {
					w = v
					break
				}
			}
			if w != "" && res.query.Get(key) != w {
				t.Fatalf("%s = %q, want %q from the body", key, res.query.Get(key), w)
			}
		}
		want("consumerId", rb.ID, rb.ConsumerID)
		want("group", rb.Group)
		want("onNewGroup", rb.OnNewGroup)
		if len(orig["topic"]) == 0 {
			if wantTopics := append(slices.Clone(rb.Topics), rb.Topic...); !slices.Equal(res.query["topic"], wantTopics) && len(wantTopics)+len(res.query["topic"]) > 0 {
				t.Fatalf("topics %q, want %q from the body", res.query["topic"], wantTopics)
			}
		}
	})
}
