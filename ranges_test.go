package floe_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/floe-streams/floe"
	"github.com/floe-streams/floe/store"
)

// A data directory is served only with the number of sub-ranges it was
// written with: with another, the events of the sub-ranges beyond it would
// be hidden and partition keys would move.
func TestConsumerRangesMustNotChange(t *testing.T) {
	dir := t.TempDir()
	withRanges := func(n int) func(*floe.Options) {
		return func(o *floe.Options) { o.DataDir, o.ConsumerRanges = dir, n }
	}
	_, a, stop := runNode(t, withRanges(4))
	c := restClient{t: t, producer: a.Producer, consumer: a.Consumer}
	for i := range 8 {
		c.produce("cr", fmt.Sprintf("k%d", i), fmt.Sprintf(`{"i":%d}`, i))
	}
	stop()

	for _, n := range []int{2, 8} {
		_, err := floe.New(nodeOptions(t, withRanges(n)))
		if !errors.Is(err, floe.ErrConsumerRangesChanged) || !strings.Contains(err.Error(), "--consumer-ranges 4") {
			t.Fatalf("restart with --consumer-ranges %d: %v, want ErrConsumerRangesChanged naming 4", n, err)
		}
	}
	// The same number is served, with every event.
	_, a, _ = runNode(t, withRanges(4))
	c = restClient{t: t, producer: a.Producer, consumer: a.Consumer}
	c.register("r", "g", "cr", "startFromEarliest")
	if got := c.drain("r"); got != 8 {
		t.Fatalf("after a restart with the same ranges, %d events of 8", got)
	}
}

// A directory written before the number was recorded is checked against
// the sub-ranges of its streams, then gets the number recorded.
func TestConsumerRangesOfAnOlderDirectory(t *testing.T) {
	dir := t.TempDir()
	writeOlderDirectory(t, dir, 3)
	_, err := floe.New(nodeOptions(t, func(o *floe.Options) { o.DataDir, o.ConsumerRanges = dir, 2 }))
	if !errors.Is(err, floe.ErrConsumerRangesChanged) || !strings.Contains(err.Error(), "sub-range 3") {
		t.Fatalf("older directory with sub-range 3, --consumer-ranges 2: %v", err)
	}
	_, _, stop := runNode(t, func(o *floe.Options) { o.DataDir, o.ConsumerRanges = dir, 4 })
	stop()
	_, err = floe.New(nodeOptions(t, func(o *floe.Options) { o.DataDir, o.ConsumerRanges = dir, 5 }))
	if !errors.Is(err, floe.ErrConsumerRangesChanged) || !strings.Contains(err.Error(), "--consumer-ranges 4") {
		t.Fatalf("after a start with 4 recorded it, --consumer-ranges 5: %v", err)
	}
}

// drain polls as consumer id until a poll answers 204 (at most 10 polls)
// and returns how many events it received.
func (c restClient) drain(id string) int {
	got := 0
	for range 10 {
		code, byRange := c.poll(id)
		if code == 204 {
			break
		}
		for _, evs := range byRange {
			got += len(evs)
		}
	}
	return got
}

// writeOlderDirectory writes, with the store alone, a data directory as
// floe wrote them before it recorded --consumer-ranges: one event in each
// of the given sub-ranges.
func writeOlderDirectory(t *testing.T, dir string, ranges ...uint32) {
	t.Helper()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ranges {
		st := store.Stream{Topic: "old", Token: -1 << 63, RangeIndex: i, Version: 1}
		if _, err := s.Append(context.Background(), st, [][]byte{[]byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// nodeOptions are runNode's options, for tests that expect New to fail.
func nodeOptions(t *testing.T, mod func(*floe.Options)) floe.Options {
	o := floe.Options{
		GRPCAddr: "127.0.0.1:0", DiscoveryAddr: "127.0.0.1:0", ProducerAddr: "127.0.0.1:0", ConsumerAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	mod(&o)
	return o
}

// A directory that holds no stream is bound to no number: a first start
// that recorded one and then failed (a port in use) does not stop the next
// start with another.
func TestConsumerRangesOfAnEmptyDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSetting("consumer-ranges", "16"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, a, stop := runNode(t, func(o *floe.Options) { o.DataDir, o.ConsumerRanges = dir, 4 })
	restClient{t: t, producer: a.Producer, consumer: a.Consumer}.produce("e", "k", `{}`)
	stop()
	_, err = floe.New(nodeOptions(t, func(o *floe.Options) { o.DataDir, o.ConsumerRanges = dir, 16 }))
	if !errors.Is(err, floe.ErrConsumerRangesChanged) || !strings.Contains(err.Error(), "--consumer-ranges 4") {
		t.Fatalf("after events written with 4, --consumer-ranges 16: %v", err)
	}
}

// An older directory that holds fewer sub-ranges than the broker has cannot
// be checked: the start is allowed (with a warning) and nothing is
// recorded, so that a start with the right number still works.
func TestConsumerRangesOfAnOlderDirectoryCannotBeRaised(t *testing.T) {
	dir := t.TempDir()
	writeOlderDirectory(t, dir, 0, 1, 2, 3)
	_, _, stop := runNode(t, func(o *floe.Options) { o.DataDir, o.ConsumerRanges = dir, 16 })
	stop()
	_, _, stop = runNode(t, func(o *floe.Options) { o.DataDir, o.ConsumerRanges = dir, 4 })
	stop()
	_, err := floe.New(nodeOptions(t, func(o *floe.Options) { o.DataDir, o.ConsumerRanges = dir, 16 }))
	if !errors.Is(err, floe.ErrConsumerRangesChanged) || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("after a start with 4 recorded it, --consumer-ranges 16: %v", err)
	}
}

// Retention makes a pass as the broker starts serving, not one interval
// (a minute) later; and not before the broker accepted its data directory.
func TestRetentionPassAtStart(t *testing.T) {
	dir := t.TempDir()
	_, a, stop := runNode(t, func(o *floe.Options) { o.DataDir = dir })
	c := restClient{t: t, producer: a.Producer, consumer: a.Consumer}
	for i := range 5 {
		c.produce("rt", fmt.Sprint(i), `{}`)
	}
	stop()
	time.Sleep(20 * time.Millisecond)

	// A start refused after the store opened deletes nothing.
	_, err := floe.New(nodeOptions(t, func(o *floe.Options) {
		o.DataDir, o.ConsumerRanges, o.RetentionMaxAge = dir, 2, time.Millisecond
	}))
	if !errors.Is(err, floe.ErrConsumerRangesChanged) {
		t.Fatalf("start with another --consumer-ranges: %v", err)
	}
	_, a, stop = runNode(t, func(o *floe.Options) { o.DataDir = dir })
	c = restClient{t: t, producer: a.Producer, consumer: a.Consumer}
	c.register("r1", "g1", "rt", "startFromEarliest")
	if got := c.drain("r1"); got != 5 {
		t.Fatalf("after a refused start with a 1 ms retention, %d events of 5", got)
	}
	stop()

	// A start that serves deletes what expired at once.
	_, a, _ = runNode(t, func(o *floe.Options) { o.DataDir, o.RetentionMaxAge = dir, time.Millisecond })
	c = restClient{t: t, producer: a.Producer, consumer: a.Consumer}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		// A new group each time, from the earliest event kept.
		id := fmt.Sprintf("r%d", i)
		c.register(id, "fresh-"+id, "rt", "startFromEarliest")
		if code, _ := c.poll(id); code == 204 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("events past their age were still served 10 s after the start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
