package floe

import (
	"context"
	"log/slog"
	"testing"
)

// runLoopbackNode runs a node on loopback ports chosen by the system (the
// metrics port too) and a temporary data directory until the test ends.
func runLoopbackNode(t *testing.T, tune ...func(*Options)) *Node {
	t.Helper()
	opts := Options{
		GRPCAddr: "127.0.0.1:0", DiscoveryAddr: "127.0.0.1:0", ProducerAddr: "127.0.0.1:0", ConsumerAddr: "127.0.0.1:0",
		MetricsAddr: "127.0.0.1:0",
		DataDir:     t.TempDir(),
		Logger:      slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, f := range tune {
		f(&opts)
	}
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return n
}
