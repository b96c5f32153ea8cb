package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// bodyResult is what limitBody did with one request.
type bodyResult struct {
	status int
	err    map[string]any // the error body, when limitBody answered
	called bool           // the next handler ran
	data   []byte         // the body the next handler read
	ct     string         // the content type limitBody resolved
	header http.Header    // the request headers the next handler saw
}

type bodyReq struct {
	method, ct, enc string
	body            io.Reader
	length          int64 // Content-Length; -1: unknown (chunked)
}

// testReadTimeout is the server's read timeout the handlers under test name.
const testReadTimeout = DefaultReadTimeout

func runLimitBody(t testing.TB, limit int64, br bodyReq) bodyResult {
	t.Helper()
	if br.method == "" {
		br.method = http.MethodPost
	}
	if br.body == nil {
		br.body = http.NoBody
	}
	var res bodyResult
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res.called = true
		res.header = r.Header.Clone()
		if rb, ok := r.Body.(*rawBody); ok {
			res.ct = rb.contentType
			if r.ContentLength != int64(len(rb.data)) {
				t.Errorf("ContentLength %d for %d bytes", r.ContentLength, len(rb.data))
			}
		}
		var err error
		res.data, err = io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("next: reading the body: %v", err)
		}
		w.WriteHeader(http.StatusOK)
	})
	req := httptest.NewRequest(br.method, "/v1/topic/t/messages", io.NopCloser(br.body))
	req.ContentLength = br.length
	if br.ct != "" {
		req.Header.Set("Content-Type", br.ct)
	}
	if br.enc != "" {
		req.Header.Set("Content-Encoding", br.enc)
	}
	rec := httptest.NewRecorder()
	limitBody(limit, testReadTimeout, nil, next).ServeHTTP(rec, req)
	res.status = rec.Code
	if !res.called {
		if err := json.Unmarshal(rec.Body.Bytes(), &res.err); err != nil {
			t.Fatalf("error body %q: %v", rec.Body.Bytes(), err)
		}
		if rec.Header().Get("Content-Length") == "" || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("error answer headers %v", rec.Header())
		}
	}
	return res
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func wantError(t testing.TB, res bodyResult, status int, code floev1.ErrorCode, mention string) {
	t.Helper()
	if res.called {
		t.Fatalf("the request reached the producer, want %d", status)
	}
	if res.status != status || res.err["status"] != float64(status) || res.err["code"] != float64(code) {
		t.Fatalf("answer %d %v, want %d code %d", res.status, res.err, status, code)
	}
	if msg, _ := res.err["message"].(string); !strings.Contains(msg, mention) {
		t.Errorf("message %q does not mention %q", msg, mention)
	}
}

func TestLimitBodyPassesBodies(t *testing.T) {
	const limit = 100
	body := []byte("{\"a\":1}\n{\"a\":2}\n")
	for _, tc := range []struct {
		name   string
		br     bodyReq
		wantCT string
	}{
		{"json", bodyReq{ct: "application/json", body: bytes.NewReader(body), length: int64(len(body))}, "application/json"},
		{"no content type", bodyReq{body: bytes.NewReader(body), length: int64(len(body))}, "application/json"},
		{"charset", bodyReq{ct: "application/x-ndjson; charset=utf-8", body: bytes.NewReader(body), length: int64(len(body))}, "application/x-ndjson"},
		{"charset UTF-8, quoted", bodyReq{ct: `application/json; charset="UTF-8"`, body: bytes.NewReader(body), length: int64(len(body))}, "application/json"},
		{"charset utf8", bodyReq{ct: "application/json;charset=Utf8", body: bytes.NewReader(body), length: int64(len(body))}, "application/json"},
		{"chunked", bodyReq{ct: "application/x-ndjson", body: bytes.NewReader(body), length: -1}, "application/x-ndjson"},
		{"identity", bodyReq{ct: "application/x-ndjson", enc: "identity", body: bytes.NewReader(body), length: int64(len(body))}, "application/x-ndjson"},
		{"gzip", bodyReq{ct: "application/x-ndjson", enc: "gzip", body: bytes.NewReader(gz(t, body)), length: int64(len(gz(t, body)))}, "application/x-ndjson"},
		{"GZIP chunked", bodyReq{ct: "application/x-ndjson", enc: " GZIP ", body: bytes.NewReader(gz(t, body)), length: -1}, "application/x-ndjson"},
		{"x-gzip", bodyReq{ct: "application/x-ndjson", enc: "x-gzip", body: bytes.NewReader(gz(t, body)), length: -1}, "application/x-ndjson"},
		{"two gzip members", bodyReq{ct: "application/x-ndjson", enc: "gzip", body: bytes.NewReader(append(gz(t, body[:8]), gz(t, body[8:])...)), length: -1}, "application/x-ndjson"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runLimitBody(t, limit, tc.br)
			if !res.called || !bytes.Equal(res.data, body) || res.ct != tc.wantCT {
				t.Fatalf("status %d %v; next called %v with %q as %q, want %q as %q", res.status, res.err, res.called, res.data, res.ct, body, tc.wantCT)
			}
			if res.header.Get("Content-Encoding") != "" {
				t.Errorf("Content-Encoding %q left on the decoded body", res.header.Get("Content-Encoding"))
			}
		})
	}
	// Not a POST: untouched.
	res := runLimitBody(t, limit, bodyReq{method: http.MethodGet, ct: "text/plain", body: strings.NewReader("x"), length: 1})
	if !res.called || string(res.data) != "x" {
		t.Errorf("GET: called %v with %q", res.called, res.data)
	}
}

