package broker_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/floe-streams/floe/broker"
)

var noLimits = broker.Limits{}

func TestSplitBodyJSON(t *testing.T) {
	for _, ct := range []string{"", "application/json", "application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8"} {
		body := []byte(" \r\n{\"productId\": 123, \"units\": -5}\n\t")
		events, err := broker.SplitBody(ct, body, noLimits)
		if err != nil {
			t.Fatalf("content type %q: %v", ct, err)
		}
		if len(events) != 1 || string(events[0]) != `{"productId": 123, "units": -5}` {
			t.Fatalf("content type %q: events %q", ct, events)
		}
		checkSubSlices(t, body, events)
	}
	// A JSON body is one event, whatever its lines: an array is one event,
	// and so is a multi-line object.
	for body, want := range map[string]string{
		"[1,2,3]":           "[1,2,3]",
		"{\n \"a\": 1\n}\n": "{\n \"a\": 1\n}",
		`"just a string"`:   `"just a string"`,
		"42":                "42",
		"null":              "null",
	} {
		events, err := broker.SplitBody("application/json", []byte(body), noLimits)
		if err != nil || len(events) != 1 || string(events[0]) != want {
			t.Errorf("SplitBody(json, %q) = %q, %v; want [%q]", body, events, err, want)
		}
	}
}

func TestSplitBodyNDJSON(t *testing.T) {
	cases := []struct {
		body string
		want []string
	}{
		{"{\"a\":1}", []string{`{"a":1}`}},
		{"{\"a\":1}\n", []string{`{"a":1}`}},
		{"{\"a\":1}\n{\"a\":2}", []string{`{"a":1}`, `{"a":2}`}},
		{"{\"a\":1}\r\n{\"a\":2}\r\n", []string{`{"a":1}`, `{"a":2}`}},
		{"\n\n {\"a\":1} \n\r\n\t\n[2]\n\n", []string{`{"a":1}`, `[2]`}},
		{"1\n\"two\"\nnull\ntrue\n[]\n{}", []string{"1", `"two"`, "null", "true", "[]", "{}"}},
	}
	for _, ct := range []string{"application/x-ndjson", "application/x-ndjson; charset=utf-8"} {
		for _, tc := range cases {
			events, err := broker.SplitBody(ct, []byte(tc.body), noLimits)
			if err != nil {
				t.Errorf("SplitBody(%q, %q): %v", ct, tc.body, err)
				continue
			}
			got := make([]string, len(events))
			for i, e := range events {
				got[i] = string(e)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("SplitBody(%q, %q) = %q, want %q", ct, tc.body, got, tc.want)
			}
		}
	}
}

