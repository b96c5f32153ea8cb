package broker_test

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/spaolacci/murmur3"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/store"
)

// TestTokenReferenceValues compares Token with published Murmur3 x64 128
// (seed 0) h1 values. The series "", "0", "01", ... "0123456789012345678"
// covers every tail length (0-15) and one and two 16-byte blocks; its values
// were generated with the DataStax Java driver's Murmur3 (Cassandra's token
// function) and are the expected values of gocql's internal/murmur tests,
// which PolarStreams copied into internal/types/murmur_test.go. The four
// phrases are from the same tests ("examples from other driver
// implementations").
func TestTokenReferenceValues(t *testing.T) {
	series := []uint64{
		0x0000000000000000, // ""
		0x2ac9debed546a380, // "0"
		0x649e4eaa7fc1708e, // "01"
		0xce68f60d7c353bdb,
		0x0f95757ce7f38254,
		0x0f04e459497f3fc1,
		0x88c0a92586be0a27,
		0x13eb9fb82606f7a6,
		0x8236039b7387354d, // "01234567"
		0x4c1e87519fe738ba,
		0x3f9652ac3effeb24,
		0x3f33760ded9006c6,
		0xaed70a6631854cb1,
		0x8a299a8f8e0e2da7,
		0x624b675c779249a6,
		0xa4b203bb1d90b9a3,
		0xa3293ad698ecb99a, // "0123456789012345": one block, no tail
		0xbc740023dbd50048,
		0x3fe5ab9837d25cdd,
		0x2d0338c1ca87d132, // "0123456789012345678"
	}
	key := ""
	for i, want := range series {
		if got := broker.Token(key); got != int64(want) {
			t.Errorf("Token(%q) = %d (%#x), want %d (%#x)", key, got, uint64(got), int64(want), want)
		}
		key += strconv.Itoa(i % 10)
	}
	for key, want := range map[string]uint64{
		"hello":                     0xcbd8a7b341bd9b02,
		"hello, world":              0x342fac623a5ebc8e,
		"19 Jan 2038 at 3:14:07 AM": 0xb89e5988b737affc,
		"The quick brown fox jumps over the lazy dog.": 0xcd99481f9ee902c9,
	} {
		if got := broker.Token(key); got != int64(want) {
			t.Errorf("Token(%q) = %d, want %d", key, got, int64(want))
		}
	}
}

// TestTokenCassandraSignedTail checks keys whose last len%16 bytes include
// bytes >= 0x80 (any non-ASCII UTF-8 key): Cassandra reads them as signed
// Java bytes, so its token differs from the C reference. The expected values
// are those of apache/cassandra-gocql-driver's internal/murmur tests
// (TestMurmur3H1ForCassandra, checked against Cassandra), which PolarStreams
// clients and brokers compute too.
func TestTokenCassandraSignedTail(t *testing.T) {
	prefix := "prefix\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f"
	prefix2 := prefix + "\xc8\xc9"
	for key, want := range map[string]int64{
		prefix + "\xc8":                          -278181328349571586,
		prefix2:                                  -5319761130493488577,
		prefix2 + "\xca":                         -4593148434938707926,
		prefix2 + "\xca\xcb\xcc\xcd\xce\xcf\xd0": 6241282934480161521,
		prefix2 + "\xca\xcb\xcc\xcd\xce\xcf\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7":               2294903531026336836,
		"\x00\x10C'R\x9f\xb6E\xdd\x00\xb8\x83\xec9\xaeD\x8b\xb8\x00\x00\x04\x00\x06jk\x00": -9223371632693506265,
		// ASCII keys of the same shapes agree with the C reference.
		prefix:          -2684252762052835206,
		prefix + "\x10": int64(sum128h1(prefix + "\x10")),
	} {
		if got := broker.Token(key); got != want {
			t.Errorf("Token(%x) = %d, want %d", key, got, want)
		}
	}
}

func sum128h1(key string) uint64 {
	h1, _ := murmur3.Sum128([]byte(key))
	return h1
}

