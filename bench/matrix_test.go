package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func producedRow(eps float64, rss int64) row {
	return row{
		ID: "rest-100x200", Case: "REST produce", Target: "≥ 750,000 events/s", BrokerRSS: rss,
		Result: &Result{Mode: "produce", Produce: &Side{EventsPerSec: eps, Bytes: uint64(eps) * 10}},
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
	if got.BrokerRSS != 30 || got.ProducedBytes != 12000 {
		t.Errorf("RSS %d, produced %d; want the highest RSS, 30, and all runs' bytes, 12000", got.BrokerRSS, got.ProducedBytes)
	}

	// Failed runs are left out of the median and counted apart; even
	// counts take the lower middle.
	failed := row{ID: "rest-100x200", Err: "connection refused"}
	got = medianRow([]row{producedRow(500, 0), failed, producedRow(300, 0), producedRow(400, 0), producedRow(600, 0)})
	if got.Err != "" || got.Result.main().EventsPerSec != 400 || got.FailedRuns != 1 || got.FirstRunErr != "connection refused" {
		t.Errorf("median of 500, failed, 300, 400, 600: %+v, want the 400 run and 1 failure", got)
	}
	if want := []float64{500, 300, 400, 600}; !slices.Equal(got.Runs, want) {
		t.Errorf("runs %v, want %v", got.Runs, want)
	}
	got = medianRow([]row{producedRow(500, 0), failed, failed})
	if got.Err != "" || got.Result.main().EventsPerSec != 500 || got.FailedRuns != 2 {
		t.Errorf("one run of three succeeded: %+v, want that run", got)
	}
	if got := medianRow([]row{failed, failed}); got.Err == "" || got.FailedRuns != 2 {
		t.Errorf("every run failed: %+v, want an error row", got)
	}
}

func TestReportListsRuns(t *testing.T) {
	pass := false
	rw := producedRow(458984, 0)
	rw.Pass, rw.Why = &pass, "458984 events/s"
	rw.Runs = []float64{440123, 458984, 470001}
	r := report{Opts: MatrixOptions{Repeat: 3, CaseDuration: 15 * time.Second, Backlog: 10}, Rows: []row{rw}}
	failedRow := producedRow(1000, 0)
	failedRow.Runs, failedRow.FailedRuns, failedRow.FirstRunErr, failedRow.ProducedBytes = []float64{1000}, 2, "timeout", 3_000_000_000
	r.Rows = append(r.Rows, failedRow)
	r.DiskBytes = 1
	md := r.markdown()
	for _, want := range []string{"ran 3 times", "| 458,984 |", "median of 3 runs: 440,123 / 458,984 / 470,001 events/s",
		"median of 1 runs: 1,000 events/s (2 more failed; the first: timeout)", "Event bytes acknowledged: 3.00 GB"} {
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

// Every listener flag of the matrix's broker gets an address of its own.
// (cmd/floe checks that BrokerListenFlags names every listener the broker
// has.)
func TestBrokerArgsSetEveryListener(t *testing.T) {
	var a []string
	for i := range BrokerListenFlags {
		a = append(a, fmt.Sprintf("127.0.0.1:%d", i+1))
	}
	args := brokerArgs(a, "/d", []string{"--cache-size", "32MiB"})
	got := map[string]string{}
	for i := 0; i+1 < len(args); i += 2 {
		got[args[i]] = args[i+1]
	}
	seen := map[string]bool{}
	for _, f := range BrokerListenFlags {
		v := got["--"+f]
		if !slices.Contains(a, v) || seen[v] {
			t.Errorf("--%s = %q: not a free address of its own", f, v)
		}
		seen[v] = true
	}
	if got["--data-dir"] != "/d" || got["--cache-size"] != "32MiB" {
		t.Errorf("args %q", args)
	}
}

// damagedPoll hands two events, then fails like a poll answer damaged after
// them; later polls stop the loop.
type damagedPoll struct {
	r     *readers
	evs   [][]byte
	calls int
}

func (d *damagedPoll) register(context.Context) error { return nil }
func (d *damagedPoll) goodbye(context.Context)        {}
func (d *damagedPoll) prime(context.Context) error    { return nil }
func (d *damagedPoll) poll(_ context.Context, fn func(ev []byte)) (int, int, error) {
	d.calls++
	if d.calls > 1 {
		d.r.stop.Store(true)
		return 0, 0, nil
	}
	for _, ev := range d.evs {
		fn(ev)
	}
	return 0, 0, errors.New("answer cut short")
}

// The events a poll handed over before its answer turned out damaged are
// verified all the same.
func TestPollLoopVerifiesEventsBeforeADamagedAnswer(t *testing.T) {
	v := newVerifier("0badcafe", nil)
	c := &Config{API: "rest", Mode: "consume", Consumers: 1}
	r := newReaders(c, v)
	g := newEventGen("0badcafe", 200)
	cl := &damagedPoll{r: r, evs: [][]byte{g.appendEvent(nil, 0, 1), g.appendEvent(nil, 1, 1)}}
	r.pollLoop(context.Background(), cl)
	if got := v.result(); got.Delivered != 2 || got.Malformed != 0 {
		t.Errorf("verified %+v, want the 2 events delivered", got)
	}
}

// --only that selects nothing is refused before the machine is probed or
// the report written, naming the cases.
func TestMatrixOnlyMustSelectACase(t *testing.T) {
	out := filepath.Join(t.TempDir(), "B.md")
	_, err := RunMatrix(context.Background(), MatrixOptions{Out: out, Only: "nothing-matches", DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "rest-1x200") {
		t.Fatalf("--only nothing-matches: %v, want an error naming the cases", err)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("the report was written: %v", serr)
	}
	for _, only := range []string{"e2e", "consume", "rest-1x200", "baseline"} {
		o := MatrixOptions{Only: only}
		if err := o.checkOnly(); err != nil {
			t.Errorf("--only %s: %v", only, err)
		}
	}
}

// The matrix runs its paced case as the command line would: a run a few
// requests behind its schedule when its duration ends may still send them.
func TestMatrixCasesLateLimit(t *testing.T) {
	for _, c := range (&MatrixOptions{CaseDuration: time.Second}).cases() {
		if c.cfg.Rate > 0 && c.cfg.LateLimit != DefaultLateLimit {
			t.Errorf("%s: late limit %v, want the command line's %v", c.id, c.cfg.LateLimit, DefaultLateLimit)
		}
	}
}

// A REST row says what share of each baseline of its shape it reached.
func TestReportComparesWithBothBaselines(t *testing.T) {
	base := func(id string, eps float64) row {
		rw := producedRow(eps, 0)
		rw.ID, rw.Case, rw.Target, rw.Baseline = id, id, "", true
		return rw
	}
	r := report{Opts: MatrixOptions{Repeat: 1, CaseDuration: 15 * time.Second, Backlog: 10}, Rows: []row{
		base("baseline-100x200", 2_000_000), base("baseline-durable-100x200", 800_000), producedRow(600_000, 0),
	}}
	line := resultsRow(t, r.markdown(), "REST produce")
	if want := "30 % of the baseline, 75 % of the durable baseline"; !strings.Contains(line, want) {
		t.Errorf("row lacks %q:\n%s", want, line)
	}
	r.Rows = r.Rows[2:] // --only rest-100x200: no baseline ran
	if line := resultsRow(t, r.markdown(), "REST produce"); strings.Contains(line, "baseline") {
		t.Errorf("no baseline ran, yet:\n%s", line)
	}
}

// The matrix has a durable baseline for each REST produce case, with the
// same load.
func TestMatrixDurableBaselines(t *testing.T) {
	cases := map[string]matrixCase{}
	for _, c := range (&MatrixOptions{CaseDuration: time.Second}).cases() {
		cases[c.id] = c
	}
	for _, shape := range []string{"1x200", "100x200", "100x1k"} {
		rest, durable := cases["rest-"+shape], cases["baseline-durable-"+shape]
		if !durable.baseline || !durable.durable {
			t.Errorf("%s: no durable baseline", shape)
			continue
		}
		if rest.cfg.Connections != durable.cfg.Connections || rest.cfg.EventsPerRequest != durable.cfg.EventsPerRequest ||
			rest.cfg.EventSize != durable.cfg.EventSize {
			t.Errorf("%s: the durable baseline's load differs from the case's", shape)
		}
	}
}
