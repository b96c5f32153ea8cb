package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

// A background error repeated is logged once per window with a count, as
// are errors that differ only in their numbers (each retry of a flush
// names a new file); a different one at once. Disk-full errors (ENOSPC,
// EDQUOT) reach noSpace.
func TestBackgroundErrorsAreRateLimited(t *testing.T) {
	var buf bytes.Buffer
	b := newBackgroundErrors(slog.New(slog.NewTextHandler(&buf, nil)))
	full := &wrapErr{syscall.ENOSPC, 10}
	for i := range 100 {
		b.report(&wrapErr{syscall.ENOSPC, 10 + 2*i})
	}
	b.report(errors.New("compaction: checksum mismatch"))
	b.report(full)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "checksum mismatch") || !strings.Contains(lines[1], "not_logged_since_last=99") {
		t.Fatalf("logged:\n%s", buf.String())
	}
	select {
	case err := <-b.noSpace:
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("noSpace got %v", err)
		}
	default:
		t.Fatal("a disk-full error did not reach noSpace")
	}
	if !isNoSpace(&wrapErr{syscall.EDQUOT, 1}) || isNoSpace(errors.New("boom")) {
		t.Fatal("isNoSpace misclassifies")
	}
}

type wrapErr struct {
	err  error
	file int
}

func (w *wrapErr) Error() string { return fmt.Sprintf("write %06d.sst: %v", w.file, w.err) }
func (w *wrapErr) Unwrap() error { return w.err }
