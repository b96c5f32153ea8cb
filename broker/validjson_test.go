package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzValidJSONAgreesWithStdlib checks the fast validator against
// encoding/json (plus the UTF-8 rule) on any input. The seeds include nesting
// at encoding/json's limit and one level over it, of arrays and of objects.
func FuzzValidJSONAgreesWithStdlib(f *testing.F) {
	// Shallow nesting only: seeds of 10000 levels (20 KB) stalled the
	// fuzzer at 0 inputs/s. TestValidJSONDeepNesting covers the limit.
	for _, depth := range []int{2, 64} {
		f.Add(nestedArrays(depth))
		f.Add(nestedObjects(depth))
	}
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

// nestedArrays returns depth nested arrays: [[...]].
func nestedArrays(depth int) []byte {
	return append(bytes.Repeat([]byte("["), depth), bytes.Repeat([]byte("]"), depth)...)
}

// nestedObjects returns depth levels alternating objects and arrays:
// {"a":[{"a":[...]}]}.
func nestedObjects(depth int) []byte {
	var open, closing []byte
	for i := range depth {
		if i%2 == 0 {
			open = append(open, `{"a":`...)
			closing = append(closing, '}')
		} else {
			open = append(open, '[')
			closing = append(closing, ']')
		}
	}
	slices.Reverse(closing)
	return append(open, closing...)
}

// BenchmarkValidJSON validates events of the load tool's shape (printable
// ASCII padding, 200 B and 1 KiB) and one with escapes and characters
// beyond ASCII in its strings.
func BenchmarkValidJSON(b *testing.B) {
	pad := func(n int) string {
		r := rand.New(rand.NewPCG(1, 2))
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(' ' + r.IntN('~'-' '+1))
			if p[i] == '"' || p[i] == '\\' {
				p[i] = 'x'
			}
		}
		return string(p)
	}
	head := `{"run":"1f2e3d4c","seq":123456,"ts":1700000000000000000,"sum":"9a8b7c6d","pad":"`
	for _, ev := range []struct {
		name string
		ev   string
	}{
		{"200B", head + pad(200-len(head)-2) + `"}`},
		{"1KiB", head + pad(1024-len(head)-2) + `"}`},
		{"escapes-and-utf8", `{"name":"Zoë \"Z\" Ångström","city":"東京","note":"line\nbreak \u00e9","n":[1.5e3,-2,true,null]}`},
	} {
		for _, v := range []struct {
			name string
			fn   func([]byte) bool
		}{
			{"validJSON", validJSON},
			{"encoding-json+utf8", func(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }},
		} {
			b.Run(ev.name+"/"+v.name, func(b *testing.B) {
				data := []byte(ev.ev)
				if !v.fn(data) {
					b.Fatal("invalid")
				}
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					v.fn(data)
				}
			})
		}
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
	// A raw control byte at every position of strings of several lengths,
	// so that the byte loop, the 8-byte word loop and the vector scan of the
	// validator each meet one, in a key and in a value.
	for _, n := range []int{1, 7, 8, 9, 31, 32, 33, 64, 100, 130} {
		for pos := range n {
			for _, c := range []byte{0x00, 0x09, 0x0a, 0x1f} {
				str := bytes.Repeat([]byte{'a'}, n)
				str[pos] = c
				for _, ev := range [][]byte{
					append(append([]byte(`{"k":"`), str...), `"}`...),
					append(append([]byte(`{"`), str...), `":1}`...),
				} {
					if validJSON(ev) {
						t.Fatalf("validJSON(%q) = true, want false: raw control byte %#x at %d of a %d-byte string", ev, c, pos, n)
					}
				}
			}
		}
	}
	for _, n := range []int{1, 8, 33, 130, largeEventBytes} {
		ev := append(append([]byte(`{"k":"`), bytes.Repeat([]byte{'a'}, n)...), `"}`...)
		if !validJSON(ev) {
			t.Fatalf("validJSON of a valid %d-byte string = false", n)
		}
	}
}

