package bench

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// verifier checks the events a consumer receives against what the producing
// run had acknowledged.
//
// With the acks of the run (an ack file, or the producer of the same
// process in e2e): an acknowledged event received once is delivered; twice or
// more, duplicated (at-least-once delivery allows it; it is reported, not a
// failure); never, missing. An event whose request failed is "unacked" when
// received: allowed either way. Events of other runs are "foreign" (the topic
// had older data) and ignored.
//
// Without acks (consume of a topic that a produce run of another process,
// without --ack-file, filled): every run id seen is checked for contiguity
// instead: missing is the number of holes in [0, highest seq] per run. That
// cannot see lost events at the tail, nor tell a failed request from a lost
// one: use --ack-file for a sound check.
type verifier struct {
	run  string // "" without acks
	acks *acks

	seen      bitset
	delivered atomic.Uint64
	dup       atomic.Uint64
	malformed atomic.Uint64
	foreign   atomic.Uint64
	unacked   atomic.Uint64

	// Without acks: per run.
	mu   sync.Mutex
	runs map[string]*runSeen

	e2e *Histogram // end-to-end latency, when set
}

type runSeen struct {
	seen bitset
	n    atomic.Uint64
	max  atomic.Uint64 // highest seq + 1
}

func newVerifier(run string, a *acks) *verifier {
	return &verifier{run: run, acks: a, runs: map[string]*runSeen{}}
}

// check verifies one received event; now is its receive time (Unix ns).
func (v *verifier) check(ev []byte, now int64) {
	p, ok := parseEvent(ev)
	if !ok {
		v.malformed.Add(1)
		return
	}
	if v.acks == nil {
		v.checkRun(p)
		return
	}
	if string(p.run) != v.run {
		v.foreign.Add(1)
		return
	}
	if v.e2e != nil {
		v.e2e.Record(time.Duration(now - p.ts))
	}
	if v.seen.set(p.seq) {
		v.dup.Add(1)
		return
	}
	if v.acks.acked.has(p.seq) {
		v.delivered.Add(1)
	} else {
		// Not acked (yet: in e2e the ack may still be on its way; the
		// final count settles it).
		v.unacked.Add(1)
	}
}

func (v *verifier) checkRun(p parsedEvent) {
	v.mu.Lock()
	r := v.runs[string(p.run)]
	if r == nil {
		r = &runSeen{}
		v.runs[string(p.run)] = r
	}
	v.mu.Unlock()
	if r.seen.set(p.seq) {
		v.dup.Add(1)
		return
	}
	r.n.Add(1)
	v.delivered.Add(1)
	for {
		m := r.max.Load()
		if p.seq+1 <= m || r.max.CompareAndSwap(m, p.seq+1) {
			break
		}
	}
}

// complete reports whether every acknowledged event was delivered.
func (v *verifier) complete() bool {
	if v.acks == nil {
		return false
	}
	if v.delivered.Load()+v.unacked.Load() < v.acks.nAcked.Load() {
		return false
	}
	return v.result().Missing == 0
}

// Verify is the outcome of a consume check.
type Verify struct {
	Mode       string `json:"mode"` // "acks" or "contiguity"
	Expected   uint64 `json:"expected"`
	Delivered  uint64 `json:"delivered"`
	Missing    uint64 `json:"missing"`
	Duplicated uint64 `json:"duplicated"`
	Malformed  uint64 `json:"malformed"`
	Unacked    uint64 `json:"unacked_delivered"`
	Foreign    uint64 `json:"foreign"`
	Runs       int    `json:"runs,omitempty"`
}

// result counts missing events: acked and never seen.
func (v *verifier) result() Verify {
	out := Verify{
		Duplicated: v.dup.Load(),
		Malformed:  v.malformed.Load(),
		Foreign:    v.foreign.Load(),
	}
	if v.acks == nil {
		out.Mode = "contiguity"
		v.mu.Lock()
		defer v.mu.Unlock()
		out.Runs = len(v.runs)
		for _, r := range v.runs {
			out.Expected += r.max.Load()
			out.Delivered += r.n.Load()
		}
		out.Missing = out.Expected - out.Delivered
		return out
	}
	out.Mode = "acks"
	lim := v.acks.limit.Load()
	out.Expected = v.acks.nAcked.Load()
	// Recount from the sets: an event received before its ack arrived was
	// counted unacked by check.
	var delivered, unacked uint64
	for seq := uint64(0); seq < lim; seq += 64 {
		a, s := v.acks.acked.word(seq), v.seen.word(seq)
		delivered += uint64(bits.OnesCount64(a & s))
		unacked += uint64(bits.OnesCount64(^a & s))
	}
	out.Delivered, out.Unacked = delivered, unacked
	out.Missing = out.Expected - delivered
	return out
}
