package floe

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestConnsPerListener(t *testing.T) {
	for _, tc := range []struct {
		n     int
		limit uint64
		want  int
	}{
		{5, 0, 0},
		{5, 20000, (20000 - reservedFiles) / 5},
		{4, 1 << 20, (1<<20 - reservedFiles) / 4},
		{5, 1024, minConnsPerListener},
		{5, reservedFiles + 5*minConnsPerListener + 5, minConnsPerListener + 1},
	} {
		if got := connsPerListener(tc.n, tc.limit); got != tc.want {
			t.Errorf("connsPerListener(%d, %d) = %d, want %d", tc.n, tc.limit, got, tc.want)
		}
	}
}

// With the file limit shared out, a listener holds its next connections
// back, in the kernel's backlog, until one closes.
func TestListenersLimitConnections(t *testing.T) {
	n := runLoopbackNode(t, func(o *Options) {
		o.fileLimit = func() uint64 { return 1024 } // the least: minConnsPerListener each
	})
	if n.connLimit != minConnsPerListener {
		t.Fatalf("limit %d, want %d", n.connLimit, minConnsPerListener)
	}

	status := func(c net.Conn) error {
		if _, err := io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	conns := make([]net.Conn, n.connLimit+1)
	for i := range conns {
		c, err := net.Dial("tcp", n.Addrs().Producer)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for _, c := range conns[:n.connLimit] {
		if err := status(c); err != nil {
			t.Fatal(err)
		}
	}
	last := conns[n.connLimit]
	_ = last.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if err := status(last); err == nil {
		t.Fatalf("connection %d was served beside %d open ones", n.connLimit+1, n.connLimit)
	}
	conns[0].Close()
	_ = last.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := http.ReadResponse(bufio.NewReader(last), nil); err != nil {
		t.Fatalf("connection %d once another closed: %v", n.connLimit+1, err)
	}
}