func TestLimitBodyLimits(t *testing.T) {
	const limit = 64
	exact := bytes.Repeat([]byte("a"), limit)
	over := bytes.Repeat([]byte("a"), limit+1)
	tooLarge := func(t *testing.T, br bodyReq) {
		t.Helper()
		wantError(t, runLimitBody(t, limit, br), http.StatusRequestEntityTooLarge, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, "limit is 64 bytes")
	}
	for _, length := range []int64{limit, -1} {
		if res := runLimitBody(t, limit, bodyReq{body: bytes.NewReader(exact), length: length}); !res.called || len(res.data) != limit {
			t.Errorf("a body of exactly the limit (length %d): %d %v", length, res.status, res.err)
		}
	}
	t.Run("content-length over", func(t *testing.T) {
		// Refused before reading: the body is never read.
		tooLarge(t, bodyReq{body: iotest{t}, length: limit + 1})
	})
	t.Run("chunked over", func(t *testing.T) { tooLarge(t, bodyReq{body: bytes.NewReader(over), length: -1}) })
	t.Run("gzip decompresses over", func(t *testing.T) {
		bomb := gz(t, bytes.Repeat([]byte(" "), 1<<20))
		if len(bomb) > limit*32 {
			t.Fatalf("bomb of %d bytes", len(bomb))
		}
		tooLarge(t, bodyReq{enc: "gzip", body: bytes.NewReader(gz(t, over)), length: -1})
		tooLarge(t, bodyReq{enc: "gzip", body: bytes.NewReader(bomb), length: int64(len(bomb))})
	})
	// A gzip body larger than the limit on the wire is refused as too
	// large, whether its length is declared or not.
	incompressible := make([]byte, limit-10)
	rand.Read(incompressible)
	wire := gz(t, incompressible)
	if len(wire) <= limit {
		t.Fatalf("gzip of %d random bytes is only %d bytes", len(incompressible), len(wire))
	}
	t.Run("gzip wire over, declared", func(t *testing.T) {
		tooLarge(t, bodyReq{enc: "gzip", body: bytes.NewReader(wire), length: int64(len(wire))})
	})
	t.Run("gzip wire over, chunked", func(t *testing.T) {
		tooLarge(t, bodyReq{enc: "gzip", body: bytes.NewReader(wire), length: -1})
	})
}

// iotest is a body that fails the test if read.
type iotest struct{ t testing.TB }

func (r iotest) Read([]byte) (int, error) {
	r.t.Error("the body was read")
	return 0, io.EOF
}

