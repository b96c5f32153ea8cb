package floe_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/floe-streams/floe"
)

// A second node on a data directory that a running node holds is refused
// with an error naming the directory and the holder's pid; once the first
// node stops, the directory can be opened again.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	opts := func() floe.Options {
		return floe.Options{
			GRPCAddr: "127.0.0.1:0", DiscoveryAddr: "127.0.0.1:0", ProducerAddr: "127.0.0.1:0", ConsumerAddr: "127.0.0.1:0",
			DataDir: dir,
		}
	}
	first, err := floe.New(opts())
	if err != nil {
		t.Fatal(err)
	}
	second, err := floe.New(opts())
	if err == nil {
		second.Close()
		t.Fatal("second New on the same data directory succeeded")
	}
	if !errors.Is(err, floe.ErrDataDirInUse) {
		t.Fatalf("error %v does not wrap ErrDataDirInUse", err)
	}
	var inUse *floe.DataDirInUseError
	if !errors.As(err, &inUse) || inUse.Dir != dir || inUse.PID != strconv.Itoa(os.Getpid()) {
		t.Errorf("error %#v: want dir %s and pid %d", inUse, dir, os.Getpid())
	}
	want := "data directory " + dir + " is in use by another floe process (pid " + strconv.Itoa(os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}

	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	again, err := floe.New(opts())
	if err != nil {
		t.Fatalf("New after the first node closed: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}
