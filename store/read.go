package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Batch is the result of Read: Events[i] has offset Start+i.
type Batch struct {
	Start  int64
	Events [][]byte
}

// Read returns events of st from offset from on: at most maxEvents (<= 0: no
// limit) and about maxBytes of payload (<= 0: no limit), and always at least
// one event when any is readable, so callers make progress.
//
// If from is below the earliest retained offset, reading starts at the
// earliest retained one (Batch.Start says where). from equal to the high
// watermark gives an empty batch and no error; from beyond it gives
// ErrOffsetOutOfRange. Only acknowledged (durable) events are visible. A chunk
// that fails its checks gives an error wrapping ErrCorrupt that names the
// stream and offset; no event of a corrupt chunk is returned. The returned
// slices are copies: they stay valid, and the caller may keep or modify them.
func (s *Store) Read(st Stream, from int64, maxBytes, maxEvents int) (Batch, error) {
	b, _, err := s.ReadInto(nil, st, from, maxBytes, maxEvents)
	return b, err
}

// ReadInto is Read, copying the events into the spare capacity of buf as
// long as they fit, and the rest into memory of their own. It returns buf
// extended by what it used: events in buf stay valid only as long as the
// caller does not reuse buf. A poll answered over HTTP reads into a buffer
// that is reused once the answer is written (package reqbuf).
func (s *Store) ReadInto(buf []byte, st Stream, from int64, maxBytes, maxEvents int) (Batch, []byte, error) {
	r := reader{st: st, maxBytes: maxBytes, maxEvents: maxEvents, arena: buf}
	b, err := s.read(&r, from)
	return b, r.arena, err
}

func (s *Store) read(r *reader, from int64) (Batch, error) {
	st := r.st
	if err := s.acquire(); err != nil {
		return Batch{}, err
	}
	defer s.release()
	var hwm, low int64
	if ss := s.state(st); ss != nil {
		hwm, low = ss.hwm.Load(), ss.low.Load()
	}
	if from > hwm {
		return Batch{}, fmt.Errorf("%w: %s: offset %d is beyond the high watermark %d",
			ErrOffsetOutOfRange, st, from, hwm)
	}
	from = max(from, low)
	if from >= hwm {
		return Batch{Start: hwm}, nil
	}

	// The upper bound hides chunks that are written but not yet durable:
	// every chunk that starts below hwm was published whole.
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: offsetKey(prefixChunk, st, 0),
		UpperBound: offsetKey(prefixChunk, st, hwm),
	})
	if err != nil {
		return Batch{}, fmt.Errorf("store: read %s: %w", st, err)
	}
	defer it.Close()

	r.from, r.hwm = from, hwm
	// The chunk holding from is the last one starting at or before it. If
	// there is none, retention deleted the chunks up to (and beyond) from
	// since we loaded low: start at the earliest chunk left. Retention
	// raises low before the deletion is visible, so that chunk starts at
	// low as loaded now, or below; one above it follows missing chunks.
	valid := it.SeekLT(offsetKey(prefixChunk, st, from+1))
	if !valid {
		if err := it.Error(); err != nil {
			return Batch{}, fmt.Errorf("store: read %s offset %d: %w", st, from, markCorrupt(err))
		}
		if valid = it.First(); valid && len(it.Key()) >= offsetLen {
			first := int64(binary.BigEndian.Uint64(it.Key()[len(it.Key())-offsetLen:]))
			if low := s.state(st).low.Load(); first > low {
				return Batch{}, fmt.Errorf("store: read %s: %w: the earliest chunk starts at offset %d, the earliest offset is %d",
					st, ErrCorrupt, first, low)
			}
		}
	}
	for ; valid && !r.full(); valid = it.Next() {
		key := it.Key()
		if len(key) < offsetLen {
			return Batch{}, fmt.Errorf("store: read %s: %w: short chunk key %x", st, ErrCorrupt, key)
		}
		first := int64(binary.BigEndian.Uint64(key[len(key)-offsetLen:]))
		v, err := it.ValueAndErr()
		if err != nil {
			return Batch{}, fmt.Errorf("store: read %s offset %d: %w", st, first, markCorrupt(err))
		}
		if err := r.add(first, v); err != nil {
			return Batch{}, err
		}
	}
	if err := it.Error(); err != nil {
		return Batch{}, fmt.Errorf("store: read %s offset %d: %w", st, r.next, markCorrupt(err))
	}
	if !r.started {
		// Everything up to hwm was deleted by retention meanwhile: retention
		// raised low to hwm or beyond before the deletion was visible.
		if low := s.state(st).low.Load(); low < hwm {
			return Batch{}, fmt.Errorf("store: read %s: %w: no chunk below the high watermark %d, the earliest offset is %d",
				st, ErrCorrupt, hwm, low)
		}
		return Batch{Start: hwm}, nil
	}
	if !r.full() && r.next != hwm {
		return Batch{}, fmt.Errorf("store: read %s: %w: chunks end at offset %d, high watermark is %d",
			st, ErrCorrupt, r.next, hwm)
	}
	return Batch{Start: r.start, Events: r.events}, nil
}

