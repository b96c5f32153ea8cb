package store

import (
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// backgroundErrors receives Pebble's background errors (failed flushes and
// compactions). Pebble retries a failed flush at once and reports each
// failure, so a full disk gave one log line, with a stack trace, every few
// milliseconds. An error is logged, and the same kind of error again at most
// once per backgroundLogEvery, with the count of those not logged (the
// repetitions of the last window are counted in the next line, if any).
// Errors of one kind differ only in their numbers: each retry of a flush
// names a new file (000013.sst, 000015.sst, ...). The first error that says
// the disk or a quota is full is also sent on noSpace.
type backgroundErrors struct {
	log     *slog.Logger
	noSpace chan error // capacity 1

	mu         sync.Mutex
	lastLog    time.Time
	lastKind   string
	suppressed int
}

const backgroundLogEvery = 10 * time.Second

// digits matches the numbers of an error message: file numbers, offsets,
// sizes.
var digits = regexp.MustCompile(`[0-9]+`)

func newBackgroundErrors(log *slog.Logger) *backgroundErrors {
	return &backgroundErrors{log: log, noSpace: make(chan error, 1)}
}

func (b *backgroundErrors) report(err error) {
	if isNoSpace(err) {
		select {
		case b.noSpace <- err:
		default:
		}
	}
	msg := err.Error()
	kind := digits.ReplaceAllLiteralString(msg, "#")
	b.mu.Lock()
	now := time.Now()
	// The same kind of error again within backgroundLogEvery is counted,
	// not logged; another kind is logged at once.
	if kind == b.lastKind && now.Sub(b.lastLog) < backgroundLogEvery {
		b.suppressed++
		b.mu.Unlock()
		return
	}
	suppressed := b.suppressed
	b.lastLog, b.lastKind, b.suppressed = now, kind, 0
	b.mu.Unlock()
	// err.Error(): the error's own %+v form carries a stack trace.
	b.log.Error("pebble background error", "err", msg, "not_logged_since_last", suppressed)
}

// isNoSpace reports whether err says the disk (or the volume, or a disk
// quota) is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(err.Error(), "no space left on device") || strings.Contains(err.Error(), "disk quota exceeded")
}
