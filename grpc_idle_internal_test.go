package floe

import (
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// A gRPC connection without calls is closed, as the REST ports close idle
// ones: before, it was held for as long as its client kept it.
func TestGRPCClosesIdleConnections(t *testing.T) {
	n := runLoopbackNode(t, func(o *Options) { o.grpcMaxConnectionIdle = 300 * time.Millisecond })

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
