package floe_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floe-streams/floe"
	"github.com/floe-streams/floe/broker"
)

// The seed's curl examples (seeds/003), with the host replaced. Each one is
// sent twice: by curlMirror, writing the bytes curl writes, and, in
// TestSeedCurlExamplesWithCurl, by curl itself.
type curlExample struct {
	name string
	port string // "discovery", "producer" or "consumer"
	// args are curl's arguments, as documented, before the URL.
	args []string
	path string // path and query
}

func seedExamples() []curlExample {
	return []curlExample{
		{"brokers", "discovery", []string{"-i"}, "/v1/brokers"},
		{"status discovery", "discovery", []string{"-i"}, "/status"},
		{"status producer", "producer", []string{"-i"}, "/status"},
		{"status consumer", "consumer", []string{"-i"}, "/status"},
		{"produce", "producer", []string{"-X", "POST", "-i", "-d", `{"productId": 123, "units": -5}`, "-H", "Content-Type: application/json"},
			"/v1/topic/product-stock/messages?partitionKey=123"},
		{"register", "consumer", []string{"-X", "PUT"}, "/v1/consumer/register?consumerId=1&group=product-stock-updater&topic=product-stock"},
		{"poll", "consumer", []string{"-i", "-X", "POST", "-H", "Accept: application/json"}, "/v1/consumer/poll?consumerId=1"},
		{"commit", "consumer", []string{"-i", "-X", "POST"}, "/v1/consumer/commit?consumerId=1"},
		// The seed documents goodbye without an example; this is the
		// commit example's form.
		{"goodbye", "consumer", []string{"-i", "-X", "POST"}, "/v1/consumer/goodbye?consumerId=1"},
	}
}

func (e curlExample) addr(a floe.Addrs) string {
	switch e.port {
	case "discovery":
		return a.Discovery
	case "producer":
		return a.Producer
	}
	return a.Consumer
}

