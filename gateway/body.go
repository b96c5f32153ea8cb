package gateway

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floe-streams/floe/broker"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/server"
)

// rawBody is a request body read whole by limitBody: the decoder of the
// marshaler takes its bytes without copying them. It is its own decoder
// (see marshaler.NewDecoder) and holds its reader, so that a produce
// request allocates nothing else for its body.
type rawBody struct {
	bytes.Reader
	data        []byte
	contentType string
}

func (*rawBody) Close() error { return nil }

// Decode decodes the body into v (see marshaler.NewDecoder).
func (rb *rawBody) Decode(v any) error { return rawBodyMarshaler.decode(rb, v) }

// rawBodyMarshaler decodes rawBodies; its options are every mux's.
var rawBodyMarshaler = newMarshaler()

// limitBody reads the body of produce requests before the gateway decodes
// it: it checks the content type (415), undoes Content-Encoding gzip (415 for
// other encodings, 400 for a corrupt stream), and enforces the request size
// limit (413) both on the wire and decompressed. Chunked bodies are accepted.
// readTimeout is the server's (Options.ReadTimeout), for the message of a
// body that does not arrive in time (408). With mem, the request takes its
// size from it before its body is read (see produceReservation); a body of
// unknown size that outgrows that takes the rest of the limit before more
// of it is read, so that no body holds more than it took. Once read, it
// holds what it holds until it is answered. Each wait lasts at most half
// of readTimeout, then it gets 503.
func limitBody(limit int64, readTimeout time.Duration, mem *broker.ProduceMemory, next http.Handler) http.Handler {
	return limitBodyPaced(limit, readTimeout, mem, heldBodyPace{grace: 5 * time.Second, rate: 512 << 10}, next)
}

// heldBodyPace is how fast a body that holds produce memory must arrive:
// within grace, plus its size at rate bytes/s. The memory is taken before
// the body is read, so without it a client that announced a large body
// and sent it slowly held the memory until the read timeout: 16 such
// connections announcing 4 MiB held the default 64 MiB for 60 s, and every
// other producer waited, then got 503.
type heldBodyPace struct {
	grace time.Duration
	rate  int64
}

// deadline is when a body of n bytes that holds produce memory since now
// must have arrived.
func (p heldBodyPace) deadline(now time.Time, n int64) time.Time {
	return now.Add(p.grace + time.Duration(float64(n)/float64(p.rate)*float64(time.Second)))
}