func TestLimitBodyRejects(t *testing.T) {
	const limit = 1 << 10
	good := gz(t, []byte("{\"a\":1}\n"))
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-6] ^= 0xff // CRC-32 of the trailer
	badData := bytes.Clone(good)
	badData[10] = 0xff // first deflate block header: reserved block type
	for _, tc := range []struct {
		name    string
		br      bodyReq
		status  int
		code    floev1.ErrorCode
		mention string
	}{
		{"text/plain", bodyReq{ct: "text/plain", body: strings.NewReader("{}"), length: 2}, 415, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE, "text/plain"},
		{"curl -d without -H", bodyReq{ct: "application/x-www-form-urlencoded", body: strings.NewReader("{}"), length: 2}, 415, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE, "curl -d"},
		{"malformed content type", bodyReq{ct: "application/json;;;", body: strings.NewReader("{}"), length: 2}, 415, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE, "application/json"},
		// JSON is UTF-8 (RFC 8259): a body said to be in another charset
		// would be read as UTF-8 all the same.
		{"charset iso-8859-1", bodyReq{ct: "application/json; charset=iso-8859-1", body: strings.NewReader("{}"), length: 2}, 415, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE,
			`unsupported content type: charset "iso-8859-1" in "application/json; charset=iso-8859-1": events are JSON in UTF-8; send charset=utf-8 or no charset`},
		{"charset utf-16", bodyReq{ct: "application/x-ndjson; charset=UTF-16", body: strings.NewReader("{}"), length: 2}, 415, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE, `charset "UTF-16"`},
		{"empty charset", bodyReq{ct: `application/json; charset=""`, body: strings.NewReader("{}"), length: 2}, 415, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_TYPE, `charset ""`},
		{"brotli", bodyReq{enc: "br", body: strings.NewReader("{}"), length: 2}, 415, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, `"br"`},
		{"two encodings", bodyReq{enc: "gzip, gzip", body: bytes.NewReader(good), length: -1}, 415, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, "gzip, gzip"},
		{"gzip, empty body", bodyReq{enc: "gzip", length: 0}, 400, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, "does not decode"},
		{"gzip, not gzip", bodyReq{enc: "gzip", body: strings.NewReader(`{"a":1}`), length: 7}, 400, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, "does not decode"},
		{"gzip, truncated", bodyReq{enc: "gzip", body: bytes.NewReader(good[:len(good)-4]), length: -1}, 400, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, "does not decode"},
		{"gzip, bad checksum", bodyReq{enc: "gzip", body: bytes.NewReader(badCRC), length: int64(len(badCRC))}, 400, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, "does not decode"},
		{"gzip, corrupt deflate data", bodyReq{enc: "gzip", body: bytes.NewReader(badData), length: -1}, 400, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, "does not decode"},
		{"gzip, trailing garbage", bodyReq{enc: "gzip", body: bytes.NewReader(append(bytes.Clone(good), "garbage"...)), length: -1}, 400, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, "does not decode"},
		{"body read error", bodyReq{body: failingReader{}, length: -1}, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, "connection reset"},
		{"body read error under gzip", bodyReq{enc: "gzip", body: io.MultiReader(bytes.NewReader(good[:12]), failingReader{}), length: -1}, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, "connection reset"},
		{"body shorter than its length", bodyReq{body: strings.NewReader("{}"), length: 10}, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, "reading the request body"},
		// The server's read timeout: a timeout (408), not a bad parameter.
		{"body read timeout", bodyReq{body: io.MultiReader(strings.NewReader(`{"a":`), connError{os.ErrDeadlineExceeded}), length: 100}, 408, floev1.ErrorCode_ERROR_CODE_TIMEOUT,
			"the request body did not arrive within 60 s, the server's read timeout for a whole request"},
		{"body read timeout, chunked", bodyReq{body: connError{os.ErrDeadlineExceeded}, length: -1}, 408, floev1.ErrorCode_ERROR_CODE_TIMEOUT, "did not arrive within 60 s"},
		{"body read timeout under gzip", bodyReq{enc: "gzip", body: io.MultiReader(bytes.NewReader(good[:12]), connError{os.ErrDeadlineExceeded}), length: -1}, 408, floev1.ErrorCode_ERROR_CODE_TIMEOUT, "did not arrive within 60 s"},
		{"connection error", bodyReq{body: connError{syscall.ECONNRESET}, length: -1}, 400, floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, "reading the request body: connection reset by peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runLimitBody(t, limit, tc.br)
			wantError(t, res, tc.status, tc.code, tc.mention)
			if msg, _ := res.err["message"].(string); strings.Contains(msg, "127.0.0.1") {
				t.Errorf("message %q gives socket addresses", msg)
			}
		})
	}
}

