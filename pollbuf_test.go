package floe_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floe-streams/floe/internal/reqbuf"
)

// REST polls read the events into buffers lent for the request and render
// the answer into another, both taken back once the answer is written
// (gateway/poll.go). With every buffer overwritten as it is taken back,
// consumers of several groups polling at once must still receive exactly
// the events produced, each group the same event at each offset: a buffer
// taken back before its answer was written, or lent to two polls at once,
// would deliver '#' bytes or another poll's events.
func TestPollBuffersAreNotReusedEarly(t *testing.T) {
	reqbuf.SetPoison(true)
	defer reqbuf.SetPoison(false)
	_, a := startNode(t, nil)
	c := restClient{t: t, producer: a.Producer, consumer: a.Consumer}

	const topics, perTopic = 3, 1500
	want := map[string]bool{}
	for tp := range topics {
		topic := fmt.Sprintf("pb%d", tp)
		for base := 0; base < perTopic; base += 100 {
			var evs []string
			for i := base; i < base+100; i++ {
				ev := fmt.Sprintf(`{"topic":%q,"seq":%d,"pad":%q}`, topic, i, strings.Repeat(string(rune('a'+i%26)), 50+i%150))
				evs = append(evs, ev)
				want[ev] = true
			}
			c.produce(topic, fmt.Sprintf("k%d", base), evs...)
		}
	}
	topicList := "pb0&topic=pb1&topic=pb2"

	type result struct {
		got  map[string]int
		errs []string
	}
	groups := []string{"ga", "gb", "gc"}
	results := make([]result, len(groups))
	// The event at each offset, as the first group to read it saw it.
	type at struct {
		topic      string
		rangeIndex int
		offset     int64
	}
	var seenMu sync.Mutex
	seen := map[at]string{}
	var wg sync.WaitGroup
	for gi, grp := range groups {
		results[gi].got = map[string]int{}
		var mu sync.Mutex
		for ci := range 2 {
			id := fmt.Sprintf("%s-c%d", grp, ci)
			c.register(id, grp, topicList, "startFromEarliest")
			wg.Go(func() {
				client := &http.Client{Timeout: 10 * time.Second}
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					mu.Lock()
					done := len(results[gi].got) >= len(want) || len(results[gi].errs) > 0
					mu.Unlock()
					if done {
						return
					}
					// Small answers: many polls, many buffers lent and taken back.
					resp, err := client.Post("http://"+a.Consumer+"/v1/consumer/poll?consumerId="+id+"&maxBytes=3000&timeout=100", "application/json", nil)
					if err != nil {
						mu.Lock()
						results[gi].errs = append(results[gi].errs, err.Error())
						mu.Unlock()
						return
					}
					var batches []polled
					var derr error
					if resp.StatusCode == http.StatusOK {
						derr = json.NewDecoder(resp.Body).Decode(&batches)
					}
					resp.Body.Close()
					mu.Lock()
					switch {
					case derr != nil:
						results[gi].errs = append(results[gi].errs, fmt.Sprintf("%s: answer does not decode: %v", id, derr))
					case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent:
						results[gi].errs = append(results[gi].errs, fmt.Sprintf("%s: poll status %d", id, resp.StatusCode))
					}
					for _, b := range batches {
						start, err := strconv.ParseInt(b.StartOffset, 10, 64)
						if err != nil {
							results[gi].errs = append(results[gi].errs, fmt.Sprintf("%s: startOffset %q", id, b.StartOffset))
						}
						for i, v := range b.Values {
							if !want[string(v)] {
								results[gi].errs = append(results[gi].errs, fmt.Sprintf("%s: received an event never produced: %.80s", id, v))
							}
							results[gi].got[string(v)]++
							k := at{b.Topic, b.RangeIndex, start + int64(i)}
							seenMu.Lock()
							if prev, ok := seen[k]; !ok {
								seen[k] = string(v)
							} else if prev != string(v) {
								results[gi].errs = append(results[gi].errs, fmt.Sprintf("%s: %v is %.60s, another poll saw %.60s", id, k, v, prev))
							}
							seenMu.Unlock()
						}
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for gi, grp := range groups {
		r := results[gi]
		if len(r.errs) > 0 {
			t.Errorf("group %s: %d problems, first: %s", grp, len(r.errs), r.errs[0])
			continue
		}
		if len(r.got) != len(want) {
			t.Errorf("group %s received %d distinct events of %d", grp, len(r.got), len(want))
		}
	}
}
