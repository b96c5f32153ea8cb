package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzValidJSONAgreesWithStdlib checks the fast validator against
// encoding/json (plus the UTF-8 rule) on any input, nesting limit included.
func FuzzValidJSONAgreesWithStdlib(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `0`, `-0.5e+10`, `"a\u00e9\n"`, `{"a":[1,true,null,{"b":"c"}]}`,
		`{"a":`, `[1,]`, `{"a" 1}`, `01`, `1.`, `.5`, `"\x"`, `"\u12"`, "\"\x01\"", `tru`, `nul`,
		`{"a":1}{"b":2}`, " \t\r\n[ ]\n", "\"\xff\"", "\"\xed\xa0\x80\"", `"\ud800"`, `1e`, `-`, `[`,
		`{"seq":1,"pad":"` + string(bytes.Repeat([]byte("xY+/="), 40)) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := utf8.Valid(b) && json.Valid(b)
		if got := validJSON(b); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	ev := []byte(`{"seq":123456,"ts":1763700000123456789,"key":"k-7","pad":"` + string(bytes.Repeat([]byte("q83v+Zx/"), 20)) + `"}`)
	for _, v := range []struct {
		name string
		fn   func([]byte) bool
	}{
		{"validJSON", validJSON},
		{"encoding-json+utf8", func(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }},
	} {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(len(ev)))
			b.ReportAllocs()
			for b.Loop() {
				if !v.fn(ev) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

func TestValidJSONControlCharacters(t *testing.T) {
	for _, tc := range []struct {
		ev   string
		want bool
	}{
		{"\"\x00\"", false},
		{"{\"a\":\"x\ty\"}", false}, // raw tab inside a string
		{"{\"a\":\"x\ny\"}", false},
		{"{\n\t\"a\": \"x\\ty\"\r\n}", true}, // control bytes as whitespace, escaped tab
		{"[1,\x01 2]", false},
		{`{"a":"no control at all"}`, true},
	} {
		if got := validJSON([]byte(tc.ev)); got != tc.want {
			t.Errorf("validJSON(%q) = %v, want %v", tc.ev, got, tc.want)
		}
	}
	for i := range 0x20 {
		ev := []byte(`{"a":"xx"}`)
		ev[7] = byte(i)
		if validJSON(ev) {
			t.Errorf("validJSON(%q) = true, want false: raw control byte %#x in a string", ev, i)
		}
	}
}

// TestValidJSONDeepNesting holds deeply nested events to encoding/json's
// limit of 10000 levels, and checks that the largest event made only of "["
// is rejected: a validator whose error path grows with the square of the
// depth would not return from it in any useful time, and this test would hit
// the test timeout.
func TestValidJSONDeepNesting(t *testing.T) {
	nested := func(depth int) []byte {
		return append(bytes.Repeat([]byte("["), depth), bytes.Repeat([]byte("]"), depth)...)
	}
	for _, tc := range []struct {
		name string
		ev   []byte
		want bool
	}{
		{"10000 levels", nested(10000), true},
		{"10001 levels", nested(10001), false},
		{"1 MiB of [", bytes.Repeat([]byte("["), DefaultMaxEventBytes), false},
		{"1 MiB of {\"a\":", bytes.Repeat([]byte(`{"a":`), DefaultMaxEventBytes/5), false},
	} {
		if got := validJSON(tc.ev); got != tc.want {
			t.Errorf("%s: validJSON = %v, want %v", tc.name, got, tc.want)
		}
		if want := json.Valid(tc.ev); want != tc.want {
			t.Errorf("%s: encoding/json.Valid = %v, the test expects %v", tc.name, want, tc.want)
		}
	}
	err := checkEvent(nested(10001), Limits{})
	if !errors.Is(err, ErrInvalidJSON) || !strings.Contains(err.Error(), "exceeded max depth") {
		t.Errorf("checkEvent of 10001 levels: %v, want %v naming the depth", err, ErrInvalidJSON)
	}
}
