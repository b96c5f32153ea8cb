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
// failure); never, missing. An event whose request failed (answered with an
// error, or its answer lost) is "unacked" when received: the broker may have
// stored it, so it is allowed either way. An event of the run that was
// neither acknowledged nor in a failed request was never sent: "phantom", a
// failure. In e2e an event may arrive before its ack: the count is settled
// once the producers have stopped, when every event sent is acknowledged or
// failed. Events of other runs are "foreign" (the topic had older data) and
// ignored (nor counted towards consume --count).
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
	unacked   atomic.Uint64 // not acknowledged when received: maybe not yet
	beyond    atomic.Uint64 // seq too high for any run: phantom, not tracked
	counted   atomic.Uint64 // events of the run (without acks: of any run), for consume --count

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
	v.counted.Add(1)
	if p.seq >= seqLimit {
		v.beyond.Add(1)
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
		// Not acked (yet: in e2e the ack may still be on its way; result
		// settles it: unacked if its request failed, else phantom).
		v.unacked.Add(1)
	}
}

func (v *verifier) checkRun(p parsedEvent) {
	v.counted.Add(1)
	if p.seq >= seqLimit {
		v.beyond.Add(1)
		return
	}
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

// Verify is the outcome of a consume check. Unacked counts the events
// received whose request failed (allowed); Phantom those of the run received
// and never sent: neither acknowledged nor of a failed request, or numbered
// beyond what any run can number. The run fails on them.
type Verify struct {
	Mode       string `json:"mode"` // "acks" or "contiguity"
	Expected   uint64 `json:"expected"`
	Delivered  uint64 `json:"delivered"`
	Missing    uint64 `json:"missing"`
	Duplicated uint64 `json:"duplicated"`
	Malformed  uint64 `json:"malformed"`
	Unacked    uint64 `json:"unacked_delivered"`
	Phantom    uint64 `json:"phantom"`
	Foreign    uint64 `json:"foreign"`
	// Unread: a consume run that stopped early (--count, --duration, an
	// interrupt) counts the expected events it did not receive here, not
	// as missing: it did not wait for them.
	Unread uint64 `json:"unread,omitempty"`
	Runs   int    `json:"runs,omitempty"`
}

// result counts missing events (acked and never seen), and sorts the events
// seen that were not acked into unacked (of a failed request) and phantom
// (neither).
func (v *verifier) result() Verify {
	out := Verify{
		Duplicated: v.dup.Load(),
		Malformed:  v.malformed.Load(),
		Phantom:    v.beyond.Load(),
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
	out.Expected = v.acks.nAcked.Load()
	// Recount from the sets: an event received before its ack arrived was
	// counted unacked by check. Every event seen counts, however high its
	// seq: one beyond the highest sent is a phantom too.
	var delivered, unacked, phantom uint64
	v.seen.eachWord(func(seq, s uint64) {
		a, f := v.acks.acked.word(seq), v.acks.failed.word(seq)
		delivered += uint64(bits.OnesCount64(s & a))
		unacked += uint64(bits.OnesCount64(s &^ a & f))
		phantom += uint64(bits.OnesCount64(s &^ a &^ f))
	})
	out.Delivered, out.Unacked = delivered, unacked
	out.Phantom += phantom
	out.Missing = out.Expected - delivered
	return out
}
