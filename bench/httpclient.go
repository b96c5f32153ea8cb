package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// httpDoer sends one request and returns the status and the response body
// (valid until the next call). One per goroutine.
type httpDoer interface {
	do(ctx context.Context, method, pathQuery, contentType string, body []byte) (int, []byte, error)
	close()
}

// newHTTPDoer returns a client of addr (host:port): "std" is net/http with a
// keep-alive Transport shared by the goroutines of a run; "raw" is a minimal
// HTTP/1.1 client on one kept-alive connection, that costs the load tool
// about half the CPU per request (the tool shares the cores with the broker).
func newHTTPDoer(kind, addr string, tr *http.Transport) httpDoer {
	// h2c is the std client on a transport that speaks HTTP/2 (newTransport).
	if kind == "raw" {
		return &rawHTTP{addr: addr, timeout: 60 * time.Second}
	}
	return &stdHTTP{base: "http://" + addr, client: &http.Client{Transport: tr}}
}

// newTransport is the keep-alive transport of the std and h2c clients: one
// idle connection kept per goroutine (HTTP/1.1), or HTTP/2 without TLS
// (h2c), where requests share connections as net/http sees fit.
func newTransport(kind string, conns int) *http.Transport {
	var protocols *http.Protocols
	if kind == "h2c" {
		protocols = new(http.Protocols)
		protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Transport{
		Protocols:           protocols,
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      64 << 10,
	}
}

type stdHTTP struct {
	base   string
	client *http.Client
	urls   map[string]*url.URL
	hdrs   map[string]http.Header
	resp   []byte
}

// requestBody is a request's body that tells when net/http is done with
// it. The Transport may still be writing a body after RoundTrip returned
// (a server that answers before it read the whole body, a 413), and the
// caller reuses the body's buffer for its next request: do waits for Close
// first.
type requestBody struct {
	bytes.Reader
	once   sync.Once
	closed chan struct{}
}

func (b *requestBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

func (c *stdHTTP) do(ctx context.Context, method, pathQuery, contentType string, body []byte) (int, []byte, error) {
	if c.urls == nil {
		c.urls, c.hdrs = map[string]*url.URL{}, map[string]http.Header{}
	}
	u := c.urls[pathQuery]
	if u == nil {
		var err error
		if u, err = url.Parse(c.base + pathQuery); err != nil {
			return 0, nil, err
		}
		c.urls[pathQuery] = u
	}
	h := c.hdrs[contentType]
	if h == nil {
		h = http.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		c.hdrs[contentType] = h
	}
	req := (&http.Request{Method: method, URL: u, Header: h, Host: u.Host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).WithContext(ctx)
	var rb *requestBody
	if len(body) > 0 {
		rb = &requestBody{closed: make(chan struct{})}
		rb.Reset(body)
		req.Body = rb
		req.ContentLength = int64(len(body))
	}
	status, resp, err := c.roundTrip(req)
	if rb != nil {
		// net/http closes every request body, even after an error: by then
		// the response was read, or the connection failed, so the write
		// that still holds the body ends too (net/http closes a connection
		// whose request body it could not finish).
		<-rb.closed
	}
	return status, resp, err
}

func (c *stdHTTP) roundTrip(req *http.Request) (int, []byte, error) {
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	c.resp = c.resp[:0]
	if resp.ContentLength > 0 && int64(cap(c.resp)) < resp.ContentLength {
		c.resp = make([]byte, 0, resp.ContentLength)
	}
	c.resp, err = readAllInto(c.resp, resp.Body)
	return resp.StatusCode, c.resp, err
}

func (c *stdHTTP) close() {}

func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				return b, nil
			}
			return b, err
		}
	}
}

// rawHTTP is a minimal HTTP/1.1 client on one kept-alive connection: it
// writes the head and the body with one writev, and reads responses that
// carry a Content-Length (every Floe response does) or none (204).
type rawHTTP struct {
	addr    string
	timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
	head    []byte
	bufs    net.Buffers
	resp    []byte
}

func (c *rawHTTP) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

func (c *rawHTTP) do(ctx context.Context, method, pathQuery, contentType string, body []byte) (int, []byte, error) {
	if c.conn == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return 0, nil, err
		}
		c.conn = conn
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, 64<<10)
		} else {
			c.br.Reset(conn)
		}
	}
	status, resp, err := c.roundTrip(ctx, method, pathQuery, contentType, body)
	if err != nil {
		c.close()
	}
	return status, resp, err
}

func (c *rawHTTP) roundTrip(ctx context.Context, method, pathQuery, contentType string, body []byte) (int, []byte, error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.conn.SetDeadline(deadline)
	if ctx.Done() != nil {
		// A cancelled request (the run stopped or was interrupted) ends
		// its I/O at once: a long poll must not hold the end of the run.
		conn := c.conn
		stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	h := c.head[:0]
	h = append(h, method...)
	h = append(h, ' ')
	h = append(h, pathQuery...)
	h = append(h, " HTTP/1.1\r\nHost: "...)
	h = append(h, c.addr...)
	h = append(h, "\r\nUser-Agent: floe-bench\r\n"...)
	if contentType != "" {
		h = append(h, "Content-Type: "...)
		h = append(h, contentType...)
		h = append(h, "\r\n"...)
	}
	h = append(h, "Content-Length: "...)
	h = strconv.AppendInt(h, int64(len(body)), 10)
	h = append(h, "\r\n\r\n"...)
	c.head = h
	var werr error
	if len(body) > 0 && len(body) < 4096 {
		// One small write beats a writev.
		h = append(h, body...)
		c.head = h
		_, werr = c.conn.Write(h)
	} else {
		c.bufs = append(c.bufs[:0], h, body)
		bufs := c.bufs
		_, werr = bufs.WriteTo(c.conn)
	}
	if werr != nil && ctx.Err() == nil {
		// The server may have answered before it read the whole body,
		// and closed the connection (413 for a body over its limit): that
		// answer, when it arrived, says more than the failed write. (Not
		// when the write failed because the request was cancelled.)
		_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
		if status, resp, err := c.readResponse(); err == nil {
			c.close()
			return status, resp, nil
		}
		return 0, nil, werr
	}
	if werr != nil {
		return 0, nil, werr
	}
	return c.readResponse()
}

// readResponse reads one response from the connection.
func (c *rawHTTP) readResponse() (int, []byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, n := parseUint(line[9:])
	if n != 3 {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length, closeConn := -1, false
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(line) <= 2 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case asciiEqualFold(k, "Content-Length"):
			l, n := parseUint(v)
			if n != len(v) {
				return 0, nil, fmt.Errorf("bad Content-Length %q", v)
			}
			length = int(l)
		case asciiEqualFold(k, "Connection"):
			closeConn = asciiEqualFold(v, "close")
		case asciiEqualFold(k, "Transfer-Encoding"):
			return 0, nil, fmt.Errorf("raw client: unsupported Transfer-Encoding %q (use --http-client std)", v)
		}
	}
	if length < 0 {
		if status != 204 && status != 304 && status >= 200 {
			return 0, nil, errors.New("raw client: response without Content-Length (use --http-client std)")
		}
		length = 0
	}
	if cap(c.resp) < length {
		c.resp = make([]byte, length, length+length/4)
	}
	c.resp = c.resp[:length]
	if _, err := io.ReadFull(c.br, c.resp); err != nil {
		return 0, nil, err
	}
	if closeConn {
		c.close()
	}
	return int(status), c.resp, nil
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if x|0x20 != y|0x20 {
			return false
		}
	}
	return true
}
