// Package reqbuf lends byte buffers to the handling of one request and takes
// them back once the request is answered, so that the buffers of large
// answers (consumer polls) are reused instead of allocated for each request.
//
// The HTTP layer attaches a Lender to the request's context (With) and calls
// Release after its handler returned, when the answer is written. Code that
// builds the answer takes buffers from it (From, Get) for data that is not
// read after the answer is written. Without a Lender in the context (gRPC),
// From returns nil and callers allocate.
package reqbuf

import (
	"context"
	"sync/atomic"

	"github.com/floe-streams/floe/internal/bufpool"
)

// MaxPooled is the largest buffer kept for reuse: a larger one is used once
// and left to the garbage collector. Buffers come from bufpool.Shared, by
// power-of-two size class, so that the events of a poll (up to
// --max-poll-bytes) and its slightly larger answer each find their own.
const MaxPooled = 1 << bufpool.MaxShift

// poison makes Release overwrite what it takes back (SetPoison).
var poison atomic.Bool

// SetPoison, for tests only, makes Release overwrite every buffer it takes
// back, so that whatever still reads a released buffer sees '#' bytes
// instead of the data it expects.
func SetPoison(on bool) { poison.Store(on) }

// Lender lends buffers to one request. It is not safe for concurrent use:
// one request is handled by one goroutine.
type Lender struct {
	lent []*[]byte
}

// New returns a Lender with nothing lent.
func New() *Lender { return &Lender{} }

// Get returns an empty buffer of capacity at least n, lent until Release.
func (l *Lender) Get(n int) []byte {
	p := bufpool.Shared.Get(n)
	l.lent = append(l.lent, p)
	return (*p)[:0]
}

// Release takes back every buffer lent: nothing may read or write them
// afterwards.
func (l *Lender) Release() {
	for i, p := range l.lent {
		if poison.Load() {
			b := (*p)[:cap(*p)]
			for j := range b {
				b[j] = '#'
			}
		}
		bufpool.Shared.Put(p)
		l.lent[i] = nil
	}
	l.lent = l.lent[:0]
}

type ctxKey struct{}

// With returns ctx carrying l.
func With(ctx context.Context, l *Lender) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// From returns the Lender of ctx, nil if there is none.
func From(ctx context.Context) *Lender {
	l, _ := ctx.Value(ctxKey{}).(*Lender)
	return l
}
