package floe_test

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/floe-streams/floe"
)

func waitReady(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", url, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// contract checks REST exchanges against the OpenAPI document the broker
// serves, with kin-openapi: the request went to a port the document names
// for its path, and the answer matches the documented status, headers and
// body schema.
type contract struct {
	t   testing.TB
	doc *openapi3.T
}

func loadContract(t testing.TB, discovery string) *contract {
	t.Helper()
	resp, err := http.Get("http://" + discovery + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("x-floe-")) {
		t.Errorf("the served OpenAPI document holds a marker of openapifix (x-floe-...)")
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("decode OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is invalid: %v", err)
	}
	return &contract{t: t, doc: doc}
}

// check validates one exchange: the operation must be documented and the
// response must match its documented status, headers and body schema.
func (c *contract) check(req *http.Request, pathTemplate string, pathParams map[string]string, resp *http.Response, body []byte) {
	c.t.Helper()
	item := c.doc.Paths.Find(pathTemplate)
	if item == nil {
		c.t.Fatalf("%s is not in the OpenAPI document", pathTemplate)
	}
	op := item.GetOperation(req.Method)
	if op == nil {
		c.t.Fatalf("%s %s is not in the OpenAPI document", req.Method, pathTemplate)
	}
	if urls := serverURLs(item.Servers); !slices.Contains(urls, req.URL.Scheme+"://"+req.URL.Host) {
		c.t.Errorf("%s %s: sent to %s, the OpenAPI document serves it on %v", req.Method, pathTemplate, req.URL.Host, urls)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: pathParams,
			Route:      &routers.Route{Spec: c.doc, Path: pathTemplate, PathItem: item, Method: req.Method, Operation: op},
		},
		Status: resp.StatusCode,
		Header: resp.Header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
		},
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		c.t.Errorf("%s %s → %d %s: does not match the OpenAPI document: %v", req.Method, req.URL, resp.StatusCode, body, err)
	}
}

// serverURLs are the URLs of servers, with their variables' defaults.
func serverURLs(servers openapi3.Servers) []string {
	var urls []string
	for _, s := range servers {
		u := s.URL
		for name, v := range s.Variables {
			u = strings.ReplaceAll(u, "{"+name+"}", v.Default)
		}
		urls = append(urls, u)
	}
	return urls
}

type exchange struct {
	resp *http.Response
	body []byte
}

func do(t testing.TB, c *contract, method, rawURL, pathTemplate string, pathParams map[string]string, contentType string, body []byte) exchange {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	checkCommonHeaders(t, method, rawURL, resp, data)
	if c != nil {
		c.check(req, pathTemplate, pathParams, resp, data)
	}
	return exchange{resp: resp, body: data}
}

// checkCommonHeaders checks what the contract asks of every answer:
// Content-Length on answers with a body, Retry-After and Cache-Control on 204.
func checkCommonHeaders(t testing.TB, method, url string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode == http.StatusNoContent {
		if len(body) != 0 {
			t.Errorf("%s %s: 204 with a body %q", method, url, body)
		}
		if resp.Header.Get("Retry-After") == "" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: 204 without Retry-After and Cache-Control: no-store: %v", method, url, resp.Header)
		}
		return
	}
	if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
		t.Errorf("%s %s: Content-Length %q for a body of %d bytes", method, url, got, len(body))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
}

// errorShape checks the one error shape and returns it.
func errorShape(t testing.TB, ex exchange, wantStatus, wantCode int) map[string]any {
	t.Helper()
	if ex.resp.StatusCode != wantStatus {
		t.Fatalf("status %d, want %d: %s", ex.resp.StatusCode, wantStatus, ex.body)
	}
	var e map[string]any
	if err := json.Unmarshal(ex.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", ex.body, err)
	}
	if e["status"] != float64(wantStatus) || e["code"] != float64(wantCode) {
		t.Errorf("error body %s: want status %d code %d", ex.body, wantStatus, wantCode)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error body %s has no message", ex.body)
	}
	if name, _ := e["error"].(string); name == "" {
		t.Errorf("error body %s has no error name", ex.body)
	}
	return e
}

