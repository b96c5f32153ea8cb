package bench

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// checkedRow is a produce run as the matrix makes it: its check (≥ 300
// events/s) already applied, errs its failed requests.
func checkedRow(eps float64, errs map[string]uint64) row {
	rw := producedRow(eps, 0)
	rw.Result.Produce.Errors = errs
	ok := eps >= 300
	rw.Pass, rw.Why = &ok, fmt.Sprintf("%.0f events/s", eps)
	return rw
}

// resultsRow is the markdown row of rw's case.
func resultsRow(t *testing.T, md, title string) string {
	t.Helper()
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| "+title+" |") || strings.HasPrefix(line, "| *"+title+"* |") {
			return line
		}
	}
	t.Fatalf("no row %q in:\n%s", title, md)
	return ""
}

// errorsOf is the errors cell of a markdown row.
func errorsOf(line string) string {
	cells := strings.Split(line, " | ")
	if len(cells) < 10 {
		return ""
	}
	return cells[9]
}

func matrixReport(rows ...row) string {
	r := report{Opts: MatrixOptions{Repeat: 3, CaseDuration: 15 * time.Second, Backlog: 10}, Rows: rows}
	return r.markdown()
}

// A repeated case whose median run is clean but another run had 900 failed
// requests does not pass, and its errors cell counts them.
func TestMedianRowFailsOnErrorsOfAnyRun(t *testing.T) {
	got := medianRow([]row{
		checkedRow(400, nil),
		checkedRow(600, map[string]uint64{"http 503": 900}),
		checkedRow(500, nil),
	})
	if got.Result.main().EventsPerSec != 500 {
		t.Fatalf("median run %v events/s, want 500", got.Result.main().EventsPerSec)
	}
	if got.Pass == nil || *got.Pass {
		t.Errorf("pass %v, want a FAIL: run 2 had 900 failed requests", got.Pass)
	}
	md := matrixReport(got)
	line := resultsRow(t, md, "REST produce")
	if got := errorsOf(line); got != "http 503 ×900 (in 1 of 3 runs)" {
		t.Errorf("errors cell %q, want http 503 ×900 (in 1 of 3 runs):\n%s", got, line)
	}
	for _, want := range []string{"**FAIL**: 500 events/s", "run 2: 900 produce requests failed"} {
		if !strings.Contains(line, want) {
			t.Errorf("row lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "**pass**") {
		t.Errorf("row passes:\n%s", line)
	}
	if strings.Contains(md, "Every target is met") {
		t.Errorf("report says every target is met:\n%s", md)
	}

	// The errors of every run add up.
	got = medianRow([]row{
		checkedRow(400, map[string]uint64{"http 503": 2}),
		checkedRow(600, map[string]uint64{"http 503": 900, "transport: EOF": 1}),
		checkedRow(500, map[string]uint64{"http 503": 3}),
	})
	if got.ErrorRuns != 3 || got.Errors["http 503"] != 905 || got.Errors["transport: EOF"] != 1 {
		t.Errorf("errors %v in %d runs, want http 503 ×905, transport: EOF ×1 in 3", got.Errors, got.ErrorRuns)
	}
	if line := resultsRow(t, matrixReport(got), "REST produce"); errorsOf(line) != "http 503 ×905, transport: EOF ×1 (in 3 of 3 runs)" {
		t.Errorf("errors cell:\n%s", line)
	}

	// Clean runs still pass, and read 0 errors.
	got = medianRow([]row{checkedRow(400, nil), checkedRow(600, nil), checkedRow(500, nil)})
	if got.Pass == nil || !*got.Pass || got.Failed != "" || got.ErrorRuns != 0 {
		t.Errorf("clean runs: %+v, want a pass", got)
	}
	if line := resultsRow(t, matrixReport(got), "REST produce"); errorsOf(line) != "0" || !strings.Contains(line, "**pass**") {
		t.Errorf("clean runs:\n%s", line)
	}
}

// A run that failed outright (no result) fails its case, though the median
// of the others passes.
func TestMedianRowFailsOnAFailedRun(t *testing.T) {
	got := medianRow([]row{checkedRow(400, nil), {ID: "rest-100x200", Err: "connection refused"}, checkedRow(500, nil)})
	if got.Err != "" || got.FailedRuns != 1 {
		t.Fatalf("%+v, want the median of the 2 others and 1 failed run", got)
	}
	if got.Pass == nil || *got.Pass {
		t.Errorf("pass %v, want a FAIL: a run failed", got.Pass)
	}
	line := resultsRow(t, matrixReport(got), "REST produce")
	if !strings.Contains(line, "**FAIL**") || !strings.Contains(line, "1 more failed; the first: connection refused") {
		t.Errorf("row:\n%s", line)
	}
}

// A single run (--repeat 1, consume, e2e) is judged the same: failed
// requests fail it whatever its numbers.
func TestSingleRunWithFailedRequestsFails(t *testing.T) {
	got := medianRow([]row{checkedRow(600, map[string]uint64{"http 500": 7})})
	if got.Pass == nil || *got.Pass {
		t.Errorf("pass %v, want a FAIL", got.Pass)
	}
	line := resultsRow(t, matrixReport(got), "REST produce")
	if errorsOf(line) != "http 500 ×7" || !strings.Contains(line, "**FAIL**: 600 events/s; 7 produce requests failed") {
		t.Errorf("row:\n%s", line)
	}

	// e2e: the consumers' failed polls count too, and show.
	e2e := checkedRow(600, nil)
	e2e.Result.Consume = &Side{Errors: map[string]uint64{"http 500": 3}}
	got = medianRow([]row{e2e})
	if got.Pass == nil || *got.Pass {
		t.Errorf("e2e with failed polls: pass %v, want a FAIL", got.Pass)
	}
	if line := resultsRow(t, matrixReport(got), "REST produce"); errorsOf(line) != "poll http 500 ×3" || !strings.Contains(line, "3 poll requests failed") {
		t.Errorf("e2e row:\n%s", line)
	}

	// A consumer that re-registered after a 409 recovered: the case passes,
	// the cell still shows it.
	rereg := checkedRow(600, nil)
	rereg.Result.Produce, rereg.Result.Consume = nil, &Side{EventsPerSec: 600, Errors: map[string]uint64{errReRegistered: 1}}
	got = medianRow([]row{rereg})
	if got.Pass == nil || !*got.Pass {
		t.Errorf("a re-registration: pass %v, want a pass", got.Pass)
	}
	if line := resultsRow(t, matrixReport(got), "REST produce"); errorsOf(line) != "not registered (re-register) ×1" || !strings.Contains(line, "**pass**") {
		t.Errorf("re-registration row:\n%s", line)
	}

	// Missing events fail the case, even with a check that forgot them.
	missing := checkedRow(600, nil)
	missing.Result.Verify = &Verify{Missing: 4}
	if got := medianRow([]row{missing}); got.Pass == nil || *got.Pass || !strings.Contains(got.Failed, "4 events missing") {
		t.Errorf("4 missing events: pass %v, failed %q; want a FAIL", got.Pass, got.Failed)
	}
}

// A case without a target (a baseline, the backlog fill) whose requests
// failed is not a silent "—": it reads FAIL, and the report does not say
// every target is met.
func TestUntargetedRowWithFailedRequests(t *testing.T) {
	base := producedRow(900, 0)
	base.ID, base.Case, base.Target, base.Baseline = "baseline-100x200", "BASELINE", "", true
	base.Result.Produce.Errors = map[string]uint64{"transport: connection reset by peer": 12}
	got := medianRow([]row{base})
	if got.Pass != nil {
		t.Errorf("a baseline has no target: pass %v, want none", *got.Pass)
	}
	md := matrixReport(got)
	line := resultsRow(t, md, "BASELINE")
	if !strings.Contains(line, "**FAIL**: 12 produce requests failed") || errorsOf(line) != "transport: connection reset by peer ×12" {
		t.Errorf("row:\n%s", line)
	}
	if strings.Contains(md, "Every target is met") {
		t.Errorf("report says every target is met:\n%s", md)
	}

	// A baseline run that failed outright fails the baseline too.
	clean := base
	clean.Result = &Result{Mode: "produce", Produce: &Side{EventsPerSec: 900}}
	got = medianRow([]row{clean, {ID: base.ID, Case: base.Case, Baseline: true, Err: "connection refused"}})
	if line := resultsRow(t, matrixReport(got), "BASELINE"); !strings.Contains(line, "| **FAIL**: median of 1 runs: 900 events/s (1 more failed; the first: connection refused) |") {
		t.Errorf("baseline with a failed run:\n%s", line)
	}

	// A row the matrix did not settle (no Errors, no Failed) is judged
	// from its own result all the same.
	raw := checkedRow(600, map[string]uint64{"http 503": 5})
	if line := resultsRow(t, matrixReport(raw), "REST produce"); errorsOf(line) != "http 503 ×5" || !strings.Contains(line, "**FAIL**") {
		t.Errorf("unsettled row:\n%s", line)
	}
}