// limitBodyPaced is limitBody with the pace of bodies that hold produce
// memory (see heldBodyPace).
func limitBodyPaced(limit int64, readTimeout time.Duration, mem *broker.ProduceMemory, pace heldBodyPace, next http.Handler) http.Handler {
	// growing is what the bodies of unknown size that may still grow hold
	// (see grow below): at most the produce memory less the limit, so
	// that the memory the others hold, which they give back without
	// waiting for more, always makes room for one that grows.
	var growing atomic.Int64
	var growRoom int64
	if mem != nil {
		growRoom = mem.Size() - limit
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		arrived := time.Now()
		ct, e := produceContentType(r.Header.Get("Content-Type"))
		if e != nil {
			writeError(w, e)
			return
		}
		var held, mayGrow int64 // mayGrow: of held, counted in growing
		want, known := produceReservation(r, limit)
		if mem != nil && r.ContentLength <= limit { // a larger one is refused unread
			if !known && want < limit {
				// Of unknown size: it takes want, and more as it is read
				// (grow), or the limit when too many may grow already.
				if growing.Add(want) <= growRoom {
					mayGrow = want
				} else {
					growing.Add(-want)
					want = limit
				}
			}
			n, err := mem.Acquire(r.Context(), want, readTimeout/2)
			if err != nil {
				growing.Add(-mayGrow)
				writeError(w, server.ErrorOf(err))
				return
			}
			held = n
			defer func() {
				growing.Add(-mayGrow)
				mem.Release(held)
			}()
		}
		var paced time.Duration // how long the body may take, when paced
		var pacedTo time.Time   // its read deadline
		if mem != nil {
			now := time.Now()
			// The pace counts bytes on the wire: a compressed body of
			// known length is paced as that length, one of unknown
			// length (chunked) as one of the largest size.
			paceOf := r.ContentLength
			if paceOf < 0 {
				paceOf = limit
			}
			// Never later than the server's own read deadline, which
			// counted from a moment before arrived.
			if d := pace.deadline(now, paceOf); d.Before(arrived.Add(readTimeout)) {
				if http.NewResponseController(w).SetReadDeadline(d) == nil {
					paced, pacedTo = d.Sub(now), d
				}
			}
		}
		// grow takes the rest of the limit for a body of unknown size that
		// outgrew what it took: its bytes are held before they are read,
		// as those of a body of known size. The wait does not count in the
		// body's pace.
		var grow func() *floev1.Error
		if mayGrow > 0 {
			grow = func() *floev1.Error {
				start := time.Now()
				n, err := mem.Acquire(r.Context(), limit-held, readTimeout/2)
				if err != nil {
					e := server.ErrorOf(err)
					e.Message += fmt.Sprintf(" (a chunked or compressed body takes %d bytes, then the size limit, %d bytes, once it holds more, until it is read)", held, limit)
					return e
				}
				held += n
				growing.Add(-mayGrow)
				mayGrow = 0
				if paced > 0 {
					d := pacedTo.Add(time.Since(start))
					if !d.Before(arrived.Add(readTimeout)) {
						d, paced = arrived.Add(readTimeout), 0
					}
					if http.NewResponseController(w).SetReadDeadline(d) != nil {
						paced = 0
					}
				}
				return nil
			}
		}
		data, buf, e := readBody(r, limit, readTimeout, mem != nil, held, grow)
		// The paced deadline stays: net/http clears a connection's read
		// deadline when it starts reading it in the background, once the
		// body was read to its end, so it does not cancel a handler that
		// waits for the store longer than the pace.
		if e != nil {
			if paced > 0 && e.GetStatus() == http.StatusRequestTimeout {
				e.Message = fmt.Sprintf("the request body did not arrive within %v: a body holding produce memory must arrive within %v plus 1 s per %d KiB of it",
					paced.Round(time.Millisecond), pace.grace, pace.rate>>10)
				if r.ContentLength < 0 {
					e.Message += fmt.Sprintf("; one of unknown length (chunked) as one of the size limit, %d bytes", limit)
				}
			}
			writeError(w, e)
			return
		}
		if mem != nil {
			// Read: it holds what it holds, the capacity of its buffer.
			if !known {
				// Read by io.ReadAll or a bytes.Buffer, which grow by
				// steps: a body of a pooled size moves to the pool's
				// buffer, which the next request can reuse. A larger one
				// stays where it is, and holds its buffer's capacity
				// (moving it would allocate as much again), unless that
				// is more than it took.
				c := bodyBuffer(int64(len(data)), limit)
				if _, pooled := bodyPool(int(c)); (pooled && c <= held) || int64(cap(data)) > held {
					if !pooled || c > held {
						c = int64(len(data))
					}
					moved, movedBuf := getBuf(len(data), int(c))
					copy(moved, data)
					putBuf(buf)
					data, buf = moved, movedBuf
				}
			}
			if excess := held - int64(cap(data)); excess > 0 {
				mem.Release(excess)
				held -= excess
			}
			growing.Add(-mayGrow)
			mayGrow = 0
		}
		rb := &rawBody{data: data, contentType: ct}
		rb.Reset(data)
		r.Body = rb
		r.ContentLength = int64(len(data))
		r.Header.Del("Content-Encoding")
		// The generated handler reads the parameters from r.Form, which
		// its ParseForm leaves as set here (a query that does not parse
		// is left to it, for its error).
		if q, err := url.ParseQuery(r.URL.RawQuery); err == nil {
			keepKnownParams(q)
			r.Form, r.PostForm = q, url.Values{}
		}
		next.ServeHTTP(w, r)
		// The request is answered: nothing holds its events any more (the
		// store does not read them after Append returns, and Pebble copied
		// them into its batch).
		putBuf(buf)
	})
}

