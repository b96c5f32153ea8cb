package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Flag values of the settings, with error messages that say what is
// expected.

// byteSize is a flag of a size in bytes: a number with an optional unit
// (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB).
type byteSize struct{ p *int }

func (b byteSize) String() string {
	if b.p == nil {
		return ""
	}
	return strconv.Itoa(*b.p)
}

func (b byteSize) Set(s string) error {
	v, err := parseBytes(s)
	if err != nil {
		return err
	}
	if v > int64(^uint(0)>>1) {
		return fmt.Errorf("%q is too large", s)
	}
	*b.p = int(v)
	return nil
}

type byteSize64 struct{ p *int64 }

func (b byteSize64) String() string {
	if b.p == nil {
		return ""
	}
	return strconv.FormatInt(*b.p, 10)
}

func (b byteSize64) Set(s string) error {
	v, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b.p = v
	return nil
}

// byteSizeOrOff is a size flag that also takes "off", stored as -1.
type byteSizeOrOff struct{ p *int64 }

func (b byteSizeOrOff) String() string {
	if b.p == nil {
		return ""
	}
	if *b.p < 0 {
		return "off"
	}
	return strconv.FormatInt(*b.p, 10)
}

func (b byteSizeOrOff) Set(s string) error {
	if strings.TrimSpace(s) == "off" {
		*b.p = -1
		return nil
	}
	v, err := parseBytes(s)
	if err != nil {
		return fmt.Errorf("%q is not a size or off: use a number of bytes, optionally with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB or TiB", s)
	}
	*b.p = v
	return nil
}

var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

func parseBytes(orig string) (int64, error) {
	s := strings.TrimSpace(orig)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size: use a number of bytes, optionally with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB or TiB", orig)
	}
	if v > 0 && mult > (1<<62)/v {
		return 0, fmt.Errorf("%q is too large", orig)
	}
	return v * mult, nil
}

// duration is a flag of a Go duration with a message that says what is
// expected (the flag package's says "parse error").
type duration struct{ p *time.Duration }

func (d duration) String() string {
	if d.p == nil {
		return ""
	}
	return d.p.String()
}

func (d duration) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration: use a number with a unit, e.g. 500ms, 30s, 2m, 1h30m", s)
	}
	*d.p = v
	return nil
}

// integer is a flag of an int with a message that says what is expected.
type integer struct{ p *int }

func (i integer) String() string {
	if i.p == nil {
		return ""
	}
	return strconv.Itoa(*i.p)
}

func (i integer) Set(s string) error {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*i.p = v
	return nil
}

// integerOrOff is a count flag that also takes "off", stored as -1.
type integerOrOff struct{ p *int }

func (i integerOrOff) String() string {
	if i.p == nil {
		return ""
	}
	if *i.p < 0 {
		return "off"
	}
	return strconv.Itoa(*i.p)
}

func (i integerOrOff) Set(s string) error {
	if strings.TrimSpace(s) == "off" {
		*i.p = -1
		return nil
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a whole number or off", s)
	}
	*i.p = v
	return nil
}

// procsOrAuto is a count of at least 1 that also takes "auto", stored as 0.
type procsOrAuto struct{ p *int }

func (i procsOrAuto) String() string {
	if i.p == nil {
		return ""
	}
	if *i.p == 0 {
		return "auto"
	}
	return strconv.Itoa(*i.p)
}

func (i procsOrAuto) Set(s string) error {
	if strings.TrimSpace(s) == "auto" {
		*i.p = 0
		return nil
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 1 {
		return fmt.Errorf("%q is not a whole number of at least 1 or auto", s)
	}
	*i.p = v
	return nil
}

// originList is a flag of comma-separated CORS origins; blanks around them
// are dropped, and "" is the empty list. The origins themselves are checked
// with the rest of the options.
type originList struct{ p *[]string }

func (l originList) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l originList) Set(s string) error {
	var out []string
	for o := range strings.SplitSeq(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	*l.p = out
	return nil
}
