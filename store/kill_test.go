package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The kill test runs the store in a child process (this test binary,
// re-executed with killChildEnv set), under concurrent appends, and SIGKILLs
// it at random moments. The child prints one line per acknowledged append:
//
//	ACK <stream index> <first offset> <count> <content hash>
//
// After each kill the parent reopens the store and checks that every append
// ever acknowledged is present, intact (same hash), in order, and that the
// streams have no gap and no partial append.
const (
	killChildEnv = "FLOE_STORE_KILL_CHILD_DIR"
	killRunEnv   = "FLOE_STORE_KILL_RUN"
	killStreams  = 4
	killWriters  = 8
)

func killStream(i int) Stream {
	return Stream{Topic: "kill", Token: int64(i) << 60, RangeIndex: uint32(i), Version: 1}
}

// killEvent encodes the identity of an event: run, writer, append sequence
// number, index in the append and size of the append, then padding.
func killEvents(r *rand.Rand, run, writer, seq, n int) [][]byte {
	out := make([][]byte, n)
	for j := range out {
		b := make([]byte, 13+r.IntN(120))
		b[0] = 'K'
		binary.LittleEndian.PutUint16(b[1:], uint16(run))
		b[3] = byte(writer)
		binary.LittleEndian.PutUint32(b[4:], uint32(seq))
		binary.LittleEndian.PutUint16(b[8:], uint16(j))
		binary.LittleEndian.PutUint16(b[10:], uint16(n))
		for k := 12; k < len(b); k++ {
			b[k] = byte(r.Uint32())
		}
		out[j] = b
	}
	return out
}

// TestKillChild is the child process of TestKill; it does nothing in a
// normal run.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("helper process of TestKill")
	}
	run, _ := strconv.Atoi(os.Getenv(killRunEnv))
	// Never outlive a parent that died.
	time.AfterFunc(30*time.Second, func() { os.Exit(3) })

	s, err := Open(dir, Options{RetentionInterval: -1})
	if err != nil {
		fmt.Printf("OPEN ERROR %v\n", err)
		os.Exit(2)
	}
	var outMu sync.Mutex
	say := func(line string) {
		outMu.Lock()
		os.Stdout.WriteString(line) // one write per line: a kill leaves at most a partial last line
		outMu.Unlock()
	}
	say("READY\n")
	var wg sync.WaitGroup
	for w := range killWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(run), uint64(w)))
			for seq := 0; ; seq++ {
				si := r.IntN(killStreams)
				events := killEvents(r, run, w, seq, 1+r.IntN(20))
				first, err := s.Append(context.Background(), killStream(si), events)
				if err != nil {
					say(fmt.Sprintf("APPEND ERROR %v\n", err))
					os.Exit(2)
				}
				say(fmt.Sprintf("ACK %d %d %d %s\n", si, first, len(events), hashEvents(events)))
			}
		}()
	}
	wg.Wait()
}

type killAck struct {
	stream int
	first  int64
	count  int
	hash   string
	run    int
}

func TestKill(t *testing.T) {
	if os.Getenv(killChildEnv) != "" {
		t.Skip("in the child")
	}
	kills := 24
	if testing.Short() {
		kills = 20
	}
	dir := t.TempDir()
	var acked []killAck
	rng := rand.New(rand.NewPCG(42, 1))
	start := time.Now()
	for run := range kills {
		acks := killChildOnce(t, dir, run, rng)
		acked = append(acked, acks...)
		verifyKilled(t, dir, acked)
	}
	t.Logf("%d kills, %d acknowledged appends verified, %s", kills, len(acked), time.Since(start).Round(time.Millisecond))
}

