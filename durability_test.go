package floe_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/floe-streams/floe/broker"
)

// floeProc is a floe broker running as a child process.
type floeProc struct {
	cmd       *exec.Cmd
	producer  string
	consumer  string
	discovery string
	grpc      string
	exited    chan struct{}
	mu        sync.Mutex
	logTail   []string
}

func (p *floeProc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logTail, "\n")
}

// startFloe runs the binary on dataDir with every listener on a free
// loopback port (127.0.0.1:0; settings through FLOE_* variables, which
// every version of the command line reads), and learns the ports from its
// JSON "floe started" log line.
func startFloe(t testing.TB, bin, dataDir string) *floeProc {
	t.Helper()
	cmd := exec.Command(bin)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLOE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"FLOE_GRPC_ADDR=127.0.0.1:0", "FLOE_DISCOVERY_ADDR=127.0.0.1:0",
		"FLOE_PRODUCER_ADDR=127.0.0.1:0", "FLOE_CONSUMER_ADDR=127.0.0.1:0",
		"FLOE_METRICS_ADDR=127.0.0.1:0", "FLOE_PPROF_ADDR=",
		"FLOE_DATA_DIR="+dataDir, "FLOE_ADVERTISED_HOST=floe-test",
		"FLOE_LOG_FORMAT=json", "FLOE_LOG_LEVEL=info",
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &floeProc{cmd: cmd, exited: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	started := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if p.logTail = append(p.logTail, line); len(p.logTail) > 50 {
				p.logTail = p.logTail[1:]
			}
			p.mu.Unlock()
			if addrs := startedAddrs(line); addrs != nil {
				started <- addrs
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
		close(p.exited)
	}()
	select {
	case addrs := <-started:
		p.producer, p.consumer, p.discovery, p.grpc = addrs["producer"], addrs["consumer"], addrs["discovery"], addrs["grpc"]
	case <-p.exited:
		t.Fatalf("floe exited at startup:\n%s", p.tail())
	case <-time.After(20 * time.Second):
		t.Fatalf("floe did not report its addresses within 20s:\n%s", p.tail())
	}
	if p.producer == "" || p.consumer == "" {
		t.Fatalf("floe started without producer and consumer addresses:\n%s", p.tail())
	}
	waitReady(t, "http://"+p.producer+"/status")
	return p
}

// startedAddrs reads the listen addresses of the "floe started" log line:
// an object ("addrs" or "listening") whose keys name the APIs.
func startedAddrs(line string) map[string]string {
	var rec map[string]any
	if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "floe started" {
		return nil
	}
	out := map[string]string{}
	for _, field := range []string{"addrs", "listening"} {
		m, _ := rec[field].(map[string]any)
		for k, v := range m {
			if s, ok := v.(string); ok {
				out[strings.ToLower(k)] = s
			}
		}
	}
	return out
}

// kill sends SIGKILL and waits for the process to end.
func (p *floeProc) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("floe did not die within 10s of SIGKILL")
	}
}

// stop sends SIGTERM (a graceful shutdown) and waits.
func (p *floeProc) stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("floe did not stop within 30s of SIGTERM:\n%s", p.tail())
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// durRequest is one produce request of the durability test.
type durRequest struct {
	id      string
	topic   string
	key     string
	events  [][]byte
	acked   bool
	invalid bool // sent with an invalid last line: must be refused
	ack     prodAck
	status  int // the answer's status; 0 without an answer
}

// durEvent is the content of every event: which request, which part.
type durEvent struct {
	Req string `json:"req"`
	I   int    `json:"i"`
	N   int    `json:"n"`
	Key string `json:"key"`
	Pad string `json:"pad"`
}

