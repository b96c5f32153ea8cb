package floe_test

import (
	"strings"
	"testing"
	"time"

	"github.com/floe-streams/floe"
)

// Validate names the setting (as cmd/floe's flag) of every invalid option.
func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		opts floe.Options
		want string
	}{
		{floe.Options{GRPCAddr: "9249"}, "grpc-addr:"},
		{floe.Options{MetricsAddr: "localhost"}, "metrics-addr:"},
		{floe.Options{PprofAddr: "x:y:z"}, "pprof-addr:"},
		{floe.Options{ConsumerRanges: 2000}, "consumer-ranges:"},
		{floe.Options{MaxRequestBytes: -1}, "max-request-bytes:"},
		{floe.Options{MaxRequestBytes: 1 << 20, MaxEventBytes: 2 << 20}, "max-event-bytes:"},
		{floe.Options{MaxPollWait: -time.Second}, "max-poll-wait:"},
		{floe.Options{ShutdownTimeout: -time.Second}, "shutdown-timeout:"},
		{floe.Options{CacheSize: -1}, "cache-size:"},
		{floe.Options{ProduceMemory: 1 << 20}, "produce-memory:"},
		{floe.Options{MaxRequestBytes: 8 << 20, ProduceMemory: 4 << 20}, "produce-memory:"},
	} {
		err := tc.opts.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.opts, err, tc.want)
		}
		if _, err := floe.New(tc.opts); err == nil {
			t.Errorf("%+v: New accepted it", tc.opts)
		}
	}
	if err := (floe.Options{MetricsAddr: "127.0.0.1:0", PprofAddr: ":6060"}).Validate(); err != nil {
		t.Errorf("valid options: %v", err)
	}
}

// In the library the metrics and pprof listeners are off unless asked for
// (cmd/floe turns metrics on by default); the metrics are kept anyway.
func TestOptionalListenersOff(t *testing.T) {
	n, addrs := startNode(t, nil)
	if addrs.Metrics != "" || addrs.Pprof != "" {
		t.Errorf("metrics %q, pprof %q: want both off", addrs.Metrics, addrs.Pprof)
	}
	if mfs, err := n.Registry().Gather(); err != nil || len(mfs) == 0 {
		t.Errorf("registry: %d families, %v", len(mfs), err)
	}
}
