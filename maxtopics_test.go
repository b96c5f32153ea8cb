package floe_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/floe-streams/floe"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// A produce request that would create a topic beyond --max-topics is
// refused over REST (409 TOO_MANY_TOPICS) and gRPC (FailedPrecondition with
// its ErrorInfo), and stores nothing; the topics the broker holds go on, and
// the metrics show the count against the limit.
func TestProduceToTooManyTopics(t *testing.T) {
	_, a := startNode(t, func(o *floe.Options) { o.MaxTopics, o.MetricsAddr = 2, "127.0.0.1:0" })
	// The answers, the 409 included, are those the OpenAPI document gives,
	// and the document names the 409 (its "default" would let any status
	// through the contract).
	c := loadContract(t, a.Discovery)
	if r := c.doc.Paths.Find("/v1/topic/{topic}/messages").Post.Responses.Status(409); r == nil ||
		r.Value.Description == nil || !strings.Contains(*r.Value.Description, "TOO_MANY_TOPICS") {
		t.Error("the OpenAPI document gives produce no 409 TOO_MANY_TOPICS")
	}
	produce := func(topic, body string) (int, []byte) {
		t.Helper()
		ex := do(t, c, http.MethodPost, "http://"+a.Producer+"/v1/topic/"+topic+"/messages", "/v1/topic/{topic}/messages",
			map[string]string{"topic": topic}, "application/json", []byte(body))
		return ex.resp.StatusCode, ex.body
	}
	for _, topic := range []string{"a", "b"} {
		if code, body := produce(topic, `{"n":1}`); code != 200 {
			t.Fatalf("topic %s: %d %s", topic, code, body)
		}
	}
	code, body := produce("c", `{"n":1}`)
	var e struct {
		Status  int    `json:"status"`
		Code    int    `json:"code"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil || code != 409 || e.Status != 409 || e.Code != 2002 ||
		e.Error != "TOO_MANY_TOPICS" || !strings.Contains(e.Message, `"c" would be topic 3, over the limit of 2`) {
		t.Fatalf("produce to a third topic: %d %s", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := dial(t, a.GRPC)
	prod := floev1.NewProducerClient(conn)
	_, err := prod.Produce(ctx, &floev1.ProduceRequest{Topic: "c", Events: []*floev1.Event{{Data: []byte(`{"n":2}`)}}})
	wantCode(t, err, codes.FailedPrecondition, floev1.ErrorCode_ERROR_CODE_TOO_MANY_TOPICS, 409)
	if _, err := prod.Produce(ctx, &floev1.ProduceRequest{Topic: "a", PartitionKey: "k", Events: []*floev1.Event{{Data: []byte(`{"n":3}`)}}}); err != nil {
		t.Fatalf("produce to a held topic: %v", err)
	}

	// Nothing of topic c was stored: a group reading a, b and c from the
	// earliest offset gets the three events of a and b.
	cons := floev1.NewConsumerClient(conn)
	if _, err := cons.Register(ctx, &floev1.RegisterRequest{ConsumerId: "c1", Group: "g", Topic: []string{"a", "b", "c"}, OnNewGroup: "startFromEarliest"}); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for deadline := time.Now().Add(5 * time.Second); got["a"]+got["b"] < 3 && time.Now().Before(deadline); {
		poll, err := cons.Poll(ctx, &floev1.PollRequest{ConsumerId: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range poll.GetBatches() {
			got[b.GetTopic()] += len(b.GetValues())
		}
	}
	if got["a"] != 2 || got["b"] != 1 || got["c"] != 0 {
		t.Errorf("events read per topic %v, want a:2 b:1 and none of c", got)
	}

	resp, err := http.Get("http://" + a.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"\nfloe_store_topics 2\n", "\nfloe_store_max_topics 2\n"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics do not say %q", strings.TrimSpace(want))
		}
	}
	if strings.Contains(string(metrics), `topic="c"`) {
		t.Errorf("metrics have a series of the refused topic")
	}
}
