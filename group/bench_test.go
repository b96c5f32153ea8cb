package group_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/internal/reqbuf"
	"github.com/floe-streams/floe/store"
)

// BenchmarkPoll measures how fast a group drains a backlog: each operation
// is a new group of n consumers reading a backlog of benchBacklog events of
// benchEventSize bytes (spread over testRanges streams) to its end, with
// polls of up to 256 KiB, each poll committing the previous one; then the
// consumers say goodbye. events/s counts distinct events; the goodbyes
// rebalance the group, which can deliver a few events again
// (redelivered/op).
func BenchmarkPoll(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("consumers=%d", n), func(b *testing.B) { benchPoll(b, n, 256<<10, false) })
	}
}

// BenchmarkPollLent is BenchmarkPoll with the events read into buffers lent
// for each poll and taken back once it is handled, as the REST and gRPC
// APIs do (package reqbuf), with polls of up to 256 KiB and of the default
// --max-poll-bytes.
func BenchmarkPollLent(b *testing.B) {
	for _, maxBytes := range []int{256 << 10, group.DefaultMaxPollBytes} {
		for _, n := range []int{1, 4} {
			b.Run(fmt.Sprintf("maxBytes=%dKiB/consumers=%d", maxBytes>>10, n), func(b *testing.B) { benchPoll(b, n, maxBytes, true) })
		}
	}
}

const (
	benchBacklog   = 100_000
	benchEventSize = 100
)

func benchPoll(b *testing.B, consumers, maxBytes int, lend bool) {
	e := newEnv(b, func(e *env) { e.opts.Logger = nil })
	event := make([]byte, benchEventSize)
	for i := range event {
		event[i] = 'a' + byte(i%26)
	}
	chunk := make([][]byte, 500)
	for i := range chunk {
		chunk[i] = event
	}
	ctx := context.Background()
	for i := range benchBacklog / len(chunk) {
		if _, err := e.st.Append(ctx, e.stream("t", i%testRanges), chunk); err != nil {
			b.Fatal(err)
		}
	}

	redelivered := 0
	b.ReportAllocs()
	b.ResetTimer()
	for op := range b.N {
		grp := fmt.Sprintf("g%d", op)
		var mu sync.Mutex
		ends := make(map[store.Stream]int64) // end of the events seen, by stream
		var seen, delivered int64
		for c := range consumers {
			id := fmt.Sprintf("%s-c%d", grp, c)
			err := e.c.Register(ctx, group.Registration{ConsumerID: id, Group: grp, Topics: []string{"t"}, OnNewGroup: group.StartFromEarliest})
			if err != nil {
				b.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for c := range consumers {
			id := fmt.Sprintf("%s-c%d", grp, c)
			wg.Go(func() {
				l := reqbuf.New()
				defer l.Release()
				for {
					r := group.PollRequest{ConsumerID: id, MaxBytes: maxBytes}
					if lend {
						l.Release()
						r.Buffer = l.Get
					}
					batches, err := e.c.Poll(ctx, r)
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					for _, batch := range batches {
						end := batch.Start + int64(len(batch.Events))
						if end > ends[batch.Stream] {
							seen += end - max(batch.Start, ends[batch.Stream])
							ends[batch.Stream] = end
						}
						delivered += int64(len(batch.Events))
					}
					done := seen >= benchBacklog
					mu.Unlock()
					if done {
						break
					}
					if len(batches) == 0 {
						runtime.Gosched()
					}
				}
				if err := e.c.Goodbye(ctx, id, true); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		if seen != benchBacklog {
			b.Fatalf("saw %d events, want %d", seen, benchBacklog)
		}
		redelivered += int(delivered - seen)
	}
	b.ReportMetric(float64(benchBacklog)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(redelivered)/float64(b.N), "redelivered/op")
}

// BenchmarkNotify is the cost a producer pays per append when nobody waits.
func BenchmarkNotify(b *testing.B) {
	e := newEnv(b, func(e *env) { e.opts.Logger = nil })
	st := e.stream("t", 0)
	b.ReportAllocs()
	for b.Loop() {
		e.c.Notify(st)
	}
}

// BenchmarkRegisterLargeGroup is one consumer joining a group of n members
// and leaving it (commit=false): two rebalances of n+1 members. A client
// that registers a new id at each start grows its group until the members
// expire.
func BenchmarkRegisterLargeGroup(b *testing.B) {
	for _, n := range []int{100, 5_000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			e := newEnv(b, func(e *env) { e.opts.Logger = nil })
			e.produce("t", 0, 1, "x")
			for i := range n {
				e.register(fmt.Sprintf("m%05d", i), "g", group.StartFromEarliest, "t")
			}
			ctx := context.Background()
			for b.Loop() {
				e.register("new", "g", group.StartFromEarliest, "t")
				if err := e.c.Goodbye(ctx, "new", false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
