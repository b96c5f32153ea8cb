package floe

import (
	"testing"

	"github.com/floe-streams/floe/store"
)

// The startup line gives the free space the store really keeps: the
// default when none is set, the floor of twice the memtables when the
// setting is under it, and the setting itself above it.
func TestLogAttrsMinFreeDisk(t *testing.T) {
	floor := int64(2 * 4 * store.DefaultMemTableSize) // 8 memtables at the default request limit
	for _, tc := range []struct {
		set  int64
		want any
	}{
		{0, int64(256 << 20)},
		{10 << 20, floor},
		{1 << 30, int64(1 << 30)},
		{-1, "off"}, // as the flag says it
	} {
		attrs := Options{MinFreeDisk: tc.set}.withDefaults().logAttrs()
		var got any
		for i := 0; i+1 < len(attrs); i += 2 {
			if attrs[i] == "min-free-disk" {
				got = attrs[i+1]
			}
		}
		if got != tc.want {
			t.Errorf("MinFreeDisk %d: logged %v, want %v", tc.set, got, tc.want)
		}
	}
}

// The library's default event limit follows a smaller request limit too,
// as cmd/floe's: it stayed 1 MiB over a request limit of 512 KiB.
func TestMaxEventBytesDefaultFollowsTheRequestLimit(t *testing.T) {
	if got := (Options{MaxRequestBytes: 512 << 10}).withDefaults().MaxEventBytes; got != 512<<10 {
		t.Errorf("max-event-bytes %d with a request limit of 512 KiB, want 524288", got)
	}
	if got := (Options{}).withDefaults().MaxEventBytes; got != 1<<20 {
		t.Errorf("max-event-bytes %d by default, want 1 MiB", got)
	}
}