// curlRequest is the request curl 7.x/8.x writes for the example's
// arguments (checked against curl itself in TestSeedCurlExamplesWithCurl):
// GET unless -X; -d sends the data as is with Content-Length and, unless
// -H replaces it, Content-Type: application/x-www-form-urlencoded; -H
// replaces or adds a header; -X POST without -d sends no body and no
// Content-Length.
func (e curlExample) curlRequest(host string) []byte {
	method, data := "GET", ""
	hasData := false
	headers := [][2]string{{"Host", host}, {"User-Agent", "curl/7.88.1"}, {"Accept", "*/*"}}
	set := func(k, v string) {
		for i := range headers {
			if strings.EqualFold(headers[i][0], k) {
				headers[i][1] = v
				return
			}
		}
		headers = append(headers, [2]string{k, v})
	}
	for i := 0; i < len(e.args); i++ {
		switch e.args[i] {
		case "-X":
			i++
			method = e.args[i]
		case "-d":
			i++
			data, hasData = e.args[i], true
		case "-H":
			i++
			k, v, _ := strings.Cut(e.args[i], ":")
			set(k, strings.TrimSpace(v))
		}
	}
	if hasData {
		if method == "GET" {
			method = "POST"
		}
		set("Content-Length", strconv.Itoa(len(data)))
		set("Content-Type", "application/x-www-form-urlencoded")
		// -H given explicitly wins over -d's default.
		for i := 0; i < len(e.args); i++ {
			if e.args[i] == "-H" {
				k, v, _ := strings.Cut(e.args[i+1], ":")
				set(k, strings.TrimSpace(v))
			}
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, e.path)
	for _, h := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("\r\n")
	b.WriteString(data)
	return b.Bytes()
}

// rawExchange writes req on a new connection and reads one answer.
func rawExchange(t testing.TB, addr string, req []byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// seedExpectations checks the answers of the seed's read flow, in order:
// produce (before any consumer), register (startFromLatest), poll (nothing
// yet: 204), produce again, poll (the second event), commit, goodbye, and a
// poll after goodbye (409).
type seedFlowCheck struct {
	t        testing.TB
	a        floe.Addrs
	rangeIdx int
}

func (c *seedFlowCheck) check(step string, status int, header http.Header, body []byte) {
	t := c.t
	t.Helper()
	want := map[string]int{
		"brokers": 200, "status discovery": 200, "status producer": 200, "status consumer": 200,
		"produce": 200, "produce again": 200, "register": 200, "poll empty": 204, "poll": 200,
		"commit": 204, "goodbye": 200, "poll after goodbye": 409,
	}[step]
	if status != want {
		t.Fatalf("%s: %d %s, want %d", step, status, body, want)
	}
	if status == 204 {
		if len(body) != 0 || header.Get("Retry-After") == "" || header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: 204 with body %q, headers %v", step, body, header)
		}
		return
	}
	if header.Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Errorf("%s: Content-Length %q for %d bytes", step, header.Get("Content-Length"), len(body))
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", step, ct)
	}
	_, pport, _ := net.SplitHostPort(c.a.Producer)
	_, cport, _ := net.SplitHostPort(c.a.Consumer)
	switch step {
	case "brokers":
		want := fmt.Sprintf(`{"length":1,"names":["floe-test"],"producerPort":%s,"consumerPort":%s}`, pport, cport)
		if string(body) != want {
			t.Errorf("brokers: %s, want %s", body, want)
		}
	case "produce", "produce again":
		offset := map[string]string{"produce": "0", "produce again": "1"}[step]
		c.rangeIdx = int(broker.NewRing(broker.DefaultConsumerRanges).RangeIndex(broker.Token("123")))
		want := fmt.Sprintf(`{"topic":"product-stock","token":"-9223372036854775808","rangeIndex":%d,"version":1,"startOffset":"%s","count":1}`, c.rangeIdx, offset)
		if string(body) != want {
			t.Errorf("%s: %s, want %s", step, body, want)
		}
	case "register":
		if want := `{"consumerId":"1","group":"product-stock-updater"}`; string(body) != want {
			t.Errorf("register: %s, want %s", body, want)
		}
	case "poll":
		// The event exactly as produced, spaces included, at offset 1:
		// startFromLatest skipped the event produced before register.
		want := fmt.Sprintf(`[{"topic":"product-stock","token":"-9223372036854775808","rangeIndex":%d,"version":1,"startOffset":"1","values":[{"productId": 123, "units": -5}]}]`, c.rangeIdx)
		if string(body) != want {
			t.Errorf("poll: %s, want %s", body, want)
		}
	case "poll after goodbye":
		var e map[string]any
		if json.Unmarshal(body, &e) != nil || e["code"] != float64(2001) {
			t.Errorf("poll after goodbye: %s", body)
		}
	}
}

// seedFlow is the order in which the examples are run.
var seedFlow = []struct{ step, example string }{
	{"brokers", "brokers"}, {"status discovery", "status discovery"}, {"status producer", "status producer"},
	{"status consumer", "status consumer"}, {"produce", "produce"}, {"register", "register"},
	{"poll empty", "poll"}, {"produce again", "produce"}, {"poll", "poll"}, {"commit", "commit"},
	{"goodbye", "goodbye"}, {"poll after goodbye", "poll"},
}

func exampleByName(name string) curlExample {
	for _, e := range seedExamples() {
		if e.name == name {
			return e
		}
	}
	panic(name)
}

// TestSeedCurlExamples sends each documented curl example as the exact
// request curl sends, and checks the documented answers.
func TestSeedCurlExamples(t *testing.T) {
	_, a := startNode(t, nil)
	c := &seedFlowCheck{t: t, a: a}
	for _, s := range seedFlow {
		e := exampleByName(s.example)
		resp, body := rawExchange(t, e.addr(a), e.curlRequest(e.addr(a)))
		c.check(s.step, resp.StatusCode, resp.Header, body)
	}
}