// connError fails as a read of a TCP connection does: a *net.OpError that
// names both ends.
type connError struct{ err error }

func (c connError) Read([]byte) (int, error) {
	return 0, &net.OpError{Op: "read", Net: "tcp",
		Source: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9251},
		Addr:   &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50806}, Err: c.err}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// FuzzReadBody sends arbitrary bytes, plain or gzip-encoded, declared or
// chunked, and checks limitBody against an independent decoding: the
// producer sees exactly the decoded body when it is within the limit on the
// wire and decoded; otherwise the answer is 413, or 400 for a body that does
// not decode; never anything else.
func FuzzReadBody(f *testing.F) {
	f.Add([]byte(`{"a":1}`), uint8(0), uint16(100))
	f.Add([]byte("{\"a\":1}\n{\"a\":2}\n"), uint8(1), uint16(100))
	f.Add([]byte("{\"a\":1}\n{\"a\":2}\n"), uint8(1), uint16(10))
	f.Add(gz(f, []byte("hello")), uint8(2), uint16(100))
	f.Add(gz(f, bytes.Repeat([]byte("x"), 1000)), uint8(3), uint16(100))
	f.Add(append(gz(f, []byte("a")), gz(f, []byte("b"))...), uint8(2), uint16(100))
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"), uint8(2), uint16(100))
	f.Add([]byte{}, uint8(2), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8, limit16 uint16) {
		limit := int64(limit16)
		chunked := mode&4 != 0
		var wire []byte
		enc := ""
		switch mode & 3 {
		case 0: // plain
			wire = data
		case 1: // gzip of data
			wire, enc = gz(t, data), "gzip"
		default: // data sent as gzip, whatever it is
			wire, enc = data, "gzip"
		}
		length := int64(len(wire))
		if chunked {
			length = -1
		}
		res := runLimitBody(t, limit, bodyReq{ct: "application/x-ndjson", enc: enc, body: bytes.NewReader(wire), length: length})

		// The oracle.
		decoded, decodeErr := wire, error(nil)
		if enc == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(wire))
			if err == nil {
				decoded, err = io.ReadAll(zr)
			}
			decodeErr = err
		}
		switch {
		case int64(len(wire)) > limit && (decodeErr == nil || !chunked):
			wantError(t, res, 413, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, "too large")
		case decodeErr != nil:
			// Read as it comes, a corrupt stream over the limit may fail
			// to decode before the limit is reached.
			// A corrupt stream may also be cut short by the decoded limit.
			if res.called || res.status != 400 && res.status != 413 {
				t.Fatalf("undecodable gzip: %d called=%v, want 400 or 413", res.status, res.called)
			}
			if res.status == 400 {
				wantError(t, res, 400, floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, "does not decode")
			}
		case int64(len(decoded)) > limit:
			wantError(t, res, 413, floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, "too large")
		default:
			if !res.called || !bytes.Equal(res.data, decoded) {
				t.Fatalf("%d %v: the producer got %q (called %v), want %q", res.status, res.err, res.data, res.called, decoded)
			}
		}
	})
}