// TestValidJSONStringContents puts each escape, valid or not, and each
// character beyond ASCII, valid UTF-8 or not, at every position of strings
// of several lengths, in a name and in a value, and holds validJSON to
// encoding/json on every one.
func TestValidJSONStringContents(t *testing.T) {
	inserts := []string{
		`\"`, `\\`, `\/`, `\n`, `\u00e9`, `\uD83D\uDE00`, `\x`, `\u12`, `\u12g4`, `\`,
		"é", "東", "😀", "\xff", "\xc3", "\xed\xa0\x80", "\xe6\x9d", "\x7f", "\x1f",
		`\"\"`, `\\"`, `"`,
	}
	checked := 0
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 31, 32, 33, 40, 63, 64, 65, 100} {
		for pos := 0; pos <= n; pos++ {
			for _, ins := range inserts {
				str := strings.Repeat("a", pos) + ins + strings.Repeat("b", n-pos)
				for _, ev := range []string{
					`{"k":"` + str + `"}`,
					`{"` + str + `":1}`,
					`["` + str + `","` + str + `"]`,
					`"` + str, // unterminated
				} {
					want := utf8.Valid([]byte(ev)) && json.Valid([]byte(ev))
					if got := validJSON([]byte(ev)); got != want {
						t.Fatalf("validJSON(%q) = %v, encoding/json says %v", ev, got, want)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d events checked", checked)
}

// TestValidJSONDeepNesting holds deeply nested events to encoding/json's
// limit of 10000 levels, with both validators (events under and over
// largeEventBytes), and bounds the memory that rejecting them takes.
func TestValidJSONDeepNesting(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   []byte
		want bool
	}{
		{"10000 levels of arrays", nestedArrays(10000), true},
		{"10001 levels of arrays", nestedArrays(10001), false},
		{"10000 levels of objects and arrays", nestedObjects(10000), true},
		{"10001 levels of objects and arrays", nestedObjects(10001), false},
		{"1 MiB of [", bytes.Repeat([]byte("["), DefaultMaxEventBytes), false},
		{"1 MiB of {\"a\":", bytes.Repeat([]byte(`{"a":`), DefaultMaxEventBytes/5), false},
		{"60 KiB of [", bytes.Repeat([]byte("["), 60<<10), false},
	} {
		if got := validJSON(tc.ev); got != tc.want {
			t.Errorf("%s: validJSON = %v, want %v", tc.name, got, tc.want)
		}
		// Memory, not time, shows a validator whose error path grows with
		// the square of the depth: fastjson allocated gigabytes here.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		validJSON(tc.ev)
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
			t.Errorf("%s: validJSON allocated %d bytes for a %d-byte event", tc.name, got, len(tc.ev))
		}
	}
	err := checkEvent(nestedArrays(10001), Limits{}, 0)
	if !errors.Is(err, ErrInvalidJSON) || !strings.Contains(err.Error(), "exceeded max depth") {
		t.Errorf("checkEvent of 10001 levels: %v, want %v naming the depth", err, ErrInvalidJSON)
	}
}

// Events may nest MaxEventDepth levels, and brackets in strings do not
// count; the scan follows escapes.
func TestEventDepthLimit(t *testing.T) {
	deepString := `{"s":"` + strings.Repeat("[", 2000) + `\\\"` + strings.Repeat("{", 2000) + `"}`
	for _, tc := range []struct {
		name string
		ev   []byte
		at   int // -1: within the limit
	}{
		{"arrays at the limit", nestedArrays(MaxEventDepth), -1},
		{"arrays one over", nestedArrays(MaxEventDepth + 1), MaxEventDepth},
		{"objects at the limit", nestedObjects(MaxEventDepth), -1},
		// An odd depth would leave the innermost {"a": without a value.
		{"objects two over", nestedObjects(MaxEventDepth + 2), 5*(MaxEventDepth/2) + MaxEventDepth/2},
		{"brackets in a string", []byte(deepString), -1},
		{"wide, not deep", []byte("[" + strings.Repeat("[],", 3000) + "[]]"), -1},
		{"an escaped quote does not end the string", []byte(`["\"` + strings.Repeat("[", 600) + `"]`), -1},
	} {
		if !validJSON(tc.ev) {
			t.Fatalf("%s: not valid JSON", tc.name)
		}
		if got := tooDeepAt(tc.ev); got != tc.at {
			t.Errorf("%s: tooDeepAt = %d, want %d", tc.name, got, tc.at)
		}
		err := checkEvent(tc.ev, Limits{}, 0)
		if (err != nil) != (tc.at >= 0) {
			t.Errorf("%s: checkEvent = %v", tc.name, err)
		}
	}
}
