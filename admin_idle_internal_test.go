package floe

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// The metrics port closes a kept-alive connection that stays idle, as the
// REST ports do: before, it held it (and its file descriptor) for ever.
func TestAdminPortClosesIdleConnections(t *testing.T) {
	n := runLoopbackNode(t, func(o *Options) { o.adminIdleTimeout = 300 * time.Millisecond })

	c, err := net.Dial("tcp", n.Addrs().Metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("status %d, close %v: want a kept-alive 200", resp.StatusCode, resp.Close)
	}
	// Idle now: the server must close it.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive connection: read %v, want EOF (closed by the server)", err)
	}
}
