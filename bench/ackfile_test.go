package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floe-streams/floe"
)

// testAckFile is the ack file of a run of 100 events: 0-39 and 50-100
// acknowledged, 40-49 failed.
func testAckFile(run string) *AckFile {
	var a acks
	a.ack(0, 40)
	a.fail(40, 50)
	a.ack(50, 100)
	a.limit.Store(100)
	return a.file(run, "t", 200)
}

// A produce run that crashes after prepareAckFile leaves no ack file of the
// run before it: consume refuses what is there instead of verifying the
// older run and passing.
func TestPrepareAckFileLeavesNoStaleAcks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "acks.json")
	if err := writeAckFile(path, testAckFile("0badcafe")); err != nil {
		t.Fatal(err)
	}
	if _, err := readAckFile(path); err != nil {
		t.Fatal(err)
	}

	// The next run starts, then crashes before it writes its acks.
	if err := prepareAckFile(path); err != nil {
		t.Fatal(err)
	}
	if f, err := readAckFile(path); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("after prepareAckFile: %+v, %v; want an incomplete ack file refused", f, err)
	}
	c := testConfig("consume", floe.Addrs{Consumer: "127.0.0.1:1"}, t)
	c.AckFile = path
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("consume of an incomplete ack file: %v, want it refused", err)
	}
	if names := dirNames(t, dir); names != "acks.json" {
		t.Errorf("directory holds %s, want acks.json alone", names)
	}

	// The run that finishes replaces it.
	if err := writeAckFile(path, testAckFile("12345678")); err != nil {
		t.Fatal(err)
	}
	if f, err := readAckFile(path); err != nil || f.Run != "12345678" {
		t.Fatalf("after the run: %+v, %v", f, err)
	}

	// No file at all.
	_, err := readAckFile(filepath.Join(dir, "none.json"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no ack file") {
		t.Errorf("missing ack file: %v", err)
	}

	// A path that cannot be written fails at the start, not at the end.
	for _, bad := range []string{filepath.Join(dir, "no", "such", "dir", "acks.json"), dir} {
		if err := prepareAckFile(bad); err == nil {
			t.Errorf("prepareAckFile(%s) succeeded", bad)
		}
	}
	if names := dirNames(t, dir); names != "acks.json" {
		t.Errorf("after failed writes the directory holds %s, want acks.json alone", names)
	}
	if err := prepareAckFile(""); err != nil {
		t.Errorf("no --ack-file: %v", err)
	}
}

