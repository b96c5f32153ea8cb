//go:build unix

package floe_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/floe-streams/floe"
	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// Short of disk space, produce is refused over REST (507 DISK_FULL) and
// gRPC (ResourceExhausted with its ErrorInfo), nothing is stored, and
// consumers go on. The margin kept free is 1 GiB more than is free, so the
// test fills nothing.
func TestProduceRefusedWhileTheDiskIsNearlyFull(t *testing.T) {
	_, a := startNode(t, func(o *floe.Options) {
		var st unix.Statfs_t
		if err := unix.Statfs(o.DataDir, &st); err != nil {
			t.Fatal(err)
		}
		blocks, bfree, bavail, bsize := int64(st.Blocks), int64(st.Bfree), int64(st.Bavail), int64(st.Bsize) //nolint:unconvert // field types differ between platforms
		free, usable := bavail*bsize, (blocks-(bfree-bavail))*bsize
		if free+1<<30 >= usable {
			t.Skipf("the volume of %s is nearly empty: a margin over its free space could never be met", o.DataDir)
		}
		o.MinFreeDisk, o.MetricsAddr = free+1<<30, "127.0.0.1:0"
	})

	resp, err := http.Post("http://"+a.Producer+"/v1/topic/full/messages", "application/json", strings.NewReader(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e struct {
		Status  int    `json:"status"`
		Code    int    `json:"code"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != 507 || e.Status != 507 || e.Code != 5004 ||
		e.Error != "DISK_FULL" || !strings.Contains(e.Message, "kept free") {
		t.Fatalf("REST produce short of space: %d %s", resp.StatusCode, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := dial(t, a.GRPC)
	_, err = floev1.NewProducerClient(conn).Produce(ctx, &floev1.ProduceRequest{Topic: "full", Events: []*floev1.Event{{Data: []byte(`{"n":2}`)}}})
	wantCode(t, err, codes.ResourceExhausted, floev1.ErrorCode_ERROR_CODE_DISK_FULL, 507)

	// Consumers go on: a new group registers (a write) and polls; nothing
	// of the refused requests is there.
	cons := floev1.NewConsumerClient(conn)
	if _, err := cons.Register(ctx, &floev1.RegisterRequest{ConsumerId: "c", Group: "g", Topic: []string{"full"}, OnNewGroup: "startFromEarliest"}); err != nil {
		t.Fatalf("Register short of space: %v", err)
	}
	poll, err := cons.Poll(ctx, &floev1.PollRequest{ConsumerId: "c"})
	if err != nil || len(poll.GetBatches()) != 0 {
		t.Fatalf("Poll short of space: %v, %v; want no events", poll, err)
	}

	if resp, err := http.Get("http://" + a.Discovery + "/status"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/status short of space: %v %v; want 200 (a restart would not help)", resp, err)
	}
	resp, err = http.Get("http://" + a.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "\nfloe_store_disk_full 1\n") {
		t.Errorf("metrics do not say floe_store_disk_full 1")
	}
}

// volumeSize is the size of the volume of dir.
func volumeSize(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * int64(st.Bsize) //nolint:unconvert // field types differ between platforms
}

// A margin as large as the volume can never be met (nor one as large as
// what it could ever have free): the broker refuses to start rather than
// say it is healthy and refuse every event.
func TestMinFreeDiskOverTheVolumeIsRefused(t *testing.T) {
	dir := t.TempDir()
	_, err := floe.New(floe.Options{DataDir: dir, MinFreeDisk: volumeSize(t, dir), GRPCAddr: "127.0.0.1:0",
		DiscoveryAddr: "127.0.0.1:0", ProducerAddr: "127.0.0.1:0", ConsumerAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "no event could ever be stored") {
		t.Fatalf("floe.New with min-free-disk the size of the volume: %v, want an error", err)
	}
}