// killChildOnce starts a child, kills it at a random moment and returns the
// appends it acknowledged.
func killChildOnce(t *testing.T, dir string, run int, rng *rand.Rand) []killAck {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir, killRunEnv+"="+strconv.Itoa(run))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	// Half of the kills hit a random moment from process start (maybe
	// during Open and recovery), half a random moment after the first ack.
	delay := time.Duration(rng.IntN(250)) * time.Millisecond
	afterAck := run%2 == 1
	var timer <-chan time.Time
	if !afterAck {
		timer = time.After(delay)
	}
	var acks []killAck
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Kill() // SIGKILL
		}
	}
	for lines != nil {
		select {
		case <-timer:
			kill()
			timer = nil
		case line, ok := <-lines:
			if !ok {
				lines = nil
				break
			}
			switch {
			case strings.HasPrefix(line, "ACK "):
				var a killAck
				if n, _ := fmt.Sscanf(line, "ACK %d %d %d %s", &a.stream, &a.first, &a.count, &a.hash); n != 4 || len(a.hash) != 32 {
					continue // a line cut by the kill
				}
				a.run = run
				acks = append(acks, a)
				if afterAck && timer == nil && !killed {
					timer = time.After(delay)
				}
			case strings.HasPrefix(line, "READY"):
			default:
				if strings.Contains(line, "ERROR") {
					kill()
					t.Fatalf("child: %s", line)
				}
			}
		case <-time.After(20 * time.Second):
			kill()
			t.Fatal("child produced nothing for 20s")
		}
	}
	kill()
	_ = cmd.Wait()
	return acks
}

// verifyKilled reopens the store and checks every acknowledged append.
func verifyKilled(t *testing.T, dir string, acked []killAck) {
	t.Helper()
	s, err := Open(dir, Options{Logger: testLogger(t), RetentionInterval: -1})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	events := make([][][]byte, killStreams)
	for si := range killStreams {
		st := killStream(si)
		start, evs := readAll(t, s, st, 0)
		if start != 0 || int64(len(evs)) != s.HighWatermark(st) {
			t.Fatalf("%s: read %d events from %d, high watermark %d", st, len(evs), start, s.HighWatermark(st))
		}
		checkKillStructure(t, st, evs)
		events[si] = evs
	}
	for _, a := range acked {
		evs := events[a.stream]
		if a.first+int64(a.count) > int64(len(evs)) {
			t.Fatalf("run %d: acknowledged append at %s %d+%d lost: stream has %d events",
				a.run, killStream(a.stream), a.first, a.count, len(evs))
		}
		if got := hashEvents(evs[a.first : a.first+int64(a.count)]); got != a.hash {
			t.Fatalf("run %d: acknowledged append at %s %d+%d has hash %s, acknowledged %s",
				a.run, killStream(a.stream), a.first, a.count, got, a.hash)
		}
	}
}

// checkKillStructure checks that a stream is a sequence of whole appends
// and that each writer's appends are in its order.
func checkKillStructure(t *testing.T, st Stream, evs [][]byte) {
	t.Helper()
	type writerKey struct{ run, writer int }
	last := make(map[writerKey]int)
	for p := 0; p < len(evs); {
		e := evs[p]
		if len(e) < 12 || e[0] != 'K' {
			t.Fatalf("%s offset %d: foreign event %x", st, p, e)
		}
		run, writer := int(binary.LittleEndian.Uint16(e[1:])), int(e[3])
		seq := int(binary.LittleEndian.Uint32(e[4:]))
		j, n := int(binary.LittleEndian.Uint16(e[8:])), int(binary.LittleEndian.Uint16(e[10:]))
		if j != 0 || n == 0 || p+n > len(evs) {
			t.Fatalf("%s offset %d: partial append (event %d of %d, %d left)", st, p, j, n, len(evs)-p)
		}
		for k := 1; k < n; k++ {
			f := evs[p+k]
			if len(f) < 12 || int(binary.LittleEndian.Uint16(f[1:])) != run || int(f[3]) != writer ||
				int(binary.LittleEndian.Uint32(f[4:])) != seq || int(binary.LittleEndian.Uint16(f[8:])) != k {
				t.Fatalf("%s offset %d: expected event %d of append %d/%d/%d", st, p+k, k, run, writer, seq)
			}
		}
		wk := writerKey{run, writer}
		if prev, ok := last[wk]; ok && seq <= prev {
			t.Fatalf("%s offset %d: append %d of writer %d/%d after its append %d", st, p, seq, run, writer, prev)
		}
		last[wk] = seq
		p += n
	}
}