// TestTokenAgreesWithReferenceMurmur3 compares Token with the C reference
// port github.com/spaolacci/murmur3 where Cassandra's variant and the
// reference agree: keys of 7-bit bytes, and any bytes in whole 16-byte blocks.
func TestTokenAgreesWithReferenceMurmur3(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		n := rng.IntN(70)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(0x80))
		}
		// Bytes >= 0x80 only outside the tail.
		for i := 0; i < n-n%16; i++ {
			if rng.IntN(2) == 0 {
				b[i] |= 0x80
			}
		}
		want := int64(sum128h1(string(b)))
		if want == math.MinInt64 {
			want = math.MaxInt64
		}
		if got := broker.Token(string(b)); got != want {
			t.Fatalf("Token(%x) = %d, the reference gives %d", b, got, want)
		}
	}
}

func TestTokenDeterministicAndSpread(t *testing.T) {
	const keys, ranges = 100000, 4
	ring := broker.NewRing(ranges)
	var counts [ranges]int
	for i := range keys {
		k := "key-" + strconv.Itoa(i)
		tok := broker.Token(k)
		if tok == math.MinInt64 {
			t.Fatalf("Token(%q) is the reserved minimum token", k)
		}
		if again := broker.Token(k); again != tok {
			t.Fatalf("Token(%q) = %d then %d", k, tok, again)
		}
		idx := ring.RangeIndex(tok)
		st := ring.StreamForKey("t", k)
		if st.RangeIndex != idx {
			t.Fatalf("StreamForKey(%q).RangeIndex = %d, RangeIndex(Token) = %d", k, st.RangeIndex, idx)
		}
		counts[idx]++
	}
	// Chi-square with 3 degrees of freedom: 16.27 is the 0.999 quantile.
	var chi2 float64
	exp := float64(keys) / ranges
	for _, c := range counts {
		chi2 += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	if chi2 > 16.27 {
		t.Errorf("keys over %d sub-ranges: %v (chi-square %.1f): not uniform", ranges, counts, chi2)
	}
}

func TestRangeIndexBounds(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 7, 16, 255, 1024} {
		r := broker.NewRing(n)
		if r.Ranges() != n {
			t.Fatalf("NewRing(%d).Ranges() = %d", n, r.Ranges())
		}
		if got := r.RangeIndex(math.MinInt64); got != 0 {
			t.Errorf("n=%d: RangeIndex(MinInt64) = %d, want 0", n, got)
		}
		if got := r.RangeIndex(math.MaxInt64); got != uint32(n-1) {
			t.Errorf("n=%d: RangeIndex(MaxInt64) = %d, want %d", n, got, n-1)
		}
		// Sub-range i starts at MinInt64 + ceil(i * 2^64 / n): every
		// sub-range is 2^64/n tokens wide, give or take one.
		two64 := new(big.Int).Lsh(big.NewInt(1), 64)
		prevStart := new(big.Int).Set(big.NewInt(math.MinInt64))
		for i := 1; i < n; i++ {
			num := new(big.Int).Mul(big.NewInt(int64(i)), two64)
			start, rem := new(big.Int).QuoRem(num, big.NewInt(int64(n)), new(big.Int))
			if rem.Sign() != 0 {
				start.Add(start, big.NewInt(1))
			}
			start.Add(start, big.NewInt(math.MinInt64))
			s := start.Int64()
			if got := r.RangeIndex(s); got != uint32(i) {
				t.Errorf("n=%d: RangeIndex(%d) = %d, want %d (first token of sub-range %d)", n, s, got, i, i)
			}
			if got := r.RangeIndex(s - 1); got != uint32(i-1) {
				t.Errorf("n=%d: RangeIndex(%d) = %d, want %d (last token of sub-range %d)", n, s-1, got, i-1, i-1)
			}
			width := new(big.Int).Sub(start, prevStart)
			low := new(big.Int).Quo(two64, big.NewInt(int64(n)))
			if d := new(big.Int).Sub(width, low); d.Sign() < 0 || d.Cmp(big.NewInt(1)) > 0 {
				t.Errorf("n=%d: sub-range %d is %v tokens wide, want %v or one more", n, i-1, width, low)
			}
			prevStart = start
		}
	}
	if r := broker.NewRing(0); r.Ranges() != 1 || r.RangeIndex(math.MaxInt64) != 0 {
		t.Errorf("NewRing(0) has %d sub-ranges, want 1", r.Ranges())
	}
}

