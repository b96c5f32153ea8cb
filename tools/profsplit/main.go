// Command profsplit splits a broker CPU profile into the parts the
// benchmark findings of docs/performance.md name: JSON validation, the Pebble WAL,
// Pebble flushes and compactions, the store's commit, GC, gRPC, HTTP and
// network I/O, the broker's produce path and the scheduler.
//
//	curl -o cpu.pprof 'localhost:6060/debug/pprof/profile?seconds=8'   # broker run with --pprof-addr localhost:6060
//	cd tools && go run ./profsplit ../cpu.pprof
//
// Each sample goes to one part: the stack is read from the leaf towards the
// root, and the first frame that belongs to a part decides. A write(2) made
// by Pebble's blob writer therefore counts as a flush, and one made by the
// HTTP server as network I/O, and a memtable insert is part of the store's
// commit although Pebble's commit pipeline runs it. Time the kernel spends
// outside the broker's system calls (softirqs, writeback threads) is not in
// the profile. Made for produce profiles: reads of blob files by consumers
// would count as flush + compaction.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/google/pprof/profile"
)

// part is one line of the split: a sample belongs to it when a frame's
// function name contains one of its patterns.
type part struct {
	name     string
	patterns []string
}

// parts are tried in this order for each frame.
var parts = []part{
	{"JSON validation", []string{"broker.validJSON", "goccy/go-json", "unicode/utf8.Valid"}},
	{"Pebble WAL write + fdatasync", []string{"record.(*LogWriter)", "pebble/v2.(*DB).commitWrite"}},
	// The store wraps blob files (the page-cache window, store/pagecache.go):
	// their writes are flushes and compactions, not the store's commit.
	{"Pebble flush + compaction", []string{"floe/store.(*windowedFile)", "pebble/v2.(*DB).flush", "pebble/v2.(*DB).compact", "runCompaction", "sstable/blob.", "objstorageprovider"}},
	{"store commit (batch encoding, memtable insert)", []string{"floe/store.", "(*memTable)", "arenaskl.(*Skiplist)", "pebble/v2.(*DB).commitApply", "(*commitPipeline)"}},
	{"GC + allocation", []string{"runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.gcAssist", "runtime.mallocgc", "runtime.bgscavenge", "runtime.gcDrain"}},
	{"network I/O, HTTP parsing", []string{"net.(*conn).", "net.(*netFD)", "net/http.(*conn).readRequest", "net/http.(*response)", "net/http.(*chunkWriter)", "net/http.(*body)", "io.ReadAll", "net/textproto", "net/http.Header", "compress/"}},
	{"gRPC transport + protobuf", []string{"google.golang.org/protobuf", "grpc/internal/transport", "grpc/encoding", "grpc/mem.", "grpc.(*serverStream)", "grpc.recv", "grpc.(*parser)", "grpc.encode"}},
	{"broker produce path (split, route, ack, metrics)", []string{"floe/broker.", "floe/server.", "floe/metrics.", "prometheus"}},
	{"HTTP server + gateway (other)", []string{"net/http.", "floe/gateway.", "grpc-gateway"}},
	{"scheduler", []string{"runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.mcall", "runtime.sysmon", "runtime.goexit0", "runtime.morestack"}},
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: profsplit <cpu profile>")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p, err := profile.Parse(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "profsplit:", err)
		os.Exit(1)
	}
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	if vi < 0 {
		fmt.Fprintln(os.Stderr, "profsplit: not a CPU profile (no cpu sample type)")
		os.Exit(1)
	}
	sums := make(map[string]int64)
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		sums[classify(s)] += v
	}
	if total == 0 {
		fmt.Fprintln(os.Stderr, "profsplit: the profile has no samples")
		os.Exit(1)
	}
	fmt.Printf("%.2f s of CPU samples over %.1f s (%.2f cores)\n",
		float64(total)/1e9, float64(p.DurationNanos)/1e9, float64(total)/float64(max(p.DurationNanos, 1)))
	names := make([]string, 0, len(parts)+1)
	for _, pt := range parts {
		names = append(names, pt.name)
	}
	names = append(names, "other")
	sort.SliceStable(names, func(i, j int) bool { return sums[names[i]] > sums[names[j]] })
	for _, n := range names {
		fmt.Printf("  %-48s %6.2f s %5.1f%%\n", n, float64(sums[n])/1e9, 100*float64(sums[n])/float64(total))
	}
}

// classify returns the part of the first frame, from the leaf, that belongs
// to one.
func classify(s *profile.Sample) string {
	for _, loc := range s.Location {
		// Inlined calls come first in a location's lines, as in the stack.
		for _, line := range loc.Line {
			if line.Function == nil {
				continue
			}
			for _, pt := range parts {
				for _, pat := range pt.patterns {
					if strings.Contains(line.Function.Name, pat) {
						return pt.name
					}
				}
			}
		}
	}
	return "other"
}