func TestSplitBodyErrors(t *testing.T) {
	lim := broker.Limits{MaxRequestBytes: 100, MaxEventBytes: 20}
	big := `{"a":"` + strings.Repeat("x", 20) + `"}`
	cases := []struct {
		name, ct, body string
		want           error
		mention        string // in the message
	}{
		{"empty json", "application/json", "", broker.ErrEmptyBody, "no event"},
		{"blank json", "", " \r\n\t", broker.ErrEmptyBody, "no event"},
		{"empty ndjson", "application/x-ndjson", "", broker.ErrEmptyBody, "no non-empty line"},
		{"blank ndjson", "application/x-ndjson", "\n \r\n\n", broker.ErrEmptyBody, "no non-empty line"},
		{"invalid json", "application/json", `{"a":`, broker.ErrInvalidJSON, "at byte"},
		{"two documents", "application/json", `{"a":1} {"b":2}`, broker.ErrInvalidJSON, "invalid JSON"},
		{"ndjson as json", "application/json", "{\"a\":1}\n{\"a\":2}", broker.ErrInvalidJSON, "invalid JSON"},
		{"bad first line", "application/x-ndjson", "nope\n{}", broker.ErrInvalidJSON, "line 1:"},
		{"bad last line", "application/x-ndjson", "{}\n[1]\n{\"a\":", broker.ErrInvalidJSON, "line 3:"},
		{"blank lines count", "application/x-ndjson", "\n\r\n{}\n\nx\n", broker.ErrInvalidJSON, "line 5:"},
		{"two documents on a line", "application/x-ndjson", "{}\n{} {}\n", broker.ErrInvalidJSON, "line 2:"},
		{"event too large json", "application/json", big, broker.ErrEventTooLarge, "limit is 20"},
		{"event too large mid batch", "application/x-ndjson", "{}\n" + big + "\n{}", broker.ErrEventTooLarge, "line 2:"},
		{"body too large", "application/x-ndjson", strings.Repeat("{}\n", 40), broker.ErrBodyTooLarge, "limit is 100"},
		{"text/plain", "text/plain", "{}", broker.ErrUnsupportedContentType, "text/plain"},
		{"form", "application/x-www-form-urlencoded", "{}", broker.ErrUnsupportedContentType, "form-urlencoded"},
		{"malformed content type", "application/json;;=", "{}", broker.ErrUnsupportedContentType, "unsupported"},
		{"json prefix", "application/jsonl", "{}", broker.ErrUnsupportedContentType, "jsonl"},
		// RFC 8259: JSON text is UTF-8, and its whitespace is space, tab,
		// CR and LF only. A poll answer embeds events raw: one invalid
		// byte would make the whole answer unreadable to strict clients.
		{"invalid UTF-8 in a string", "application/json", "{\"a\":\"\xff\"}", broker.ErrInvalidJSON, "UTF-8"},
		{"invalid UTF-8 on a line", "application/x-ndjson", "{}\n[\"\xed\xa0\x80\"]\n", broker.ErrInvalidJSON, "line 2: invalid JSON: invalid UTF-8 at byte 3"},
		{"no-break space around an event", "application/json", "\u00a0{}", broker.ErrInvalidJSON, "invalid JSON"},
		// encoding/json names a byte; the error names the character.
		{"a character beyond ASCII", "application/json", `{"a":é}`, broker.ErrInvalidJSON, "invalid character 'é' (U+00E9) (at byte 6)"},
		{"a byte order mark", "application/json", "\ufeff{}", broker.ErrInvalidJSON, "starts with a byte order mark (U+FEFF)"},
		// Positions count from 1, from the start of the line or body as
		// sent, whitespace included, whatever the error.
		{"position of a syntax error", "application/x-ndjson", "{}\n   nope\n", broker.ErrInvalidJSON, "line 2: invalid JSON: invalid character 'o' in literal null (expecting 'u') (at byte 5)"},
		{"position of invalid UTF-8", "application/json", "  \xff", broker.ErrInvalidJSON, "invalid UTF-8 at byte 3"},
		{"position of a character", "application/json", " \u00e9", broker.ErrInvalidJSON, "(U+00E9) (at byte 2)"},
		{"position of a byte order mark", "application/x-ndjson", "{}\n \ufeff{}", broker.ErrInvalidJSON, "line 2: invalid JSON: the event starts with a byte order mark (U+FEFF), which JSON does not allow (at byte 2)"},
		{"vertical tab before an event", "application/x-ndjson", "{}\n\v{}\n", broker.ErrInvalidJSON, "line 2"},
		{"form feed after an event", "application/x-ndjson", "{}\f\n", broker.ErrInvalidJSON, "line 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events, err := broker.SplitBody(tc.ct, []byte(tc.body), lim)
			if !errors.Is(err, tc.want) {
				t.Fatalf("SplitBody(%q, %q) = %q, %v; want %v", tc.ct, tc.body, events, err, tc.want)
			}
			if events != nil {
				t.Errorf("events %q returned with the error", events)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

// TestSplitBodyLimitsAreInclusive: a body or event of exactly the limit is
// accepted.
func TestSplitBodyLimitsAreInclusive(t *testing.T) {
	ev := `{"a":"` + strings.Repeat("x", 12) + `"}` // 20 bytes
	body := ev + "\n" + ev                          // 41 bytes
	lim := broker.Limits{MaxRequestBytes: len(body), MaxEventBytes: len(ev)}
	events, err := broker.SplitBody("application/x-ndjson", []byte(body), lim)
	if err != nil || len(events) != 2 {
		t.Fatalf("at the limits: %q, %v", events, err)
	}
	// Surrounding whitespace does not count against the event limit.
	if _, err := broker.SplitBody("application/x-ndjson", []byte("   "+ev+"  \r\n"), lim); err != nil {
		t.Errorf("padded event: %v", err)
	}
	lim.MaxRequestBytes--
	if _, err := broker.SplitBody("application/x-ndjson", []byte(body), lim); !errors.Is(err, broker.ErrBodyTooLarge) {
		t.Errorf("one byte over the request limit: %v", err)
	}
}

func TestValidateEvents(t *testing.T) {
	lim := broker.Limits{MaxRequestBytes: 30, MaxEventBytes: 12}
	// The event limit, as for a body's, counts the event without its
	// surrounding whitespace: "0123456789" is 12 bytes.
	ok := [][]byte{[]byte(`{"a":1}`), []byte(` [1] `), []byte("\t\"0123456789\"\r\n")}
	if err := broker.ValidateEvents(ok, lim); err != nil {
		t.Fatalf("valid events: %v", err)
	}
	for _, tc := range []struct {
		name    string
		events  [][]byte
		want    error
		mention string
	}{
		{"none", nil, broker.ErrEmptyBody, "no event"},
		{"empty event", [][]byte{[]byte(`{}`), []byte(" ")}, broker.ErrEmptyBody, "event 1"},
		{"invalid", [][]byte{[]byte(`{}`), []byte(`{}`), []byte(`{`)}, broker.ErrInvalidJSON, "event 2"},
		{"two documents", [][]byte{[]byte("{}\n{}")}, broker.ErrInvalidJSON, "event 0"},
		{"event too large", [][]byte{[]byte(`"` + strings.Repeat("x", 12) + `"`)}, broker.ErrEventTooLarge, "event 0"},
		{"request too large", [][]byte{[]byte(`"0123456789"`), []byte(`"0123456789"`), []byte(`"0123456789"`)}, broker.ErrBodyTooLarge, "limit is 30"},
		// As for a body: the request's size before its events.
		{"request too large, an event invalid", [][]byte{[]byte(`{`), []byte(`"0123456789"`), []byte(`"0123456789"`), []byte(`"0123456789"`)}, broker.ErrBodyTooLarge, "limit is 30"},
		{"invalid, where it is sent", [][]byte{[]byte("  {x")}, broker.ErrInvalidJSON, "at byte 4"},
	} {
		err := broker.ValidateEvents(tc.events, lim)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, err, tc.want, tc.mention)
		}
	}
}

// checkSubSlices checks that events are sub-slices of body (no copy), in
// order and disjoint.
func checkSubSlices(t testing.TB, body []byte, events [][]byte) {
	t.Helper()
	if len(body) == 0 {
		return
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(body)))
	prevEnd := uintptr(0)
	for i, ev := range events {
		if len(ev) == 0 {
			t.Fatalf("event %d is empty", i)
		}
		off := uintptr(unsafe.Pointer(unsafe.SliceData(ev))) - base
		if off >= uintptr(len(body)) || off+uintptr(len(ev)) > uintptr(len(body)) {
			t.Fatalf("event %d %q is not a sub-slice of the body", i, ev)
		}
		if off < prevEnd {
			t.Fatalf("event %d %q overlaps or precedes the previous event", i, ev)
		}
		prevEnd = off + uintptr(len(ev))
	}
}

// splitOracle is an independent statement of SplitBody's contract for the
// two accepted content types: the events it must return, or the sentinel
// and (for NDJSON) the 1-based line of the first bad line.
func splitOracle(ndjson bool, body []byte, lim broker.Limits) (events [][]byte, want error, line int) {
	if lim.MaxRequestBytes > 0 && len(body) > lim.MaxRequestBytes {
		return nil, broker.ErrBodyTooLarge, 0
	}
	check := func(ev []byte) error {
		if lim.MaxEventBytes > 0 && len(ev) > lim.MaxEventBytes {
			return broker.ErrEventTooLarge
		}
		if !validJSONText(ev) {
			return broker.ErrInvalidJSON
		}
		return nil
	}
	if !ndjson {
		ev := trimJSONSpace(body)
		if len(ev) == 0 {
			return nil, broker.ErrEmptyBody, 0
		}
		if err := check(ev); err != nil {
			return nil, err, 0
		}
		return [][]byte{ev}, nil, 0
	}
	for i, l := range bytes.Split(body, []byte("\n")) {
		ev := trimJSONSpace(l)
		if len(ev) == 0 {
			continue
		}
		if err := check(ev); err != nil {
			return nil, err, i + 1
		}
		events = append(events, ev)
	}
	if len(events) == 0 {
		return nil, broker.ErrEmptyBody, 0
	}
	return events, nil, 0
}

// trimJSONSpace trims JSON's whitespace (RFC 8259: space, tab, CR, LF).
func trimJSONSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

// validJSONText is RFC 8259 JSON text: one value, in UTF-8.
func validJSONText(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }

var sentinels = []error{
	broker.ErrUnsupportedContentType, broker.ErrEmptyBody, broker.ErrBodyTooLarge,
	broker.ErrEventTooLarge, broker.ErrInvalidJSON,
}

var fuzzContentTypes = []string{
	"", "application/json", "application/x-ndjson", "application/x-ndjson; charset=utf-8",
	"application/json; charset=utf-8", "text/plain", "application/x-ndjson;;",
	"application/json; charset=latin1", "application/x-ndjson; charset=UTF-16",
}

func FuzzSplitBody(f *testing.F) {
	seeds := []string{
		`{"productId": 123, "units": -5}`,
		"{\"a\":1}\n{\"a\":2}\n",
		"{\"a\":1}\r\n\r\n{\"a\":2}",
		"\n\n",
		"",
		"{\"a\":1}\nnope\n",
		"[1,2]\n\"x\"\n3\nnull",
		"{\"a\":\"\xff\"}",
		"\xc2\xa0{}\n\v[1]\f",
		"{} {}\n{}",
		`{"a":"` + strings.Repeat("x", 300) + `"}`,
		"\"\\u0000\"\n\"\\ud800\"",
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s), uint16(0), uint16(0))
		f.Add(uint8(i+1), []byte(s), uint16(64), uint16(16))
	}
	f.Fuzz(func(t *testing.T, ct uint8, body []byte, maxReq, maxEvent uint16) {
		contentType := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]
		lim := broker.Limits{MaxRequestBytes: int(maxReq), MaxEventBytes: int(maxEvent)}
		orig := bytes.Clone(body)
		events, err := broker.SplitBody(contentType, body, lim)
		if !bytes.Equal(body, orig) {
			t.Fatalf("SplitBody modified its input")
		}
		if err != nil {
			if events != nil {
				t.Fatalf("events %q returned with error %v", events, err)
			}
			matched := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					matched++
				}
			}
			if matched != 1 {
				t.Fatalf("error %v wraps %d sentinels, want 1", err, matched)
			}
		}
		ndjson := strings.HasPrefix(contentType, broker.ContentTypeNDJSON)
		if !ndjson && contentType != "" && !strings.HasPrefix(contentType, broker.ContentTypeJSON) ||
			strings.HasSuffix(contentType, ";;") ||
			strings.Contains(contentType, "charset=") && !strings.HasSuffix(strings.ToLower(contentType), "charset=utf-8") {
			if !errors.Is(err, broker.ErrUnsupportedContentType) {
				t.Fatalf("content type %q: %v, want ErrUnsupportedContentType", contentType, err)
			}
			return
		}
		wantEvents, wantErr, wantLine := splitOracle(ndjson, body, lim)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("SplitBody(%q, %q, %+v) = %v, want %v", contentType, body, lim, err, wantErr)
			}
			if wantLine > 0 && !strings.HasPrefix(err.Error(), fmt.Sprintf("line %d: ", wantLine)) {
				t.Fatalf("error %q does not name line %d", err, wantLine)
			}
			return
		}
		if err != nil {
			t.Fatalf("SplitBody(%q, %q, %+v): %v, want %d events", contentType, body, lim, err, len(wantEvents))
		}
		if len(events) != len(wantEvents) {
			t.Fatalf("%d events, want %d (one per non-blank line)", len(events), len(wantEvents))
		}
		checkSubSlices(t, body, events)
		for i, ev := range events {
			if !bytes.Equal(ev, wantEvents[i]) {
				t.Fatalf("event %d = %q, want %q", i, ev, wantEvents[i])
			}
			if !validJSONText(ev) || !bytes.Equal(ev, trimJSONSpace(ev)) {
				t.Fatalf("event %d %q is not valid JSON text without surrounding whitespace", i, ev)
			}
			if ndjson && bytes.IndexByte(ev, '\n') >= 0 {
				t.Fatalf("NDJSON event %d %q holds a newline", i, ev)
			}
			if lim.MaxEventBytes > 0 && len(ev) > lim.MaxEventBytes {
				t.Fatalf("event %d of %d bytes is over the limit %d", i, len(ev), lim.MaxEventBytes)
			}
		}
	})
}

