package floe

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// A gRPC connection without calls is closed, as the REST ports close idle
// ones: before, it was held for as long as its client kept it.
func TestGRPCClosesIdleConnections(t *testing.T) {
	defer func(d time.Duration) { grpcMaxConnectionIdle = d }(grpcMaxConnectionIdle)
	grpcMaxConnectionIdle = 300 * time.Millisecond
	n, err := New(Options{
		GRPCAddr: "127.0.0.1:0", DiscoveryAddr: "127.0.0.1:0", ProducerAddr: "127.0.0.1:0", ConsumerAddr: "127.0.0.1:0",
		DataDir: t.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()

	c, err := net.Dial("tcp", n.Addrs().GRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("idle connection: %v after %v, want a GOAWAY", err, time.Since(start))
		}
		if _, ok := f.(*http2.GoAwayFrame); ok {
			return
		}
	}
}
