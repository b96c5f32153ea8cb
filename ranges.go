package floe

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/floe-streams/floe/store"
)

// ErrConsumerRangesChanged is returned by New when the data directory was
// written with another number of sub-ranges.
var ErrConsumerRangesChanged = errors.New("consumer-ranges differs from the data directory's")

// rangesSetting is the store setting that records --consumer-ranges.
const rangesSetting = "consumer-ranges"

// checkConsumerRanges refuses to serve a data directory written with
// another number of sub-ranges, and records the number in a new one. The
// sub-ranges are the streams: with another count, the events of the
// sub-ranges beyond it would no longer be read, and partition keys would
// move to other sub-ranges, out of order with their earlier events. A
// directory written before the number was recorded is checked against its
// streams.
func checkConsumerRanges(s *store.Store, dir string, ranges int) error {
	refuse := func(was string) error {
		return fmt.Errorf("%w: %s was first served with --consumer-ranges %s, and this broker has %d: "+
			"start it with --consumer-ranges %s (changing the number would hide the events of the other sub-ranges "+
			"and move partition keys to other sub-ranges), or use another --data-dir",
			ErrConsumerRangesChanged, dir, was, ranges, was)
	}
	v, ok, err := s.Setting(rangesSetting)
	if err != nil {
		return err
	}
	if ok {
		if v != strconv.Itoa(ranges) {
			return refuse(v)
		}
		return nil
	}
	for _, st := range s.AllStreams() {
		if int(st.RangeIndex) >= ranges {
			return fmt.Errorf("%w: %s holds events of sub-range %d, which a broker with --consumer-ranges %d does not have: "+
				"start it with the number the directory was written with (at least %d), or use another --data-dir",
				ErrConsumerRangesChanged, dir, st.RangeIndex, ranges, st.RangeIndex+1)
		}
	}
	return s.RecordSetting(rangesSetting, strconv.Itoa(ranges))
}
