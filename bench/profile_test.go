package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floe-streams/floe"
	"github.com/floe-streams/floe/store"
)

// Profiling harnesses, skipped unless asked for (they take tens of seconds
// and write profiles):
//
//	FLOE_BENCH_PROFILE=rest-1x200 go test -run TestProfileBroker -v ./bench
//	FLOE_BENCH_STORE=16x1 [FLOE_BENCH_STORE_INFLIGHT=1] go test -run TestProfileStoreAppend -v ./bench
//
// TestProfileBroker runs one case of the matrix against an in-process broker
// (data on the real disk) under the CPU profiler: the profile holds the broker
// and the load tool (package bench) side by side. Profiles go to
// $FLOE_BENCH_PROFILE_DIR (default the temp dir); read them with
// go tool pprof -top -nodecount 40 <file>.

func profileDir() string {
	if d := os.Getenv("FLOE_BENCH_PROFILE_DIR"); d != "" {
		return d
	}
	return os.TempDir()
}

func profileSeconds() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("FLOE_BENCH_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 10 * time.Second
}

func startProfiles(t *testing.T, name string) func() {
	t.Helper()
	cpuPath := fmt.Sprintf("%s/floe-%s.cpu.pprof", profileDir(), name)
	f, err := os.Create(cpuPath)
	if err != nil {
		t.Fatal(err)
	}
	runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	runtime.SetMutexProfileFraction(100)
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		for _, p := range []string{"block", "mutex", "allocs"} {
			path := fmt.Sprintf("%s/floe-%s.%s.pprof", profileDir(), name, p)
			if g, err := os.Create(path); err == nil {
				_ = pprof.Lookup(p).WriteTo(g, 0)
				g.Close()
			}
		}
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
		t.Logf("profiles: %s (and .block/.mutex/.allocs)", cpuPath)
	}
}

func TestProfileBroker(t *testing.T) {
	id := os.Getenv("FLOE_BENCH_PROFILE")
	if id == "" {
		t.Skip("set FLOE_BENCH_PROFILE to a matrix case id (rest-1x200, rest-100x200, rest-100x1k, grpc-stream-100x200, grpc-stream-body-100x200, consume-4, e2e)")
	}
	dir, err := os.MkdirTemp(profileDir(), "floe-profile-data-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n, err := floe.New(floe.Options{
		GRPCAddr: "127.0.0.1:0", DiscoveryAddr: "127.0.0.1:0", ProducerAddr: "127.0.0.1:0", ConsumerAddr: "127.0.0.1:0",
		DataDir: dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	a := n.Addrs()

	o := MatrixOptions{CaseDuration: profileSeconds(), Backlog: 2_000_000, HTTPClient: "raw"}
	o.defaults()
	var mc, fill *matrixCase
	for _, c := range o.cases() {
		if c.id == id {
			mc = &c
		}
		if c.id == "consume-fill" {
			fill = &c
		}
	}
	if mc == nil || mc.baseline {
		t.Fatalf("no broker case %q", id)
	}
	setAddrs := func(c *Config) {
		c.GRPC, c.Producer, c.Consumer, c.Log = a.GRPC, a.Producer, a.Consumer, os.Stderr
	}
	var res *Result
	if mc.mode == "consume" {
		fc := fill.cfg
		setAddrs(&fc)
		_, acked, err := produceCase(ctx, &fc)
		if err != nil {
			t.Fatal(err)
		}
		c := mc.cfg
		setAddrs(&c)
		c.Run = fc.Run
		stop := startProfiles(t, id)
		res, err = runConsume(ctx, &c, acked)
		stop()
		if err != nil {
			t.Fatal(err)
		}
	} else {
		c := mc.cfg
		setAddrs(&c)
		stop := startProfiles(t, id)
		res, err = Run(ctx, &c)
		stop()
		if err != nil {
			t.Fatal(err)
		}
	}
	printSummary(os.Stderr, res)
}

// TestProfileStoreAppend measures the store alone: FLOE_BENCH_STORE=GxE runs G
// goroutines appending E events of 200 B each, on the real disk, and reports
// appends/s and how the group commit coalesced them.
func TestProfileStoreAppend(t *testing.T) {
	spec := os.Getenv("FLOE_BENCH_STORE")
	if spec == "" {
		t.Skip("set FLOE_BENCH_STORE=goroutinesxevents, e.g. 16x1")
	}
	var goroutines, events int
	if _, err := fmt.Sscanf(spec, "%dx%d", &goroutines, &events); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(profileDir(), "floe-store-data-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var opts store.Options
	if v, err := strconv.Atoi(os.Getenv("FLOE_BENCH_STORE_INFLIGHT")); err == nil {
		opts.MaxInflightCommits = v
	}
	s, err := store.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	streams := make([]store.Stream, 4)
	for i := range streams {
		streams[i] = store.Stream{Topic: "t", Token: -1 << 63, RangeIndex: uint32(i), Version: 1}
	}
	var h Histogram
	var stop atomic.Bool
	var seq atomic.Uint64
	var wg sync.WaitGroup
	m0 := s.Metrics()
	stopProf := startProfiles(t, "store-"+spec)
	start := time.Now()
	for w := range goroutines {
		wg.Go(func() {
			var buf []byte
			g := newEventGen("0badcafe", 200)
			evs := make([][]byte, events)
			for i := 0; !stop.Load(); i++ {
				base := seq.Add(uint64(events)) - uint64(events)
				buf = buf[:0]
				for k := range events {
					l := len(buf)
					buf = g.appendEvent(buf, base+uint64(k), 0)
					evs[k] = buf[l:len(buf):len(buf)]
				}
				t0 := time.Now()
				if _, err := s.Append(context.Background(), streams[(w+i)%len(streams)], evs); err != nil {
					t.Error(err)
					return
				}
				h.Record(time.Since(t0))
			}
		})
	}
	time.Sleep(profileSeconds())
	stop.Store(true)
	wg.Wait()
	el := time.Since(start)
	stopProf()
	m := s.Metrics()
	appends, commits := m.Appends-m0.Appends, m.Commits-m0.Commits
	syncs := m.WALSyncs - m0.WALSyncs
	sn := h.Snapshot()
	t.Logf("store %s: %.0f appends/s, %.0f events/s; latency p50 %s p99 %s; %d commits (%.1f appends each, fsync wait %.2f ms avg); %d WAL fsyncs (%.2f ms avg)",
		spec, float64(appends)/el.Seconds(), float64(m.Events-m0.Events)/el.Seconds(),
		fmtMS(ms(sn.Quantile(.5))), fmtMS(ms(sn.Quantile(.99))), commits, float64(appends)/float64(max(commits, 1)),
		ms((m.CommitLatency-m0.CommitLatency)/time.Duration(max(commits, 1))), syncs,
		ms((m.WALSyncLatency-m0.WALSyncLatency)/time.Duration(max(syncs, 1))))
}