func dirNames(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// writeAckFile replaces the file whole (a new file renamed over the old
// one), never rewriting it in place: a reader of the old file, as a crash
// mid-write, sees the old acks intact.
func TestWriteAckFileReplacesAtomically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acks.json")
	if err := writeAckFile(path, testAckFile("0badcafe")); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := writeAckFile(path, testAckFile("12345678")); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, old) {
		t.Errorf("the old file was rewritten in place: read %q, %v", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	if f, err := readAckFile(path); err != nil || f.Run != "12345678" {
		t.Errorf("new file: %+v, %v", f, err)
	}
}

// An ack file whose ranges acks.file could not have written is refused,
// naming what is wrong, rather than counted backwards or twice.
func TestReadAckFileRejectsBadRanges(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		mod  func(f *AckFile)
		want string
	}{
		{"backwards range", func(f *AckFile) { f.AckRanges[1] = [2]uint64{100, 50} }, "acked_ranges[1] [100, 50) is empty or backwards"},
		{"empty range", func(f *AckFile) { f.AckRanges = append(f.AckRanges, [2]uint64{100, 100}) }, "acked_ranges[2] [100, 100) is empty"},
		{"out of order", func(f *AckFile) { f.AckRanges[0], f.AckRanges[1] = f.AckRanges[1], f.AckRanges[0] }, "acked_ranges[1] [0, 40) starts before the end"},
		{"overlapping", func(f *AckFile) { f.AckRanges[1][0] = 30; f.Acked += 20 }, "acked_ranges[1] [30, 100) starts before the end"},
		{"beyond sent", func(f *AckFile) { f.Sent = 90 }, "acked_ranges[1] [50, 100) ends beyond sent (90)"},
		{"acked miscounted", func(f *AckFile) { f.Acked = 100 }, "acked_ranges hold 90 events, acked says 100"},
		{"failed backwards", func(f *AckFile) { f.FailedRanges[0] = [2]uint64{49, 40} }, "failed_ranges[0] [49, 40) is empty or backwards"},
		{"failed beyond sent", func(f *AckFile) { f.FailedRanges = append(f.FailedRanges, [2]uint64{100, 101}) }, "failed_ranges[1] [100, 101) ends beyond sent"},
		{"failed overlaps acked", func(f *AckFile) { f.FailedRanges[0] = [2]uint64{35, 50} }, "acked_ranges[0] [0, 40) overlaps failed_ranges[0] [35, 50)"},
		{"failed overlapping", func(f *AckFile) { f.FailedRanges = [][2]uint64{{40, 45}, {44, 50}} }, "failed_ranges[1] [44, 50) starts before the end"},
		{"sent untrackable", func(f *AckFile) { f.Sent = seqLimit + 1 }, "beyond the tracked range"},
	} {
		f := testAckFile("0badcafe")
		tc.mod(f)
		path := filepath.Join(dir, "acks.json")
		if err := writeAckFile(path, f); err != nil {
			t.Fatal(err)
		}
		_, err := readAckFile(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	// Adjacent ranges are not what acks.file writes, but count right.
	f := testAckFile("0badcafe")
	f.AckRanges = [][2]uint64{{0, 20}, {20, 40}, {50, 100}}
	path := filepath.Join(dir, "acks.json")
	if err := writeAckFile(path, f); err != nil {
		t.Fatal(err)
	}
	if _, err := readAckFile(path); err != nil {
		t.Errorf("adjacent ranges: %v", err)
	}
}

// An event of the run received though it was neither acknowledged nor of a
// failed request was never sent: the run fails on it, whatever its seq.
func TestVerifierPhantomEvents(t *testing.T) {
	f := testAckFile("0badcafe") // 0-39, 50-99 acked; 40-49 failed
	v := newVerifier(f.Run, f.toAcks())
	g := newEventGen(f.Run, 120)
	for seq := range uint64(100) {
		v.check(g.appendEvent(nil, seq, 0), 0)
	}
	if r := v.result(); r.Delivered != 90 || r.Unacked != 10 || r.Phantom != 0 || r.Missing != 0 {
		t.Fatalf("every event sent, once: %+v", r)
	}
	if why := (&Result{Verify: &Verify{Unacked: 10}}).failed(); why != "" {
		t.Errorf("events of failed requests fail the run: %s", why)
	}
	// Past the highest sent: next to it, further in its last word, in the
	// page after it, far beyond it.
	for _, seq := range []uint64{100, 127, 200, pageBits + 3, 1 << 30} {
		v.check(g.appendEvent(nil, seq, 0), 0)
	}
	r := v.result()
	if r.Delivered != 90 || r.Unacked != 10 || r.Phantom != 5 || r.Missing != 0 {
		t.Errorf("5 events never sent: %+v", r)
	}
	if why := (&Result{Verify: &r}).failed(); !strings.Contains(why, "5 never sent (phantom)") {
		t.Errorf("failed() = %q, want the phantoms named", why)
	}

	// A gap in the ack file (sent, yet neither acked nor failed: acks.file
	// never writes one) holds no event that may arrive either.
	var a acks
	a.ack(0, 10)
	a.ack(20, 30)
	a.limit.Store(30)
	v = newVerifier(f.Run, &a)
	v.check(g.appendEvent(nil, 15, 0), 0)
	if r := v.result(); r.Phantom != 1 || r.Unacked != 0 {
		t.Errorf("an event of a gap: %+v", r)
	}
}

// An event whose seq no bitset can hold is a phantom, not a crash.
func TestVerifierSeqBeyondTrackedRange(t *testing.T) {
	g := newEventGen("0badcafe", 120)
	ev := g.appendEvent(nil, 1<<40, 0)
	for _, a := range []*acks{testAckFile("0badcafe").toAcks(), nil} {
		v := newVerifier("0badcafe", a)
		v.check(ev, 0)
		if r := v.result(); r.Phantom != 1 || r.Delivered != 0 || r.Runs != 0 {
			t.Errorf("acks %v: %+v, want 1 phantom", a != nil, r)
		}
	}
}

// In e2e an event may arrive before its ack, or before its request fails:
// once the producers stopped it is delivered or unacked, not a phantom.
func TestVerifierEventsInFlight(t *testing.T) {
	var a acks
	v := newVerifier("0badcafe", &a)
	v.e2e = &Histogram{}
	g := newEventGen("0badcafe", 120)
	a.limit.Store(30) // three requests of 10 sent, none answered
	for seq := range uint64(30) {
		v.check(g.appendEvent(nil, seq, 0), 0)
	}
	a.ack(0, 10)
	a.fail(10, 20) // stored, but the answer was lost
	a.ack(20, 30)
	r := v.result()
	if want := (Verify{Mode: "acks", Expected: 20, Delivered: 20, Unacked: 10}); r != want {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	if !v.complete() {
		t.Error("not complete")
	}
	if why := (&Result{Verify: &r}).failed(); why != "" {
		t.Errorf("failed: %s", why)
	}
}
