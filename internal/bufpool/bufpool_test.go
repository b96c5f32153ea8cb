package bufpool

import (
	"math/bits"
	"testing"
)

func TestBufferPool(t *testing.T) {
	var p Pool
	for _, n := range []int{0, 1, 1023, 1024, 1025, 20_000, 1 << 23, 1<<23 + 1} {
		b := p.Get(n)
		if len(*b) != n {
			t.Fatalf("Get(%d): length %d", n, len(*b))
		}
		if n > 1024 && n <= 1<<MaxShift && cap(*b) != 1<<max(bits.Len(uint(n-1)), MinShift) {
			t.Fatalf("Get(%d): capacity %d, want the power of two above", n, cap(*b))
		}
		if (n <= 1024 || n > 1<<MaxShift) && cap(*b) != n {
			t.Fatalf("Get(%d): capacity %d, want exactly the length (not pooled)", n, cap(*b))
		}
		p.Put(b)
	}
	// A returned buffer is handed out again, whole. sync.Pool may drop what
	// is put (the race detector drops a quarter on purpose): try a few times.
	b := p.Get(3000)
	found := false
	for i := 0; i < 100 && !found; i++ {
		p.Put(b)
		c := p.Get(2500)
		if len(*c) != 2500 || cap(*c) != 4096 {
			t.Fatalf("reused buffer: length %d capacity %d", len(*c), cap(*c))
		}
		found = &(*c)[0] == &(*b)[0]
		b = c
	}
	if !found {
		t.Error("a buffer put back was never reused")
	}
	// Buffers of other capacities are not kept.
	odd := make([]byte, 3000)
	p.Put(&odd)
	for range 10 {
		if c := p.Get(3000); &(*c)[0] == &odd[0] {
			t.Fatal("a buffer not from the pool was handed out")
		}
	}
}
