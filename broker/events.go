package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"
)

// Content types of produce bodies.
const (
	ContentTypeJSON   = "application/json"
	ContentTypeNDJSON = "application/x-ndjson"
)

// Limits bounds the size of produce requests.
type Limits struct {
	MaxRequestBytes int // of a body, or of the events of a request
	MaxEventBytes   int // of one event
}

// SplitBody turns a produce body into its events, validating each one:
// application/json (the default when contentType is empty; parameters are
// accepted, a charset only if UTF-8: see ParseContentType) is one event;
// application/x-ndjson is one event per non-empty line, with an optional
// final newline and CRLF accepted. Events are sub-slices of body, trimmed
// of surrounding JSON whitespace (space, tab, CR, LF); each must be one JSON
// value in UTF-8 (RFC 8259). The error wraps ErrUnsupportedContentType,
// ErrEmptyBody, ErrBodyTooLarge, ErrEventTooLarge or ErrInvalidJSON and, for
// NDJSON, names the line.
func SplitBody(contentType string, body []byte, lim Limits) ([][]byte, error) {
	return splitBody(nil, contentType, body, lim)
}

// splitBody is SplitBody appending the events to dst[:0].
func splitBody(dst [][]byte, contentType string, body []byte, lim Limits) ([][]byte, error) {
	mt, err := ParseContentType(contentType)
	if err != nil {
		return nil, err
	}
	ndjson := mt == ContentTypeNDJSON
	if lim.MaxRequestBytes > 0 && len(body) > lim.MaxRequestBytes {
		return nil, BodyTooLarge(int64(len(body)), int64(lim.MaxRequestBytes))
	}
	if !ndjson {
		ev := trimJSONSpace(body)
		if len(ev) == 0 {
			return nil, fmt.Errorf("%w: the request has no event", ErrEmptyBody)
		}
		if err := checkEvent(ev, lim, leadingJSONSpace(body)); err != nil {
			return nil, err
		}
		return append(dst[:0], ev), nil
	}
	events := dst[:0]
	if n := bytes.Count(body, []byte{'\n'}) + 1; cap(events) < n {
		events = make([][]byte, 0, n)
	}
	for line := 1; len(body) > 0; line++ {
		var ev []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			ev, body = body[:i], body[i+1:]
		} else {
			ev, body = body, nil
		}
		lead := leadingJSONSpace(ev)
		ev = trimJSONSpace(ev) // also drops the \r of CRLF
		if len(ev) == 0 {
			continue
		}
		if err := checkEvent(ev, lim, lead); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		events = append(events, ev)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: the NDJSON body has no non-empty line", ErrEmptyBody)
	}
	return events, nil
}

// ValidateEvents checks events sent one by one (gRPC) as SplitBody checks a
// body's: at least one; the request's size first; then each event, within
// the limits without its surrounding JSON whitespace, and valid JSON.
func ValidateEvents(events [][]byte, lim Limits) error {
	if len(events) == 0 {
		return fmt.Errorf("%w: the request has no event", ErrEmptyBody)
	}
	total := 0
	for _, ev := range events {
		total += len(ev)
	}
	if lim.MaxRequestBytes > 0 && total > lim.MaxRequestBytes {
		return fmt.Errorf("%w: %d bytes of events, the limit is %d bytes", ErrBodyTooLarge, total, lim.MaxRequestBytes)
	}
	for i, ev := range events {
		trimmed := trimJSONSpace(ev)
		if len(trimmed) == 0 {
			return fmt.Errorf("event %d: %w: the event is empty", i, ErrEmptyBody)
		}
		if err := checkEvent(trimmed, lim, leadingJSONSpace(ev)); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	return nil
}

// MaxEventDepth is how deeply an event may nest arrays and objects. A REST
// poll answer embeds each event three levels down (the answer's array, a
// batch object, its values), and common JSON decoders refuse documents
// nested deeper than 1,000 levels (Python's json, Jackson) or 10,000 (Go's
// encoding/json): a deeper event would make the whole answer, its
// neighbours included, undecodable.
const MaxEventDepth = 512

// checkEvent checks one event, trimmed or not. lead is how many bytes of
// its line or body precede it, so that error positions count from the
// start of what the client sent; positions count from 1.
func checkEvent(ev []byte, lim Limits, lead int) error {
	if lim.MaxEventBytes > 0 && len(ev) > lim.MaxEventBytes {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrEventTooLarge, len(ev), lim.MaxEventBytes)
	}
	if !validJSON(ev) {
		return fmt.Errorf("%w: %s", ErrInvalidJSON, describeJSONError(ev, lead))
	}
	if at := tooDeepAt(ev); at >= 0 {
		return fmt.Errorf("%w: nests deeper than %d levels (at byte %d)", ErrInvalidJSON, MaxEventDepth, lead+at+1)
	}
	return nil
}

