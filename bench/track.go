package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// bitset is a set of sequence numbers, safe for concurrent use, that grows
// by pages of 2^20 bits as higher numbers are added (up to 2^34).
type bitset struct {
	pages [1 << 14]atomic.Pointer[bitPage]
	mu    sync.Mutex // serialises page allocation
}

type bitPage [1 << 14]atomic.Uint64

const pageBits = 1 << 20

func (s *bitset) page(seq uint64, create bool) *bitPage {
	pi := seq / pageBits
	if pi >= uint64(len(s.pages)) {
		panic(fmt.Sprintf("bench: sequence number %d beyond the tracked range", seq))
	}
	if p := s.pages[pi].Load(); p != nil || !create {
		return p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pages[pi].Load(); p != nil {
		return p
	}
	p := new(bitPage)
	s.pages[pi].Store(p)
	return p
}

// set adds seq and reports whether it was already there.
func (s *bitset) set(seq uint64) (was bool) {
	p := s.page(seq, true)
	bit := uint64(1) << (seq % 64)
	old := p[(seq%pageBits)/64].Or(bit)
	return old&bit != 0
}

// has reports whether seq is in the set.
func (s *bitset) has(seq uint64) bool {
	if seq/pageBits >= uint64(len(s.pages)) {
		return false
	}
	p := s.page(seq, false)
	if p == nil {
		return false
	}
	return p[(seq%pageBits)/64].Load()&(1<<(seq%64)) != 0
}

// word returns the 64 bits holding seq (seq rounded down to a multiple of 64).
func (s *bitset) word(seq uint64) uint64 {
	if seq/pageBits >= uint64(len(s.pages)) {
		return 0
	}
	p := s.page(seq, false)
	if p == nil {
		return 0
	}
	return p[(seq%pageBits)/64].Load()
}

// addRange adds [lo, hi).
func (s *bitset) addRange(lo, hi uint64) {
	for seq := lo; seq < hi; {
		if seq%64 == 0 && hi-seq >= 64 {
			p := s.page(seq, true)
			p[(seq%pageBits)/64].Store(^uint64(0))
			seq += 64
			continue
		}
		s.set(seq)
		seq++
	}
}

// ranges lists the set as half-open intervals [lo, hi), below limit.
func (s *bitset) ranges(limit uint64) [][2]uint64 {
	var out [][2]uint64
	inRun, start := false, uint64(0)
	for seq := uint64(0); seq < limit; seq++ {
		if seq%64 == 0 && limit-seq >= 64 {
			var w uint64
			if p := s.page(seq, false); p != nil {
				w = p[(seq%pageBits)/64].Load()
			}
			if (w == 0 && !inRun) || (w == ^uint64(0) && inRun) {
				seq += 63
				continue
			}
		}
		h := s.has(seq)
		switch {
		case h && !inRun:
			inRun, start = true, seq
		case !h && inRun:
			inRun = false
			out = append(out, [2]uint64{start, seq})
		}
	}
	if inRun {
		out = append(out, [2]uint64{start, limit})
	}
	return out
}

// acks is what a producing run knows of its events: which sequence numbers
// were acknowledged (the broker answered 200 / an ack), which were sent but
// not acknowledged (an error: stored or not, the consumer must not count
// them missing), and the highest number handed out.
type acks struct {
	acked  bitset
	failed bitset
	nAcked atomic.Uint64
	limit  atomic.Uint64 // one past the highest seq handed out
}

func (a *acks) ack(lo, hi uint64) {
	a.acked.addRange(lo, hi)
	a.nAcked.Add(hi - lo)
}

func (a *acks) fail(lo, hi uint64) { a.failed.addRange(lo, hi) }

// AckFile is what `floe bench produce --ack-file` writes and `floe bench
// consume --ack-file` reads: which events of the run the broker
// acknowledged. Ranges are half-open [lo, hi) of sequence numbers.
type AckFile struct {
	Version   int         `json:"version"`
	Run       string      `json:"run"`
	Topic     string      `json:"topic"`
	EventSize int         `json:"event_size"`
	Sent      uint64      `json:"sent"`
	Acked     uint64      `json:"acked"`
	AckRanges [][2]uint64 `json:"acked_ranges"`
	// FailedRanges were answered with an error or lost with their
	// connection: they may or may not be stored.
	FailedRanges [][2]uint64 `json:"failed_ranges,omitempty"`
}

func (a *acks) file(run, topic string, size int) *AckFile {
	lim := a.limit.Load()
	return &AckFile{
		Version: 1, Run: run, Topic: topic, EventSize: size,
		Sent: lim, Acked: a.nAcked.Load(),
		AckRanges: a.acked.ranges(lim), FailedRanges: a.failed.ranges(lim),
	}
}

func writeAckFile(path string, f *AckFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readAckFile(path string) (*AckFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f AckFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Version != 1 || len(f.Run) != runIDLen {
		return nil, fmt.Errorf("%s: not a floe bench ack file (version %d, run %q)", path, f.Version, f.Run)
	}
	return &f, nil
}

// toAcks rebuilds the sets of an ack file.
func (f *AckFile) toAcks() *acks {
	a := &acks{}
	for _, r := range f.AckRanges {
		a.ack(r[0], r[1])
	}
	for _, r := range f.FailedRanges {
		a.fail(r[0], r[1])
	}
	a.limit.Store(f.Sent)
	return a
}
