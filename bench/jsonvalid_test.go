package bench

import (
	"encoding/json"
	"fmt"
	"testing"
	"unicode/utf8"
)

// A sketch of a faster validator for broker/validjson.go, kept here (test
// code) to size the suggestion in the benchmark report: encoding/json.Valid
// runs a state-machine function call per byte; this one is a recursive
// descent that skips runs of plain string bytes in a tight loop and checks
// UTF-8 only where a byte is >= 0x80. It agrees with encoding/json.Valid on
// the corpus and fuzz test below.

var plainString = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func fastValid(b []byte) bool {
	i, ok := fvValue(b, fvWS(b, 0), 0)
	return ok && fvWS(b, i) == len(b)
}

func fvWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

func fvValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > 10000 {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return fvString(b, i)
	case c == '{':
		i = fvWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = fvString(b, i); !ok {
				return i, false
			}
			if i = fvWS(b, i); i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = fvValue(b, fvWS(b, i+1), depth+1); !ok {
				return i, false
			}
			if i = fvWS(b, i); i >= len(b) {
				return i, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = fvWS(b, i+1)
		}
	case c == '[':
		i = fvWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = fvValue(b, i, depth+1); !ok {
				return i, false
			}
			if i = fvWS(b, i); i >= len(b) {
				return i, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = fvWS(b, i+1)
		}
	case c == 't':
		return i + 4, len(b) >= i+4 && string(b[i:i+4]) == "true"
	case c == 'f':
		return i + 5, len(b) >= i+5 && string(b[i:i+5]) == "false"
	case c == 'n':
		return i + 4, len(b) >= i+4 && string(b[i:i+4]) == "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return fvNumber(b, i)
	}
	return i, false
}

func fvString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i++
	for {
		for i < len(b) && plainString[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, false
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, false
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return i, false
					}
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		default: // >= 0x80
			// encoding/json.Valid accepts invalid UTF-8 in strings
			// (Unmarshal replaces it); so does this, to agree.
			_, n := utf8.DecodeRune(b[i:])
			i += n
		}
	}
}

func fvNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	digits := func() bool {
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > s
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if !digits() {
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return i, false
		}
	}
	return i, true
}

var jsonCorpus = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e10`, `-1.5E-3`, `true`, `false`, `null`, ` {"a" : [1, 2, {"b": null}] } `,
	`"\u00e9\n\"\\"`, `"é"`, "\"\xff\"", `{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `-`, `1e`, `{"a"}`, `{"a":}`,
	`[`, `{`, `"abc`, `"\x"`, `"\u12g4"`, "\"a\tb\"", `tru`, `nul`, `{} {}`, `[1 2]`, `{"a":1 "b":2}`, ``, ` `,
	`{"run":"0badcafe","seq":1,"ts":2,"sum":"00000000","pad":"AbC-_"}`,
}

func TestFastValidAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range jsonCorpus {
		if got, want := fastValid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("%q: fastValid %v, json.Valid %v", s, got, want)
		}
	}
}

func FuzzFastValid(f *testing.F) {
	for _, s := range jsonCorpus {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := fastValid(b), json.Valid(b); got != want {
			t.Errorf("%q: fastValid %v, json.Valid %v", b, got, want)
		}
	})
}

func BenchmarkFastValid(b *testing.B) {
	for _, size := range []int{200, 1024} {
		ev := newEventGen("0badcafe", size).appendEvent(nil, 123456, 1700000000000000000)
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(ev)))
			for range b.N {
				if !fastValid(ev) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