func TestRESTEveryRoute(t *testing.T) {
	_, a := startNode(t, nil)
	c := loadContract(t, a.Discovery)
	d, p, k := "http://"+a.Discovery, "http://"+a.Producer, "http://"+a.Consumer

	// Discovery.
	ex := do(t, c, "GET", d+"/v1/brokers", "/v1/brokers", nil, "", nil)
	if ex.resp.StatusCode != 200 {
		t.Fatalf("brokers: %d %s", ex.resp.StatusCode, ex.body)
	}
	_, pport, _ := strings.Cut(a.Producer, ":")
	_, cport, _ := strings.Cut(a.Consumer, ":")
	want := fmt.Sprintf(`{"length":1,"names":["floe-test"],"producerPort":%s,"consumerPort":%s}`, pport, cport)
	if string(ex.body) != want {
		t.Errorf("brokers body\n got %s\nwant %s", ex.body, want)
	}
	for _, base := range []string{d, p, k} {
		if ex := do(t, c, "GET", base+"/status", "/status", nil, "", nil); ex.resp.StatusCode != 200 {
			t.Errorf("%s/status: %d", base, ex.resp.StatusCode)
		}
	}

	// Register before producing, starting from the earliest event.
	reg := k + "/v1/consumer/register?consumerId=c1&group=g1&topic=product-stock&onNewGroup=startFromEarliest"
	if ex := do(t, c, "PUT", reg, "/v1/consumer/register", nil, "", nil); ex.resp.StatusCode != 200 {
		t.Fatalf("register: %d %s", ex.resp.StatusCode, ex.body)
	}
	// Nothing yet: 204.
	if ex := do(t, c, "POST", k+"/v1/consumer/poll?consumerId=c1", "/v1/consumer/poll", nil, "", nil); ex.resp.StatusCode != 204 {
		t.Fatalf("poll on empty topic: %d %s", ex.resp.StatusCode, ex.body)
	}

	// Produce: the seed's example, then NDJSON with the same key.
	msgs := p + "/v1/topic/product-stock/messages?partitionKey=123"
	params := map[string]string{"topic": "product-stock"}
	ex = do(t, c, "POST", msgs, "/v1/topic/{topic}/messages", params, "application/json", []byte(`{"productId": 123, "units": -5}`))
	if ex.resp.StatusCode != 200 {
		t.Fatalf("produce: %d %s", ex.resp.StatusCode, ex.body)
	}
	var ack struct {
		Topic       string `json:"topic"`
		Token       string `json:"token"`
		RangeIndex  int    `json:"rangeIndex"`
		Version     int    `json:"version"`
		StartOffset string `json:"startOffset"`
		Count       int    `json:"count"`
	}
	if err := json.Unmarshal(ex.body, &ack); err != nil {
		t.Fatal(err)
	}
	if ack.Topic != "product-stock" || ack.StartOffset != "0" || ack.Count != 1 || ack.Version != 1 || ack.Token != "-9223372036854775808" {
		t.Errorf("produce ack %s", ex.body)
	}
	ex = do(t, c, "POST", msgs, "/v1/topic/{topic}/messages", params, "application/x-ndjson",
		[]byte("{\"productId\":123,\"units\":-1}\r\n\n{\"productId\":123,\"units\":20}\n"))
	if ex.resp.StatusCode != 200 {
		t.Fatalf("produce ndjson: %d %s", ex.resp.StatusCode, ex.body)
	}
	var ack2 struct {
		StartOffset string `json:"startOffset"`
		Count       int    `json:"count"`
		RangeIndex  int    `json:"rangeIndex"`
	}
	json.Unmarshal(ex.body, &ack2)
	if ack2.StartOffset != "1" || ack2.Count != 2 || ack2.RangeIndex != ack.RangeIndex {
		t.Errorf("ndjson ack %s: want startOffset 1, count 2, same range as %d", ex.body, ack.RangeIndex)
	}

	// Poll: the documented array, values exactly as produced.
	ex = do(t, c, "POST", k+"/v1/consumer/poll?consumerId=c1", "/v1/consumer/poll", nil, "", nil)
	if ex.resp.StatusCode != 200 {
		t.Fatalf("poll: %d %s", ex.resp.StatusCode, ex.body)
	}
	wantPoll := fmt.Sprintf(`[{"topic":"product-stock","token":"-9223372036854775808","rangeIndex":%d,"version":1,"startOffset":"0","values":[{"productId": 123, "units": -5},{"productId":123,"units":-1},{"productId":123,"units":20}]}]`, ack.RangeIndex)
	if string(ex.body) != wantPoll {
		t.Errorf("poll body\n got %s\nwant %s", ex.body, wantPoll)
	}
	// Commit: 204. Goodbye: 200, then the consumer is gone: 409 everywhere.
	if ex := do(t, c, "POST", k+"/v1/consumer/commit?consumerId=c1", "/v1/consumer/commit", nil, "", nil); ex.resp.StatusCode != 204 {
		t.Errorf("commit: %d %s", ex.resp.StatusCode, ex.body)
	}
	if ex := do(t, c, "POST", k+"/v1/consumer/goodbye?consumerId=c1", "/v1/consumer/goodbye", nil, "", nil); ex.resp.StatusCode != 200 {
		t.Errorf("goodbye: %d %s", ex.resp.StatusCode, ex.body)
	}
	for _, route := range []string{"poll", "commit", "goodbye"} {
		ex := do(t, c, "POST", k+"/v1/consumer/"+route+"?consumerId=c1", "/v1/consumer/"+route, nil, "", nil)
		errorShape(t, ex, 409, 2001)
	}

	// The committed position survives: the same group starts after it.
	if ex := do(t, c, "POST", k+"/v1/consumer/register?consumer_id=c2&group=g1&topic=product-stock", "/v1/consumer/register", nil, "", nil); ex.resp.StatusCode != 200 {
		t.Fatalf("register (POST, consumer_id alias): %d %s", ex.resp.StatusCode, ex.body)
	}
	if ex := do(t, c, "POST", k+"/v1/consumer/poll?consumerId=c2", "/v1/consumer/poll", nil, "", nil); ex.resp.StatusCode != 204 {
		t.Errorf("poll after commit: %d %s (want 204: everything was committed)", ex.resp.StatusCode, ex.body)
	}
}

