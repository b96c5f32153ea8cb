package floe_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/floe-streams/floe"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// A Go gRPC client producing events and reading them in a consumer group.
func Example_grpcClient() {
	// A broker on free ports, for the example; a client dials "localhost:9249".
	dir, _ := os.MkdirTemp("", "floe-example")
	defer os.RemoveAll(dir)
	n, err := floe.New(floe.Options{GRPCAddr: "127.0.0.1:0", DiscoveryAddr: "127.0.0.1:0",
		ProducerAddr: "127.0.0.1:0", ConsumerAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go n.Run(ctx)

	conn, err := grpc.NewClient(n.Addrs().GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	producer := floev1.NewProducerClient(conn)
	consumer := floev1.NewConsumerClient(conn)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	// Register first: a new group starts from the latest events by default.
	_, err = consumer.Register(ctx, &floev1.RegisterRequest{
		ConsumerId: "worker-1", Group: "stock-updater", Topic: []string{"product-stock"},
	})
	if err != nil {
		log.Fatal(err)
	}
	ack, err := producer.Produce(ctx, &floev1.ProduceRequest{
		Topic:        "product-stock",
		PartitionKey: "123",
		Events: []*floev1.Event{
			{Data: []byte(`{"productId":123,"units":-1}`)},
			{Data: []byte(`{"productId":123,"units":20}`)},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored", ack.GetCount(), "events at offset", ack.GetStartOffset())

	// Long-poll up to 5 s; the next poll (or Commit, or Goodbye) commits.
	resp, err := consumer.Poll(ctx, &floev1.PollRequest{ConsumerId: "worker-1", Timeout: 5000})
	if err != nil {
		log.Fatal(err)
	}
	for _, b := range resp.GetBatches() {
		for i, v := range b.GetValues() {
			fmt.Printf("%s offset %d: %s\n", b.GetTopic(), b.GetStartOffset()+int64(i), v)
		}
	}
	if _, err := consumer.Goodbye(ctx, &floev1.GoodbyeRequest{ConsumerId: "worker-1"}); err != nil {
		log.Fatal(err)
	}
	// Output:
	// stored 2 events at offset 0
	// product-stock offset 0: {"productId":123,"units":-1}
	// product-stock offset 1: {"productId":123,"units":20}
}
