package bench

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func producedRow(eps float64, rss int64) row {
	return row{
		ID: "rest-100x200", Case: "REST produce", Target: "≥ 750,000 events/s", BrokerRSS: rss,
		Result: &Result{Mode: "produce", Produce: &Side{EventsPerSec: eps}},
	}
}

func TestMedianRow(t *testing.T) {
	runs := []row{producedRow(500, 10), producedRow(300, 30), producedRow(400, 20)}
	got := medianRow(runs)
	if e := got.Result.main().EventsPerSec; e != 400 {
		t.Errorf("median run: %v events/s, want 400", e)
	}
	if want := []float64{500, 300, 400}; !slices.Equal(got.Runs, want) {
		t.Errorf("runs %v, want %v (in run order)", got.Runs, want)
	}
	if got.BrokerRSS != 30 {
		t.Errorf("RSS %d, want the highest of the runs, 30", got.BrokerRSS)
	}

	// Even count: the lower middle. A failed run counts below every
	// measured one.
	failed := row{ID: "rest-100x200", Err: "connection refused"}
	got = medianRow([]row{producedRow(500, 0), failed, producedRow(300, 0), producedRow(400, 0)})
	if got.Err != "" || got.Result.main().EventsPerSec != 300 {
		t.Errorf("median of 500, failed, 300, 400: %+v, want the 300 run", got)
	}
	if want := []float64{500, 0, 300, 400}; !slices.Equal(got.Runs, want) {
		t.Errorf("runs %v, want %v", got.Runs, want)
	}
	if got := medianRow([]row{failed, failed}); got.Err == "" {
		t.Error("every run failed: the row must be an error")
	}
}

func TestReportListsRuns(t *testing.T) {
	pass := false
	rw := producedRow(458984, 0)
	rw.Pass, rw.Why = &pass, "458984 events/s"
	rw.Runs = []float64{440123, 458984, 470001}
	r := report{Opts: MatrixOptions{Repeat: 3, CaseDuration: 15 * time.Second, Backlog: 10}, Rows: []row{rw}}
	md := r.markdown()
	for _, want := range []string{"ran 3 times", "| 458,984 |", "median of 3 runs: 440,123 / 458,984 / 470,001 events/s"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestMatrixRepeatDefaults(t *testing.T) {
	for _, c := range []struct {
		o    MatrixOptions
		want int
		cmd  string
	}{
		{MatrixOptions{Out: "B.md"}, 3, "floe bench matrix --out B.md"},
		{MatrixOptions{Out: "B.md", Quick: true}, 1, "floe bench matrix --out B.md --quick"},
		{MatrixOptions{Out: "B.md", Repeat: 5}, 5, "floe bench matrix --out B.md --repeat 5"},
		{MatrixOptions{Out: "B.md", Quick: true, Repeat: 3}, 3, "floe bench matrix --out B.md --quick --repeat 3"},
	} {
		o := c.o
		o.defaults()
		if o.Repeat != c.want || o.command() != c.cmd {
			t.Errorf("%+v: repeat %d, command %q; want %d, %q", c.o, o.Repeat, o.command(), c.want, c.cmd)
		}
	}
}

// Every listener of the matrix's broker gets an address of its own: none is
// left on its default port, where a broker already running would stop the
// matrix's.
func TestBrokerArgsSetEveryListener(t *testing.T) {
	a := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5"}
	args := brokerArgs(a, "/d", []string{"--cache-size", "32MiB"})
	got := map[string]string{}
	for i := 0; i+1 < len(args); i += 2 {
		got[args[i]] = args[i+1]
	}
	for _, flag := range []string{"--grpc-addr", "--discovery-addr", "--producer-addr", "--consumer-addr", "--metrics-addr"} {
		if !slices.Contains(a, got[flag]) {
			t.Errorf("%s = %q, not one of the free addresses", flag, got[flag])
		}
	}
	if got["--data-dir"] != "/d" || got["--cache-size"] != "32MiB" {
		t.Errorf("args %q", args)
	}
	// Every flag of the broker that ends in -addr is set.
	out, err := exec.Command("go", "run", "../cmd/floe", "--help").CombinedOutput()
	if err != nil {
		t.Skipf("floe --help: %v", err)
	}
	listeners := 0
	for _, f := range regexp.MustCompile(`--([a-z-]+-addr)\b`).FindAllStringSubmatch(string(out), -1) {
		listeners++
		if _, ok := got["--"+f[1]]; !ok && f[1] != "pprof-addr" { // pprof is off by default
			t.Errorf("the broker's --%s is left at its default", f[1])
		}
	}
	if listeners < 6 {
		t.Errorf("floe --help lists %d -addr flags; the pattern is out of date", listeners)
	}
}
