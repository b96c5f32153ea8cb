package floe_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// A long poll whose client gives up while it waits (a client timeout, the
// connection closed) moves no position: the events that arrive after the
// client left are not counted as read by it, and the consumer's next poll
// gets them instead of committing past them. Over HTTP/1.1 (parameters in
// the query and in a form body), HTTP/2 without TLS, and gRPC (a deadline).
func TestAbandonedLongPollDoesNotSkipEvents(t *testing.T) {
	_, a := startNode(t, nil)
	c := restClient{t: t, producer: a.Producer, consumer: a.Consumer}
	h2c := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}}
	h2c.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	h1 := &http.Client{Transport: &http.Transport{}}
	cons := floev1.NewConsumerClient(dial(t, a.GRPC))

	restPoll := func(client *http.Client, form bool) func(ctx context.Context, id string) error {
		return func(ctx context.Context, id string) error {
			url := "http://" + a.Consumer + "/v1/consumer/poll"
			var req *http.Request
			if form {
				req, _ = http.NewRequestWithContext(ctx, "POST", url, strings.NewReader("consumerId="+id+"&timeout=5000"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			} else {
				req, _ = http.NewRequestWithContext(ctx, "POST", url+"?consumerId="+id+"&timeout=5000", nil)
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.ReadAll(resp.Body)
			return fmt.Errorf("the poll was answered %d before the client gave up (%v)", resp.StatusCode, err)
		}
	}
	cases := []struct {
		name string
		poll func(ctx context.Context, id string) error
	}{
		{"http1-query", restPoll(h1, false)},
		{"http1-form", restPoll(h1, true)},
		{"h2c", restPoll(h2c, false)},
		{"grpc", func(ctx context.Context, id string) error {
			_, err := cons.Poll(ctx, &floev1.PollRequest{ConsumerId: id, Timeout: 5000})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, topic := "c-"+tc.name, "topic-"+tc.name
			c.register(id, "g-"+tc.name, topic, "startFromLatest")
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			err := tc.poll(ctx, id)
			cancel()
			if err == nil || ctx.Err() == nil {
				t.Fatalf("the abandoned poll: %v", err)
			}
			c.produce(topic, "k", `{"n":1}`)
			// Time for a poll still waiting on the broker to wake and read.
			time.Sleep(200 * time.Millisecond)
			code, got := c.poll(id)
			n := 0
			for _, evs := range got {
				n += len(evs)
			}
			if code != 200 || n != 1 {
				t.Fatalf("the next poll: %d with %d events, want the event produced after the client gave up", code, n)
			}
		})
	}
}
