// Package testgroup gives tests a consumer-group coordinator over a store
// in memory, both closed when the test ends.
package testgroup

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/internal/testlog"
	"github.com/floe-streams/floe/store"
)

// New returns a coordinator of 4 sub-ranges per topic and its store.
func New(t testing.TB) (*group.Coordinator, *store.Store) {
	t.Helper()
	return NewWith(t, nil)
}

// NewWith is New with tune, when not nil, applied to the coordinator's
// options.
func NewWith(t testing.TB, tune func(*group.Options)) (*group.Coordinator, *store.Store) {
	t.Helper()
	st, err := store.Open("data", store.Options{FS: vfs.NewMem(), RetentionInterval: -1, Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	opts := group.Options{Streams: broker.NewRing(4).Streams, Logger: testlog.New(t)}
	if tune != nil {
		tune(&opts)
	}
	c, err := group.New(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, st
}

// TopicNames is n distinct topic names: t0, t1, ...
func TopicNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("t%d", i)
	}
	return names
}
