package bench

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"hash/crc32"
	"strconv"
)

// Events are JSON objects of exactly the requested size:
//
//	{"run":"1f2e3d4c","seq":123,"ts":1700000000000000000,"sum":"9a8b7c6d","pad":"<base64url>"}
//
// run is the id of the producing run (8 hex digits); seq numbers the events
// of a run densely from 0; ts is when the event was meant to be sent (Unix
// nanoseconds: end-to-end latency is receive time - ts); sum is the CRC-32C of
// the pad, the seq and the ts, so a consumer detects corrupted or truncated events;
// pad is random base64url text that fills the event to --event-size.
//
// The padding is cut from one random buffer at a random offset per event:
// generating it costs a copy, and a compressor sees no repeats within a block.
const (
	padPoolSize = 4 << 20
	// minEventSize fits the fields with a short pad.
	minEventSize = 100
	runIDLen     = 8
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	padPool    = func() []byte {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		b := make([]byte, padPoolSize)
		_, _ = rand.Read(b)
		for i := range b {
			b[i] = alphabet[b[i]&63]
		}
		return b
	}()
)

// newRunID returns a random run id of runIDLen hex digits.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	const hex = "0123456789abcdef"
	out := make([]byte, runIDLen)
	for i, c := range b {
		out[2*i], out[2*i+1] = hex[c>>4], hex[c&15]
	}
	return string(out)
}

// eventGen writes events of one run; one per goroutine.
type eventGen struct {
	run  string
	size int
	rng  uint64
}

func newEventGen(run string, size int) *eventGen {
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	return &eventGen{run: run, size: size, rng: binary.LittleEndian.Uint64(seed[:]) | 1}
}

func (g *eventGen) next() uint64 {
	// xorshift64*
	g.rng ^= g.rng >> 12
	g.rng ^= g.rng << 25
	g.rng ^= g.rng >> 27
	return g.rng * 2685821657736338717
}

// fixed bytes of an event besides the seq and ts digits and the pad.
const eventOverhead = len(`{"run":"`) + runIDLen + len(`","seq":`) + len(`,"ts":`) +
	len(`,"sum":"`) + 8 + len(`","pad":"`) + len(`"}`)

// appendEvent appends one event with seq and ts to b.
func (g *eventGen) appendEvent(b []byte, seq uint64, ts int64) []byte {
	var num [20]byte
	seqDigits := strconv.AppendUint(num[:0], seq, 10)
	padLen := g.size - eventOverhead - len(seqDigits) - decimalLen(uint64(max(ts, 0)))
	padLen = max(padLen, 1)
	off := int(g.next() % uint64(padPoolSize-padLen))
	pad := padPool[off : off+padLen]

	b = append(b, `{"run":"`...)
	b = append(b, g.run...)
	b = append(b, `","seq":`...)
	b = append(b, seqDigits...)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"sum":"`...)
	b = appendHex32(b, eventSum(pad, seq, ts))
	b = append(b, `","pad":"`...)
	b = append(b, pad...)
	return append(b, `"}`...)
}

func decimalLen(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

func eventSum(pad []byte, seq uint64, ts int64) uint32 {
	var s [16]byte
	binary.LittleEndian.PutUint64(s[:], seq)
	binary.LittleEndian.PutUint64(s[8:], uint64(ts))
	return crc32.Update(crc32.Checksum(pad, castagnoli), castagnoli, s[:])
}

func appendHex32(b []byte, v uint32) []byte {
	const hex = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, hex[(v>>uint(shift))&15])
	}
	return b
}

// parsedEvent is what a consumer learns from an event.
type parsedEvent struct {
	run []byte
	seq uint64
	ts  int64
}

// parseEvent checks one event of the bench format: its fields in order and
// its checksum. ok is false for anything else (a malformed event, or an
// event that is not of the bench format at all).
func parseEvent(ev []byte) (p parsedEvent, ok bool) {
	rest, ok := cutPrefix(ev, `{"run":"`)
	if !ok || len(rest) < runIDLen {
		return p, false
	}
	p.run, rest = rest[:runIDLen], rest[runIDLen:]
	if rest, ok = cutPrefix(rest, `","seq":`); !ok {
		return p, false
	}
	var n int
	if p.seq, n = parseUint(rest); n == 0 {
		return p, false
	}
	if rest, ok = cutPrefix(rest[n:], `,"ts":`); !ok {
		return p, false
	}
	ts, n := parseUint(rest)
	if n == 0 {
		return p, false
	}
	p.ts = int64(ts)
	if rest, ok = cutPrefix(rest[n:], `,"sum":"`); !ok || len(rest) < 8 {
		return p, false
	}
	sum, okHex := parseHex32(rest[:8])
	if !okHex {
		return p, false
	}
	if rest, ok = cutPrefix(rest[8:], `","pad":"`); !ok {
		return p, false
	}
	if len(rest) < 2 || string(rest[len(rest)-2:]) != `"}` {
		return p, false
	}
	pad := rest[:len(rest)-2]
	if bytes.IndexByte(pad, '"') >= 0 || eventSum(pad, p.seq, p.ts) != sum {
		return p, false
	}
	return p, true
}

func cutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return b, false
	}
	return b[len(prefix):], true
}

// parseUint parses leading decimal digits; n is how many (0: none, or
// overflow).
func parseUint(b []byte) (v uint64, n int) {
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		if n >= 19 {
			return 0, 0
		}
		v = v*10 + uint64(b[n]-'0')
		n++
	}
	return v, n
}

func parseHex32(b []byte) (uint32, bool) {
	var v uint32
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint32(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