func TestRESTErrors(t *testing.T) {
	_, a := startNode(t, func(o *floe.Options) { o.MaxRequestBytes = 1 << 10; o.MaxEventBytes = 512 })
	c := loadContract(t, a.Discovery)
	p, k := "http://"+a.Producer, "http://"+a.Consumer
	msgs := p + "/v1/topic/t1/messages"
	params := map[string]string{"topic": "t1"}
	tmpl := "/v1/topic/{topic}/messages"

	cases := []struct {
		name, url, ct string
		body          []byte
		status, code  int
		mention       string
	}{
		{"invalid json", msgs, "application/json", []byte(`{"a":`), 400, 1004, "invalid JSON"},
		{"ndjson bad last line", msgs, "application/x-ndjson", []byte("{\"a\":1}\n{\"a\":2}\nnope\n"), 400, 1004, "line 3"},
		{"empty body", msgs, "application/json", nil, 400, 1003, "no event"},
		{"blank ndjson", msgs, "application/x-ndjson", []byte("\n \r\n"), 400, 1003, "no non-empty line"},
		{"unsupported content type", msgs, "text/plain", []byte(`{}`), 415, 1007, "text/plain"},
		{"body too large", msgs, "application/json", []byte(`{"a":"` + strings.Repeat("x", 2000) + `"}`), 413, 1005, "limit"},
		{"event too large", msgs, "application/x-ndjson", []byte(`{"a":"` + strings.Repeat("x", 600) + `"}`), 413, 1006, "line 1"},
		{"invalid topic", p + "/v1/topic/bad%20topic/messages", "application/json", []byte(`{}`), 400, 1002, "bad topic"},
		{"long topic", p + "/v1/topic/" + strings.Repeat("t", 250) + "/messages", "application/json", []byte(`{}`), 400, 1002, "249"},
		{"topic beyond ASCII", p + "/v1/topic/%C3%A9t%C3%A9/messages", "application/json", []byte(`{}`), 400, 1002, "'é' (U+00E9) at position 0"},
		{"event beyond ASCII", msgs, "application/json", []byte("\ufeff{}"), 400, 1004, "byte order mark (U+FEFF)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			params := params
			if !strings.HasPrefix(tc.url, msgs) {
				u, _ := url.Parse(tc.url)
				topic := strings.TrimSuffix(strings.TrimPrefix(u.Path, "/v1/topic/"), "/messages")
				params = map[string]string{"topic": topic}
			}
			ex := do(t, c, "POST", tc.url, tmpl, params, tc.ct, tc.body)
			e := errorShape(t, ex, tc.status, tc.code)
			if msg := e["message"].(string); !strings.Contains(msg, tc.mention) {
				t.Errorf("message %q does not mention %q", msg, tc.mention)
			}
		})
	}
	// Nothing of a rejected request is stored.
	if ex := do(t, c, "PUT", k+"/v1/consumer/register?consumerId=x&topic=t1&onNewGroup=startFromEarliest", "/v1/consumer/register", nil, "", nil); ex.resp.StatusCode != 200 {
		t.Fatal(ex.resp.StatusCode)
	}
	if ex := do(t, c, "POST", k+"/v1/consumer/poll?consumerId=x", "/v1/consumer/poll", nil, "", nil); ex.resp.StatusCode != 204 {
		t.Errorf("after rejected requests, poll: %d %s (want 204: nothing stored)", ex.resp.StatusCode, ex.body)
	}

	// Register parameters.
	for _, tc := range []struct{ query, mention string }{
		{"group=g&topic=t1", "consumerId"},
		{"consumerId=a&group=g", "topic"},
		{"consumerId=a&topic=t1&onNewGroup=sometimes", "onNewGroup"},
		{"consumerId=a&topic=bad%20name", "topic"},
	} {
		ex := do(t, c, "PUT", k+"/v1/consumer/register?"+tc.query, "/v1/consumer/register", nil, "", nil)
		if ex.resp.StatusCode != 400 {
			t.Errorf("register ?%s: %d %s, want 400", tc.query, ex.resp.StatusCode, ex.body)
			continue
		}
		var e map[string]any
		json.Unmarshal(ex.body, &e)
		if msg, _ := e["message"].(string); !strings.Contains(msg, tc.mention) {
			t.Errorf("register ?%s: message %q does not name %q", tc.query, msg, tc.mention)
		}
	}

	// Routing: 404 and 405 in the same shape, on every port.
	errorShape(t, do(t, nil, "GET", k+"/nope", "", nil, "", nil), 404, 3001)
	errorShape(t, do(t, nil, "GET", p+"/v1/brokers", "", nil, "", nil), 404, 3001)
	for _, tc := range []struct{ method, url, allow string }{
		{"DELETE", k + "/v1/consumer/poll", "POST"},
		{"GET", msgs, "POST"},
		{"DELETE", k + "/v1/consumer/register", "PUT, POST"},
		{"POST", "http://" + a.Discovery + "/v1/brokers", "GET, HEAD"},
	} {
		ex := do(t, nil, tc.method, tc.url, "", nil, "", nil)
		errorShape(t, ex, 405, 3002)
		if got := ex.resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: 405 with Allow %q, want %q", tc.method, tc.url, got, tc.allow)
		}
	}

	// An encoded slash in a topic is an invalid topic, not a route of its own.
	ex := do(t, nil, "POST", p+"/v1/topic/a%2Fb/messages", "", nil, "application/json", []byte(`{}`))
	if e := errorShape(t, ex, 400, 1002); !strings.Contains(e["message"].(string), `"a/b" has '/' at position 1`) {
		t.Errorf("topic a%%2Fb: %s", ex.body)
	}
	// Query parameters are named as the API documents them.
	for _, q := range []string{"maxBytes=abc", "maxEvents=-1", "timeout=1e3"} {
		ex := do(t, nil, "POST", k+"/v1/consumer/poll?consumerId=x&"+q, "", nil, "", nil)
		name := strings.Split(q, "=")[0]
		want := fmt.Sprintf("parameter %s: %q is not a non-negative integer", name, strings.Split(q, "=")[1])
		if e := errorShape(t, ex, 400, 1001); e["message"] != want {
			t.Errorf("poll ?%s: message %q, want %q", q, e["message"], want)
		}
	}
	// A register body over its limit is refused as too large, not cut.
	big := `{"id":"big","topics":["` + strings.Repeat("t", 1<<20) + `"]}`
	errorShape(t, do(t, nil, "POST", k+"/v1/consumer/register", "", nil, "application/json", []byte(big)), 413, 1005)
}

