package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// CommitGroupOffset durably records offset as the position of group in st
// (synced under SyncAlways). The store does not interpret the offset beyond
// rejecting negative ones (ErrOffsetOutOfRange); group must be non-empty
// (ErrInvalidGroup).
func (s *Store) CommitGroupOffset(group string, st Stream, offset int64) error {
	if group == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidGroup)
	}
	if err := st.validate(); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("%w: group %q %s: negative offset %d", ErrOffsetOutOfRange, group, st, offset)
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if err := s.refusing(); err != nil {
		return err
	}
	// Pebble's own commit pipeline shares one fsync among concurrent
	// synced commits, so group commits need no queue of their own.
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(groupOffsetKey(group, st), encodeGroupOffsetValue(offset, s.opts.Now().UnixNano()), nil) // errors only for indexed batches
	if err := s.applyDurable(b, s.writeOpts, true); err != nil {
		// The store is open (acquire), so Pebble failed to write or sync
		// its WAL, and it keeps that error for every later write.
		return fmt.Errorf("%w: commit offset of group %q %s: %w", ErrWriteFailed, group, st, err)
	}
	s.stats.groupCommits.Add(1)
	return nil
}

// GroupOffset returns the committed position of group in st; ok is false if
// the group never committed one for st.
func (s *Store) GroupOffset(group string, st Stream) (offset int64, ok bool, err error) {
	if group == "" {
		return 0, false, fmt.Errorf("%w: empty name", ErrInvalidGroup)
	}
	if err := st.validate(); err != nil {
		return 0, false, err
	}
	if err := s.acquire(); err != nil {
		return 0, false, err
	}
	defer s.release()
	v, closer, err := s.db.Get(groupOffsetKey(group, st))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: offset of group %q %s: %w", group, st, err)
	}
	defer closer.Close()
	offset, _, err = decodeGroupOffsetValue(v)
	if err != nil {
		return 0, false, fmt.Errorf("store: offset of group %q %s: %w", group, st, err)
	}
	return offset, true, nil
}

// GroupOffset is the committed position of a group in a stream.
type GroupOffset struct {
	Group  string
	Stream Stream
	Offset int64
	// Committed is when it was committed; zero if it was written before
	// the store recorded the time.
	Committed time.Time
}

// GroupOffsets returns every committed group position, by group name then
// stream.
func (s *Store) GroupOffsets() ([]GroupOffset, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	lower, upper := familyBounds(prefixGroupOffset)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("store: group offsets: %w", err)
	}
	defer it.Close()
	var out []GroupOffset
	for valid := it.First(); valid; valid = it.Next() {
		group, st, err := decodeGroupOffsetKey(it.Key())
		if err != nil {
			return nil, fmt.Errorf("store: group offsets: %w", err)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("store: group offsets: %w", markCorrupt(err))
		}
		off, nanos, err := decodeGroupOffsetValue(v)
		if err != nil {
			return nil, fmt.Errorf("store: offset of group %q %s: %w", group, st, err)
		}
		o := GroupOffset{Group: group, Stream: st, Offset: off}
		if nanos != 0 {
			o.Committed = time.Unix(0, nanos)
		}
		out = append(out, o)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("store: group offsets: %w", markCorrupt(err))
	}
	return out, nil
}

// DeleteGroup durably deletes every committed position of group: a member
// that joins it later starts as in a new group (onNewGroup).
func (s *Store) DeleteGroup(group string) error {
	if group == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidGroup)
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if err := s.refusing(); err != nil {
		return err
	}
	prefix := groupPrefix(group)
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange(prefix, prefixEnd(prefix), nil) // errors only for indexed batches
	if err := s.applyDurable(b, s.writeOpts, true); err != nil {
		return fmt.Errorf("%w: delete group %q: %w", ErrWriteFailed, group, err)
	}
	return nil
}