// produceReservation is what a produce request takes from the produce
// memory before its body is read, and whether that is all it will hold: the
// buffer its Content-Length is read into (bodyBuffer), or, for a body whose
// size is not known before it is read (chunked, or compressed), its
// Content-Length or 64 KiB, whichever is more (limitBody takes the rest of
// the limit if it outgrows that, before reading more of it). Taking the
// limit for those (4 MiB by default) let 16 chunked requests of any size
// fill the default 64 MiB. Taking the rest once the body was read let
// bodies of any number of such requests be read past the bound, and
// requests holding 64 KiB each wait for each other.
func produceReservation(r *http.Request, limit int64) (want int64, known bool) {
	switch strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))) {
	case "", "identity":
		if r.ContentLength >= 0 {
			return bodyBuffer(r.ContentLength, limit), true
		}
	}
	return min(limit, max(r.ContentLength, 64<<10)), false
}

// Request bodies of up to maxPooledBody bytes are read into pooled buffers:
// at hundreds of MB/s of produce, allocating each body was a large share of
// the garbage. Larger bodies are rare and allocated. There is one pool per
// power of two from minPooledBody, and a body's buffer is the smallest that
// holds it (bodyBuffer): that capacity is what it takes from the produce
// memory. With one pool of mixed sizes, a one-event body could be read into
// a buffer of 1 MiB, and every small body took 64 KiB while it counted its
// Content-Length: 2,000 one-event requests held 125 MiB and counted 400 KB.
const (
	minPooledShift = 10
	maxPooledShift = 20
	minPooledBody  = 1 << minPooledShift
	maxPooledBody  = 1 << maxPooledShift
)

var bodyPools [maxPooledShift - minPooledShift + 1]sync.Pool // of *[]byte

// bodyBuffer is the capacity of the buffer that a body of n bytes is read
// into, under the size limit: the power of two that holds it, from
// minPooledBody to maxPooledBody, or n for a larger body and where the
// power of two would be over the limit (a body may take all of the produce
// memory, which is at least the limit, but not more).
func bodyBuffer(n, limit int64) int64 {
	if n <= 0 || n > maxPooledBody {
		return max(n, 0)
	}
	c := max(int64(1)<<bits.Len64(uint64(n-1)), minPooledBody)
	if c > limit {
		return n
	}
	return c
}

// bodyPool is the pool of buffers of capacity c, if there is one.
func bodyPool(c int) (*sync.Pool, bool) {
	if c < minPooledBody || c > maxPooledBody || c&(c-1) != 0 {
		return nil, false
	}
	return &bodyPools[bits.TrailingZeros(uint(c))-minPooledShift], true
}

// getBuf returns a buffer of length n and capacity c (at least n), pooled
// when c is the size of a pool, and the handle to give it back with
// (putBuf; nil for a buffer that is not to be pooled). Putting back the
// handle taken from the pool, rather than a new pointer to the slice,
// spares an allocation per request.
func getBuf(n, c int) ([]byte, *[]byte) {
	c = max(c, n)
	pool, ok := bodyPool(c)
	if !ok {
		return make([]byte, n, c), nil
	}
	if p, ok := pool.Get().(*[]byte); ok {
		return (*p)[:n], p
	}
	b := make([]byte, n, c)
	return b, &b
}

// putBuf returns a buffer from getBuf to its pool, by its handle.
func putBuf(p *[]byte) {
	if p == nil {
		return
	}
	if pool, ok := bodyPool(cap(*p)); ok {
		*p = (*p)[:0]
		pool.Put(p)
	}
}

// produceContentType is the media type of a produce request's
// Content-Type header (broker.ParseContentType), or the error that refuses
// it, with a hint for curl users who forgot the header.
func produceContentType(header string) (string, *floev1.Error) {
	mt, err := broker.ParseContentType(header)
	if err == nil {
		return mt, nil
	}
	e := server.ErrorOf(err)
	if mt, _, _ := mime.ParseMediaType(header); mt == "application/x-www-form-urlencoded" {
		e.Message += " (curl -d sends a form unless given -H 'Content-Type: application/json')"
	}
	return "", e
}