// TestDurabilityKill builds the floe binary, runs it as a child process,
// produces concurrently over HTTP (JSON and NDJSON, with and without keys)
// and SIGKILLs it at random moments while requests are in flight, at least
// five times, restarting it on the same data directory each time. After
// every restart, everything stored is read back from the earliest offset and
// checked: every acknowledged event is there, intact, at its acknowledged
// offset; the offsets of each sub-range have no gap; a request that got no
// answer is stored whole (every event, consecutive, in order) or not at all;
// a request refused with a 4xx is not stored.
func TestDurabilityKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the floe binary")
	}
	bin := floeBinary(t)
	dataDir := t.TempDir()
	topics := []string{"orders", "payments"}
	ring := broker.NewRing(broker.DefaultConsumerRanges)
	client := newHTTPClient()
	client.Timeout = 10 * time.Second

	var (
		mu   sync.Mutex
		reqs = map[string]*durRequest{}
	)
	const (
		minRounds   = 5
		maxRounds   = 8
		loadBudget  = 6 * time.Second // time spent producing, over all rounds
		producers   = 8
		keysPerTest = 40
	)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	t.Logf("random seed %d", seed)
	var loadTime time.Duration
	totalInFlight := 0
	began := time.Now()
	for round := 0; round < maxRounds && (round < minRounds || loadTime < loadBudget && time.Since(began) < 20*time.Second); round++ {
		p := startFloe(t, bin, dataDir)
		verifyDurable(t, client, p.consumer, topics, ring, reqs, fmt.Sprintf("after restart %d", round))
		if t.Failed() {
			t.Fatalf("log of the broker:\n%s", p.tail())
		}

		var inFlight atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range producers {
			seed := rng.Uint64()
			wg.Go(func() {
				r := rand.New(rand.NewPCG(seed, uint64(w)))
				for n := 0; ctx.Err() == nil; n++ {
					req := &durRequest{id: fmt.Sprintf("r%d-w%d-%d", round, w, n), topic: topics[r.IntN(len(topics))]}
					if r.IntN(5) > 0 {
						req.key = fmt.Sprintf("key-%d", r.IntN(keysPerTest))
					}
					count, ct := 1, "application/json"
					if r.IntN(2) == 0 {
						count, ct = 1+r.IntN(50), "application/x-ndjson"
					}
					var body []byte
					for i := range count {
						ev, _ := json.Marshal(durEvent{Req: req.id, I: i, N: count, Key: req.key, Pad: strings.Repeat("p", r.IntN(300))})
						req.events = append(req.events, ev)
						body = append(append(body, ev...), '\n')
					}
					if ct == "application/json" {
						body = req.events[0]
					}
					if r.IntN(20) == 0 {
						// A request to refuse: its last line is invalid.
						req.invalid, ct = true, "application/x-ndjson"
						body = append(body, `{"req":"`+req.id+`","i":`...)
					}
					mu.Lock()
					reqs[req.id] = req
					mu.Unlock()
					inFlight.Add(1)
					st, ack, _, err := produceHTTP(context.Background(), client, p.producer, req.topic, req.key, ct, body)
					inFlight.Add(-1)
					mu.Lock()
					req.status = st
					if err == nil && st == http.StatusOK {
						req.acked, req.ack = true, ack
					}
					if err == nil && req.invalid && st != http.StatusBadRequest {
						t.Errorf("request %s with an invalid line: %d, want 400", req.id, st)
					}
					mu.Unlock()
					if err != nil {
						return // the broker is gone
					}
				}
			})
		}
		load := time.Duration(200+rng.IntN(1000)) * time.Millisecond
		time.Sleep(load)
		n := inFlight.Load()
		totalInFlight += int(n)
		p.kill(t)
		cancel()
		wg.Wait()
		loadTime += load
		mu.Lock()
		acked, unanswered := 0, 0
		for _, r := range reqs {
			if strings.HasPrefix(r.id, fmt.Sprintf("r%d-", round)) {
				if r.acked {
					acked++
				} else if r.status == 0 {
					unanswered++
				}
			}
		}
		mu.Unlock()
		t.Logf("round %d: SIGKILL after %v with %d requests in flight; %d requests acknowledged, %d without an answer", round, load, n, acked, unanswered)
	}
	if totalInFlight == 0 {
		t.Errorf("no request was in flight at any kill")
	}
	p := startFloe(t, bin, dataDir)
	verifyDurable(t, client, p.consumer, topics, ring, reqs, "at the end")
	p.stop(t)
}

// verifyDurable reads everything stored in topics and checks it against the
// requests sent so far.
func verifyDurable(t *testing.T, client *http.Client, consumer string, topics []string, ring *broker.Ring, reqs map[string]*durRequest, when string) {
	t.Helper()
	got := readAllEvents(t, client, consumer, -1, topics...)
	checkDense(t, got)

	// Every stored event belongs to a request that was sent, whole, in
	// order, at consecutive offsets of one stream.
	type placed struct {
		sk    streamKey
		start int64
		seen  int
	}
	stored := map[string]*placed{}
	total := 0
	for sk, evs := range got {
		for off := range int64(len(evs)) {
			raw := evs[off]
			total++
			var ev durEvent
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatalf("%s: %v offset %d: %q is not an event of this test: %v", when, sk, off, raw, err)
			}
			r := reqs[ev.Req]
			if r == nil || ev.I >= len(r.events) || !bytes.Equal(r.events[ev.I], raw) {
				t.Fatalf("%s: %v offset %d: %s was never sent like this", when, sk, off, raw)
			}
			if r.topic != sk.topic || r.key != "" && int(ring.RangeIndex(broker.Token(r.key))) != sk.index {
				t.Fatalf("%s: request %s (topic %s, key %q) stored in %v", when, r.id, r.topic, r.key, sk)
			}
			pl := stored[ev.Req]
			if pl == nil {
				pl = &placed{sk: sk, start: off - int64(ev.I)}
				stored[ev.Req] = pl
			}
			if pl.sk != sk || pl.start+int64(ev.I) != off {
				t.Fatalf("%s: event %d of request %s at %v offset %d, its event 0 at %v offset %d", when, ev.I, ev.Req, sk, off, pl.sk, pl.start)
			}
			pl.seen++
		}
	}
	acked, ackedEvents, unackedStored := 0, 0, 0
	for id, r := range reqs {
		pl := stored[id]
		if pl != nil && pl.seen != len(r.events) {
			t.Errorf("%s: request %s half-stored: %d of its %d events (acknowledged: %v)", when, id, pl.seen, len(r.events), r.acked)
		}
		if r.acked {
			acked++
			ackedEvents += len(r.events)
			if pl == nil {
				t.Errorf("%s: acknowledged request %s (%s, %d events at %v/%d offset %s) is lost", when, id, r.topic, len(r.events), r.ack.Topic, r.ack.RangeIndex, r.ack.StartOffset)
				continue
			}
			if (streamKey{r.ack.Topic, r.ack.RangeIndex}) != pl.sk || r.ack.start() != pl.start || r.ack.Count != len(r.events) {
				t.Errorf("%s: request %s acknowledged at %s/%d offset %d count %d, stored at %v offset %d", when, id, r.ack.Topic, r.ack.RangeIndex, r.ack.start(), r.ack.Count, pl.sk, pl.start)
			}
		} else if pl != nil {
			unackedStored++
			if r.status >= 400 && r.status < 500 || r.invalid {
				t.Errorf("%s: request %s refused with %d (invalid: %v) is stored", when, id, r.status, r.invalid)
			}
		}
	}
	t.Logf("%s: %d events stored in %d streams; all %d acknowledged requests (%d events) present; %d requests stored without an answer",
		when, total, len(got), acked, ackedEvents, unackedStored)
}
