package broker

import (
	"encoding/json"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
)

// largeEventBytes is the size from which encoding/json validates an event
// instead of go-json (see validJSON).
const largeEventBytes = 64 << 10

// validJSON reports whether ev is exactly one JSON document in UTF-8.
//
// Validation is 10-18% of the broker's CPU under batched produce, the
// most with gRPC (docs/performance.md, "Where the time goes"). go-json's
// Valid follows encoding/json's grammar, including its limit of 10000 nested
// levels, and validates the load tool's events at 1.1 GB/s (200 B) and
// 1.9 GB/s (1 KiB), against 0.2 GB/s for encoding/json.Valid (measured on the
// development VM with go test -bench). Its cost stays linear in the input on
// every error path: a validator that recurses without a limit, or that builds
// its error message at each level, spends seconds on one 1 MiB event of "["
// (TestValidJSONDeepNesting).
//
// go-json copies each input into a buffer of a pooled context, which keeps
// the size of the largest input it has seen: events of largeEventBytes and
// more go to encoding/json, which copies nothing, so that a few 1 MiB events
// do not leave megabytes held by every context. At that size the per-call
// overhead that makes go-json faster no longer matters much.
//
// Neither validator checks UTF-8 inside strings, which RFC 8259 requires and
// a poll answer embedding the event raw depends on: utf8.Valid runs first.
//
// bytedance/sonic's Valid was faster still (120 ns against 159 ns for a
// 200 B event, 157 against 459 ns at 1 KiB) but is not a validator: it
// accepts "\x", "\u00" and raw control bytes inside strings, which
// encoding/json refuses. Measured later, with utf8.Valid, 200 B / 1 KiB:
// go-json 113 / 315 ns, segmentio/encoding 119 / 171 ns, tidwall/gjson
// 251 / 1,092 ns, valyala/fastjson 269 / 485 ns; and a validator written
// for Floe, scanning strings eight bytes at a time and checking their UTF-8
// on the way, 124-156 / 328-423 ns: no faster at the size that misses its
// target (200 B), so not kept.
//
// FuzzValidJSONAgreesWithStdlib holds the result to encoding/json's.
func validJSON(ev []byte) bool {
	if !utf8.Valid(ev) {
		return false
	}
	if len(ev) >= largeEventBytes {
		return json.Valid(ev)
	}
	return gojson.Valid(ev)
}