// readBody returns the body and the handle to give its buffer back with
// (putBuf) once nothing refers to the body any more. reserved says that the
// request took its Content-Length from the produce memory.
//
// With grow, the body is read up to room bytes, and grow is called before
// more of it is (a body of unknown size whose produce memory grows as it is
// read): what it returns refuses the request.
func readBody(r *http.Request, limit int64, readTimeout time.Duration, reserved bool, room int64, grow func() *floev1.Error) ([]byte, *[]byte, *floev1.Error) {
	tooLarge := func() *floev1.Error {
		return newError(floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("request body too large: the limit is %d bytes", limit))
	}
	if r.ContentLength > limit {
		// The size is known: the message is the one gRPC's Produce gives.
		return nil, nil, server.ErrorOf(broker.BodyTooLarge(r.ContentLength, limit))
	}
	var body io.Reader = r.Body
	var wire *wireBody // set for gzip: tells wire errors from decoding errors
	// decodeError classifies an error of the gzip path: the wire limit
	// (413), the request body's own read error, or a stream that does not
	// decode (400).
	decodeError := func(err error) *floev1.Error {
		switch {
		case errors.Is(err, errWireTooLarge):
			return tooLarge()
		case wire.err != nil:
			return readError(wire.err, readTimeout)
		}
		return badEncoding(err)
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		wire = &wireBody{r: r.Body, left: limit}
		zr, err := gzip.NewReader(wire)
		if err != nil {
			return nil, nil, decodeError(err)
		}
		defer zr.Close()
		body = zr
	default:
		return nil, nil, newError(floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, http.StatusUnsupportedMediaType,
			fmt.Sprintf("unsupported content encoding %q: use gzip or none", enc))
	}
	// Content-Length is trusted for buffers of up to maxPooledBody, and for
	// any body whose length the produce memory reserved: otherwise larger
	// bodies grow as their bytes arrive, so that idle connections that
	// announce big bodies cannot hold memory. Growing took up to twice the
	// body's size.
	if r.ContentLength > 0 && (r.ContentLength <= maxPooledBody || reserved) && wire == nil {
		data, buf := getBuf(int(r.ContentLength), int(bodyBuffer(r.ContentLength, limit)))
		if _, err := io.ReadFull(body, data); err != nil {
			putBuf(buf)
			return nil, nil, readError(err, readTimeout)
		}
		return data, buf, nil
	}
	first := limit
	if grow != nil {
		first = min(room, limit)
	}
	data, err := io.ReadAll(io.LimitReader(body, first+1))
	if err == nil && int64(len(data)) > first && first < limit {
		if e := grow(); e != nil {
			return nil, nil, e
		}
		b := bytes.NewBuffer(data)
		_, err = b.ReadFrom(io.LimitReader(body, limit-int64(len(data))+1))
		data = b.Bytes()
	}
	if err != nil {
		if wire != nil {
			return nil, nil, decodeError(err)
		}
		return nil, nil, readError(err, readTimeout)
	}
	if int64(len(data)) > limit {
		return nil, nil, tooLarge()
	}
	return data, &data, nil
}

// errWireTooLarge: a compressed body is over the limit on the wire.
var errWireTooLarge = errors.New("request body over the limit on the wire")

// wireBody reads a compressed request body for its decoder: it fails with
// errWireTooLarge past left bytes (a body of unknown length is cut there, as
// a declared length over the limit is refused), and keeps the body's own read
// error apart from the decoder's.
type wireBody struct {
	r    io.Reader
	left int64
	err  error
}

func (w *wireBody) Read(p []byte) (int, error) {
	if w.left < 0 {
		return 0, errWireTooLarge
	}
	if int64(len(p)) > w.left+1 {
		p = p[:w.left+1]
	}
	n, err := w.r.Read(p)
	w.left -= int64(n)
	if w.left < 0 {
		return n, errWireTooLarge
	}
	if err != nil && err != io.EOF {
		w.err = err
	}
	return n, err
}

