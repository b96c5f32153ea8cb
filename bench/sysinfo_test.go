package bench

import (
	"os"
	"regexp"
	"testing"
)

// TestDiskProbes checks that the disk probes of the machine table measure
// and clean up after themselves.
func TestDiskProbes(t *testing.T) {
	dir := t.TempDir()
	if got := probeFsync(dir); !regexp.MustCompile(`^p50 \S+ms, p99 \S+ms, max \S+ms$`).MatchString(got) {
		t.Errorf("probeFsync = %q", got)
	}
	got := probeSyncBandwidth(dir)
	m := regexp.MustCompile(`^appending ([0-9]+) MB/s \(([0-9.]+)ms per fdatasync\), overwriting ([0-9]+) MB/s \(([0-9.]+)ms\)$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("probeSyncBandwidth = %q", got)
	}
	for _, v := range []string{m[1], m[2], m[3], m[4]} {
		if regexp.MustCompile(`^0*\.?0*$`).MatchString(v) {
			t.Errorf("probeSyncBandwidth measured zero: %q", got)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("probes left %d files in %s", len(left), dir)
	}
	if got := probeSyncBandwidth(dir + "/missing"); !regexp.MustCompile(`^unknown: `).MatchString(got) {
		t.Errorf("probe of a missing directory = %q, want unknown: ...", got)
	}
}