// reader accumulates the events of a Read, chunk by chunk.
type reader struct {
	st                  Stream
	from, hwm           int64
	maxBytes, maxEvents int

	started bool
	start   int64 // offset of events[0]
	next    int64 // offset the next chunk must start at
	stopped bool  // budget exhausted
	bytes   int
	events  [][]byte
	// arena, when not nil, receives the events while its spare capacity
	// holds them (ReadInto).
	arena []byte
}

// full reports whether the budget is spent, so that the next chunk is not
// even loaded.
func (r *reader) full() bool {
	return r.stopped || r.maxBytes > 0 && len(r.events) > 0 && r.bytes >= r.maxBytes
}

// add verifies the chunk at offset first and copies the events it
// contributes.
func (r *reader) add(first int64, value []byte) error {
	c, err := decodeChunk(value)
	if err != nil {
		return fmt.Errorf("store: read %s offset %d: %w", r.st, first, err)
	}
	end := first + int64(c.count)
	skip := 0
	if !r.started {
		if end <= r.from {
			return fmt.Errorf("store: read %s: %w: offset %d is in no chunk (chunk %d ends at %d)",
				r.st, ErrCorrupt, r.from, first, end)
		}
		r.started = true
		r.start = max(r.from, first)
		skip = int(r.start - first)
	} else if first != r.next {
		return fmt.Errorf("store: read %s: %w: chunk at offset %d, expected %d", r.st, ErrCorrupt, first, r.next)
	}
	if end > r.hwm {
		return fmt.Errorf("store: read %s: %w: chunk %d ends at %d, beyond the high watermark %d",
			r.st, ErrCorrupt, first, end, r.hwm)
	}
	r.next = end

	pos := 0
	for i := 0; i < skip; i++ {
		pos += c.eventLen(i)
	}
	// Pick the events within budget, then copy them with one allocation.
	n, size := 0, 0
	for i := skip; i < c.count; i++ {
		l := c.eventLen(i)
		if len(r.events)+n > 0 {
			if r.maxEvents > 0 && len(r.events)+n >= r.maxEvents ||
				r.maxBytes > 0 && r.bytes+size+l > r.maxBytes {
				r.stopped = true
				break
			}
		}
		n++
		size += l
	}
	if r.events == nil {
		r.events = make([][]byte, 0, r.expectedEvents(n, size))
	}
	var buf []byte
	if r.arena != nil && cap(r.arena)-len(r.arena) >= size {
		r.arena = append(r.arena, c.payload[pos:pos+size]...)
		buf = r.arena[len(r.arena)-size:]
	} else {
		// bytes.Clone allocates without clearing the memory it then fills
		// (make would clear it first: 17% of the broker's CPU under
		// consume).
		buf = bytes.Clone(c.payload[pos : pos+size])
	}
	off := 0
	for i := skip; i < skip+n; i++ {
		l := c.eventLen(i)
		r.events = append(r.events, buf[off:off+l:off+l])
		off += l
	}
	r.bytes += size
	if r.maxEvents > 0 && len(r.events) >= r.maxEvents {
		r.stopped = true
	}
	return nil
}

// maxPresizedEvents bounds the events slice that a Read allocates up front
// (24 bytes each): a read without a byte budget grows it as it goes.
const maxPresizedEvents = 1 << 16

// expectedEvents estimates how many events the Read returns, from the first
// chunk's n events of size bytes, so that the events slice is allocated once
// instead of growing by doubling: under consume its growth was 15% of the
// bytes the broker allocated, and each step copies and clears a slice of
// pointers.
func (r *reader) expectedEvents(n, size int) int {
	want := int64(maxPresizedEvents)
	if r.maxBytes > 0 && n > 0 && size > 0 {
		avg := max(1, size/n)
		want = min(want, int64(n)+int64(max(0, r.maxBytes-size)/avg)+1)
	}
	if r.maxEvents > 0 {
		want = min(want, int64(r.maxEvents))
	}
	want = min(want, r.hwm-r.start)
	return int(max(want, int64(n)))
}

// markCorrupt makes a Pebble corruption error (a block or file failing its
// checksum) also match ErrCorrupt.
func markCorrupt(err error) error {
	if err != nil && pebble.IsCorruptionError(err) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}
