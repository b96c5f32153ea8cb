package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// bitset is a set of sequence numbers, safe for concurrent use, that grows
// by pages of 2^20 bits as higher numbers are added (below seqLimit, 2^34).
type bitset struct {
	pages [bitPages]atomic.Pointer[bitPage]
	mu    sync.Mutex // serialises page allocation
}

type bitPage [1 << 14]atomic.Uint64

const (
	pageBits = 1 << 20
	bitPages = 1 << 14
	seqLimit = bitPages * pageBits // one past the highest seq a bitset holds
)

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

// eachWord calls fn with every non-zero word of the set, in order, and the
// seq of its lowest bit (a multiple of 64).
func (s *bitset) eachWord(fn func(seq, w uint64)) {
	for pi := range s.pages {
		p := s.pages[pi].Load()
		if p == nil {
			continue
		}
		for wi := range p {
			if w := p[wi].Load(); w != 0 {
				fn(uint64(pi)*pageBits+uint64(wi)*64, w)
			}
		}
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
// acknowledged. Ranges are half-open [lo, hi) of sequence numbers, not
// empty, in order and apart; acked and failed ranges are disjoint, below
// Sent, and Acked is the size of the acked ones.
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
	// Incomplete marks the file that prepareAckFile puts in place when a
	// produce run starts: until the run writes its acks over it, the file
	// holds nothing to verify, and consume refuses it.
	Incomplete bool `json:"incomplete,omitempty"`
}

func (a *acks) file(run, topic string, size int) *AckFile {
	lim := a.limit.Load()
	return &AckFile{
		Version: 1, Run: run, Topic: topic, EventSize: size,
		Sent: lim, Acked: a.nAcked.Load(),
		AckRanges: a.acked.ranges(lim), FailedRanges: a.failed.ranges(lim),
	}
}

// prepareAckFile readies path for the ack file of a produce run that is
// starting: it replaces whatever is there with a file marked incomplete,
// written as writeAckFile writes, so that a run that crashes or fails
// before writing its acks leaves no ack file of an earlier run for consume
// to verify against, and a path that cannot be written fails the run before
// it sends anything. An empty path (no --ack-file) does nothing.
func prepareAckFile(path string) error {
	if path == "" {
		return nil
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	return writeAckFile(path, &AckFile{Version: 1, Incomplete: true})
}

// writeAckFile writes f at path atomically: a reader sees the previous file
// or f, whole, and after a crash the file is one or the other.
func writeAckFile(path string, f *AckFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic writes a temporary file in the directory of path, syncs
// it and renames it to path.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	t, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			t.Close()
			os.Remove(t.Name())
		}
	}()
	if _, err = t.Write(data); err != nil {
		return err
	}
	if err = t.Chmod(0o644); err != nil {
		return err
	}
	if err = t.Sync(); err != nil {
		return err
	}
	if err = t.Close(); err != nil {
		return err
	}
	if err = os.Rename(t.Name(), path); err != nil {
		return err
	}
	// The rename lasts once the directory is synced; where a directory
	// cannot be opened for that, the rename stands all the same.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func readAckFile(path string) (*AckFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no ack file: %w (floe bench produce --ack-file writes it when its run ends)", err)
	}
	if err != nil {
		return nil, err
	}
	var f AckFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Incomplete {
		return nil, fmt.Errorf("%s: incomplete ack file: the produce run writing it did not finish (it crashed or failed, or is still running)", path)
	}
	if f.Version != 1 || len(f.Run) != runIDLen {
		return nil, fmt.Errorf("%s: not a floe bench ack file (version %d, run %q)", path, f.Version, f.Run)
	}
	if err := f.check(); err != nil {
		return nil, fmt.Errorf("%s: bad ack file: %w", path, err)
	}
	return &f, nil
}

// check verifies that the ranges of f are what acks.file writes, so that
// toAcks cannot count a range backwards or twice.
func (f *AckFile) check() error {
	if f.Sent > seqLimit {
		return fmt.Errorf("sent %d beyond the tracked range (%d)", f.Sent, uint64(seqLimit))
	}
	sum := func(name string, rs [][2]uint64) (uint64, error) {
		var n, prev uint64
		for i, r := range rs {
			switch lo, hi := r[0], r[1]; {
			case hi <= lo:
				return 0, fmt.Errorf("%s[%d] [%d, %d) is empty or backwards", name, i, lo, hi)
			case i > 0 && lo < prev:
				return 0, fmt.Errorf("%s[%d] [%d, %d) starts before the end of the range before it (%d)", name, i, lo, hi, prev)
			case hi > f.Sent:
				return 0, fmt.Errorf("%s[%d] [%d, %d) ends beyond sent (%d)", name, i, lo, hi, f.Sent)
			}
			n += r[1] - r[0]
			prev = r[1]
		}
		return n, nil
	}
	acked, err := sum("acked_ranges", f.AckRanges)
	if err != nil {
		return err
	}
	if acked != f.Acked {
		return fmt.Errorf("acked_ranges hold %d events, acked says %d", acked, f.Acked)
	}
	failed, err := sum("failed_ranges", f.FailedRanges)
	if err != nil {
		return err
	}
	// Both lists are in order: walk them together.
	for i, j := 0, 0; i < len(f.AckRanges) && j < len(f.FailedRanges); {
		a, b := f.AckRanges[i], f.FailedRanges[j]
		if a[0] < b[1] && b[0] < a[1] {
			return fmt.Errorf("acked_ranges[%d] [%d, %d) overlaps failed_ranges[%d] [%d, %d)", i, a[0], a[1], j, b[0], b[1])
		}
		if a[1] <= b[0] {
			i++
		} else {
			j++
		}
	}
	// Every event handed out was acknowledged or failed: one that was
	// neither would count as a phantom when it arrived.
	if acked+failed != f.Sent {
		return fmt.Errorf("acked_ranges and failed_ranges hold %d events, sent says %d", acked+failed, f.Sent)
	}
	return nil
}

// toAcks rebuilds the sets of an ack file (checked by readAckFile).
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
