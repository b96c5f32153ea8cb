// Package bufpool is the broker's pool of byte buffers, by size class,
// shared by the gRPC server (the frames and messages it reads) and the REST
// consumer API (poll answers, package reqbuf).
package bufpool

import (
	"math/bits"
	"sync"
)

// Buffer sizes the pool keeps: powers of two from 2^MinShift to
// 2^MaxShift, above the largest request (4 MiB by default, plus framing)
// and the default poll answer (2 MiB plus JSON). gRPC never returns
// buffers of 1 KiB or less to a pool (mem.NewBuffer wraps them as plain
// slices), so those are allocated at their size.
const (
	MinShift = 11
	MaxShift = 23
)

// Pool hands out buffers without clearing them, unlike gRPC's default pool:
// its users overwrite what they read (gRPC's reads of HTTP/2 frames, a
// produce batch gathering a message from them) or read only what they
// appended (poll answers). Clearing took 4% of the broker's CPU under gRPC
// produce. It satisfies gRPC's mem.BufferPool.
type Pool struct {
	pools [MaxShift - MinShift + 1]sync.Pool
}

// Shared is the broker's pool.
var Shared Pool

// Get returns a buffer of length n, of the capacity of its size class
// (exactly n for 1 KiB or less and above 2^MaxShift: not pooled).
func (p *Pool) Get(n int) *[]byte {
	shift := max(bits.Len(uint(n-1)), MinShift)
	if n <= 1<<(MinShift-1) || shift > MaxShift {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.pools[shift-MinShift].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<shift)
	return &b
}

// Put returns a buffer obtained from Get; other buffers are dropped.
func (p *Pool) Put(b *[]byte) {
	c := cap(*b)
	shift := bits.TrailingZeros(uint(c))
	if c == 0 || c != 1<<shift || shift < MinShift || shift > MaxShift {
		return
	}
	p.pools[shift-MinShift].Put(b)
}
