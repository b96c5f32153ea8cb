package broker

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzValidJSONAgreesWithStdlib checks the fast validator against
// encoding/json (plus the UTF-8 rule) on any input. The one known
// difference is nesting deeper than encoding/json's limit of 10000, which
// fastjson accepts; such inputs are skipped.
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
		if bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) > 9000 {
			t.Skip("nesting limits differ")
		}
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
		{`{"a":"no control at all, long enough for the word loop"}`, true},
	} {
		if got := validJSON([]byte(tc.ev)); got != tc.want {
			t.Errorf("validJSON(%q) = %v, want %v", tc.ev, got, tc.want)
		}
	}
	for i := range 256 {
		b := bytes.Repeat([]byte{'a'}, 19)
		b[i%19] = byte(i)
		if got, want := hasControl(b), i < 0x20; got != want {
			t.Errorf("hasControl with byte %#x at %d: %v, want %v", i, i%19, got, want)
		}
	}
}
