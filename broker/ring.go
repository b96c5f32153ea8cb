package broker

import (
	"math"
	"math/bits"
	"sync/atomic"

	"github.com/spaolacci/murmur3"

	"github.com/floe-streams/floe/store"
)

// Token hashes a partition key to its place on the token ring: the first 64
// bits of Murmur3 x64 128 (seed 0), as a signed integer, which is the token
// function of Cassandra's Murmur3Partitioner and of PolarStreams.
func Token(key string) int64 {
	h1, _ := murmur3.Sum128([]byte(key))
	t := int64(h1)
	if t == math.MinInt64 {
		// Cassandra reserves the minimum token.
		t = math.MaxInt64
	}
	return t
}

// Ring places events on sub-ranges. A single broker owns the whole token
// range, starting at the minimum token, in generation 1; its range is split in
// ConsumerRanges equal sub-ranges, each one a stream of the log.
type Ring struct {
	start   int64
	version uint32
	ranges  uint64
	next    atomic.Uint64 // round-robin for events without a key
}

// NewRing returns the ring of a single broker with n sub-ranges (n >= 1).
func NewRing(n int) *Ring {
	if n < 1 {
		n = 1
	}
	return &Ring{start: math.MinInt64, version: 1, ranges: uint64(n)}
}

// Ranges is the number of sub-ranges.
func (r *Ring) Ranges() int { return int(r.ranges) }

// RangeIndex is the sub-range that holds token.
func (r *Ring) RangeIndex(token int64) uint32 {
	// Shift the signed range [MinInt64, MaxInt64] to [0, 2^64) and scale it to
	// [0, ranges): the high word of the 128-bit product.
	hi, _ := bits.Mul64(uint64(token)^(1<<63), r.ranges)
	return uint32(hi)
}

// StreamForKey is the stream that holds the events of a partition key.
func (r *Ring) StreamForKey(topic, key string) store.Stream {
	return r.stream(topic, r.RangeIndex(Token(key)))
}

// NextStream deals requests without a key over the sub-ranges in turn.
func (r *Ring) NextStream(topic string) store.Stream {
	return r.stream(topic, uint32((r.next.Add(1)-1)%r.ranges))
}

// Streams lists the streams of a topic, in range order.
func (r *Ring) Streams(topic string) []store.Stream {
	out := make([]store.Stream, r.ranges)
	for i := range out {
		out[i] = r.stream(topic, uint32(i))
	}
	return out
}

func (r *Ring) stream(topic string, index uint32) store.Stream {
	return store.Stream{Topic: topic, Token: r.start, RangeIndex: index, Version: r.version}
}
