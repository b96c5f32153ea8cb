package floe_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/floe-streams/floe"
)

// startNode runs a node on free loopback ports with its data in a temporary
// directory, and stops it when the test ends. mod may adjust the options.
func startNode(t testing.TB, mod func(*floe.Options)) (*floe.Node, floe.Addrs) {
	t.Helper()
	n, addrs, _ := runNode(t, mod)
	return n, addrs
}

// runNode is startNode that also returns a function stopping the node (a
// graceful shutdown), for tests that restart a broker on the same data.
func runNode(t testing.TB, mod func(*floe.Options)) (*floe.Node, floe.Addrs, func()) {
	t.Helper()
	opts := floe.Options{
		GRPCAddr:       "127.0.0.1:0",
		DiscoveryAddr:  "127.0.0.1:0",
		ProducerAddr:   "127.0.0.1:0",
		ConsumerAddr:   "127.0.0.1:0",
		DataDir:        t.TempDir(),
		AdvertisedHost: "floe-test",
		Logger:         slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if mod != nil {
		mod(&opts)
	}
	n, err := floe.New(opts)
	if err != nil {
		t.Fatalf("floe.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("node did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	addrs := n.Addrs()
	waitReady(t, "http://"+addrs.Discovery+"/status")
	return n, addrs, stop
}
