package floe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConsumerGroupAtLeastOnceAcrossKills runs the floe binary and, while
// a producer writes keyed events, three members of one group poll over
// REST (long polls), commit now and then, say goodbye (with and without
// commit) and register again, and the broker is stopped at random moments,
// by SIGKILL or by SIGTERM, and restarted on the same data directory. Each
// member counts an event as processed when a poll answer holding it
// arrives, and commits only what it received (its next poll or a commit).
// At the end the group drains the topic: every acknowledged event must have
// been received by some member at least once (at-least-once across
// rebalances, goodbyes and restarts), and the committed offsets must have
// held (the final drain does not start over from the beginning).
func TestConsumerGroupAtLeastOnceAcrossKills(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the floe binary")
	}
	bin := floeBinary(t)
	dataDir := t.TempDir()
	client := newHTTPClient()
	client.Timeout = 10 * time.Second // far above the polls' 200 ms wait: no answer is given up on
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))
	t.Logf("random seed %d", seed)

	var (
		mu        sync.Mutex
		acked     = map[string]bool{}
		received  = map[string]int{}
		delivered int
	)
	var cur atomic.Pointer[floeProc]

	call := func(ctx context.Context, method, url string) (int, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, method, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	register := func(ctx context.Context, p *floeProc, id string) error {
		st, b, err := call(ctx, "PUT", "http://"+p.consumer+"/v1/consumer/register?consumerId="+id+"&group=g&topic=ev&onNewGroup=startFromEarliest")
		if err == nil && st != 200 {
			err = fmt.Errorf("register %s: %d %s", id, st, b)
		}
		return err
	}
	// member runs one consumer until ctx ends or the broker goes away.
	member := func(ctx context.Context, p *floeProc, id string, r *rand.Rand) {
		if register(ctx, p, id) != nil {
			return
		}
		base := "http://" + p.consumer + "/v1/consumer/"
		for ctx.Err() == nil {
			switch n := r.IntN(40); {
			case n == 0: // leave, committing, and come back
				if st, _, err := call(ctx, "POST", base+"goodbye?consumerId="+id); err != nil || st != 200 && st != 409 {
					return
				}
				if register(ctx, p, id) != nil {
					return
				}
			case n == 1: // leave without committing
				if st, _, err := call(ctx, "POST", base+"goodbye?consumerId="+id+"&commit=false"); err != nil || st != 200 && st != 409 {
					return
				}
				if register(ctx, p, id) != nil {
					return
				}
			case n < 6:
				if st, _, err := call(ctx, "POST", base+"commit?consumerId="+id); err != nil {
					return
				} else if st == 409 && register(ctx, p, id) != nil {
					return
				}
			}
			st, body, err := call(ctx, "POST", base+"poll?consumerId="+id+"&timeout=200&maxEvents="+fmt.Sprint(1+r.IntN(30)))
			if err != nil {
				return
			}
			switch st {
			case 200:
				var batches []struct {
					Values []json.RawMessage `json:"values"`
				}
				if err := json.Unmarshal(body, &batches); err != nil {
					t.Errorf("poll answer %.200s: %v", body, err)
					return
				}
				mu.Lock()
				for _, b := range batches {
					for _, v := range b.Values {
						var ev struct{ ID string }
						_ = json.Unmarshal(v, &ev)
						received[ev.ID]++
						delivered++
					}
				}
				mu.Unlock()
			case 204:
			case 409:
				if register(ctx, p, id) != nil {
					return
				}
			default:
				return // 503 while stopping
			}
		}
	}
	produce := func(ctx context.Context, p *floeProc, round, w int) {
		for n := 0; ctx.Err() == nil; n++ {
			id := fmt.Sprintf("r%d-w%d-%d", round, w, n)
			st, _, _, err := produceHTTP(ctx, client, p.producer, "ev", fmt.Sprintf("k%d", n%23), "application/json", []byte(`{"ID":"`+id+`"}`))
			if err != nil {
				return
			}
			if st == 200 {
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		}
	}

	const rounds = 6
	for round := range rounds {
		p := startFloe(t, bin, dataDir)
		cur.Store(p)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() { produce(ctx, p, round, w) })
		}
		for i := range 3 {
			r := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
			wg.Go(func() { member(ctx, p, fmt.Sprintf("c%d", i), r) })
		}
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		how := "SIGKILL"
		if round%3 == 2 {
			how = "SIGTERM"
			p.stop(t)
		} else {
			p.kill(t)
		}
		cancel()
		wg.Wait()
		mu.Lock()
		t.Logf("round %d: %s; %d events acknowledged, %d received (%d deliveries)", round, how, len(acked), len(received), delivered)
		mu.Unlock()
	}

	// Drain with the same group: every acknowledged event must have been
	// received, now or before.
	p := startFloe(t, bin, dataDir)
	defer p.stop(t)
	mu.Lock()
	before := delivered
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	missing := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for id := range acked {
			if received[id] == 0 {
				n++
			}
		}
		return n
	}
	var wg sync.WaitGroup
	dctx, dcancel := context.WithCancel(ctx)
	for i := range 3 {
		r := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
		wg.Go(func() { member(dctx, p, fmt.Sprintf("c%d", i), r) })
	}
	for missing() > 0 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	dcancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	var lost []string
	for id := range acked {
		if received[id] == 0 {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged events never reached the group, e.g. %s\n%s", len(lost), len(acked), strings.Join(lost[:min(5, len(lost))], " "), p.tail())
	}
	if drain := delivered - before; drain > len(acked)/2+100 {
		t.Errorf("the final drain delivered %d of %d events: the committed offsets did not hold", drain, len(acked))
	}
	t.Logf("all %d acknowledged events received (%d deliveries; the final drain %d)", len(acked), delivered, delivered-before)
}