// HEAD is answered as GET without the body, on every GET route.
func TestRESTHead(t *testing.T) {
	_, a := startNode(t, nil)
	for _, u := range []string{"http://" + a.Discovery + "/v1/brokers", "http://" + a.Discovery + "/status",
		"http://" + a.Producer + "/status", "http://" + a.Consumer + "/status", "http://" + a.Discovery + "/openapi.json"} {
		get, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(get.Body)
		get.Body.Close()
		head, err := http.Head(u)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, head.Body)
		head.Body.Close()
		if head.StatusCode != 200 || n != 0 || head.Header.Get("Content-Length") != strconv.Itoa(len(body)) ||
			head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d, %d body bytes, Content-Length %q, Content-Type %q; GET: %d bytes of %q",
				u, head.StatusCode, n, head.Header.Get("Content-Length"), head.Header.Get("Content-Type"), len(body), get.Header.Get("Content-Type"))
		}
	}
}

func TestRESTCompatibility(t *testing.T) {
	_, a := startNode(t, nil)
	c := loadContract(t, a.Discovery)
	p, k := "http://"+a.Producer, "http://"+a.Consumer
	tmpl := "/v1/topic/{topic}/messages"

	// Register with the JSON body form, by POST.
	body := []byte(`{"id":"c1","group":"g","topics":["a","b"],"onNewGroup":"startFromEarliest"}`)
	if ex := do(t, c, "POST", k+"/v1/consumer/register", "/v1/consumer/register", nil, "application/json", body); ex.resp.StatusCode != 200 {
		t.Fatalf("register with a JSON body: %d %s", ex.resp.StatusCode, ex.body)
	}
	// No Content-Type: application/json. Charset accepted.
	if ex := do(t, c, "POST", p+"/v1/topic/a/messages", tmpl, map[string]string{"topic": "a"}, "", []byte(`{"n":1}`)); ex.resp.StatusCode != 200 {
		t.Errorf("produce without Content-Type: %d %s", ex.resp.StatusCode, ex.body)
	}
	if ex := do(t, c, "POST", p+"/v1/topic/b/messages", tmpl, map[string]string{"topic": "b"}, "application/json; charset=utf-8", []byte(`{"n":2}`)); ex.resp.StatusCode != 200 {
		t.Errorf("produce with charset: %d %s", ex.resp.StatusCode, ex.body)
	}
	// gzip-encoded NDJSON.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("{\"n\":3}\n{\"n\":4}\n"))
	zw.Close()
	req, _ := http.NewRequest("POST", p+"/v1/topic/a/messages", &gz)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(data), `"count":2`) {
		t.Errorf("gzip ndjson: %d %s", resp.StatusCode, data)
	}
	// Chunked (no Content-Length) body.
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte(`{"n":5}`)); pw.Close() }()
	req, _ = http.NewRequest("POST", p+"/v1/topic/a/messages", pr)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(resp.TransferEncoding) != 0 && resp.ContentLength < 0 {
		t.Errorf("chunked body: %d", resp.StatusCode)
	}
	// Unknown encoding: 415.
	req, _ = http.NewRequest("POST", p+"/v1/topic/a/messages", strings.NewReader(`{}`))
	req.Header.Set("Content-Encoding", "br")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	errorShape(t, exchange{resp, data}, 415, 1008)

	// The consumer reads all five events of both topics.
	got := 0
	for range 10 {
		ex := do(t, c, "POST", k+"/v1/consumer/poll?consumerId=c1", "/v1/consumer/poll", nil, "", nil)
		if ex.resp.StatusCode == 204 {
			break
		}
		var batches []struct {
			Values []json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal(ex.body, &batches); err != nil {
			t.Fatalf("poll body %s: %v", ex.body, err)
		}
		for _, b := range batches {
			got += len(b.Values)
		}
	}
	if got != 5 {
		t.Errorf("read %d events, want 5", got)
	}
	// Goodbye without commit: the events of the last poll are not committed,
	// so the next member of the group reads them again.
	do(t, c, "PUT", k+"/v1/consumer/register?consumerId=c4&group=g2&topic=a&topic=b&onNewGroup=startFromEarliest", "/v1/consumer/register", nil, "", nil)
	first := do(t, c, "POST", k+"/v1/consumer/poll?consumerId=c4", "/v1/consumer/poll", nil, "", nil)
	if first.resp.StatusCode != 200 {
		t.Fatalf("poll: %d", first.resp.StatusCode)
	}
	if ex := do(t, c, "POST", k+"/v1/consumer/goodbye?consumerId=c4&commit=false", "/v1/consumer/goodbye", nil, "", nil); ex.resp.StatusCode != 200 {
		t.Fatalf("goodbye?commit=false: %d %s", ex.resp.StatusCode, ex.body)
	}
	do(t, c, "PUT", k+"/v1/consumer/register?consumerId=c5&group=g2&topic=a&topic=b", "/v1/consumer/register", nil, "", nil)
	again := do(t, c, "POST", k+"/v1/consumer/poll?consumerId=c5", "/v1/consumer/poll", nil, "", nil)
	if again.resp.StatusCode != 200 || !sameEvents(t, first.body, again.body) {
		t.Errorf("after goodbye?commit=false, the next member read %d %s, want the same events as %s", again.resp.StatusCode, again.body, first.body)
	}
}

