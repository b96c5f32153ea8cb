package floe

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestDiskFailure checks what a user sees when the disk fails under a
// running broker: the produce whose WAL fsync failed gets 500 (its outcome is
// unknown), later produces are refused with 503, GET /status answers 503 naming the failure (so a liveness
// probe restarts the broker), gRPC health turns NOT_SERVING, and a restart on
// a working disk serves again.
func TestDiskFailure(t *testing.T) {
	dir := t.TempDir()
	var failing atomic.Bool
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if failing.Load() && strings.HasSuffix(op.Path, ".log") {
				return errorfs.ErrInjected
			}
		}
		return nil
	}))
	start := func(fs vfs.FS) (Addrs, func()) {
		t.Helper()
		n, err := New(Options{
			GRPCAddr: "127.0.0.1:0", DiscoveryAddr: "127.0.0.1:0", ProducerAddr: "127.0.0.1:0", ConsumerAddr: "127.0.0.1:0",
			MetricsAddr: "127.0.0.1:0",
			DataDir:     dir,
			Logger:      slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
			storeFS:     fs,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				cancel()
				<-done
			}
		}
		t.Cleanup(stop)
		return n.Addrs(), stop
	}
	call := func(method, url, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	health := func(addr string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "floe.v1.Producer"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}

	a, stop := start(fs)
	// One key: the events share a sub-range, so offsets tell which are stored.
	produce := "http://" + a.Producer + "/v1/topic/disk/messages?partitionKey=k"
	status := "http://" + a.Discovery + "/status"
	if code, body := call("POST", produce, `{"n":1}`); code != http.StatusOK {
		t.Fatalf("produce on a healthy disk: %d %s", code, body)
	}
	if code, _ := call("GET", status, ""); code != http.StatusOK {
		t.Fatalf("status on a healthy disk: %d", code)
	}
	if got := health(a.GRPC); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health on a healthy disk: %v", got)
	}
	metrics := "http://" + a.Metrics + "/metrics"
	if _, body := call("GET", metrics, ""); !strings.Contains(body, "\nfloe_store_write_failed 0\n") {
		t.Fatalf("metrics on a healthy disk lack floe_store_write_failed 0")
	}

	failing.Store(true)
	if code, body := call("POST", produce, `{"n":2}`); code != http.StatusInternalServerError || !strings.Contains(body, "write failed") {
		t.Fatalf("produce whose fsync fails: %d %s, want 500 naming the failed write", code, body)
	}
	failing.Store(false) // the disk is back, but the broker must not trust it
	if code, body := call("POST", produce, `{"n":3}`); code != http.StatusServiceUnavailable || !strings.Contains(body, "refusing writes") || !strings.Contains(body, `"UNAVAILABLE"`) {
		t.Fatalf("produce after a failed fsync: %d %s, want 503 UNAVAILABLE: refused, nothing stored", code, body)
	}
	if code, body := call("GET", status, ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "a disk write failed") {
		t.Fatalf("status after a failed fsync: %d %s, want 503 naming the failure", code, body)
	}
	if got := health(a.GRPC); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health after a failed fsync: %v, want NOT_SERVING", got)
	}
	if _, body := call("GET", metrics, ""); !strings.Contains(body, "\nfloe_store_write_failed 1\n") {
		t.Fatalf("metrics after a failed fsync lack floe_store_write_failed 1")
	}
	stop()

	a, _ = start(nil)
	if code, _ := call("GET", "http://"+a.Discovery+"/status", ""); code != http.StatusOK {
		t.Fatalf("status after a restart: %d", code)
	}
	code, body := call("POST", "http://"+a.Producer+"/v1/topic/disk/messages?partitionKey=k", `{"n":4}`)
	if code != http.StatusOK {
		t.Fatalf("produce after a restart: %d %s", code, body)
	}
	// The produce answered 500 reached the disk all the same (only its
	// fsync failed): an INTERNAL error, over REST or on a ProduceStream,
	// does not say that nothing was stored.
	if !strings.Contains(body, `"startOffset":"2"`) {
		t.Errorf("produce after a restart: %s, want offset 2, after {\"n\":2} answered 500", body)
	}
}