// ndjsonBody is n events of about size bytes each, one per line.
func ndjsonBody(n, size int) []byte {
	var b bytes.Buffer
	for i := range n {
		ev := fmt.Sprintf(`{"id":%d,"customer":"c-%05d","items":[{"sku":"A-1","qty":2},{"sku":"B-22","qty":1}],"note":"`, i, i)
		b.WriteString(ev)
		b.WriteString(strings.Repeat("x", max(0, size-len(ev)-3)))
		b.WriteString("\"}\n")
	}
	return b.Bytes()
}

func BenchmarkSplitBody(b *testing.B) {
	for _, bc := range []struct {
		name, ct string
		body     []byte
	}{
		{"ndjson-100x200B", broker.ContentTypeNDJSON, ndjsonBody(100, 200)},
		{"json-1x200B", broker.ContentTypeJSON, bytes.TrimSpace(ndjsonBody(1, 200))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			lim := broker.Limits{MaxRequestBytes: broker.DefaultMaxRequestBytes, MaxEventBytes: broker.DefaultMaxEventBytes}
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				if _, err := broker.SplitBody(bc.ct, bc.body, lim); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJSONValid is the validator SplitBody uses (encoding/json.Valid)
// on one 200-byte event, for comparison with other validators.
func BenchmarkJSONValid(b *testing.B) {
	ev := bytes.TrimSpace(ndjsonBody(1, 200))
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		if !json.Valid(ev) {
			b.Fatal("invalid")
		}
	}
}

// A poll answer nests each event 3 levels deeper: past
// broker.MaxEventDepth levels it would not decode in common clients.
func TestSplitBodyNestingLimit(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, tc := range []struct {
		name, ct, body, want string
	}{
		{"at the limit", "application/json", deep(broker.MaxEventDepth), ""},
		{"one over", "application/json", deep(broker.MaxEventDepth + 1), "invalid JSON: nests deeper than 512 levels (at byte 513)"},
		{"one over on a line", "application/x-ndjson", "{}\n " + strings.Repeat(`{"a":[`, 257) + strings.Repeat("]}", 257),
			"line 2: invalid JSON: nests deeper than 512 levels (at byte 1538)"},
	} {
		events, err := broker.SplitBody(tc.ct, []byte(tc.body), broker.Limits{})
		if tc.want == "" {
			if err != nil || len(events) != 1 {
				t.Errorf("%s: %d events, %v", tc.name, len(events), err)
			}
			continue
		}
		if !errors.Is(err, broker.ErrInvalidJSON) || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