func BenchmarkReadBody(b *testing.B) {
	body := bytes.Repeat([]byte(`{"id":1,"customer":"c-00001","items":[{"sku":"A-1","qty":2}],"note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`+"\n"), 100)
	zbody := gz(b, body)
	for _, bc := range []struct {
		name, enc string
		wire      []byte
	}{{"plain", "", body}, {"gzip", "gzip", zbody}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/topic/t/messages", bytes.NewReader(bc.wire))
				if bc.enc != "" {
					req.Header.Set("Content-Encoding", bc.enc)
				}
				if _, _, e := readBody(req, DefaultMaxRequestBytes, testReadTimeout, false, 0, nil); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}

// A request that announces a large body but sends little of it does not
// make readBody reserve the announced size.
func TestReadBodyDoesNotTrustLargeContentLength(t *testing.T) {
	const announced = 4 << 20
	req := httptest.NewRequest("POST", "/v1/topic/t/messages", io.MultiReader(strings.NewReader(`{"a":1}`), errReader{}))
	req.ContentLength = announced
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, e := readBody(req, announced, testReadTimeout, false, 0, nil)
	runtime.ReadMemStats(&after)
	if e == nil {
		t.Fatal("a truncated body was accepted")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("readBody allocated %d bytes for a body of 7 bytes announced as %d", got, announced)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// A body that holds produce memory must arrive at a pace: one announced and
// not sent is cut with 408 once its grace passed, and the request waiting
// behind it gets the memory; a handler that runs longer than the pace once
// the body is read is not cancelled.
func TestHeldBodyMustArriveAtPace(t *testing.T) {
	mem := broker.NewProduceMemory(1000)
	var served atomic.Int64
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond) // longer than the grace
		if err := r.Context().Err(); err != nil {
			t.Errorf("the handler's request was canceled: %v", err)
		}
		served.Add(1)
	})
	srv := servePaced(t, 1000, 10*time.Second, mem, heldBodyPace{grace: 200 * time.Millisecond, rate: 1 << 20}, next)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /v1/topic/t/messages HTTP/1.1\r\nHost: floe\r\nContent-Type: application/json\r\nContent-Length: 800\r\n\r\n{\"n\":")
	for deadline := time.Now().Add(5 * time.Second); mem.Held() != 800; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled request holds %d bytes, want 800", mem.Held())
		}
	}
	// A request that waits for the memory the stalled one holds. Chunked:
	// the server reads its body to the end, and then reads the connection
	// in the background while the handler runs, which a read deadline
	// passing meanwhile would cancel.
	body := `{"n":"` + strings.Repeat("x", 700) + `"}`
	resp, err := http.Post(srv.URL+"/v1/topic/t/messages", "application/json", io.MultiReader(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || served.Load() != 1 {
		t.Fatalf("the waiting request: %d, %d served; want 200 once the stalled body was cut", resp.StatusCode, served.Load())
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the waiting request took %v: the stalled body held the memory to the read timeout", took)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(answer), "HTTP/1.1 408") ||
		!strings.Contains(string(answer), "a body holding produce memory must arrive within 200ms plus 1 s per 1024 KiB of it") {
		t.Fatalf("the stalled request's answer:\n%s", answer)
	}
	if mem.Held() != 0 {
		t.Fatalf("held %d bytes after both ended", mem.Held())
	}
}

// A chunked body holds what it has read of the produce memory as it is
// read, not 64 KiB until it is read whole: requests that had each taken
// 64 KiB read their whole bodies past the bound, then all waited for the
// rest, which none of them could give back (each got 503 after half the
// read timeout).
func TestChunkedBodiesHoldWhatTheyReadAndDoNotDeadlock(t *testing.T) {
	const limit, size = 256 << 10, 512 << 10
	mem := broker.NewProduceMemory(size)
	var reading, most atomic.Int64 // bytes read by the requests not yet answered
	type bodyKey struct{}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond) // the store
		// Answered: the bytes stop counting here, before limitBody gives
		// back their memory, which the next request may take at once.
		cb := r.Context().Value(bodyKey{}).(*countingBody)
		reading.Add(-cb.n)
		cb.n = 0
	})
	h := limitBodyPaced(limit, 4*time.Second, mem, heldBodyPace{grace: 4 * time.Second, rate: 1 << 30}, next)
	counting := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cb := &countingBody{ReadCloser: r.Body, reading: &reading, most: &most}
		r.Body = cb
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), bodyKey{}, cb)))
		reading.Add(-cb.n) // a request refused before next
	})
	srv := httptest.NewUnstartedServer(counting)
	srv.Config.ReadTimeout = 4 * time.Second
	srv.Start()
	defer srv.Close()
	body := `{"n":"` + strings.Repeat("x", 200<<10) + `"}`
	const requests = 6
	statuses := make(chan string, requests)
	for range requests {
		go postStatus(srv.URL, io.MultiReader(strings.NewReader(body)), statuses)
	}
	for range requests {
		if s := <-statuses; s != "200 " {
			t.Errorf("a chunked request of %d bytes: %s", len(body), s)
		}
	}
	// One byte past what it holds tells a request that its body goes on.
	if m := most.Load(); m > size+requests {
		t.Errorf("the requests read %d bytes of their bodies at once, with a produce memory of %d", m, size)
	}
	if n := mem.Held(); n != 0 {
		t.Errorf("held %d bytes once every request was answered", n)
	}
}

