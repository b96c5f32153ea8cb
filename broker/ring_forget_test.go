package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floe-streams/floe/store"
)

// refusingLog refuses every topic but held, as a store at its topic limit.
type refusingLog struct{ held string }

func (l refusingLog) HoldsTopic(topic string) bool { return topic == l.held }

func (l refusingLog) Append(_ context.Context, st store.Stream, _ [][]byte) (int64, error) {
	if st.Topic != l.held {
		return 0, fmt.Errorf("%w: %q", store.ErrTooManyTopics, st.Topic)
	}
	return 0, nil
}

// Topics the store refuses to create leave no turn behind in the ring: a
// producer sending to ever new names must not grow the broker's memory.
func TestRefusedTopicLeavesNoTurn(t *testing.T) {
	p, err := NewProducer(refusingLog{held: "held"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev := [][]byte{[]byte(`{}`)}
	for i := range 100 {
		if _, err := p.Produce(context.Background(), fmt.Sprintf("new-%d", i), "", ev); !errors.Is(err, store.ErrTooManyTopics) {
			t.Fatalf("new topic %d: %v, want ErrTooManyTopics", i, err)
		}
	}
	if _, err := p.Produce(context.Background(), "held", "", ev); err != nil {
		t.Fatal(err)
	}
	var turns []any
	p.ring.next.Range(func(k, _ any) bool { turns = append(turns, k); return true })
	if len(turns) != 1 || turns[0] != "held" {
		t.Errorf("the ring keeps turns for %v, want only [held]", turns)
	}
}

// Not only the topic limit: a request without a key that fails for any
// other reason (a full disk, a store that refuses writes, a cancelled
// request) while the store holds nothing of its topic leaves no turn
// either, whereas a topic the store holds keeps its turn.
func TestFailedAppendLeavesNoTurn(t *testing.T) {
	s, err := store.Open("data", store.Options{FS: vfs.NewMem(), RetentionInterval: -1, Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := NewProducer(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev := [][]byte{[]byte(`{}`)}
	if _, err := p.Produce(context.Background(), "held", "", ev); err != nil {
		t.Fatal(err)
	}
	heldTurn, _ := p.ring.next.Load("held")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 100 {
		if _, err := p.Produce(cancelled, fmt.Sprintf("new-%d", i), "", ev); !errors.Is(err, context.Canceled) {
			t.Fatalf("new topic %d: %v, want context.Canceled", i, err)
		}
	}
	if _, err := p.Produce(cancelled, "held", "", ev); !errors.Is(err, context.Canceled) {
		t.Fatalf("held topic: %v, want context.Canceled", err)
	}
	var turns []any
	p.ring.next.Range(func(k, _ any) bool { turns = append(turns, k); return true })
	if len(turns) != 1 || turns[0] != "held" {
		t.Errorf("the ring keeps turns for %d topics (%v...), want only [held]", len(turns), turns[:min(len(turns), 3)])
	}
	if turn, _ := p.ring.next.Load("held"); turn != heldTurn {
		t.Errorf("the held topic's turn was dropped by a failed append")
	}
}