// TestSeedCurlExamplesWithCurl runs curl itself: first against a listener
// that records what it sends, to check curlRequest, then through the seed's
// read flow against a broker.
func TestSeedCurlExamplesWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not on PATH")
	}
	run := func(e curlExample, addr string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		args := append(append([]string{}, e.args...), "http://"+addr+e.path)
		cmd := exec.CommandContext(ctx, curl, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl %q: %v: %s", args, err, stderr.Bytes())
		}
		return out
	}

	// 1. What curl sends, against curlRequest.
	for _, e := range seedExamples() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan *http.Request, 1)
		gotBody := make(chan []byte, 1)
		go func() {
			conn, err := l.Accept()
			if err != nil {
				close(got)
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			req, err := http.ReadRequest(bufio.NewReader(conn))
			if err != nil {
				close(got)
				return
			}
			b, _ := io.ReadAll(req.Body)
			got <- req
			gotBody <- b
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		}()
		run(e, l.Addr().String())
		l.Close()
		req, ok := <-got
		if !ok {
			t.Fatalf("%s: the listener got no request from curl", e.name)
		}
		body := <-gotBody
		mirror, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(e.curlRequest(l.Addr().String()))))
		if err != nil {
			t.Fatal(err)
		}
		mbody, _ := io.ReadAll(mirror.Body)
		if req.Method != mirror.Method || req.RequestURI != mirror.RequestURI || !bytes.Equal(body, mbody) {
			t.Errorf("%s: curl sent %s %s %q, curlRequest %s %s %q", e.name, req.Method, req.RequestURI, body, mirror.Method, mirror.RequestURI, mbody)
		}
		for k := range mirror.Header {
			if k == "User-Agent" {
				if !strings.HasPrefix(req.Header.Get(k), "curl/") {
					t.Errorf("%s: User-Agent %q", e.name, req.Header.Get(k))
				}
				continue
			}
			if req.Header.Get(k) != mirror.Header.Get(k) {
				t.Errorf("%s: curl sent %s: %q, curlRequest %q", e.name, k, req.Header.Get(k), mirror.Header.Get(k))
			}
		}
		for k := range req.Header {
			if mirror.Header.Get(k) == "" {
				t.Errorf("%s: curl sent %s: %q, curlRequest does not", e.name, k, req.Header.Get(k))
			}
		}
	}

	// 2. The read flow with curl.
	_, a := startNode(t, nil)
	c := &seedFlowCheck{t: t, a: a}
	for _, s := range seedFlow {
		e := exampleByName(s.example)
		out := run(e, e.addr(a))
		if !slicesContains(e.args, "-i") {
			// Without -i curl prints the body only; the status is
			// checked through the answer.
			c.check(s.step, 200, http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(out))}}, out)
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("%s: curl -i output %q: %v", s.step, out, err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.check(s.step, resp.StatusCode, resp.Header, body)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// prodAck is the answer to a produce request.
type prodAck struct {
	Topic       string `json:"topic"`
	Token       string `json:"token"`
	RangeIndex  int    `json:"rangeIndex"`
	Version     int    `json:"version"`
	StartOffset string `json:"startOffset"`
	Count       int    `json:"count"`
}

func (a prodAck) start() int64 {
	v, _ := strconv.ParseInt(a.StartOffset, 10, 64)
	return v
}

// produceHTTP sends one produce request; it returns the status, the ack of a
// 200 and the answer body.
func produceHTTP(ctx context.Context, client *http.Client, producer, topic, key, contentType string, body []byte) (int, prodAck, []byte, error) {
	u := "http://" + producer + "/v1/topic/" + topic + "/messages"
	if key != "" {
		u += "?partitionKey=" + key
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, prodAck{}, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, prodAck{}, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, prodAck{}, nil, err
	}
	var ack prodAck
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, &ack); err != nil {
			return resp.StatusCode, ack, data, fmt.Errorf("ack %q: %v", data, err)
		}
	}
	return resp.StatusCode, ack, data, nil
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
	}
}

// streamKey names a sub-range of a topic.
type streamKey struct {
	topic string
	index int
}

