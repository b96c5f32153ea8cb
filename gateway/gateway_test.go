package gateway_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/gateway"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/internal/testgroup"
	"github.com/floe-streams/floe/server"
	"github.com/floe-streams/floe/store"
)

// countingProducer acknowledges produce requests without storing them and
// counts those that reach it.
type countingProducer struct {
	floev1.UnimplementedProducerServer
	calls atomic.Int64
	// gate, when set, holds each Produce until it is closed.
	gate atomic.Pointer[chan struct{}]
}

// listenLoopback returns three listeners on free loopback ports, for
// Gateway.Serve (which closes them).
func listenLoopback(t *testing.T) [3]net.Listener {
	t.Helper()
	var ls [3]net.Listener
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
	}
	return ls
}

func (p *countingProducer) Produce(ctx context.Context, r *floev1.ProduceRequest) (*floev1.ProduceResponse, error) {
	p.calls.Add(1)
	if gate := p.gate.Load(); gate != nil {
		select {
		case <-*gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &floev1.ProduceResponse{Topic: r.GetTopic(), Count: 1}, nil
}

// testGateway is a gateway served on port 0: its consumer API over the real
// Consumer service and coordinator (a store in memory), its producer API
// over countingProducer.
type testGateway struct {
	discovery, producer, consumer string // base URLs
	c                             *group.Coordinator
	st                            *store.Store
	produced                      *countingProducer
	// shutdown shuts the gateway down and returns the error of Shutdown or
	// Serve; later calls return the first one's. The test's cleanup calls it.
	shutdown func(context.Context) error
}

// serveGateway serves a gateway with opts until the test ends; tune, when
// given, adjusts the coordinator's options.
func serveGateway(t *testing.T, opts gateway.Options, tune ...func(*group.Options)) *testGateway {
	t.Helper()
	var tuneGroup func(*group.Options)
	if len(tune) > 0 {
		tuneGroup = tune[0]
	}
	c, st := testgroup.NewWith(t, tuneGroup)
	tg := &testGateway{c: c, st: st, produced: &countingProducer{}}
	g, err := gateway.New(gateway.Services{
		Discovery: floev1.UnimplementedDiscoveryServer{},
		Producer:  tg.produced,
		Consumer:  server.NewConsumer(c),
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ls := listenLoopback(t)
	done := make(chan error, 1)
	go func() { done <- g.Serve(ls[0], ls[1], ls[2]) }()
	var once sync.Once
	var shutdownErr error
	tg.shutdown = func(ctx context.Context) error {
		once.Do(func() {
			if err := g.Shutdown(ctx); err != nil {
				shutdownErr = fmt.Errorf("Shutdown: %w", err)
			} else if err := <-done; err != nil {
				shutdownErr = fmt.Errorf("Serve: %w", err)
			}
		})
		return shutdownErr
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tg.shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	tg.discovery = "http://" + ls[0].Addr().String()
	tg.producer, tg.consumer = "http://"+ls[1].Addr().String(), "http://"+ls[2].Addr().String()
	return tg
}

// restError is the error shape of the REST API.
type restError struct {
	Status  int    `json:"status"`
	Code    int    `json:"code"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

// call sends a request and returns the status and, for an error, its body.
func call(t *testing.T, method, url, contentType, body string) (int, restError) {
	t.Helper()
	header := http.Header{}
	if contentType != "" {
		header.Set("Content-Type", contentType)
	}
	resp, data := send(t, method, url, header, body)
	var e restError
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(data, &e); err != nil || e.Status != resp.StatusCode {
			t.Fatalf("%s %s: %d %s is not in the error shape", method, url, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, e
}

func wantRESTError(t *testing.T, what string, status int, e restError, wantStatus int, wantCode floev1.ErrorCode, wantMessage string) {
	t.Helper()
	if status != wantStatus || e.Code != int(wantCode) || e.Error != server.ErrorName(wantCode) {
		t.Errorf("%s: %d %+v, want %d %s", what, status, e, wantStatus, server.ErrorName(wantCode))
	} else if e.Message != wantMessage {
		t.Errorf("%s: message\n %s\nwant\n %s", what, e.Message, wantMessage)
	}
}

// One limit on the topics of a registration, in one place (the
// coordinator), for the query and the JSON body alike: a body of more
// topics than net/url parses in a query gets it too, and nothing of a
// refused registration is kept.
func TestRESTRegisterTopicLimit(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	reg := tg.consumer + "/v1/consumer/register"
	limitMessage := func(n int) string {
		return fmt.Sprintf("invalid parameter: topic: %d topics in one registration, the maximum is %d", n, group.MaxTopics)
	}
	for _, n := range []int{group.MaxTopics + 1, 10_000, 100_000} {
		body, _ := json.Marshal(map[string]any{"id": "c", "group": "g", "topics": testgroup.TopicNames(n)})
		status, e := call(t, "POST", reg, "application/json", string(body))
		wantRESTError(t, fmt.Sprintf("a body of %d topics", n), status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, limitMessage(n))
	}
	q := url.Values{"consumerId": {"c"}, "topic": testgroup.TopicNames(group.MaxTopics + 1)}
	status, e := call(t, "PUT", reg+"?"+q.Encode(), "", "")
	wantRESTError(t, "a query of too many topics", status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, limitMessage(group.MaxTopics+1))

	if s := tg.c.Stats(); s.Members != 0 || len(s.Groups) != 0 {
		t.Fatalf("a refused registration was kept: %+v", s)
	}
	if offsets, err := tg.st.GroupOffsets(); err != nil || len(offsets) != 0 {
		t.Fatalf("a refused registration committed %d offsets (%v)", len(offsets), err)
	}
	body, _ := json.Marshal(map[string]any{"id": "c", "topics": testgroup.TopicNames(group.MaxTopics)})
	if status, e := call(t, "POST", reg, "application/json", string(body)); status != 200 {
		t.Fatalf("a body of %d topics: %d %+v", group.MaxTopics, status, e)
	}
}

// Parameters given twice are named as the API documents them, whatever
// the route.
func TestRESTRepeatedParameters(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	c := tg.consumer + "/v1/consumer"
	for _, tc := range []struct{ method, url, param, values string }{
		{"POST", c + "/poll?consumerId=x&maxBytes=1&maxBytes=2", "maxBytes", "1, 2"},
		{"POST", c + "/poll?consumerId=x&maxEvents=1&maxEvents=2", "maxEvents", "1, 2"},
		{"POST", c + "/poll?consumerId=x&timeout=1&timeout=2", "timeout", "1, 2"},
		{"POST", c + "/poll?consumerId=x&consumerId=y", "consumerId", "x, y"},
		{"POST", c + "/poll?consumer_id=x&consumer_id=y", "consumerId", "x, y"},
		{"POST", c + "/commit?consumerId=x&consumerId=y", "consumerId", "x, y"},
		{"POST", c + "/goodbye?consumerId=x&commit=true&commit=false", "commit", "true, false"},
		{"PUT", c + "/register?consumerId=x&topic=t&group=a&group=b", "group", "a, b"},
		{"PUT", c + "/register?consumerId=x&topic=t&onNewGroup=startFromLatest&onNewGroup=startFromEarliest", "onNewGroup", "startFromLatest, startFromEarliest"},
		{"POST", tg.producer + "/v1/topic/t/messages?partitionKey=a&partitionKey=b", "partitionKey", "a, b"},
	} {
		status, e := call(t, tc.method, tc.url, "application/json", "{}")
		wantRESTError(t, tc.url, status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER,
			fmt.Sprintf("parameter %s: more than one value (%s); give it once", tc.param, tc.values))
	}
	if n := tg.produced.calls.Load(); n != 0 {
		t.Errorf("%d refused produce requests reached the producer", n)
	}
}

// A boolean or integer parameter with an empty value is taken as absent,
// as an empty string parameter is (group= is the default group): goodbye?
// commit= commits, as in PolarStreams, which skips the commit only for
// commit=false.
func TestRESTEmptyValueIsAbsent(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	c := tg.consumer + "/v1/consumer"
	if status, e := call(t, "PUT", c+"/register?consumerId=e&group=&topic=t&onNewGroup=", "", ""); status != 200 {
		t.Fatalf("register with empty group and onNewGroup: %d %+v", status, e)
	}
	for _, u := range []string{
		c + "/poll?consumerId=e&maxBytes=&maxEvents=&timeout=",
		c + "/poll?consumerId=e&max_bytes=&max_events=",
		c + "/commit?consumerId=e&commit=",
	} {
		if status, e := call(t, "POST", u, "", ""); status != 204 {
			t.Errorf("POST %s: %d %+v, want 204", u, status, e)
		}
	}
	// In a form body too.
	if status, e := call(t, "POST", c+"/poll", "application/x-www-form-urlencoded", "consumerId=e&timeout="); status != 204 {
		t.Errorf("poll with timeout= in a form body: %d %+v, want 204", status, e)
	}
	if status, e := call(t, "POST", c+"/goodbye?consumerId=e&commit=", "", ""); status != 200 {
		t.Fatalf("goodbye?commit=: %d %+v, want 200", status, e)
	}
	if s := tg.c.Stats(); s.Members != 0 {
		t.Errorf("after goodbye?commit=, the consumer is still a member: %+v", s)
	}
	// A value that does not parse is still refused.
	status, e := call(t, "POST", c+"/poll?consumerId=e&timeout=x", "", "")
	wantRESTError(t, "timeout=x", status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER,
		`parameter timeout: "x" is not a non-negative integer`)
}

// Parameters no route takes are ignored, also those shaped like the
// protobuf requests, which got grpc-gateway's wording ("invalid path:
// \"topic\" is not a message"); empty topic= values are dropped, and topic
// given both in the query and in a form body is refused, as any other
// parameter given in both is.
func TestRESTTopicAndUnknownParameters(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	c := tg.consumer + "/v1/consumer"
	for _, u := range []string{
		tg.producer + "/v1/topic/t/messages?events=abc",
		tg.producer + "/v1/topic/t/messages?partitionKey.x=1&body=2&foo=3",
	} {
		if status, e := call(t, "POST", u, "application/json", "{}"); status != 200 {
			t.Errorf("POST %s: %d %+v, want 200", u, status, e)
		}
	}
	if status, e := call(t, "PUT", c+"/register?consumerId=u&topic=a&topic=&topic.name=b&events=x", "", ""); status != 200 {
		t.Fatalf("register with an empty topic and unknown parameters: %d %+v", status, e)
	}
	if s := tg.c.Stats(); len(s.Groups) != 1 || len(s.Groups[0].Members) != 1 || !slices.Equal(s.Groups[0].Members[0].Topics, []string{"a"}) {
		t.Errorf("registered %+v, want consumer u reading topic a", s.Groups)
	}
	status, e := call(t, "PUT", c+"/register?consumerId=u&topic=", "", "")
	if status != 400 || strings.Contains(e.Message, "empty") {
		t.Errorf("register with topic= alone: %d %q, want 400 for a missing topic", status, e.Message)
	}
	// A JSON body lists its topics: an empty one is refused, as over gRPC.
	status, e = call(t, "PUT", c+"/register", "application/json", `{"id":"j","topics":["a",""]}`)
	wantRESTError(t, "an empty topic in a JSON body", status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_TOPIC,
		"invalid topic name: the topic name is empty")
	status, e = call(t, "PUT", c+"/register?consumerId=u&topic=a", "application/x-www-form-urlencoded", "topic=b")
	wantRESTError(t, "topic in the query and the form body", status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER,
		"invalid parameter: parameter topic is given both in the query and in the form body; give it in one of them")
	// An empty topic= in the query is absent: the body's topics apply.
	for _, tc := range []struct{ contentType, body string }{
		{"application/x-www-form-urlencoded", "topic=b"},
		{"application/json", `{"topics":["b"]}`},
	} {
		if status, e := call(t, "PUT", c+"/register?consumerId=v&topic=", tc.contentType, tc.body); status != 200 {
			t.Errorf("register?topic= with a %s body naming topic b: %d %+v, want 200", tc.contentType, status, e)
		}
	}
	// A JSON body's topics are not used when the query names some, so
	// they are not checked either; poll takes no topic, so one in both
	// places is not refused there.
	if status, e := call(t, "PUT", c+"/register?consumerId=w&topic=a", "application/json", `{"topics":[""]}`); status != 200 {
		t.Errorf("register?topic=a with a JSON body of an empty topic: %d %+v, want 200 (the query wins)", status, e)
	}
	if status, e := call(t, "POST", c+"/poll?consumerId=nobody&topic=a", "application/x-www-form-urlencoded", "topic=b"); status != http.StatusConflict {
		t.Errorf("poll with topic in the query and the form body: %d %+v, want 409 (topic ignored, not registered)", status, e)
	}
}

// A parameter given under both of its names (the documented one and the
// protobuf field's) is refused, whatever the route: grpc-gateway would take
// one of them at random.
func TestRESTParameterUnderTwoNames(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	c := tg.consumer + "/v1/consumer"
	for _, tc := range []struct{ method, url, message string }{
		{"POST", c + "/poll?consumerId=a&consumer_id=b", "consumerId is given twice, as consumerId and as consumer_id"},
		{"POST", c + "/poll?consumer_id=a&consumerId=a", "consumerId is given twice, as consumerId and as consumer_id"},
		{"POST", c + "/poll?consumerId=a&max_bytes=1&maxBytes=2", "maxBytes is given twice, as maxBytes and as max_bytes"},
		{"POST", c + "/commit?consumer_id=a&consumerId=b", "consumerId is given twice, as consumerId and as consumer_id"},
		{"POST", c + "/goodbye?consumerId=a&consumer_id=b", "consumerId is given twice, as consumerId and as consumer_id"},
		{"PUT", c + "/register?consumerId=a&consumer_id=b&topic=t", "consumerId is given twice, as consumerId and as consumer_id"},
		{"PUT", c + "/register?consumerId=a&topic=t&onNewGroup=startFromLatest&on_new_group=startFromEarliest", "onNewGroup is given twice, as onNewGroup and as on_new_group"},
		{"POST", tg.producer + "/v1/topic/t/messages?partitionKey=a&partition_key=b", "partitionKey is given twice, as partitionKey and as partition_key"},
		// An encoded underscore is an underscore.
		{"PUT", c + "/register?consumerId=a&consumer%5Fid=b&topic=t", "consumerId is given twice, as consumerId and as consumer_id"},
		{"POST", tg.producer + "/v1/topic/t/messages?partitionKey=a&partition%5fkey=b", "partitionKey is given twice, as partitionKey and as partition_key"},
	} {
		status, e := call(t, tc.method, tc.url, "application/json", "{}")
		wantRESTError(t, tc.url, status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER,
			"invalid parameter: parameter "+tc.message+"; give it once")
	}
	// A form body fills the same parameters as the query.
	for _, tc := range []struct{ method, url, body, message string }{
		{"POST", c + "/goodbye?consumerId=a", "consumer_id=b", "consumerId is given twice, as consumerId and as consumer_id"},
		{"POST", c + "/poll", "consumerId=a&consumer_id=b", "consumerId is given twice, as consumerId and as consumer_id"},
		{"POST", c + "/commit?consumer_id=a", "consumerId=b", "consumerId is given twice, as consumerId and as consumer_id"},
	} {
		status, e := call(t, tc.method, tc.url, "application/x-www-form-urlencoded", tc.body)
		wantRESTError(t, tc.url+" with the form body "+tc.body, status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER,
			"invalid parameter: parameter "+tc.message+"; give it once")
	}
	// A register's JSON body never adds a parameter that the query gives
	// under either name: the query wins.
	status, e := call(t, "POST", c+"/register?consumerId=a&topic=t&on_new_group=bogus", "application/json", `{"onNewGroup":"startFromLatest"}`)
	wantRESTError(t, "on_new_group in the query, onNewGroup in the body", status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER,
		`invalid parameter: onNewGroup must be startFromLatest or startFromEarliest, not "bogus"`)
	if n := tg.produced.calls.Load(); n != 0 {
		t.Errorf("%d refused produce requests reached the producer", n)
	}
	if s := tg.c.Stats(); s.Members != 0 {
		t.Errorf("a refused registration was kept: %+v", s)
	}
	// Either name alone still works, and keys that name no parameter are
	// ignored, whatever they look like.
	for _, q := range []string{"consumerId=a", "consumer_id=b", "consumerId=c&consumer_Id=x&foo_bar=1&fooBar=2"} {
		if status, e := call(t, "PUT", c+"/register?topic=t&"+q, "", ""); status != 200 {
			t.Errorf("register ?%s: %d %+v", q, status, e)
		}
	}
}

// An id that register refuses can never be registered: poll, commit and
// goodbye answer 400 naming the problem, as register does, not 409 "register
// it again", which would send the README's consuming loop round forever.
func TestRESTConsumerIDRegisterRefuses(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	c := tg.consumer + "/v1/consumer"
	long := strings.Repeat("x", group.MaxIDLen+1)
	for _, tc := range []struct{ name, id, message string }{
		{"long", long, fmt.Sprintf("invalid parameter: consumerId is %d bytes, the maximum is %d", group.MaxIDLen+1, group.MaxIDLen)},
		{"invalid UTF-8", "a%ffb", "invalid parameter: consumerId is not valid UTF-8"},
		{"unprintable", "a%0Ab", `invalid parameter: consumerId "a\nb" has the unprintable character U+000A at byte 1`},
	} {
		status, e := call(t, "PUT", c+"/register?topic=t&consumerId="+tc.id, "", "")
		wantRESTError(t, tc.name+" id: register", status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, tc.message)
		for _, route := range []string{"poll", "commit", "goodbye"} {
			status, e := call(t, "POST", c+"/"+route+"?consumerId="+tc.id, "", "")
			wantRESTError(t, tc.name+" id: "+route, status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, tc.message)
		}
	}
}

// A partition key that is not UTF-8 is refused over REST as gRPC refuses it
// (a protobuf string is UTF-8), and nothing is stored.
func TestRESTPartitionKeyUTF8(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	p := tg.producer + "/v1/topic/t/messages"
	for _, key := range []string{"%ff", "a%C3", "%ED%A0%80"} { // a lone byte, a truncated character, a surrogate
		raw, _ := url.QueryUnescape(key)
		status, e := call(t, "POST", p+"?partitionKey="+key, "application/json", "{}")
		wantRESTError(t, "partitionKey="+key, status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER,
			fmt.Sprintf("invalid parameter: partitionKey %q is not valid UTF-8", raw))
	}
	if n := tg.produced.calls.Load(); n != 0 {
		t.Fatalf("%d produce requests with invalid keys reached the producer", n)
	}
	for _, key := range []string{"%C3%A9t%C3%A9", "123", "partition_key"} {
		if status, e := call(t, "POST", p+"?partitionKey="+key, "application/json", "{}"); status != 200 {
			t.Errorf("partitionKey=%s: %d %+v", key, status, e)
		}
	}
}

// A charset other than UTF-8 is refused through the whole producer API.
func TestRESTProduceCharset(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	p := tg.producer + "/v1/topic/t/messages"
	status, e := call(t, "POST", p, "application/json; charset=iso-8859-1", `{"a":"\xe9"}`)
	wantRESTError(t, "charset=iso-8859-1", status, e, 415, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE,
		`unsupported content type: charset "iso-8859-1" in "application/json; charset=iso-8859-1": events are JSON in UTF-8; send charset=utf-8 or no charset`)
	if status, e := call(t, "POST", p, "application/json; charset=UTF-8", `{"a":"é"}`); status != 200 {
		t.Errorf("charset=UTF-8: %d %+v", status, e)
	}
	if n := tg.produced.calls.Load(); n != 1 {
		t.Errorf("%d requests reached the producer, want the one in UTF-8", n)
	}
}

// A request body that stalls gets 408 TIMEOUT once the server's read
// timeout passes, over a real connection, with a message that gives no
// socket address; the connection closes.
func TestRESTBodyReadTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tg := serveGateway(t, gateway.Options{ReadTimeout: timeout})
	for _, tc := range []struct{ base, path string }{
		{tg.producer, "/v1/topic/t/messages"},
		{tg.consumer, "/v1/consumer/register"},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(tc.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// 100 bytes announced, 5 sent.
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: floe\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":", tc.path)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if took := time.Since(start); took < timeout {
			t.Errorf("%s: answered after %v, before the read timeout", tc.path, took)
		}
		var e restError
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("%s: %d %s", tc.path, resp.StatusCode, data)
		}
		wantRESTError(t, tc.path, resp.StatusCode, e, http.StatusRequestTimeout, floev1.ErrorCode_ERROR_CODE_TIMEOUT,
			"the request body did not arrive within 0.3 s, the server's read timeout for a whole request")
		if !resp.Close {
			t.Errorf("%s: the connection stays open after a body that did not arrive", tc.path)
		}
	}
	// HTTP/2 (without TLS, as PolarStreams clients use it) times out the
	// body of a stream alike.
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protocols}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte(`{"a":`)) }()
	req, err := http.NewRequest("POST", tg.producer+"/v1/topic/t/messages", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("HTTP/2: %v", err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e restError
	if resp.ProtoMajor != 2 || json.Unmarshal(data, &e) != nil {
		t.Fatalf("HTTP/2: %s %d %s", resp.Proto, resp.StatusCode, data)
	}
	wantRESTError(t, "HTTP/2", resp.StatusCode, e, http.StatusRequestTimeout, floev1.ErrorCode_ERROR_CODE_TIMEOUT,
		"the request body did not arrive within 0.3 s, the server's read timeout for a whole request")
	if n := tg.produced.calls.Load(); n != 0 {
		t.Errorf("%d stalled requests reached the producer", n)
	}
}

// send sends a request with headers and returns the answer with its body
// read.
func send(t *testing.T, method, url string, header http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	// Redirects are answers to check, not to follow.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// A poll is answered in JSON only: an Accept header that does not allow it
// gets 406 at once, and one that does (or none) gets the poll's answer.
func TestRESTPollAccept(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	c := tg.consumer + "/v1/consumer"
	if status, e := call(t, "PUT", c+"/register?consumerId=a&topic=t", "", ""); status != 200 {
		t.Fatalf("register: %d %+v", status, e)
	}
	poll := c + "/poll?consumerId=a&timeout=0"
	for _, accept := range [][]string{
		nil,
		{"application/json"},
		{"Application/JSON; charset=utf-8"},
		{"*/*"},
		{"application/*"},
		{"text/html, application/xhtml+xml, */*;q=0.8"},
		{"text/plain", "application/json"}, // two header fields
		{"application/json;q=0.1, */*;q=0"},
		{""},
	} {
		if resp, body := send(t, "POST", poll, http.Header{"Accept": accept}, ""); resp.StatusCode != 204 {
			t.Errorf("Accept %q: %d %s, want 204", accept, resp.StatusCode, body)
		}
	}
	for _, accept := range []string{
		"application/octet-stream",
		"application/vnd.barco.consumermessage",
		"application/json;q=0",
		"application/json; q=0, */*", // the most specific range decides
		"text/plain, application/*;q=0",
		"application/x-ndjson",
	} {
		resp, body := send(t, "POST", poll, http.Header{"Accept": {accept}}, "")
		var e restError
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("Accept %q: %d %s", accept, resp.StatusCode, body)
		}
		wantRESTError(t, "Accept "+accept, resp.StatusCode, e, 406, floev1.ErrorCode_ERROR_CODE_NOT_ACCEPTABLE,
			fmt.Sprintf("a poll is answered in application/json only, which the Accept header %q does not allow", accept))
	}
	// Only polls are concerned: commit answers no body.
	if resp, body := send(t, "POST", c+"/commit?consumerId=a", http.Header{"Accept": {"text/plain"}}, ""); resp.StatusCode != 204 {
		t.Errorf("commit with Accept text/plain: %d %s", resp.StatusCode, body)
	}
}

// The consumer API reads form bodies up to a limit, and names the part of a
// request that does not parse.
func TestRESTConsumerFormErrors(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	c := tg.consumer + "/v1/consumer"
	const form = "application/x-www-form-urlencoded"
	big := "consumerId=a&x=" + strings.Repeat("y", 1<<20)
	for _, route := range []string{"register", "poll", "commit", "goodbye"} {
		status, e := call(t, "POST", c+"/"+route, form, big)
		what := "form"
		if route == "register" {
			what = "register"
		}
		wantRESTError(t, route+" with a form body over 1 MiB", status, e, 413, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE,
			what+" body too large: the limit is 1048576 bytes")
	}
	for _, tc := range []struct{ what, url, ct, body, message string }{
		{"an escape in the query", c + "/poll?consumerId=%zz", "", "", `the query string does not parse: invalid URL escape "%zz"`},
		{"a semicolon in the query", c + "/commit?consumerId=a;b", "", "", "the query string does not parse: invalid semicolon separator in query"},
		{"an escape in the body", c + "/goodbye", form, "consumerId=%zz", `the form body does not parse: invalid URL escape "%zz"`},
		{"an escape in the register body", c + "/register?topic=t", form, "consumerId=a%", `the form body does not parse: invalid URL escape "%"`},
		{"a Content-Type that does not parse", c + "/poll?consumerId=a", "application/x-www-form-urlencoded; =", "", "the Content-Type header does not parse: mime: invalid media parameter"},
		{"an escape in a produce query", tg.producer + "/v1/topic/t/messages?partitionKey=%zz", "application/json", "{}", `the query string does not parse: invalid URL escape "%zz"`},
		{"a value out of range", c + "/poll?consumerId=a&timeout=4294967296", "", "", `parameter timeout: "4294967296" is out of range: it must be at most 4294967295`},
	} {
		status, e := call(t, "POST", tc.url, tc.ct, tc.body)
		wantRESTError(t, tc.what, status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, tc.message)
	}
	if s := tg.c.Stats(); s.Members != 0 {
		t.Errorf("a refused registration was kept: %+v", s)
	}
	if n := tg.produced.calls.Load(); n != 0 {
		t.Errorf("%d refused produce requests reached the producer", n)
	}
	// A form body within the limit registers, with the query.
	status, e := call(t, "PUT", c+"/register?group=g", form, "consumerId=f&topic=a&topic=b")
	if status != 200 {
		t.Fatalf("register with a form body: %d %+v", status, e)
	}
	if s := tg.c.Stats(); s.Members != 1 {
		t.Errorf("register with a form body: %+v", s)
	}
}

// A served path with a trailing slash, empty or dot segments, or another
// case is redirected to the path as served, keeping the query, on its own
// port only: 301 for GET and HEAD, 307 for the other methods, as
// PolarStreams' router (httprouter v1.3.0) does.
func TestRESTTrailingSlash(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	for _, tc := range []struct{ method, url, location string }{
		{"GET", tg.consumer + "/status/", "/status"},
		{"HEAD", tg.producer + "/status/", "/status"},
		{"POST", tg.consumer + "/v1/consumer/poll/?consumerId=a&timeout=0", "/v1/consumer/poll?consumerId=a&timeout=0"},
		{"PUT", tg.consumer + "/v1/consumer/register/?consumerId=a&topic=t", "/v1/consumer/register?consumerId=a&topic=t"},
		{"POST", tg.producer + "/v1/topic/t%20x/messages/", "/v1/topic/t%20x/messages"},
		{"GET", tg.discovery + "//v1/brokers", "/v1/brokers"},
		{"GET", tg.discovery + "/V1/Brokers/?a=1", "/v1/brokers?a=1"},
		{"HEAD", tg.consumer + "/STATUS", "/status"},
		{"POST", tg.consumer + "/v1/consumer/poll//?consumerId=a", "/v1/consumer/poll?consumerId=a"},
		{"POST", tg.consumer + "/v1/./consumer/x/../Commit?consumerId=a", "/v1/consumer/commit?consumerId=a"},
		{"POST", tg.producer + "/V1/Topic/MyTopic/MESSAGES", "/v1/topic/MyTopic/messages"},
	} {
		header := http.Header{}
		if tc.method == "POST" && strings.HasPrefix(tc.url, tg.producer) {
			header.Set("Content-Type", "application/json")
		}
		resp, body := send(t, tc.method, tc.url, header, "{}")
		want := http.StatusTemporaryRedirect
		if tc.method == "GET" || tc.method == "HEAD" {
			want = http.StatusMovedPermanently
		}
		if resp.StatusCode != want || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s %s: %d Location %q %s, want %d to %s", tc.method, tc.url, resp.StatusCode, resp.Header.Get("Location"), body, want, tc.location)
		}
	}
	// Another port's path, or a path served with no slash, is not found.
	for _, u := range []string{tg.producer + "/v1/consumer/poll/", tg.consumer + "/v1/topic/t/messages/", tg.consumer + "/v1/consumer/", tg.producer + "/V1/BROKERS", tg.consumer + "/v1/consumer/polls"} {
		status, e := call(t, "POST", u, "application/json", "{}")
		wantRESTError(t, u, status, e, 404, floev1.ErrorCode_ERROR_CODE_ROUTE_NOT_FOUND, "no route for POST "+strings.TrimPrefix(strings.TrimPrefix(u, tg.producer), tg.consumer)+" on this port")
	}
	if n := tg.produced.calls.Load(); n != 0 {
		t.Errorf("%d redirected produce requests reached the producer", n)
	}
}

// A client that stops reading a poll's answer, larger than the connection
// can buffer, does not hold the poll for ever: the answer's write is
// bounded by PollWriteTimeout from when it is ready, plus its size at
// PollWriteRate (3 s: rendering 48 MiB takes a while on a slow machine),
// and the server can shut down.
func TestRESTPollWriteTimeout(t *testing.T) {
	tg := serveGateway(t, gateway.Options{PollWriteTimeout: testWriteTimeout, PollWriteRate: 16 << 20},
		func(o *group.Options) { o.MaxPollBytes = 64 << 20 })
	consumer := tg.consumer
	// The deadline is the poll's: a later request on the same connection
	// (http.DefaultClient keeps it alive) is not bound by it.
	if status, e := call(t, "PUT", consumer+"/v1/consumer/register?consumerId=ka&topic=empty", "", ""); status != 200 {
		t.Fatalf("register: %d %+v", status, e)
	}
	if status, e := call(t, "POST", consumer+"/v1/consumer/poll?consumerId=ka", "", ""); status != 204 {
		t.Fatalf("poll: %d %+v", status, e)
	}
	time.Sleep(2 * testWriteTimeout)
	if status, e := call(t, "POST", consumer+"/v1/consumer/commit?consumerId=ka", "", ""); status != 204 {
		t.Fatalf("commit on the poll's connection after its deadline: %d %+v", status, e)
	}
	fillForSlowConsumer(t, tg)
	stallHTTP1Poll(t, tg)
	wantShutdown(t, tg, 15*time.Second)
}

// testWriteTimeout is the PollWriteTimeout of the tests of a client that
// stops reading. It starts before the answer's JSON is rendered, which the
// race detector slows to seconds for the 48 MiB of fillForSlowConsumer.
var testWriteTimeout = map[bool]time.Duration{false: 300 * time.Millisecond, true: 5 * time.Second}[gateway.RaceEnabled]

// Over HTTP/2, a client that stops reading the socket cannot even be sent
// the reset of its stream when the poll's deadline passes: the connection
// is closed once it has taken no byte for PollWriteTimeout, and the server
// can shut down.
func TestRESTPollWriteTimeoutHTTP2(t *testing.T) {
	tg := serveGateway(t, gateway.Options{PollWriteTimeout: testWriteTimeout, PollWriteRate: 16 << 20},
		func(o *group.Options) { o.MaxPollBytes = 64 << 20 })
	fillForSlowConsumer(t, tg)
	stallHTTP2Poll(t, tg)
	wantShutdown(t, tg, 15*time.Second)
}

// A shutdown brings the deadlines of the answers being written forward, so
// that a client that stopped reading a large answer does not hold the stop
// even when the answer's own deadline is later than the stop's.
func TestRESTShutdownCutsPollWrites(t *testing.T) {
	tg := serveGateway(t, gateway.Options{PollWriteTimeout: time.Minute},
		func(o *group.Options) { o.MaxPollBytes = 64 << 20 })
	fillForSlowConsumer(t, tg)
	stallHTTP1Poll(t, tg)
	time.Sleep(500 * time.Millisecond) // the answer stalls
	wantShutdownCutting(t, tg, 6*time.Second)
}

// Over HTTP/2 too: the stream reset that the cut deadline queues cannot be
// sent to a client that stopped reading the socket, and the connection's
// byte timeout (PollWriteTimeout) is later than the stop's end.
func TestRESTShutdownCutsPollWritesHTTP2(t *testing.T) {
	tg := serveGateway(t, gateway.Options{PollWriteTimeout: time.Minute},
		func(o *group.Options) { o.MaxPollBytes = 64 << 20 })
	fillForSlowConsumer(t, tg)
	stallHTTP2Poll(t, tg)
	time.Sleep(500 * time.Millisecond) // the answer stalls
	wantShutdownCutting(t, tg, 6*time.Second)
}

// fillForSlowConsumer registers the consumer "slow" on topic t, from its
// earliest event, and stores 48 MiB of events there: far more than loopback
// buffers hold, so that a client that reads nothing stalls the answer.
func fillForSlowConsumer(t *testing.T, tg *testGateway) {
	t.Helper()
	if status, e := call(t, "PUT", tg.consumer+"/v1/consumer/register?consumerId=slow&topic=t&onNewGroup=startFromEarliest", "", ""); status != 200 {
		t.Fatalf("register: %d %+v", status, e)
	}
	event := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	batch := slices.Repeat([][]byte{event}, 16)
	for _, s := range broker.NewRing(4).Streams("t") {
		for range 12 {
			if _, err := tg.st.Append(context.Background(), s, batch); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// stallHTTP1Poll sends a poll of "slow" over HTTP/1.1 on a connection that
// reads nothing of the answer but its first byte, and returns once that
// came.
func stallHTTP1Poll(t *testing.T, tg *testGateway) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(tg.consumer, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "POST /v1/consumer/poll?consumerId=slow HTTP/1.1\r\nHost: floe\r\nContent-Length: 0\r\n\r\n")
	// The answer's first bytes: it is being written. Reading 48 MiB from the
	// store and rendering them takes a while on a slow machine (seconds
	// under the race detector), and a poll refused (not 200) would stall
	// nothing.
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	status := make([]byte, len("HTTP/1.1 200"))
	if _, err := io.ReadFull(conn, status); err != nil || string(status) != "HTTP/1.1 200" {
		t.Fatalf("poll of slow: %q %v, want an answer 200 being written", status, err)
	}
}

// stallHTTP2Poll sends a poll of "slow" over HTTP/2 (h2c with prior
// knowledge) on a connection that reads nothing of the answer but its
// headers, and returns once they came; flow control is open wide, so that
// only the socket holds the server back.
func stallHTTP2Poll(t *testing.T, tg *testGateway) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(tg.consumer, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	// h2c with prior knowledge; flow control open wide, so that only the
	// socket holds the server back.
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "floe"},
		{":path", "/v1/consumer/poll?consumerId=slow"}, {"content-length", "0"}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1}),
		fr.WriteWindowUpdate(0, 1<<31-1-65535),
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}),
	); err != nil {
		t.Fatal(err)
	}
	// The answer's headers: it is being written.
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		if r, ok := f.(*http2.RSTStreamFrame); ok && r.StreamID == 1 {
			t.Fatalf("poll of slow: stream reset (%v) before its answer", r.ErrCode)
		}
		if h, ok := f.(*http2.HeadersFrame); ok && h.StreamID == 1 {
			fields, err := hpack.NewDecoder(4096, nil).DecodeFull(h.HeaderBlockFragment())
			if err != nil || len(fields) == 0 || fields[0].Name != ":status" || fields[0].Value != "200" {
				t.Fatalf("poll of slow: headers %v %v, want an answer 200 being written", fields, err)
			}
			return
		}
	}
}

// wantShutdown shuts tg down, and fails if that takes longer than limit.
// The shutdown's context has no deadline, so that it cuts no answer being
// written (Gateway.Shutdown): only the answers' own deadlines end them.
func wantShutdown(t *testing.T, tg *testGateway, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	timer := time.AfterFunc(limit, cancel)
	defer timer.Stop()
	start := time.Now()
	if err := tg.shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a poll whose client reads nothing: %v after %v", err, time.Since(start))
	}
}

// wantShutdownCutting shuts tg down with a deadline limit away, which cuts
// the answers being written, and fails if that takes longer than limit.
func wantShutdownCutting(t *testing.T, tg *testGateway, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	if err := tg.shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a poll whose client reads nothing: %v after %v", err, time.Since(start))
	}
}

// A shutdown whose context ends before a request is answered closes that
// request's connection: an upload that stalls does not keep it open for the
// rest of its read timeout, after the gateway (and the store behind it) is
// gone.
func TestRESTShutdownTimeoutClosesConnections(t *testing.T) {
	g, err := gateway.New(gateway.Services{
		Discovery: floev1.UnimplementedDiscoveryServer{},
		Producer:  &countingProducer{},
		Consumer:  floev1.UnimplementedConsumerServer{},
	}, gateway.Options{ReadTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ls := listenLoopback(t)
	done := make(chan error, 1)
	go func() { done <- g.Serve(ls[0], ls[1], ls[2]) }()
	conn, err := net.Dial("tcp", ls[1].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half a body: the request stays in flight.
	if _, err := fmt.Fprintf(conn, "POST /v1/topic/t/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server is reading the body
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the context's deadline", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the connection is still open after the shutdown: read %d bytes, %v", n, err)
	}
}

// A Shutdown that runs before Serve (a broker stopped as soon as it
// started: Run serves in a goroutine) makes Serve return at once and
// release its listeners, instead of serving for ever after the gateway and
// the store behind it are gone.
func TestServeAfterShutdown(t *testing.T) {
	g, err := gateway.New(gateway.Services{
		Discovery: floev1.UnimplementedDiscoveryServer{},
		Producer:  &countingProducer{},
		Consumer:  floev1.UnimplementedConsumerServer{},
	}, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	ls := listenLoopback(t)
	done := make(chan error, 1)
	go func() { done <- g.Serve(ls[0], ls[1], ls[2]) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after Shutdown: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Serve after Shutdown still serves after 5 s")
		_ = g.Shutdown(context.Background()) // stops the servers it started
		<-done
	}
	for _, l := range ls {
		if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections", l.Addr())
		}
	}
}

// The consumer routes read their bodies (a form, register's JSON) as
// produce does: a gzip body is decoded, and a body in an encoding the
// broker does not decode gets 415 naming it, rather than its compressed
// bytes being read as parameters ("consumerId is required", or "invalid
// character '\x1f'"). Nothing of a refused registration is kept.
func TestRESTConsumerBodyEncoding(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	c := tg.consumer + "/v1/consumer"
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write([]byte(s))
		_ = zw.Close()
		return b.String()
	}
	const form = "application/x-www-form-urlencoded"
	for _, tc := range []struct{ what, method, route, ct, enc, body, message string }{
		{"a gzip body that does not decode", "PUT", "register", "application/json", "gzip", "this is not gzip at all",
			"the gzip body does not decode: gzip: invalid header"},
		{"brotli", "POST", "register", "application/json", "br", `{"id":"b","topics":["t"]}`,
			`unsupported content encoding "br": use gzip or none`},
		{"deflate on a poll", "POST", "poll", form, "deflate", "consumerId=b",
			`unsupported content encoding "deflate": use gzip or none`},
	} {
		resp, data := send(t, tc.method, c+"/"+tc.route, http.Header{"Content-Type": {tc.ct}, "Content-Encoding": {tc.enc}}, tc.body)
		var e restError
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("%s: %d %s", tc.what, resp.StatusCode, data)
		}
		wantStatus := 415
		if tc.enc == "gzip" {
			wantStatus = 400
		}
		wantRESTError(t, tc.what, resp.StatusCode, e, wantStatus, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, tc.message)
	}
	if s := tg.c.Stats(); s.Members != 0 {
		t.Fatalf("a refused registration was kept: %+v", s)
	}

	// Gzip bodies are read as the plain ones.
	resp, data := send(t, "POST", c+"/register", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}},
		gz(`{"id":"z","group":"g","topics":["t"]}`))
	if resp.StatusCode != 200 || !strings.Contains(string(data), `"consumerId":"z"`) {
		t.Fatalf("register with a gzip JSON body: %d %s", resp.StatusCode, data)
	}
	for _, route := range []string{"poll", "commit", "goodbye"} {
		resp, data := send(t, "POST", c+"/"+route, http.Header{"Content-Type": {form}, "Content-Encoding": {"gzip"}}, gz("consumerId=z"))
		if resp.StatusCode >= 300 {
			t.Errorf("%s with a gzip form body: %d %s", route, resp.StatusCode, data)
		}
	}
	if s := tg.c.Stats(); s.Members != 0 {
		t.Errorf("goodbye with a gzip form body left the consumer registered: %+v", s)
	}
	// Without a body, the encoding does not matter: there is nothing to
	// decode (br got 415 where gzip passed).
	for _, enc := range []string{"br", "gzip"} {
		resp, data := send(t, "POST", c+"/poll?consumerId=nobody", http.Header{"Content-Encoding": {enc}}, "")
		if resp.StatusCode != http.StatusConflict {
			t.Errorf("a poll without a body, Content-Encoding %s: %d %s, want 409 (not registered)", enc, resp.StatusCode, data)
		}
		// An empty chunked body too (net/http's client sends none).
		conn, err := net.Dial("tcp", strings.TrimPrefix(tg.consumer, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/consumer/poll?consumerId=nobody HTTP/1.1\r\nHost: floe\r\nContent-Encoding: %s\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", enc)
		status, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 409") {
			t.Errorf("a poll with an empty chunked body, Content-Encoding %s: %q %v, want 409 (not registered)", enc, status, err)
		}
	}
	// A gzip form body over the form limit once decoded gets the form's 413.
	var e restError
	resp, data = send(t, "POST", c+"/poll", http.Header{"Content-Type": {form}, "Content-Encoding": {"gzip"}},
		gz("consumerId=z&x="+strings.Repeat("y", 1<<20)))
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("poll with a gzip form body over 1 MiB: %d %s", resp.StatusCode, data)
	}
	wantRESTError(t, "poll with a gzip form body over 1 MiB", resp.StatusCode, e, 413, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE,
		"form body too large: the limit is 1048576 bytes")
	// Over the limit on the wire (incompressible): the same 413.
	noise := make([]byte, 1<<20+1<<10)
	for i := range noise {
		noise[i] = byte(i*7919 + i>>3*31 + i>>11)
	}
	wire := gz(string(noise))
	resp, data = send(t, "PUT", c+"/register?consumerId=z&topic=t", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, wire)
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("register with a gzip body of %d bytes: %d %s", len(wire), resp.StatusCode, data)
	}
	wantRESTError(t, "register with a gzip body over 1 MiB on the wire", resp.StatusCode, e, 413, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE,
		"register body too large: the limit is 1048576 bytes")
	// An empty body, whatever its declared encoding, has no parameter.
	if status, e := call(t, "PUT", c+"/register?consumerId=z&topic=t", "", ""); status != 200 {
		t.Fatalf("register: %d %+v", status, e)
	}
	if resp, data := send(t, "POST", c+"/poll?consumerId=z", http.Header{"Content-Encoding": {"gzip"}}, ""); resp.StatusCode != 204 {
		t.Errorf("poll with Content-Encoding gzip and no body: %d %s", resp.StatusCode, data)
	}
}

// Poll, commit and goodbye read their parameters from the query or a form
// body only. A request that names no consumer there but sends another body
// (register takes JSON, so clients send {"consumerId":...} here too) is
// told where the parameter goes, rather than that it is missing; with the
// consumer in the query, the body is ignored, as PolarStreams does.
func TestRESTConsumerIDInABodyNotRead(t *testing.T) {
	tg := serveGateway(t, gateway.Options{})
	c := tg.consumer + "/v1/consumer"
	if status, e := call(t, "PUT", c+"/register?consumerId=j&topic=t", "", ""); status != 200 {
		t.Fatalf("register: %d %+v", status, e)
	}
	for _, route := range []string{"poll", "commit", "goodbye"} {
		for _, ct := range []string{"application/json", "text/plain; charset=utf-8", ""} {
			status, e := call(t, "POST", c+"/"+route, ct, `{"consumerId":"j"}`)
			body := "a body without a Content-Type"
			if ct != "" {
				body = fmt.Sprintf("a body of type %q", ct)
			}
			wantRESTError(t, route+" with "+body, status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER,
				"invalid parameter: consumerId is required: "+route+" reads its parameters from the query or a form body (application/x-www-form-urlencoded), not from "+body)
		}
		// No body at all: the parameter is simply missing.
		status, e := call(t, "POST", c+"/"+route, "application/json", "")
		wantRESTError(t, route+" without a body", status, e, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER,
			"invalid parameter: consumerId is required")
	}
	if s := tg.c.Stats(); s.Members != 1 {
		t.Fatalf("members: %+v", s)
	}
	// The consumer in the query: the body is not read.
	if status, e := call(t, "POST", c+"/poll?consumerId=j", "application/json", `{"maxEvents":1}`); status != 204 {
		t.Errorf("poll with a JSON body and the consumer in the query: %d %+v, want 204", status, e)
	}
}

// A produce request takes its Content-Length from the produce memory before
// its body is read, until it is answered: a request that does not fit
// waits, and gets 503 naming the memory after half the read timeout. One
// over the size limit is refused at once, without waiting.
func TestRESTProduceWaitsForProduceMemory(t *testing.T) {
	mem := broker.NewProduceMemory(1000)
	tg := serveGateway(t, gateway.Options{ProduceMemory: mem, MaxRequestBytes: 1000, ReadTimeout: 2 * time.Second})
	body := `{"n":"` + strings.Repeat("x", 700) + `"}`
	url := tg.producer + "/v1/topic/t/messages"
	post := func() <-chan int {
		done := make(chan int, 1)
		go func() {
			status, _ := call(t, "POST", url, "application/json", body)
			done <- status
		}()
		return done
	}
	waitFor := memWaiter(t, mem, tg)

	gate := make(chan struct{})
	tg.produced.gate.Store(&gate)
	first := post()
	waitFor("the first request holds its bytes", func() bool { return mem.Held() == int64(len(body)) && tg.produced.calls.Load() == 1 })
	second := post()
	waitFor("the second request waits", func() bool { return mem.Waited() == 1 })
	status, e := call(t, "POST", url, "application/json", strings.Repeat(" ", 1001))
	wantRESTError(t, "over the limit while the memory is full", status, e, http.StatusRequestEntityTooLarge, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE,
		"request body too large: 1001 bytes, the limit is 1000 bytes")
	time.Sleep(20 * time.Millisecond)
	if n := tg.produced.calls.Load(); n != 1 {
		t.Fatalf("%d produce calls while the second request should wait for the first, want 1", n)
	}
	close(gate)
	if s1, s2 := <-first, <-second; s1 != 200 || s2 != 200 {
		t.Fatalf("statuses %d and %d, want 200 once the first was answered", s1, s2)
	}
	waitFor("every byte given back", func() bool { return mem.Held() == 0 })

	// A request that waits longer than half the read timeout gets 503.
	gate = make(chan struct{})
	tg.produced.gate.Store(&gate)
	held := post()
	waitFor("the next request holds its bytes", func() bool { return mem.Held() == int64(len(body)) })
	start := time.Now()
	status, e = call(t, "POST", url, "application/json", body)
	wantRESTError(t, "no room within half the read timeout", status, e, http.StatusServiceUnavailable, floev1.ErrorCode_ERROR_CODE_UNAVAILABLE,
		"broker unavailable: the broker holds produce requests up to its produce memory (1000 bytes, setting produce-memory) and no room came free for this one (708 bytes) within 1s: send it again later")
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("refused after %v, want after half the read timeout (1s)", waited)
	}
	if mem.Refused() != 1 || tg.produced.calls.Load() != 3 {
		t.Errorf("refused %d, produce calls %d; want 1 and 3 (the refused request never reached the producer)", mem.Refused(), tg.produced.calls.Load())
	}
	close(gate)
	if s := <-held; s != 200 {
		t.Errorf("the request that held the memory: %d, want 200", s)
	}
}

// A request takes from the produce memory the buffer its body is read
// into, not only its Content-Length: one-event bodies of 200 bytes were
// read into buffers of 64 KiB and counted 200 bytes, so that thousands of
// them held hundreds of MiB under a produce memory of 64 MiB.
func TestRESTProduceTakesItsBodyBuffer(t *testing.T) {
	mem := broker.NewProduceMemory(64 << 20)
	tg := serveGateway(t, gateway.Options{ProduceMemory: mem, ReadTimeout: 4 * time.Second})
	waitFor := memWaiter(t, mem, tg)
	gate := make(chan struct{})
	tg.produced.gate.Store(&gate)
	var wg sync.WaitGroup
	for _, size := range []int{200, 5000} {
		body := `{"n":"` + strings.Repeat("x", size-8) + `"}`
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, e := call(t, "POST", tg.producer+"/v1/topic/t/messages", "application/json", body); status != 200 {
				t.Errorf("%d-byte body: %d %v", size, status, e)
			}
		}()
	}
	waitFor("two bodies hold 1 KiB and 8 KiB", func() bool { return mem.Held() == 9<<10 && tg.produced.calls.Load() == 2 })
	close(gate)
	wg.Wait()
	waitFor("every byte given back", func() bool { return mem.Held() == 0 })
}

// A chunked body takes 64 KiB from the produce memory before it is read,
// and the rest once read: it holds what it holds (the buffer of its size),
// not the size limit, and a body that outgrows what is free waits for room.
func TestRESTChunkedProduceTakesWhatItHolds(t *testing.T) {
	const limit = 1 << 20
	mem := broker.NewProduceMemory(300 << 10)
	tg := serveGateway(t, gateway.Options{ProduceMemory: mem, MaxRequestBytes: limit, ReadTimeout: 4 * time.Second})
	body := `{"n":"` + strings.Repeat("x", 200<<10) + `"}`
	post := func() <-chan int {
		done := make(chan int, 1)
		go func() {
			// A reader without a length: net/http sends it chunked.
			resp, err := http.Post(tg.producer+"/v1/topic/t/messages", "application/json", io.MultiReader(strings.NewReader(body)))
			if err != nil {
				t.Error(err)
				done <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		return done
	}
	waitFor := memWaiter(t, mem, tg)
	gate := make(chan struct{})
	tg.produced.gate.Store(&gate)
	first := post()
	// Once read, it moves to the buffer of its size: 256 KiB.
	waitFor("the first body holds its buffer", func() bool { return mem.Held() == 256<<10 && tg.produced.calls.Load() == 1 })
	second := post()
	waitFor("the second body waits for room", func() bool { return mem.Waited() == 1 })
	if n := tg.produced.calls.Load(); n != 1 {
		t.Fatalf("%d produce calls while the second body waits, want 1", n)
	}
	close(gate)
	if s1, s2 := <-first, <-second; s1 != 200 || s2 != 200 {
		t.Fatalf("statuses %d and %d, want 200", s1, s2)
	}
	waitFor("every byte given back", func() bool { return mem.Held() == 0 })
}

// Over HTTP/2, a produce request waiting for the produce memory does not
// hold back a request of the same connection that holds it: the waiting
// one's unread body must not fill the connection's flow-control window,
// which the other needs to be read. It did (each stream's window was the
// whole connection's): two requests of 3 MiB over one connection, with
// room for one, both waited until the second got 503 after half the read
// timeout.
func TestRESTProduceWaitingOverHTTP2DoesNotStallItsConnection(t *testing.T) {
	mem := broker.NewProduceMemory(4 << 20)
	tg := serveGateway(t, gateway.Options{ProduceMemory: mem, MaxRequestBytes: 4 << 20, ReadTimeout: 10 * time.Second})
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protocols}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	body := `{"n":"` + strings.Repeat("x", 3<<20) + `"}`
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			req, err := http.NewRequest("POST", tg.producer+"/v1/topic/t/messages", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
				t.Errorf("request %d: %s %d, want HTTP/2 200", i, resp.Proto, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("three requests of 3 MiB over one HTTP/2 connection, with room for one at a time, took %v", took)
	}
	if n := mem.Waited(); n == 0 {
		t.Error("no request waited for the produce memory: the test tests nothing")
	}
}

// memWaiter returns a function that waits up to 5 s for ok, and fails the
// test naming what and the state of mem and of tg's producer if it does not
// come.
func memWaiter(t *testing.T, mem *broker.ProduceMemory, tg *testGateway) func(what string, ok func() bool) {
	return func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: held %d, waited %d, refused %d, produce calls %d", what, mem.Held(), mem.Waited(), mem.Refused(), tg.produced.calls.Load())
			}
		}
	}
}
