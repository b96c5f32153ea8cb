package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-bucketed, in the manner of HdrHistogram: values below
// 2^subBits are counted exactly; above, each power of two is split into
// 2^subBits buckets, so a reported value is within 1/2^subBits (0.8 %) of the
// true one. Values are nanoseconds; the whole uint64 range fits in
// numBuckets counters (59 KiB).
const (
	subBits    = 7
	subCount   = 1 << subBits
	numBuckets = (64 - subBits + 1) * subCount
)

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [subCount, 2*subCount)
	return (e+1)*subCount + int(v>>e) - subCount
}

// bucketHigh is the highest value counted in bucket i.
func bucketHigh(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	e := i/subCount - 1
	m := uint64(i%subCount + subCount)
	return (m+1)<<e - 1
}

// Histogram records latencies from many goroutines at once (atomic counters:
// recording is a few nanoseconds and allocates nothing).
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
}

// Record adds one value.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// RecordN adds the same value n times.
func (h *Histogram) RecordN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)].Add(n)
	h.n.Add(n)
	h.sum.Add(v * n)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Snapshot copies the counters.
func (h *Histogram) Snapshot() *HistSnapshot {
	s := &HistSnapshot{counts: make([]uint64, numBuckets)}
	for i := range h.counts {
		s.counts[i] = h.counts[i].Load()
	}
	s.N, s.Sum, s.Max = h.n.Load(), h.sum.Load(), h.max.Load()
	return s
}

// HistSnapshot is a histogram at one moment, for percentiles.
type HistSnapshot struct {
	counts []uint64
	N      uint64
	Sum    uint64
	Max    uint64 // of the whole run; Sub keeps the later one's
}

// Sub returns the values recorded after prev (for interval percentiles).
func (s *HistSnapshot) Sub(prev *HistSnapshot) *HistSnapshot {
	if prev == nil {
		return s
	}
	d := &HistSnapshot{counts: make([]uint64, numBuckets), N: s.N - prev.N, Sum: s.Sum - prev.Sum, Max: s.Max}
	top := -1
	for i := range s.counts {
		d.counts[i] = s.counts[i] - prev.counts[i]
		if d.counts[i] > 0 {
			top = i
		}
	}
	if top >= 0 {
		d.Max = min(s.Max, bucketHigh(top))
	} else {
		d.Max = 0
	}
	return d
}

// Quantile returns the value at quantile q in [0, 1]: the highest value of
// the bucket holding that rank (never above the maximum recorded).
func (s *HistSnapshot) Quantile(q float64) time.Duration {
	if s.N == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.N)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketHigh(i), s.Max))
		}
	}
	return time.Duration(s.Max)
}

// Mean is the average value.
func (s *HistSnapshot) Mean() time.Duration {
	if s.N == 0 {
		return 0
	}
	return time.Duration(s.Sum / s.N)
}

// Latency is the summary of a histogram, in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Summary summarises the snapshot.
func (s *HistSnapshot) Summary() Latency {
	return Latency{
		Count: s.N,
		Mean:  ms(s.Mean()),
		P50:   ms(s.Quantile(0.50)),
		P90:   ms(s.Quantile(0.90)),
		P99:   ms(s.Quantile(0.99)),
		P999:  ms(s.Quantile(0.999)),
		Max:   ms(time.Duration(s.Max)),
	}
}
