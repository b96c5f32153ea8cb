package bench

import (
	"crypto/rand"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// Events are JSON objects of exactly the requested size:
//
//	{"run":"1f2e3d4c","seq":123,"ts":1700000000000000000,"sum":"9a8b7c6d","pad":"<random text>"}
//
// run is the id of the producing run (8 hex digits); seq numbers the events
// of a run densely from 0; ts is when the event was meant to be sent (Unix
// nanoseconds: end-to-end latency is receive time - ts); sum binds the seq,
// the ts and the pad's length (eventSum), and the pad must equal its slice of
// the run's pool, so a consumer detects corrupted or truncated events; pad is
// random printable ASCII, every character but '"' and '\' (93 of them, the
// most ASCII a JSON string holds without escapes), that fills the event to
// --event-size.
//
// The padding is cut from one random buffer, each event's pad following the
// previous one's: generating it costs a sequential copy, and a compressor sees
// no repeats within about padPoolSize bytes of padding (see padOffset).
const (
	padPoolSize = 4 << 20
	// minEventSize fits the fields with a short pad.
	minEventSize = 100
	// maxEventSize keeps each pad a quarter of the pool at most, so that
	// pads wrap around the pool no more often than every 3 MiB of padding.
	maxEventSize = padPoolSize / 4
	runIDLen     = 8
)

// padAlphabet is printable ASCII without '"' and '\': log2(93) = 6.54 bits
// of entropy per byte, so no compressor can shrink padding by more than
// about 18% (base64 text, 6 bits per byte, shrinks by 25%).
var padAlphabet = func() []byte {
	var a []byte
	for c := byte(' '); c <= '~'; c++ {
		if c != '"' && c != '\\' {
			a = append(a, c)
		}
	}
	return a
}()

// pools caches the pad pool of each run (copy on write: readers take no lock).
var (
	pools   atomic.Pointer[map[string][]byte]
	poolsMu sync.Mutex
)

// padPool returns the pad pool of a run: padPoolSize bytes of padAlphabet
// drawn uniformly from ChaCha8 seeded with the run id, so that a consumer in another
// process regenerates it and checks each pad with a compare instead of a
// checksum over it.
func padPool(run []byte) []byte {
	if m := pools.Load(); m != nil {
		if p, ok := (*m)[string(run)]; ok {
			return p
		}
	}
	poolsMu.Lock()
	defer poolsMu.Unlock()
	old := map[string][]byte{}
	if m := pools.Load(); m != nil {
		if p, ok := (*m)[string(run)]; ok {
			return p
		}
		old = *m
	}
	var seed [32]byte
	copy(seed[:], "floe-bench-pad/")
	copy(seed[16:], run)
	b := make([]byte, padPoolSize)
	rng := mrand.NewChaCha8(seed)
	var chunk [4096]byte
	// Rejection sampling keeps the characters equally likely: a random byte
	// below 2*93 picks one, any other is drawn again.
	var pick [256]byte // random byte -> character, 0 for a draw again
	for r := range 2 * len(padAlphabet) {
		pick[r] = padAlphabet[r%len(padAlphabet)]
	}
	for n := 0; n < len(b); {
		_, _ = rng.Read(chunk[:])
		for _, r := range chunk {
			if c := pick[r]; c != 0 && n < len(b) {
				b[n] = c
				n++
			}
		}
	}
	m := make(map[string][]byte, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[string(run)] = b
	pools.Store(&m)
	return b
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// padOffset is where the pad of event seq starts in the run's pool. Events
// with consecutive seqs get adjacent pads, so that a producer reads the pool
// sequentially: at a random offset per event, the copy of the pad missed the
// CPU cache and made up a third of the load tool's CPU. The pads wrap around
// the pool every padPoolSize-padLen bytes, so a compressor finds no repeat
// within that much padding (events are at most maxEventSize).
func padOffset(seq uint64, padLen int) int {
	return int(seq * uint64(padLen) % uint64(padPoolSize-padLen))
}

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
	pool []byte
}

func newEventGen(run string, size int) *eventGen {
	return &eventGen{run: run, size: size, pool: padPool([]byte(run))}
}

// runPrefix starts every event: its run id follows.
const runPrefix = `{"run":"`

// fixed bytes of an event besides the seq and ts digits and the pad.
const eventOverhead = len(runPrefix) + runIDLen + len(`","seq":`) + len(`,"ts":`) +
	len(`,"sum":"`) + 8 + len(`","pad":"`) + len(`"}`)

// appendEvent appends one event with seq and ts to b.
func (g *eventGen) appendEvent(b []byte, seq uint64, ts int64) []byte {
	var digits [20]byte
	return g.appendEventTS(b, seq, ts, strconv.AppendInt(digits[:0], ts, 10))
}

// appendEvents appends the events base to base+n-1, all with ts, each
// followed by sep when sep is not 0 (NDJSON). The ts is formatted once.
func (g *eventGen) appendEvents(b []byte, base uint64, n int, ts int64, sep byte) []byte {
	var digits [20]byte
	tsDigits := strconv.AppendInt(digits[:0], ts, 10)
	b = slices.Grow(b, n*(g.size+1))
	for i := range n {
		b = g.appendEventTS(b, base+uint64(i), ts, tsDigits)
		if sep != 0 {
			b = append(b, sep)
		}
	}
	return b
}

// appendEventTS is appendEvent with the ts already formatted.
func (g *eventGen) appendEventTS(b []byte, seq uint64, ts int64, tsDigits []byte) []byte {
	var num [20]byte
	seqDigits := strconv.AppendUint(num[:0], seq, 10)
	padLen := g.size - eventOverhead - len(seqDigits) - len(tsDigits)
	padLen = max(padLen, 1)
	off := padOffset(seq, padLen)
	pad := g.pool[off : off+padLen]

	b = append(b, runPrefix...)
	b = append(b, g.run...)
	b = append(b, `","seq":`...)
	b = append(b, seqDigits...)
	b = append(b, `,"ts":`...)
	b = append(b, tsDigits...)
	b = append(b, `,"sum":"`...)
	b = appendHex32(b, eventSum(seq, ts, padLen))
	b = append(b, `","pad":"`...)
	b = append(b, pad...)
	return append(b, `"}`...)
}

// eventSum binds the seq, the ts and the pad length; the pad itself is
// checked against the run's pool.
func eventSum(seq uint64, ts int64, padLen int) uint32 {
	return uint32(mix64(seq^mix64(uint64(ts)^uint64(padLen)<<48)) >> 32)
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
	rest, ok := cutPrefix(ev, runPrefix)
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
	if len(pad) >= padPoolSize || eventSum(p.seq, p.ts, len(pad)) != sum {
		return p, false
	}
	off := padOffset(p.seq, len(pad))
	if string(padPool(p.run)[off:off+len(pad)]) != string(pad) {
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