// tooDeepAt returns the index of the bracket that opens level
// MaxEventDepth+1 of the valid JSON document ev, or -1. A document shorter
// than two brackets per level cannot be that deep, and one with fewer
// opening brackets (in strings or not) neither: only such documents are
// scanned.
func tooDeepAt(ev []byte) int {
	if len(ev) < 2*(MaxEventDepth+1) ||
		bytes.Count(ev, []byte{'['})+bytes.Count(ev, []byte{'{'}) <= MaxEventDepth {
		return -1
	}
	depth, inString := 0, false
	for i := 0; i < len(ev); i++ {
		c := ev[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped character
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			if depth++; depth > MaxEventDepth {
				return i
			}
		case ']', '}':
			depth--
		}
	}
	return -1
}

// leadingJSONSpace counts the JSON whitespace at the start of b.
func leadingJSONSpace(b []byte) int {
	n := 0
	for n < len(b) && isJSONSpace(b[n]) {
		n++
	}
	return n
}

// BodyTooLarge is the error of a produce body of size bytes over limit,
// worded alike on every API.
func BodyTooLarge(size, limit int64) error {
	return fmt.Errorf("%w: %d bytes, the limit is %d bytes", ErrBodyTooLarge, size, limit)
}

// ParseContentType returns the media type of a produce body's content
// type: ContentTypeJSON (also for "", the default) or ContentTypeNDJSON.
// Parameters are accepted, except a charset other than UTF-8: events are
// UTF-8 (JSON is, RFC 8259 section 8.1), and a body said to be in another
// encoding would be read as UTF-8 all the same. The error wraps
// ErrUnsupportedContentType and quotes contentType; the REST gateway and
// the gRPC Produce answer it alike.
func ParseContentType(contentType string) (string, error) {
	switch contentType {
	case "", ContentTypeJSON:
		return ContentTypeJSON, nil
	case ContentTypeNDJSON:
		// What clients send: nothing to parse (ParseMediaType allocates a
		// map of parameters).
		return ContentTypeNDJSON, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %q does not parse (%v); use %s or %s",
			ErrUnsupportedContentType, contentType, err, ContentTypeJSON, ContentTypeNDJSON)
	case mt != ContentTypeJSON && mt != ContentTypeNDJSON:
		return "", fmt.Errorf("%w: %q; use %s or %s", ErrUnsupportedContentType, contentType, ContentTypeJSON, ContentTypeNDJSON)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return "", fmt.Errorf("%w: charset %q in %q: events are JSON in UTF-8; send charset=utf-8 or no charset",
			ErrUnsupportedContentType, cs, contentType)
	}
	return mt, nil
}

// describeJSONError says where an invalid document breaks, counting bytes
// from 1 after the lead bytes that precede ev. It is only called on the
// error path.
func describeJSONError(ev []byte, lead int) string {
	if !utf8.Valid(ev) {
		i := 0
		for i < len(ev) {
			r, n := utf8.DecodeRune(ev[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return fmt.Sprintf("invalid UTF-8 at byte %d", lead+i+1)
	}
	var v any
	err := json.Unmarshal(ev, &v)
	if se, ok := err.(*json.SyntaxError); ok {
		// encoding/json names the offending byte, which for a character
		// beyond ASCII prints as a wrong one ('ï' for a byte order mark):
		// name the whole character instead.
		if at := int(se.Offset) - 1; at >= 0 && at < len(ev) && ev[at] >= utf8.RuneSelf {
			for at > 0 && !utf8.RuneStart(ev[at]) {
				at--
			}
			r, _ := utf8.DecodeRune(ev[at:])
			if r == '\uFEFF' && at == 0 {
				return fmt.Sprintf("the event starts with a byte order mark (U+FEFF), which JSON does not allow (at byte %d)", lead+1)
			}
			return fmt.Sprintf("invalid character %q (U+%04X) (at byte %d)", r, r, lead+at+1)
		}
		return fmt.Sprintf("%v (at byte %d)", se, lead+int(se.Offset)) // Offset: the bytes read, the offending one included
	}
	if err != nil {
		return err.Error()
	}
	return "not a single JSON document"
}

// trimJSONSpace trims JSON's whitespace: space, tab, CR and LF (RFC 8259;
// bytes.TrimSpace would also take Unicode spaces such as U+00A0, which are
// not JSON whitespace).
func trimJSONSpace(b []byte) []byte {
	for len(b) > 0 && isJSONSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isJSONSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
