package main

import (
	"bytes"
	"runtime/trace"
	"testing"
	"time"

	xtrace "golang.org/x/exp/trace"
)

//go:noinline
func sleeperUnderTrace(d time.Duration, done chan<- struct{}) {
	time.Sleep(d)
	close(done)
}

// A goroutine is named after the function it ran and its time is split by
// state: one that sleeps 50 ms spends it waiting.
func TestSplitNamesAndStates(t *testing.T) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go sleeperUnderTrace(50*time.Millisecond, done)
	<-done
	time.Sleep(10 * time.Millisecond) // let it exit inside the trace
	trace.Stop()

	names, span, err := split(&buf, []string{"sleeperUnderTrace", "noSuchFunction"})
	if err != nil {
		t.Fatal(err)
	}
	if span < int64(50*time.Millisecond) {
		t.Errorf("span %v, want at least 50ms", time.Duration(span))
	}
	g := names["sleeperUnderTrace"]
	if g == nil {
		t.Fatalf("no goroutine named sleeperUnderTrace: %v", names)
	}
	if g.count != 1 {
		t.Errorf("%d goroutines named sleeperUnderTrace, want 1", g.count)
	}
	if w := g.in[xtrace.GoWaiting]; w < int64(40*time.Millisecond) {
		t.Errorf("waiting %v, want about 50ms", time.Duration(w))
	}
	if names["noSuchFunction"] != nil {
		t.Errorf("a goroutine got a name no function has")
	}
}
