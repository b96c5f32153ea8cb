package bench

import (
	"math"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1 << 20, 1<<40 + 12345, math.MaxUint64} {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d, below the bucket of a smaller value (%d)", v, i, prev)
		}
		prev = i
		if hi := bucketHigh(i); hi < v {
			t.Fatalf("bucketHigh(%d) = %d < %d", i, hi, v)
		}
		if i > 0 && bucketHigh(i-1) >= v {
			t.Fatalf("value %d also fits bucket %d", v, i-1)
		}
	}
	if bucketOf(math.MaxUint64) != numBuckets-1 {
		t.Fatalf("the largest value is in bucket %d of %d", bucketOf(math.MaxUint64), numBuckets)
	}
	for v := uint64(0); v < 1<<16; v++ {
		i := bucketOf(v)
		if bucketHigh(i) < v || (i > 0 && bucketHigh(i-1) >= v) {
			t.Fatalf("value %d: bucket %d [%d]", v, i, bucketHigh(i))
		}
	}
}

func TestQuantilesOfKnownData(t *testing.T) {
	var h Histogram
	// 1 µs .. 100 ms, uniform: the q-quantile is q * 100 ms.
	for i := 1; i <= 100000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	s := h.Snapshot()
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.999, 99900 * time.Microsecond}, {1, 100 * time.Millisecond}} {
		got := s.Quantile(c.q)
		if rel := math.Abs(float64(got-c.want)) / float64(c.want); rel > 1.0/subCount {
			t.Errorf("q%v = %v, want %v (±%.2f %%)", c.q, got, c.want, 100.0/subCount)
		}
		if got < c.want {
			t.Errorf("q%v = %v is below the true %v: quantiles report the bucket's highest value", c.q, got, c.want)
		}
	}
	if s.Max != uint64(100*time.Millisecond) || s.N != 100000 {
		t.Errorf("max %d n %d", s.Max, s.N)
	}
	if m := s.Mean(); m != 50000500*time.Nanosecond {
		t.Errorf("mean %v", m)
	}
}

func TestQuantilesSkewed(t *testing.T) {
	var h Histogram
	h.RecordN(time.Millisecond, 990)
	h.RecordN(time.Second, 10)
	s := h.Snapshot()
	if p := s.Quantile(0.5); p < time.Millisecond || p > time.Millisecond*101/100 {
		t.Errorf("p50 %v", p)
	}
	if p := s.Quantile(0.99); p > time.Millisecond*101/100 {
		t.Errorf("p99 %v: 99 %% of the values are 1 ms", p)
	}
	if p := s.Quantile(0.999); p != time.Second {
		t.Errorf("p99.9 %v, want 1s (capped at the max)", p)
	}
	var empty Histogram
	if q := empty.Snapshot().Quantile(0.99); q != 0 {
		t.Errorf("empty p99 %v", q)
	}
}

func TestSnapshotSub(t *testing.T) {
	var h Histogram
	h.RecordN(time.Second, 100)
	a := h.Snapshot()
	h.RecordN(time.Millisecond, 100)
	d := h.Snapshot().Sub(a)
	if d.N != 100 || d.Quantile(0.99) > time.Millisecond*101/100 {
		t.Errorf("interval: n %d p99 %v, want 100 values of 1ms", d.N, d.Quantile(0.99))
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(1)
		for pb.Next() {
			h.Record(d)
			d = (d*31 + 7) % (time.Second)
		}
	})
}