func badEncoding(err error) *floev1.Error {
	return newError(floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, http.StatusBadRequest,
		fmt.Sprintf("the gzip body does not decode: %v", err))
}

// readError is the answer to a request body that could not be read. The
// server's read timeout (a deadline on the connection, which net/http sets
// for HTTP/1.x and HTTP/2 alike) is a timeout of the client's upload: 408.
// Other errors are the connection's (the client is usually gone): their
// message leaves out the socket addresses net.OpError adds.
func readError(err error, readTimeout time.Duration) *floev1.Error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return newError(floev1.ErrorCode_ERROR_CODE_TIMEOUT, http.StatusRequestTimeout,
			fmt.Sprintf("the request body did not arrive within %s s, the server's read timeout for a whole request",
				strconv.FormatFloat(readTimeout.Seconds(), 'f', -1, 64)))
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	return newError(floev1.ErrorCode_ERROR_CODE_INVALID_PARAMETER, http.StatusBadRequest,
		fmt.Sprintf("reading the request body: %v", err))
}

// emptyBody says whether a body of unknown length (chunked) turns out
// empty. It reads its first byte, which a body that is not empty loses:
// call it only for one refused otherwise.
func emptyBody(r *http.Request) bool {
	var b [1]byte
	n, err := io.ReadFull(r.Body, b[:])
	return n == 0 && err == io.EOF
}

// decodeConsumerBody undoes the Content-Encoding of a consumer route's
// body (a form, or register's JSON) as limitBody does for produce: gzip is
// decoded, and another encoding gets 415, rather than the encoded bytes
// being read as parameters, which answered a misleading 400 ("consumerId
// is required", "invalid character '\x1f'") or, for a body that was not
// really encoded, read it anyway. The decoded body is cut one byte past
// maxFormBody, so that the form and register limits (413) still apply to
// it. readTimeout is the server's, for the message of a body that does not
// arrive in time.
func decodeConsumerBody(readTimeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
		if enc == "" || enc == "identity" || !strings.Contains(consumerRoutes(r.URL.Path), r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		noBody := func() {
			// Nothing to decode, whatever the encoding would be.
			r.Header.Del("Content-Encoding")
			r.Body, r.ContentLength = http.NoBody, 0
			next.ServeHTTP(w, r)
		}
		if r.ContentLength == 0 {
			noBody()
			return
		}
		if enc != "gzip" && enc != "x-gzip" {
			if r.ContentLength < 0 && emptyBody(r) {
				noBody()
				return
			}
			writeError(w, newError(floev1.ErrorCode_ERROR_CODE_UNSUPPORTED_CONTENT_ENCODING, http.StatusUnsupportedMediaType,
				fmt.Sprintf("unsupported content encoding %q: use gzip or none", enc)))
			return
		}
		var data []byte
		if r.ContentLength != 0 {
			wire := &wireBody{r: r.Body, left: maxFormBody}
			zr, err := gzip.NewReader(wire)
			if err == nil {
				data, err = io.ReadAll(io.LimitReader(zr, maxFormBody+1))
			}
			switch {
			case errors.Is(err, io.EOF) && wire.left == maxFormBody:
				// No byte at all (a chunked empty body): nothing to decode.
			case errors.Is(err, errWireTooLarge):
				what := "form"
				if r.URL.Path == "/v1/consumer/register" {
					what = "register"
				}
				writeError(w, newError(floev1.ErrorCode_ERROR_CODE_BODY_TOO_LARGE, http.StatusRequestEntityTooLarge,
					fmt.Sprintf("%s body too large: the limit is %d bytes", what, maxFormBody)))
				return
			case wire.err != nil:
				writeError(w, readError(wire.err, readTimeout))
				return
			case err != nil:
				writeError(w, badEncoding(err))
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(data))
		r.ContentLength = int64(len(data))
		r.Header.Del("Content-Encoding")
		next.ServeHTTP(w, r)
	})
}