// readAllEvents registers a new consumer (startFromEarliest) in its own
// group on topics, polls until it has want events or, with want < 0, until
// the log is drained (two empty polls in a row), then leaves. It returns
// the events by stream and offset and fails on a duplicate offset with
// different content.
func readAllEvents(t testing.TB, client *http.Client, consumer string, want int, topics ...string) map[streamKey]map[int64][]byte {
	t.Helper()
	id := fmt.Sprintf("reader-%d", rand.Int64())
	q := "consumerId=" + id + "&group=" + id + "&onNewGroup=startFromEarliest"
	for _, topic := range topics {
		q += "&topic=" + topic
	}
	post := func(method, route string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+consumer+route, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, route, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if st, b := post("PUT", "/v1/consumer/register?"+q); st != 200 {
		t.Fatalf("register: %d %s", st, b)
	}
	out := map[streamKey]map[int64][]byte{}
	n, empty := 0, 0
	deadline := time.Now().Add(60 * time.Second)
	for (want < 0 || n < want) && (want >= 0 || empty < 2) {
		if time.Now().After(deadline) {
			t.Fatalf("read %d events in 60s, want %d", n, want)
		}
		st, body := post("POST", "/v1/consumer/poll?consumerId="+id)
		if st == 204 {
			empty++
			if want >= 0 {
				time.Sleep(20 * time.Millisecond)
			}
			continue
		}
		if st != 200 {
			t.Fatalf("poll: %d %s", st, body)
		}
		empty = 0
		var batches []struct {
			Topic       string            `json:"topic"`
			Token       string            `json:"token"`
			RangeIndex  int               `json:"rangeIndex"`
			Version     int               `json:"version"`
			StartOffset string            `json:"startOffset"`
			Values      []json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal(body, &batches); err != nil {
			t.Fatalf("poll answer %.200s: %v", body, err)
		}
		for _, b := range batches {
			if b.Token != "-9223372036854775808" || b.Version != 1 {
				t.Fatalf("poll batch token %s version %d", b.Token, b.Version)
			}
			sk := streamKey{b.Topic, b.RangeIndex}
			if out[sk] == nil {
				out[sk] = map[int64][]byte{}
			}
			start, err := strconv.ParseInt(b.StartOffset, 10, 64)
			if err != nil {
				t.Fatalf("startOffset %q", b.StartOffset)
			}
			for i, v := range b.Values {
				off := start + int64(i)
				if prev, dup := out[sk][off]; dup {
					if !bytes.Equal(prev, v) {
						t.Fatalf("%v offset %d read as %s then %s", sk, off, prev, v)
					}
					continue
				}
				out[sk][off] = v
				n++
			}
		}
	}
	if want >= 0 {
		if st, b := post("POST", "/v1/consumer/poll?consumerId="+id); st != 204 {
			t.Fatalf("after reading the %d events, poll: %d %.300s (want 204: nothing else stored)", want, st, b)
		}
	}
	if st, b := post("POST", "/v1/consumer/goodbye?consumerId="+id); st != 200 {
		t.Errorf("goodbye: %d %s", st, b)
	}
	return out
}

// checkDense checks that every stream's offsets are 0..n-1.
func checkDense(t testing.TB, got map[streamKey]map[int64][]byte) {
	t.Helper()
	for sk, evs := range got {
		for off := range int64(len(evs)) {
			if _, ok := evs[off]; !ok {
				t.Errorf("%v: offset %d missing among %d events (a gap)", sk, off, len(evs))
				break
			}
		}
	}
}

// TestProduceOrdering: concurrent producers over HTTP, each sending its
// requests one after the other; events of a key stay in one sub-range, in
// the order each producer's requests were acknowledged, every acknowledged
// event is stored exactly once at its acknowledged offset, and a request
// acknowledged before another was sent is stored before it.
func TestProduceOrdering(t *testing.T) {
	const (
		producers = 8
		requests  = 200
		keys      = 20
		topic     = "ordering"
	)
	_, a := startNode(t, nil)
	client := newHTTPClient()
	ring := broker.NewRing(broker.DefaultConsumerRanges)

	type sent struct {
		key            string
		p              int
		events         [][]byte
		seqs           []int
		ack            prodAck
		sentAt, ackdAt time.Time
	}
	results := make([][]sent, producers)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 42))
			seq := 0
			for i := range requests {
				key := "key-" + strconv.Itoa(rng.IntN(keys))
				n := 1
				if i%4 == 3 {
					n = 1 + rng.IntN(4) // some NDJSON requests of 1-4 events
				}
				s := sent{key: key, p: p}
				var body []byte
				for range n {
					ev := fmt.Appendf(nil, `{"key":%q,"p":%d,"seq":%d}`, key, p, seq)
					s.events = append(s.events, ev)
					s.seqs = append(s.seqs, seq)
					body = append(append(body, ev...), '\n')
					seq++
				}
				ct := "application/x-ndjson"
				if n == 1 && i%2 == 0 {
					ct, body = "application/json", s.events[0]
				}
				s.sentAt = time.Now()
				st, ack, answer, err := produceHTTP(ctx, client, a.Producer, topic, key, ct, body)
				s.ackdAt = time.Now()
				if err != nil || st != 200 {
					t.Errorf("producer %d request %d: %d %s %v", p, i, st, answer, err)
					return
				}
				s.ack = ack
				results[p] = append(results[p], s)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	elapsed := time.Since(start)

	total := 0
	for _, rs := range results {
		for _, s := range rs {
			total += len(s.events)
		}
	}
	t.Logf("%d requests (%d events) from %d producers in %v (%.0f requests/s)", producers*requests, total, producers, elapsed.Round(time.Millisecond), float64(producers*requests)/elapsed.Seconds())
	got := readAllEvents(t, client, a.Consumer, total, topic)
	checkDense(t, got)

	// Every acknowledged event at its acknowledged offset, in its key's
	// sub-range; the acks of a stream do not overlap.
	owner := map[streamKey]map[int64]string{}
	byStream := map[int][]sent{}
	for _, rs := range results {
		for _, s := range rs {
			idx := int(ring.RangeIndex(broker.Token(s.key)))
			if s.ack.RangeIndex != idx || s.ack.Count != len(s.events) || s.ack.Topic != topic || s.ack.Version != 1 || s.ack.Token != "-9223372036854775808" {
				t.Fatalf("key %s: ack %+v, want sub-range %d, count %d", s.key, s.ack, idx, len(s.events))
			}
			sk := streamKey{topic, idx}
			if owner[sk] == nil {
				owner[sk] = map[int64]string{}
			}
			for i, ev := range s.events {
				off := s.ack.start() + int64(i)
				if other, taken := owner[sk][off]; taken {
					t.Fatalf("%v offset %d acknowledged twice: %s and %s", sk, off, other, ev)
				}
				owner[sk][off] = string(ev)
				if stored := got[sk][off]; !bytes.Equal(stored, ev) {
					t.Fatalf("%v offset %d: stored %s, acknowledged %s", sk, off, stored, ev)
				}
			}
			byStream[idx] = append(byStream[idx], s)
		}
	}
	stored := 0
	for _, evs := range got {
		stored += len(evs)
	}
	if stored != total {
		t.Fatalf("%d events stored, %d acknowledged", stored, total)
	}

	// Per producer and key: seq strictly increasing with the offset.
	type pk struct {
		p   int
		key string
	}
	for sk, evs := range got {
		last := map[pk]int{}
		for off := range int64(len(evs)) {
			var ev struct {
				Key string `json:"key"`
				P   int    `json:"p"`
				Seq int    `json:"seq"`
			}
			if err := json.Unmarshal(evs[off], &ev); err != nil {
				t.Fatal(err)
			}
			if int(ring.RangeIndex(broker.Token(ev.Key))) != sk.index {
				t.Fatalf("key %s found in sub-range %d", ev.Key, sk.index)
			}
			k := pk{ev.P, ev.Key}
			if prev, ok := last[k]; ok && ev.Seq <= prev {
				t.Fatalf("%v offset %d: producer %d key %s seq %d after seq %d", sk, off, ev.P, ev.Key, ev.Seq, prev)
			}
			last[k] = ev.Seq
		}
	}
	// Across producers: acknowledged before sent means stored before.
	checked := 0
	for _, ss := range byStream {
		for _, x := range ss {
			for _, y := range ss {
				if x.ackdAt.Before(y.sentAt) {
					checked++
					if x.ack.start() >= y.ack.start() {
						t.Fatalf("request acknowledged at offset %d before request at offset %d was sent", x.ack.start(), y.ack.start())
					}
				}
			}
		}
	}
	t.Logf("%d events read back; %d happened-before pairs checked", stored, checked)
}

// TestProduceKeylessSpread: requests without a partition key are dealt over
// the topic's sub-ranges in turn, evenly.
func TestProduceKeylessSpread(t *testing.T) {
	_, a := startNode(t, func(o *floe.Options) { o.ConsumerRanges = 4 })
	client := newHTTPClient()
	counts := make([]int, 4)
	first := -1
	for i := range 200 {
		st, ack, body, err := produceHTTP(context.Background(), client, a.Producer, "keyless", "", "", fmt.Appendf(nil, `{"i":%d}`, i))
		if err != nil || st != 200 {
			t.Fatalf("produce: %d %s %v", st, body, err)
		}
		if first < 0 {
			first = ack.RangeIndex // where the topic's turn starts
		}
		if want := (first + i) % 4; ack.RangeIndex != want {
			t.Errorf("request %d in sub-range %d, want %d (in turn)", i, ack.RangeIndex, want)
		}
		counts[ack.RangeIndex]++
	}
	for i, c := range counts {
		if c != 50 {
			t.Errorf("sub-range %d got %d of 200 keyless requests: %v", i, c, counts)
		}
	}
	got := readAllEvents(t, client, a.Consumer, 200, "keyless")
	for i := range 4 {
		if n := len(got[streamKey{"keyless", i}]); n != 50 {
			t.Errorf("sub-range %d holds %d events, want 50", i, n)
		}
	}
}

func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestProduceAtomicity: a rejected request stores nothing, even when its
// first events are valid: the next accepted event of the same key gets the
// next offset, and a reader finds only the accepted events.
func TestProduceAtomicity(t *testing.T) {
	_, a := startNode(t, func(o *floe.Options) { o.MaxRequestBytes = 4096; o.MaxEventBytes = 256 })
	client := newHTTPClient()
	const topic = "atomic"
	ctx := context.Background()
	var accepted []string // in order, for key "k"
	next := int64(0)
	accept := func(label string) {
		t.Helper()
		ev := fmt.Sprintf(`{"accepted":%q}`, label)
		st, ack, body, err := produceHTTP(ctx, client, a.Producer, topic, "k", "application/json", []byte(ev))
		if err != nil || st != 200 {
			t.Fatalf("%s: %d %s %v", label, st, body, err)
		}
		if ack.start() != next {
			t.Fatalf("after %s the next event is at offset %d, want %d: the rejected request stored something", label, ack.start(), next)
		}
		next++
		accepted = append(accepted, ev)
	}
	valid := func(i int) string { return fmt.Sprintf(`{"part":%d,"of":"a rejected request"}`, i) }
	lines := func(n int, last string) []byte {
		var b []byte
		for i := range n - 1 {
			b = append(append(b, valid(i)...), '\n')
		}
		return append(append(b, last...), '\n')
	}
	big := `{"x":"` + strings.Repeat("x", 300) + `"}`
	corruptCRC := gzipBytes(t, lines(5, valid(4)))
	corruptCRC[len(corruptCRC)-6] ^= 0xff
	truncated := gzipBytes(t, lines(5, valid(4)))
	truncated = truncated[:len(truncated)-5]
	trailing := append(gzipBytes(t, lines(5, valid(4))), "trailing garbage"...)
	bomb := gzipBytes(t, bytes.Repeat([]byte(valid(0)+"\n"), 1000))

	type rejected struct {
		name, ct, enc string
		body          []byte
		chunked       bool
		status, code  int
		mention       string
	}
	for _, r := range []rejected{
		{"ndjson, last line invalid", "application/x-ndjson", "", lines(5, `{"part":4,`), false, 400, 1004, "line 5"},
		{"ndjson, invalid line after blank lines", "application/x-ndjson", "", append([]byte(valid(0)+"\n\n\r\n"), "nope\n"+valid(1)...), false, 400, 1004, "line 4"},
		{"ndjson, event over the limit mid batch", "application/x-ndjson", "", append(append([]byte(valid(0)+"\n"+valid(1)+"\n"), big...), "\n"+valid(3)+"\n"...), false, 413, 1006, "line 3"},
		{"body over the request limit", "application/x-ndjson", "", bytes.Repeat([]byte(valid(0)+"\n"), 200), false, 413, 1005, "limit"},
		{"chunked body over the request limit", "application/x-ndjson", "", bytes.Repeat([]byte(valid(0)+"\n"), 200), true, 413, 1005, "limit"},
		{"gzip bomb over the request limit", "application/x-ndjson", "gzip", bomb, false, 413, 1005, "limit"},
		{"gzip, bad checksum after valid events", "application/x-ndjson", "gzip", corruptCRC, false, 400, 1008, "does not decode"},
		{"gzip, truncated", "application/x-ndjson", "gzip", truncated, true, 400, 1008, "does not decode"},
		{"gzip, trailing garbage", "application/x-ndjson", "gzip", trailing, false, 400, 1008, "does not decode"},
		{"gzip, not gzip", "application/x-ndjson", "gzip", lines(2, valid(1)), false, 400, 1008, "does not decode"},
		{"unknown content type", "text/plain", "", lines(2, valid(1)), false, 415, 1007, "text/plain"},
		{"json with two documents", "application/json", "", lines(2, valid(1)), false, 400, 1004, "invalid JSON"},
		{"blank ndjson", "application/x-ndjson", "", []byte("\n \n\r\n"), false, 400, 1003, "no non-empty line"},
		{"invalid UTF-8 on the last line", "application/x-ndjson", "", lines(3, "{\"s\":\"\xff\"}"), false, 400, 1004, "line 3: invalid JSON: invalid UTF-8 at byte 7"},
	} {
		t.Run(r.name, func(t *testing.T) {
			for _, key := range []string{"k", ""} {
				u := "http://" + a.Producer + "/v1/topic/" + topic + "/messages"
				if key != "" {
					u += "?partitionKey=" + key
				}
				var body io.Reader = bytes.NewReader(r.body)
				if r.chunked {
					body = io.MultiReader(body) // hides the length: chunked
				}
				req, _ := http.NewRequest("POST", u, body)
				req.Header.Set("Content-Type", r.ct)
				if r.enc != "" {
					req.Header.Set("Content-Encoding", r.enc)
				}
				if r.chunked && req.ContentLength != 0 {
					t.Fatalf("the request has a length: not chunked")
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				e := errorShape(t, exchange{resp, data}, r.status, r.code)
				if msg := e["message"].(string); !strings.Contains(msg, r.mention) {
					t.Errorf("message %q does not mention %q", msg, r.mention)
				}
			}
			accept(r.name)
		})
	}
	// The reader finds exactly the accepted events, in order, in key k's
	// sub-range, and nothing in the other sub-ranges.
	got := readAllEvents(t, client, a.Consumer, len(accepted), topic)
	idx := int(broker.NewRing(broker.DefaultConsumerRanges).RangeIndex(broker.Token("k")))
	if len(got) != 1 || len(got[streamKey{topic, idx}]) != len(accepted) {
		t.Fatalf("streams %v, want %d events in sub-range %d only", got, len(accepted), idx)
	}
	for i, ev := range accepted {
		if g := got[streamKey{topic, idx}][int64(i)]; string(g) != ev {
			t.Errorf("offset %d: %s, want %s", i, g, ev)
		}
	}
}

// BenchmarkRESTProduce measures the produce path end to end over loopback
// HTTP/1.1 against an in-process broker (Pebble in a temporary directory,
// every request acknowledged after its fsync): one goroutine sending one
// request at a time (latency), and parallel clients (throughput, with group
// commit).
func BenchmarkRESTProduce(b *testing.B) {
	_, a := startNode(b, nil)
	client := newHTTPClient()
	one := []byte(`{"productId": 123, "units": -5}`)
	var nd []byte
	for i := range 100 {
		nd = fmt.Appendf(nd, `{"productId":%d,"units":-5,"warehouse":"north-east-7","note":"%s"}`+"\n", i, strings.Repeat("n", 120))
	}
	for _, bc := range []struct {
		name, ct string
		body     []byte
		events   int
	}{
		{"json-1", "application/json", one, 1},
		{"ndjson-100", "application/x-ndjson", nd, 100},
	} {
		for _, parallel := range []bool{false, true} {
			name := bc.name + "/serial"
			if parallel {
				name = bc.name + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(bc.body)))
				ctx := context.Background()
				send := func(key string) {
					st, _, body, err := produceHTTP(ctx, client, a.Producer, "bench", key, bc.ct, bc.body)
					if err != nil || st != 200 {
						b.Fatalf("%d %s %v", st, body, err)
					}
				}
				start := time.Now()
				if parallel {
					b.SetParallelism(8)
					var n int64
					var mu sync.Mutex
					b.RunParallel(func(pb *testing.PB) {
						mu.Lock()
						n++
						key := "k" + strconv.FormatInt(n, 10)
						mu.Unlock()
						for pb.Next() {
							send(key)
						}
					})
				} else {
					for b.Loop() {
						send("k")
					}
				}
				b.ReportMetric(float64(b.N*bc.events)/time.Since(start).Seconds(), "events/s")
			})
		}
	}
}
