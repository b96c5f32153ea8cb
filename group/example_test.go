package group_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/floe-streams/floe/broker"
	"github.com/floe-streams/floe/group"
	"github.com/floe-streams/floe/store"
)

// A consumer registers in a group, polls (waiting for an event), and says
// goodbye, which commits its position.
func Example() {
	st, err := store.Open("data", store.Options{FS: vfs.NewMem(), RetentionInterval: -1})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	ring := broker.NewRing(4)
	c, err := group.New(st, group.Options{Streams: ring.Streams})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	onNewGroup, _ := group.ParseStartPosition("startFromEarliest")
	err = c.Register(ctx, group.Registration{
		ConsumerID: "worker-1", Group: "stock-updater", Topics: []string{"product-stock"}, OnNewGroup: onNewGroup,
	})
	if err != nil {
		panic(err)
	}

	// The producer side: append, then wake the long polls.
	stream := ring.StreamForKey("product-stock", "123")
	if _, err := st.Append(ctx, stream, [][]byte{[]byte(`{"productId":123,"units":-5}`)}); err != nil {
		panic(err)
	}
	c.Notify(stream)

	batches, err := c.Poll(ctx, group.PollRequest{ConsumerID: "worker-1", Wait: time.Second})
	if err != nil {
		panic(err)
	}
	for _, b := range batches {
		for i, ev := range b.Events {
			fmt.Printf("%s range %d offset %d: %s\n", b.Stream.Topic, b.Stream.RangeIndex, b.Start+int64(i), ev)
		}
	}
	if err := c.Goodbye(ctx, "worker-1", true); err != nil {
		panic(err)
	}
	off, _, _ := st.GroupOffset("stock-updater", stream)
	fmt.Println("committed:", off)
	// Output:
	// product-stock range 0 offset 0: {"productId":123,"units":-5}
	// committed: 1
}
