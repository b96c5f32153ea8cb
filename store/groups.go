package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// CommitGroupOffset durably records offset as the position of group in st
// (synced under SyncAlways). The store does not interpret the offset beyond
// rejecting negative ones (ErrOffsetOutOfRange); group must be non-empty
// (ErrInvalidGroup). CommitGroupOffsetSoon does the same without waiting
// for the fsync.
func (s *Store) CommitGroupOffset(group string, st Stream, offset int64) error {
	// Pebble's own commit pipeline shares one fsync among concurrent
	// synced commits, so group commits need no queue of their own.
	return s.commitGroupOffset(group, st, offset, s.writeOpts)
}

// commitGroupOffset validates and writes a group offset with opts.
func (s *Store) commitGroupOffset(group string, st Stream, offset int64, opts *pebble.WriteOptions) error {
	if group == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidGroup)
	}
	if err := st.validate(); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("%w: group %q %s: negative offset %d", ErrOffsetOutOfRange, group, st, offset)
	}
	err := s.writeMetaWith(opts, func() string { return fmt.Sprintf("commit offset of group %q %s", group, st) }, func(b *pebble.Batch) {
		_ = b.Set(groupOffsetKey(group, st), encodeGroupOffsetValue(offset, s.opts.Now().UnixNano()), nil)
	})
	if err == nil {
		s.stats.groupCommits.Add(1)
	}
	return err
}

// writeMeta durably applies one small batch that fill builds (a group
// offset, a setting), outside the group commit of appends. what names the
// write in its error (a function: it is formatted only then).
func (s *Store) writeMeta(what func() string, fill func(b *pebble.Batch)) error {
	return s.writeMetaWith(s.writeOpts, what, fill)
}

// writeMetaWith is writeMeta with the write options opts: with
// pebble.NoSync it returns once Pebble applied the batch.
func (s *Store) writeMetaWith(opts *pebble.WriteOptions, what func() string, fill func(b *pebble.Batch)) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if err := s.refusing(); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	fill(b) // Set and DeleteRange fail only for indexed batches
	if err := s.applyDurable(b, opts, true); err != nil {
		// The store is open (acquire), so Pebble failed to write or sync
		// its WAL, and it keeps that error for every later write.
		return fmt.Errorf("%w: %s: %w", ErrWriteFailed, what(), err)
	}
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
	var out []GroupOffset
	err := s.scanFamily(prefixGroupOffset, "group offsets", func(key, v []byte) error {
		group, st, err := decodeGroupOffsetKey(key)
		if err != nil {
			return fmt.Errorf("store: group offsets: %w", err)
		}
		off, nanos, err := decodeGroupOffsetValue(v)
		if err != nil {
			return fmt.Errorf("store: offset of group %q %s: %w", group, st, err)
		}
		o := GroupOffset{Group: group, Stream: st, Offset: off}
		if nanos != 0 {
			o.Committed = time.Unix(0, nanos)
		}
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanFamily calls fn with every key and value of a key family, in key
// order, and returns its first error. what names the family in the errors
// of the scan itself.
func (s *Store) scanFamily(prefix byte, what string, fn func(key, value []byte) error) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	lower, upper := familyBounds(prefix)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store: %s: %w", what, markCorrupt(err))
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("store: %s: %w", what, markCorrupt(err))
	}
	return nil
}

// DeleteGroup durably deletes every committed position of group, and when
// it became inactive: a member that joins it later starts as in a new group
// (onNewGroup).
func (s *Store) DeleteGroup(group string) error {
	if group == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidGroup)
	}
	prefix := groupPrefix(group)
	return s.writeMeta(func() string { return fmt.Sprintf("delete group %q", group) }, func(b *pebble.Batch) {
		_ = b.DeleteRange(prefix, prefixEnd(prefix), nil)
		_ = b.Delete(groupInactiveKey(group), nil)
	})
}

// SetGroupsInactive durably records, in one synced write, when each group
// in records became inactive; a zero time deletes the group's record. The
// store keeps them for the group coordinator's offset retention and does
// not interpret them.
func (s *Store) SetGroupsInactive(records map[string]time.Time) error {
	if len(records) == 0 {
		return nil
	}
	for group := range records {
		if group == "" {
			return fmt.Errorf("%w: empty name", ErrInvalidGroup)
		}
	}
	what := func() string { return fmt.Sprintf("record when %d groups became inactive", len(records)) }
	return s.writeMeta(what, func(b *pebble.Batch) {
		for group, since := range records {
			if since.IsZero() {
				_ = b.Delete(groupInactiveKey(group), nil)
			} else {
				_ = b.Set(groupInactiveKey(group), encodeInt64Value(since.UnixNano()), nil)
			}
		}
	})
}

// ClearGroupsInactive durably deletes every record of SetGroupsInactive.
func (s *Store) ClearGroupsInactive() error {
	lower, upper := familyBounds(prefixGroupInactive)
	return s.writeMeta(func() string { return "delete the records of inactive groups" }, func(b *pebble.Batch) {
		_ = b.DeleteRange(lower, upper, nil)
	})
}

// GroupsInactive returns the records of SetGroupsInactive, by group.
func (s *Store) GroupsInactive() (map[string]time.Time, error) {
	out := make(map[string]time.Time)
	err := s.scanFamily(prefixGroupInactive, "inactive groups", func(key, v []byte) error {
		group, err := decodeGroupInactiveKey(key)
		if err != nil {
			return fmt.Errorf("store: inactive groups: %w", err)
		}
		if len(v) != int64ValueLen {
			return fmt.Errorf("store: group %q inactive since: %w: %d bytes, want %d", group, ErrCorrupt, len(v), int64ValueLen)
		}
		out[group] = time.Unix(0, int64(binary.LittleEndian.Uint64(v)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
