package broker

import (
	"math"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/floe-streams/floe/store"
)

// Token hashes a partition key to its place on the token ring: the first 64
// bits of Murmur3 x64 128 (seed 0), as a signed integer, which is the token
// function of Cassandra's Murmur3Partitioner and of PolarStreams.
func Token(key string) int64 {
	t := int64(cassandraMurmur3H1(key))
	if t == math.MinInt64 {
		// Cassandra reserves the minimum token.
		t = math.MaxInt64
	}
	return t
}

// cassandraMurmur3H1 is h1 of Murmur3 x64 128 with seed 0 as Cassandra (and
// the gocql code PolarStreams uses) computes it: the bytes of the tail (the
// last len%16) are read as signed Java bytes and sign-extended, so keys whose
// tail has a byte >= 0x80 (non-ASCII UTF-8) hash differently from the
// reference C code (and from github.com/spaolacci/murmur3). For all other
// keys the two agree.
func cassandraMurmur3H1(key string) uint64 {
	const (
		c1 = 0x87c37b91114253d5
		c2 = 0x4cf5ad432745937f
	)
	var h1, h2 uint64
	n := len(key)
	b := key
	for ; len(b) >= 16; b = b[16:] {
		k1, k2 := le64(b[:8]), le64(b[8:16])
		h1 ^= bits.RotateLeft64(k1*c1, 31) * c2
		h1 = (bits.RotateLeft64(h1, 27)+h2)*5 + 0x52dce729
		h2 ^= bits.RotateLeft64(k2*c2, 33) * c1
		h2 = (bits.RotateLeft64(h2, 31)+h1)*5 + 0x38495ab5
	}
	var k1, k2 uint64
	for i := 0; i < len(b); i++ {
		v := uint64(int64(int8(b[i]))) // sign-extended, as in Java
		if i < 8 {
			k1 ^= v << (8 * i)
		} else {
			k2 ^= v << (8 * (i - 8))
		}
	}
	if len(b) > 8 {
		h2 ^= bits.RotateLeft64(k2*c2, 33) * c1
	}
	if len(b) > 0 {
		h1 ^= bits.RotateLeft64(k1*c1, 31) * c2
	}
	h1 ^= uint64(n)
	h2 ^= uint64(n)
	h1 += h2
	h2 += h1
	h1, h2 = fmix64(h1), fmix64(h2)
	return h1 + h2
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// Ring places events on sub-ranges. A single broker owns the whole token
// range, starting at the minimum token, in generation 1; its range is split in
// ConsumerRanges equal sub-ranges, each one a stream of the log.
type Ring struct {
	start   int64
	version uint32
	ranges  uint64
	next    sync.Map // topic → *atomic.Uint64: round-robin of events without a key
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

// NextStream deals a topic's requests without a key over its sub-ranges in
// turn, from a sub-range that depends on the topic's name. One turn for all
// topics put each topic of a producer that sent to 4 topics in a row in one
// sub-range, so that a group of 4 consumers had 3 idle.
func (r *Ring) NextStream(topic string) store.Stream {
	next, ok := r.next.Load(topic)
	if !ok {
		n := new(atomic.Uint64)
		n.Store(uint64(r.RangeIndex(Token(topic))))
		next, _ = r.next.LoadOrStore(strings.Clone(topic), n)
	}
	return r.stream(topic, uint32((next.(*atomic.Uint64).Add(1)-1)%r.ranges))
}

// Forget drops the turn NextStream keeps for topic: an append to it failed
// and the store holds nothing of it, so that names never stored leave
// nothing behind.
func (r *Ring) Forget(topic string) { r.next.Delete(topic) }

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