// sameEvents reports whether two poll bodies hold the same events per stream.
func sameEvents(t testing.TB, a, b []byte) bool {
	t.Helper()
	events := func(body []byte) map[string]string {
		var batches []struct {
			Topic       string          `json:"topic"`
			RangeIndex  int             `json:"rangeIndex"`
			StartOffset string          `json:"startOffset"`
			Values      json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal(body, &batches); err != nil {
			t.Fatalf("poll body %s: %v", body, err)
		}
		m := map[string]string{}
		for _, b := range batches {
			m[fmt.Sprintf("%s/%d@%s", b.Topic, b.RangeIndex, b.StartOffset)] = string(b.Values)
		}
		return m
	}
	ea, eb := events(a), events(b)
	if len(ea) != len(eb) || len(ea) == 0 {
		return false
	}
	for k, v := range ea {
		if eb[k] != v {
			return false
		}
	}
	return true
}

// Bodies up to the request limit are stored whatever their events' sizes:
// a body of one-byte events encodes to 2.5 times its size in the store.
func TestRESTBodiesUpToTheLimit(t *testing.T) {
	for _, limit := range []int{0, 16 << 20} { // 0: the default, 4 MiB
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			_, a := startNode(t, func(o *floe.Options) { o.MaxRequestBytes = limit })
			size := cmp.Or(limit, 4<<20)
			for _, ev := range []string{"1\n", `{"productId":123,"units":-5}` + "\n"} {
				body := bytes.Repeat([]byte(ev), size/len(ev))
				resp, err := http.Post("http://"+a.Producer+"/v1/topic/big/messages", "application/x-ndjson", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := fmt.Sprintf(`"count":%d`, size/len(ev))
				if resp.StatusCode != 200 || !strings.Contains(string(data), want) {
					t.Errorf("%d bytes of %q events: %d %s, want 200 with %s", len(body), ev, resp.StatusCode, data, want)
				}
			}
			// One byte over the limit: 413.
			body := bytes.Repeat([]byte("1\n"), size/2+1)
			resp, err := http.Post("http://"+a.Producer+"/v1/topic/big/messages", "application/x-ndjson", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 413 {
				t.Errorf("%d bytes over a limit of %d: %d, want 413", len(body), size, resp.StatusCode)
			}
		})
	}
}

func TestRESTConsumerIDRequired(t *testing.T) {
	_, a := startNode(t, nil)
	c := loadContract(t, a.Discovery)
	for _, route := range []string{"poll", "commit", "goodbye"} {
		ex := do(t, c, "POST", "http://"+a.Consumer+"/v1/consumer/"+route, "/v1/consumer/"+route, nil, "", nil)
		e := errorShape(t, ex, 400, 1001)
		if msg := e["message"].(string); !strings.Contains(msg, "consumerId") {
			t.Errorf("%s without consumerId: message %q does not name consumerId", route, msg)
		}
	}
}

// The OpenAPI document says what the broker enforces on query parameters:
// consumerId required where a poll, commit or goodbye needs it, the bounds
// of the uint32 parameters, and the values of onNewGroup.
func TestOpenAPIParameters(t *testing.T) {
	_, a := startNode(t, nil)
	c := loadContract(t, a.Discovery)
	param := func(path, method, name string) *openapi3.Parameter {
		t.Helper()
		op := c.doc.Paths.Find(path).GetOperation(method)
		if p := op.Parameters.GetByInAndName("query", name); p != nil {
			return p
		}
		t.Fatalf("%s %s has no query parameter %s", method, path, name)
		return nil
	}
	for _, path := range []string{"/v1/consumer/poll", "/v1/consumer/commit", "/v1/consumer/goodbye"} {
		if !param(path, "POST", "consumerId").Required {
			t.Errorf("%s: consumerId is not required", path)
		}
	}
	for _, name := range []string{"maxBytes", "maxEvents", "timeout"} {
		s := param("/v1/consumer/poll", "POST", name).Schema.Value
		if s.Min == nil || *s.Min != 0 || s.Max == nil || *s.Max != 4294967295 {
			t.Errorf("poll %s: bounds %v..%v, want 0..4294967295", name, s.Min, s.Max)
		}
	}
	if e := param("/v1/consumer/register", "PUT", "onNewGroup").Schema.Value.Enum; len(e) != 2 {
		t.Errorf("register onNewGroup enum %v", e)
	}
	for _, d := range []struct{ path, name string }{
		{"/v1/consumer/register", "group"}, {"/v1/consumer/register", "onNewGroup"}, {"/v1/consumer/goodbye", "commit"},
	} {
		if param(d.path, "POST", d.name).Schema.Value.Default == nil {
			t.Errorf("%s %s has no default", d.path, d.name)
		}
	}
	// An NDJSON body is a string of lines: a generated client that took it
	// for a JSON value would send a batch as one event, a JSON string.
	produce := c.doc.Paths.Find("/v1/topic/{topic}/messages").Post
	if s := produce.RequestBody.Value.Content.Get("application/x-ndjson").Schema.Value; !s.Type.Is("string") {
		t.Errorf("the NDJSON body is of type %v, want string", s.Type)
	}
	if s := produce.Parameters.GetByInAndName("path", "topic").Schema.Value; s.Pattern == "" {
		t.Error("the topic has no pattern")
	}
	// The consumer routes take their parameters in a form body too, and
	// register in a JSON body.
	for _, path := range []string{"/v1/consumer/register", "/v1/consumer/poll", "/v1/consumer/commit", "/v1/consumer/goodbye"} {
		body := c.doc.Paths.Find(path).Post.RequestBody
		if body == nil || body.Value.Content.Get("application/x-www-form-urlencoded") == nil {
			t.Errorf("%s: no form body", path)
		} else if form := body.Value.Content.Get("application/x-www-form-urlencoded").Schema.Value; form.Properties["consumerId"] == nil {
			t.Errorf("%s: the form body has no consumerId", path)
		}
	}
	if body := c.doc.Paths.Find("/v1/consumer/register").Put.RequestBody; body == nil || body.Value.Content.Get("application/json") == nil {
		t.Error("register: no JSON body")
	}
}
