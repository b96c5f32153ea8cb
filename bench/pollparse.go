package bench

import (
	"bytes"
	"errors"
	"fmt"
)

// forEachValue calls fn with every event of a REST poll answer,
//
//	[{"topic":"t","token":"-9","rangeIndex":0,"version":1,"startOffset":"6","values":[{...},{...}]}]
//
// without decoding the events: a small scanner skips JSON values, which
// costs the tool little more than a pass over the bytes. It returns the
// number of events.
func forEachValue(b []byte, fn func(ev []byte)) (int, error) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '[' {
		return 0, errors.New("poll answer: not a JSON array")
	}
	i = skipWS(b, i+1)
	n := 0
	if i < len(b) && b[i] == ']' {
		return 0, nil
	}
	for {
		if i >= len(b) || b[i] != '{' {
			return n, fmt.Errorf("poll answer: batch at byte %d is not an object", i)
		}
		i = skipWS(b, i+1)
		for i < len(b) && b[i] != '}' {
			ks := i
			ke, err := skipString(b, i)
			if err != nil {
				return n, err
			}
			key := b[ks:ke]
			i = skipWS(b, ke)
			if i >= len(b) || b[i] != ':' {
				return n, fmt.Errorf("poll answer: no ':' at byte %d", i)
			}
			i = skipWS(b, i+1)
			if string(key) == `"values"` {
				if i >= len(b) || b[i] != '[' {
					return n, errors.New("poll answer: values is not an array")
				}
				i = skipWS(b, i+1)
				for i < len(b) && b[i] != ']' {
					end := benchEventEnd(b[i:])
					if end > 0 {
						end += i
					} else if end, err = skipValue(b, i); err != nil {
						return n, err
					}
					fn(b[i:end])
					n++
					i = skipWS(b, end)
					if i < len(b) && b[i] == ',' {
						i = skipWS(b, i+1)
					}
				}
				i++ // ]
			} else {
				end, err := skipValue(b, i)
				if err != nil {
					return n, err
				}
				i = end
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
			}
		}
		i = skipWS(b, i+1) // }
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			return n, nil
		}
		return n, fmt.Errorf("poll answer: unexpected byte at %d", i)
	}
}

// benchEventEnd returns the length of the bench event that b starts with,
// found without scanning its pad byte by byte, or -1 when b does not start
// with one (then the generic scanner runs).
func benchEventEnd(b []byte) int {
	const prefix, padKey = runPrefix, `,"pad":"`
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return -1
	}
	j := bytes.Index(b[:min(len(b), 128)], []byte(padKey))
	if j < 0 {
		return -1
	}
	j += len(padKey)
	k := bytes.IndexByte(b[j:], '"')
	if k < 0 || b[j+k-1] == '\\' || j+k+1 >= len(b) || b[j+k+1] != '}' {
		return -1
	}
	return j + k + 2
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string at b[i].
func skipString(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, fmt.Errorf("poll answer: expected a string at byte %d", i)
	}
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, errors.New("poll answer: unterminated string")
		}
		j += k
		// An odd number of backslashes before the quote escapes it.
		bs := 0
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			bs++
		}
		if bs%2 == 0 {
			return j + 1, nil
		}
		j++
	}
}

// skipValue returns the index after the JSON value at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("poll answer: truncated")
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errors.New("poll answer: truncated value")
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' {
		j++
	}
	if j == i {
		return 0, fmt.Errorf("poll answer: expected a value at byte %d", i)
	}
	return j, nil
}
