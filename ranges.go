package floe

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/floe-streams/floe/store"
)

// ErrConsumerRangesChanged is returned by New when the data directory was
// written with another number of sub-ranges.
var ErrConsumerRangesChanged = errors.New("consumer-ranges differs from the data directory's")

// rangesSetting is the store setting that records --consumer-ranges.
const rangesSetting = "consumer-ranges"

// checkConsumerRanges refuses to serve a data directory written with
// another number of sub-ranges. The sub-ranges are the streams: with fewer,
// the events of the others would no longer be read; with any other number,
// partition keys would move to other sub-ranges, out of order with their
// earlier events.
//
// The number is recorded in the store while the directory holds no stream
// (nothing depends on it yet, so a first start that failed does not bind
// the directory), and checked once it holds some. A directory written
// before the number was recorded is checked against its streams: more
// sub-ranges than it holds cannot be told from a number it was written
// with, so that start is only warned about.
func checkConsumerRanges(s *store.Store, dir string, ranges int, log *slog.Logger) error {
	v, ok, err := s.Setting(rangesSetting)
	if err != nil {
		return err
	}
	want := strconv.Itoa(ranges)
	streams := s.AllStreams()
	switch {
	case len(streams) == 0:
		if ok && v == want {
			return nil
		}
		return s.RecordSetting(rangesSetting, want)
	case ok && v == want:
		return nil
	case ok:
		was, _ := strconv.Atoi(v)
		return fmt.Errorf("%w: %s was written with --consumer-ranges %s, and this broker has %d: "+
			"start it with --consumer-ranges %s, or use another --data-dir (%s)",
			ErrConsumerRangesChanged, dir, v, ranges, v, rangesChangeCost(was, ranges))
	}
	highest := uint32(0)
	for _, st := range streams {
		highest = max(highest, st.RangeIndex)
	}
	switch {
	case int(highest) >= ranges:
		return fmt.Errorf("%w: %s holds events of sub-range %d, which a broker with --consumer-ranges %d does not have: "+
			"start it with the number it was written with (at least %d), or use another --data-dir (%s)",
			ErrConsumerRangesChanged, dir, highest, ranges, highest+1, rangesChangeCost(int(highest)+1, ranges))
	case int(highest)+1 == ranges:
		return s.RecordSetting(rangesSetting, want)
	}
	log.Warn("cannot check --consumer-ranges: the data directory was written before the number was recorded, "+
		"and holds fewer sub-ranges than this broker has; if it was written with another number, stop and start with that one",
		"data-dir", dir, "consumer-ranges", ranges, "highest-sub-range", highest)
	return nil
}

// rangesChangeCost says what serving a directory written with was
// sub-ranges with now of them would do.
func rangesChangeCost(was, now int) string {
	if now < was {
		return fmt.Sprintf("with %d, the events of sub-ranges %d to %d would no longer be read, and partition keys would move to other sub-ranges", now, now, was-1)
	}
	return "partition keys would move to other sub-ranges, out of order with their earlier events"
}
