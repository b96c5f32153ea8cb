package bench

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
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

// Steal time is not what the machine's processes used: it is counted apart.
func TestCPULine(t *testing.T) {
	busy, steal := cpuLine("cpu  100 20 30 4000 50 6 7 800 0 0")
	if want := 163 * time.Second / 100; busy != want {
		t.Errorf("busy %v, want %v (user+nice+system+irq+softirq)", busy, want)
	}
	if want := 8 * time.Second; steal != want {
		t.Errorf("steal %v, want %v", steal, want)
	}
	if b, s := cpuLine("intr 1 2 3"); b != 0 || s != 0 {
		t.Errorf("not a cpu line: %v %v, want 0 0", b, s)
	}
}

// The report shows the stolen CPU of each case and warns when the
// hypervisor took a tenth of a core or more.
func TestReportShowsStolenCPU(t *testing.T) {
	rw := producedRow(1000, 0)
	rw.StolenCPU = 0.37
	r := report{Opts: MatrixOptions{Repeat: 1, CaseDuration: 15 * time.Second, Backlog: 10}, Rows: []row{rw}}
	md := r.markdown()
	for _, want := range []string{"| stolen CPU |", "| 0.37 |", "**The hypervisor took CPU**: 0.37 cores on average (up to 0.37)"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	rw.StolenCPU = 0.02
	if md := (&report{Rows: []row{rw}}).markdown(); strings.Contains(md, "The hypervisor took CPU") {
		t.Errorf("warns of 0.02 stolen cores:\n%s", md)
	}
}
