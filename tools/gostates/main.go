// Command gostates reads a Go execution trace of the broker and tells, for
// the goroutines that run a given function, how their time splits between
// running, waiting for a CPU (runnable), system calls and waiting for an
// event, and how long each wait for a CPU lasted. A goroutine that is
// runnable is ready to go on and is held back only by the scheduler: on a
// busy machine this is where a pipeline's latency hides.
//
//	curl -o trace.out 'localhost:6060/debug/pprof/trace?seconds=2'   # broker run with --pprof-addr localhost:6060
//	cd tools && go run ./gostates ../trace.out flushLoop runCommitter runSyncer
//
// A goroutine belongs to the first function name (a substring of the
// frame's name) found in a stack it ran with; each name gets one line,
// summed over its goroutines (Pebble starts a WAL writer, flushLoop, per
// WAL file).
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/exp/trace"
)

// goroutine is the time one goroutine, or the goroutines of one name, spent
// in each state.
type goroutine struct {
	name  string
	state trace.GoState
	since trace.Time
	count int
	in    map[trace.GoState]nanos
	waits []nanos // each stay in the runnable state
}

type nanos = int64

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: gostates <trace> <function name> ...")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	names, span, err := split(f, os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "gostates:", err)
		os.Exit(1)
	}
	fmt.Printf("trace of %.2f s\n", float64(span)/1e9)
	for _, n := range os.Args[2:] {
		g := names[n]
		if g == nil {
			fmt.Printf("%-16s no goroutine\n", n)
			continue
		}
		life := float64(g.in[trace.GoRunning] + g.in[trace.GoRunnable] + g.in[trace.GoSyscall] + g.in[trace.GoWaiting])
		pct := func(s trace.GoState) float64 { return 100 * float64(g.in[s]) / max(life, 1) }
		fmt.Printf("%-16s %d goroutine(s), %.2f s: running %4.1f%%  runnable %4.1f%%  syscall %4.1f%%  waiting %4.1f%%;"+
			" waits for a CPU: %d, p50 %s p90 %s p99 %s\n",
			n, g.count, life/1e9, pct(trace.GoRunning), pct(trace.GoRunnable), pct(trace.GoSyscall), pct(trace.GoWaiting),
			len(g.waits), quantile(g.waits, 0.5), quantile(g.waits, 0.9), quantile(g.waits, 0.99))
	}
}

// split reads the trace and sums, per name, the states of the goroutines
// of that name. span is the time the trace covers.
func split(r io.Reader, names []string) (map[string]*goroutine, nanos, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, 0, err
	}
	all := map[trace.GoID]*goroutine{}
	var first, last trace.Time
	for {
		ev, err := tr.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		if first == 0 {
			first = ev.Time()
		}
		last = ev.Time()
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		from, to := st.Goroutine()
		id := st.Resource.Goroutine()
		g := all[id]
		if g == nil {
			g = &goroutine{in: map[trace.GoState]nanos{}}
			all[id] = g
		}
		// A goroutine that leaves the running state made the transition
		// itself: the event's stack is its own.
		if g.name == "" && from == trace.GoRunning {
			g.name = nameOf(ev.Stack(), names)
		}
		if g.since != 0 {
			d := nanos(ev.Time() - g.since)
			g.in[from] += d
			if from == trace.GoRunnable {
				g.waits = append(g.waits, d)
			}
		}
		g.state, g.since = to, ev.Time()
	}
	byName := map[string]*goroutine{}
	for _, g := range all {
		if g.name == "" {
			continue
		}
		n := byName[g.name]
		if n == nil {
			n = &goroutine{name: g.name, in: map[trace.GoState]nanos{}}
			byName[g.name] = n
		}
		n.count++
		for s, d := range g.in {
			n.in[s] += d
		}
		n.waits = append(n.waits, g.waits...)
	}
	for _, n := range byName {
		slices.Sort(n.waits)
	}
	return byName, nanos(last - first), nil
}

// nameOf returns the first of names that a frame of stk contains, or "".
func nameOf(stk trace.Stack, names []string) string {
	for fr := range stk.Frames() {
		for _, n := range names {
			if strings.Contains(fr.Func, n) {
				return n
			}
		}
	}
	return ""
}

// quantile formats the q-quantile of sorted durations.
func quantile(sorted []nanos, q float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	d := sorted[int(q*float64(len(sorted)-1))]
	if d >= 1e6 {
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%dµs", d/1e3)
}