// countingBody counts the bytes read of a request body into reading, and
// the most it reached into most.
type countingBody struct {
	io.ReadCloser
	n             int64
	reading, most *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	now := c.reading.Add(int64(n))
	for m := c.most.Load(); now > m && !c.most.CompareAndSwap(m, now); m = c.most.Load() {
	}
	return n, err
}

// Chunked requests that hold the whole produce memory between them, 64 KiB
// each, and whose bodies turn out larger do not wait for each other: they
// did, each holding its 64 KiB while waiting for the rest, until all got
// 503 after half the read timeout.
func TestChunkedBodiesHoldingTheMemoryDoNotWaitForEachOther(t *testing.T) {
	const limit, size = 192 << 10, 256 << 10
	mem := broker.NewProduceMemory(size)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	srv := servePaced(t, limit, 4*time.Second, mem, heldBodyPace{grace: 4 * time.Second, rate: 1 << 30}, next)
	const requests = 4
	statuses := make(chan string, requests)
	var rest []*io.PipeWriter
	for range requests {
		pr, pw := io.Pipe()
		rest = append(rest, pw)
		go postStatus(srv.URL, pr, statuses)
		go pw.Write([]byte(`{"n":"`))
	}
	for deadline := time.Now().Add(3 * time.Second); mem.Held() != size; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the requests hold %d bytes, want all %d", mem.Held(), size)
		}
	}
	start := time.Now()
	for _, pw := range rest {
		go func() {
			pw.Write([]byte(strings.Repeat("x", 100<<10) + `"}`))
			pw.Close()
		}()
	}
	for range requests {
		if s := <-statuses; s != "200 " {
			t.Errorf("a chunked request of 100 KiB: %s", s)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the requests took %v once their bodies were sent", took)
	}
	if n := mem.Held(); n != 0 {
		t.Errorf("held %d bytes once every request was answered", n)
	}
}

// A body's pace counts its bytes on the wire: a compressed one of known
// length is paced as that length, as an uncompressed one. It was paced as
// one of the size limit when under 64 KiB (and as its length above), which
// at the default pace left it to the read timeout.
func TestCompressedBodyOfKnownLengthIsPacedByIt(t *testing.T) {
	mem := broker.NewProduceMemory(4 << 20)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	srv := servePaced(t, 1<<20, 5*time.Second, mem, heldBodyPace{grace: 200 * time.Millisecond, rate: 1 << 10}, next)
	for _, enc := range []string{"identity", "gzip"} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		fmt.Fprintf(conn, "POST /v1/topic/t/messages HTTP/1.1\r\nHost: floe\r\nContent-Type: application/json\r\nContent-Encoding: %s\r\nContent-Length: 100\r\n\r\n\x1f", enc)
		_ = conn.SetReadDeadline(time.Now().Add(8 * time.Second))
		answer, _ := io.ReadAll(conn)
		conn.Close()
		if !strings.HasPrefix(string(answer), "HTTP/1.1 408") || !strings.Contains(string(answer), "within 298ms") {
			t.Errorf("%s body of 100 bytes, stalled, after %v:\n%s", enc, time.Since(start), answer)
		}
	}
}

// The 408 of a stalled chunked body says that it was paced as one of the
// size limit: "of it" named a size it does not have.
func TestChunkedBodyPaceMessageNamesTheLimit(t *testing.T) {
	mem := broker.NewProduceMemory(4 << 20)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	srv := servePaced(t, 1<<20, 5*time.Second, mem, heldBodyPace{grace: 200 * time.Millisecond, rate: 8 << 20}, next)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/topic/t/messages HTTP/1.1\r\nHost: floe\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(8 * time.Second))
	answer, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(answer), "HTTP/1.1 408") ||
		!strings.Contains(string(answer), "within 325ms: a body holding produce memory must arrive within 200ms plus 1 s per 8192 KiB of it; one of unknown length (chunked) as one of the size limit, 1048576 bytes") {
		t.Errorf("a stalled chunked body:\n%s", answer)
	}
}

