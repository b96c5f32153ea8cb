// Package store is Floe's durable event log, embedded in the broker on top of
// Pebble.
//
// It owns everything that touches the disk: appending batches of events to a
// stream (a sub-range of a topic in one ring generation) and assigning their
// offsets, reading them back from an offset, the committed positions of
// consumer groups, and retention by age and size. It knows nothing of HTTP,
// gRPC, placement or group membership; those packages call the methods of
// Store (and should declare the few they need as a small interface of their
// own).
//
// Layout: the whole key space is declared in keys.go and the chunk format in
// chunk.go. Concurrent appends are group-committed (commit.go): one Pebble
// batch and one fsync for many appends, and no append is acknowledged, or
// visible to readers, before the fsync that covers it. The appends to one
// stream in one batch share chunks (one key each, up to 128 KiB), and a
// stream's chunks are consecutive keys, so reads are sequential scans.
//
// Pebble is tuned for a log (options.go, tuning.md): chunk values are
// separated into blob files at flush, so compactions move only keys and the
// events are written twice (WAL and blob file) instead of once per LSM level.
package store