func TestRangeIndexMonotonic(t *testing.T) {
	r := broker.NewRing(7)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		a, b := int64(rng.Uint64()), int64(rng.Uint64())
		if a > b {
			a, b = b, a
		}
		ia, ib := r.RangeIndex(a), r.RangeIndex(b)
		if ia > ib || ib >= 7 {
			t.Fatalf("RangeIndex(%d) = %d, RangeIndex(%d) = %d: not monotonic in [0, 7)", a, ia, b, ib)
		}
	}
}

func TestStreams(t *testing.T) {
	r := broker.NewRing(4)
	st := r.StreamForKey("orders", "123")
	if st.Topic != "orders" || st.Token != math.MinInt64 || st.Version != 1 || st.RangeIndex != r.RangeIndex(broker.Token("123")) {
		t.Errorf("StreamForKey = %+v", st)
	}
	all := r.Streams("orders")
	if len(all) != 4 {
		t.Fatalf("Streams: %d, want 4", len(all))
	}
	for i, s := range all {
		want := store.Stream{Topic: "orders", Token: math.MinInt64, RangeIndex: uint32(i), Version: 1}
		if s != want {
			t.Errorf("Streams[%d] = %+v, want %+v", i, s, want)
		}
	}
}

// TestNextStreamSpreadsEvenly: requests without a key are dealt over the
// sub-ranges in turn, also from concurrent goroutines.
func TestNextStreamSpreadsEvenly(t *testing.T) {
	for _, n := range []int{1, 3, 4, 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := broker.NewRing(n)
			// In turn, from one goroutine, from where the topic starts.
			first := r.NextStream("t").RangeIndex
			for i := 1; i < 3*n; i++ {
				if got, want := r.NextStream("t").RangeIndex, (first+uint32(i))%uint32(n); got != want {
					t.Fatalf("call %d: sub-range %d, want %d", i, got, want)
				}
			}
			// Concurrently: exactly even.
			const goroutines, calls = 8, 1000
			counts := make([]int, n)
			var mu sync.Mutex
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					local := make([]int, n)
					for range calls * n {
						local[r.NextStream("t").RangeIndex]++
					}
					mu.Lock()
					for i, c := range local {
						counts[i] += c
					}
					mu.Unlock()
				})
			}
			wg.Wait()
			for i, c := range counts {
				if c != goroutines*calls {
					t.Errorf("sub-range %d got %d requests, want %d: %v", i, c, goroutines*calls, counts)
				}
			}
		})
	}
}

// Each topic has its own turn: one turn for all topics put each topic of a
// producer that sent to 4 topics in a row in one sub-range.
func TestNextStreamTurnsPerTopic(t *testing.T) {
	r := broker.NewRing(4)
	topics := []string{"rrA", "rrB", "rrC", "rrD"}
	seen := map[string]map[uint32]bool{}
	for range 4 {
		for _, topic := range topics {
			if seen[topic] == nil {
				seen[topic] = map[uint32]bool{}
			}
			seen[topic][r.NextStream(topic).RangeIndex] = true
		}
	}
	for _, topic := range topics {
		if len(seen[topic]) != 4 {
			t.Errorf("4 requests to %s went to sub-ranges %v, want all 4", topic, seen[topic])
		}
	}
	// Topics start at different sub-ranges, so that many topics with one
	// request each do not all land in the first.
	starts := map[uint32]int{}
	r = broker.NewRing(4)
	for i := range 100 {
		starts[r.NextStream(fmt.Sprintf("topic-%d", i)).RangeIndex]++
	}
	if len(starts) != 4 {
		t.Errorf("100 topics started at sub-ranges %v, want all 4", starts)
	}
}

func BenchmarkNextStream(b *testing.B) {
	r := broker.NewRing(4)
	b.ReportAllocs()
	for b.Loop() {
		r.NextStream("orders")
	}
}

func BenchmarkToken(b *testing.B) {
	key := "customer-0123456789"
	b.ReportAllocs()
	for b.Loop() {
		broker.Token(key)
	}
}