// servePaced serves limitBodyPaced over next on a loopback server whose read
// timeout is readTimeout, until the test ends.
func servePaced(t *testing.T, limit int64, readTimeout time.Duration, mem *broker.ProduceMemory, pace heldBodyPace, next http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(limitBodyPaced(limit, readTimeout, mem, pace, next))
	srv.Config.ReadTimeout = readTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// postStatus posts body as a JSON produce request to the server at url and
// sends its status and answer ("200 " for a 200 without a body), or the
// client's error, on statuses.
func postStatus(url string, body io.Reader, statuses chan<- string) {
	resp, err := http.Post(url+"/v1/topic/t/messages", "application/json", body)
	if err != nil {
		statuses <- err.Error()
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	statuses <- fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// A body's buffer is the power of two that holds it (from 1 KiB to 1 MiB,
// and never over the size limit), and the pools give each size back only to
// bodies of that size: a one-event body read into a pooled 1 MiB buffer
// held 1 MiB while it counted 200 bytes of the produce memory.
func TestBodyBuffersAreWhatBodiesHold(t *testing.T) {
	for _, c := range []struct{ n, limit, want int64 }{
		{0, 4 << 20, 0},
		{1, 4 << 20, 1 << 10},
		{200, 4 << 20, 1 << 10},
		{1 << 10, 4 << 20, 1 << 10},
		{1<<10 + 1, 4 << 20, 2 << 10},
		{20_500, 4 << 20, 32 << 10},
		{1 << 20, 4 << 20, 1 << 20},
		{1<<20 + 1, 4 << 20, 1<<20 + 1},
		{3 << 20, 4 << 20, 3 << 20},
		{700, 1000, 700}, // 1 KiB is over the limit: its own size
		{600, 1 << 10, 1 << 10},
	} {
		if got := bodyBuffer(c.n, c.limit); got != c.want {
			t.Errorf("bodyBuffer(%d, limit %d) = %d, want %d", c.n, c.limit, got, c.want)
		}
	}
	for n := 1; n <= 3<<20; n = n*3/2 + 1 {
		c := int(bodyBuffer(int64(n), 4<<20))
		b, h := getBuf(n, c)
		if len(b) != n || cap(b) != c {
			t.Fatalf("getBuf(%d, %d): len %d cap %d", n, c, len(b), cap(b))
		}
		if pooled := n <= maxPooledBody; (h != nil) != pooled {
			t.Errorf("getBuf(%d): handle %v, want pooled %v", n, h != nil, pooled)
		}
		putBuf(h)
	}
	// A large buffer given back does not come out for a small body.
	_, h := getBuf(maxPooledBody, maxPooledBody)
	putBuf(h)
	for range 10 {
		b, h := getBuf(200, int(bodyBuffer(200, 4<<20)))
		if cap(b) != 1<<10 {
			t.Fatalf("a 200-byte body got a buffer of %d bytes, want 1 KiB", cap(b))
		}
		putBuf(h)
	}
}

// A compressed body of known length takes its Content-Length (at least
// 64 KiB) before it is read, then, as it decodes to more, the rest of the
// limit, and once read it holds the buffer of what it decoded to. One of
// 80 KB on the wire that decoded to 4 MiB held 4 MiB while it took 80 KB:
// only bodies without a length could grow.
func TestCompressedBodyOfKnownLengthHoldsWhatItDecodesTo(t *testing.T) {
	const limit = 4 << 20
	mem := broker.NewProduceMemory(16 << 20)
	noise := make([]byte, 70<<10)
	rand.Read(noise)
	payload := []byte(`{"a":"` + fmt.Sprintf("%x", noise) + strings.Repeat("x", limit-100-140<<10) + `"}`)
	wire := gz(t, payload)
	if len(wire) < 64<<10 {
		t.Fatalf("the compressed body is %d bytes, want 64 KiB or more", len(wire))
	}
	var heldInside int64
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { heldInside = mem.Held() })
	h := limitBodyPaced(limit, 10*time.Second, mem, heldBodyPace{grace: 5 * time.Second, rate: 1 << 30}, next)
	req := httptest.NewRequest(http.MethodPost, "/v1/topic/t/messages", bytes.NewReader(wire))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d %s", rec.Code, rec.Body)
	}
	if heldInside < int64(len(payload)) || heldInside > limit {
		t.Errorf("a body of %d bytes on the wire, %d decoded, held %d bytes of produce memory while answered, want its decoded size or its buffer's, at most the limit", len(wire), len(payload), heldInside)
	}
	if mem.Held() != 0 {
		t.Errorf("%d bytes held once answered", mem.Held())
	}
}
