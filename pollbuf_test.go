package floe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floe-streams/floe"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
	"github.com/floe-streams/floe/internal/reqbuf"
)

// Polls read the events into buffers lent for the request. Over REST the
// answer is rendered into another, and both are taken back once the answer
// is written (gateway/poll.go); over gRPC the buffer is taken back once the
// reply is encoded (server/consumer.go). With every buffer overwritten as it is taken back,
// consumers of several groups polling at once must still receive exactly
// the events produced, each group the same event at each offset: a buffer
// taken back before its answer was written, or lent to two polls at once,
// would deliver '#' bytes or another poll's events.
func TestPollBuffersAreNotReusedEarly(t *testing.T) {
	t.Run("rest", func(t *testing.T) { testPollBuffers(t, restPoller) })
	t.Run("grpc", func(t *testing.T) { testPollBuffers(t, grpcPoller) })
}

// A poller returns a function that polls for consumer id: the batches of
// one poll, each event as raw JSON.
type poller func(t *testing.T, a floe.Addrs) func(id string) ([]polled, error)

// restPoller polls over REST, with small answers: many polls, many buffers
// lent and taken back.
func restPoller(t *testing.T, a floe.Addrs) func(string) ([]polled, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	return func(id string) ([]polled, error) {
		resp, err := client.Post("http://"+a.Consumer+"/v1/consumer/poll?consumerId="+id+"&maxBytes=3000&timeout=100", "application/json", nil)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var batches []polled
		switch resp.StatusCode {
		case http.StatusOK:
			if err := json.NewDecoder(resp.Body).Decode(&batches); err != nil {
				return nil, fmt.Errorf("%s: answer does not decode: %v", id, err)
			}
		case http.StatusNoContent:
		default:
			return nil, fmt.Errorf("%s: poll status %d", id, resp.StatusCode)
		}
		return batches, nil
	}
}

// grpcPoller polls over gRPC (server/consumer.go lends the buffers, the
// codec takes them back once the reply is encoded).
func grpcPoller(t *testing.T, a floe.Addrs) func(string) ([]polled, error) {
	cons := floev1.NewConsumerClient(dial(t, a.GRPC))
	return func(id string) ([]polled, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := cons.Poll(ctx, &floev1.PollRequest{ConsumerId: id, MaxBytes: 3000, Timeout: 100})
		if err != nil {
			return nil, fmt.Errorf("%s: poll: %v", id, err)
		}
		var batches []polled
		for _, b := range resp.GetBatches() {
			p := polled{Topic: b.GetTopic(), RangeIndex: int(b.GetRangeIndex()), StartOffset: strconv.FormatInt(b.GetStartOffset(), 10)}
			for _, v := range b.GetValues() {
				p.Values = append(p.Values, v)
			}
			batches = append(batches, p)
		}
		return batches, nil
	}
}

func testPollBuffers(t *testing.T, newPoller poller) {
	reqbuf.SetPoison(true)
	defer reqbuf.SetPoison(false)
	_, a := startNode(t, nil)
	c := restClient{t: t, producer: a.Producer, consumer: a.Consumer}
	poll := newPoller(t, a)

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
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					mu.Lock()
					done := len(results[gi].got) >= len(want) || len(results[gi].errs) > 0
					mu.Unlock()
					if done {
						return
					}
					batches, err := poll(id)
					mu.Lock()
					if err != nil {
						results[gi].errs = append(results[gi].errs, err.Error())
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
