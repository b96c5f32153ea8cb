package store

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Setting returns the value of a broker setting recorded with
// RecordSetting; ok is false when none was recorded.
func (s *Store) Setting(name string) (value string, ok bool, err error) {
	if err := s.acquire(); err != nil {
		return "", false, err
	}
	defer s.release()
	v, closer, err := s.db.Get(metaSettingKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: setting %q: %w", name, err)
	}
	defer closer.Close()
	return string(v), true, nil
}

// RecordSetting durably records a broker setting that the stored data
// depends on (the number of sub-ranges, for one), so that a later start can
// refuse a different one.
func (s *Store) RecordSetting(name, value string) error {
	return s.writeMeta(func() string { return fmt.Sprintf("record setting %q", name) }, func(b *pebble.Batch) {
		_ = b.Set(metaSettingKey(name), []byte(value), nil)
	})
}

// AllStreams returns every stream the store knows, with or without events,
// in key order.
func (s *Store) AllStreams() []Stream {
	s.mu.RLock()
	out := make([]Stream, 0, len(s.streams))
	for st := range s.streams {
		out = append(out, st)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, compareStreams)
	return out
}
