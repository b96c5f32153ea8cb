package store

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"
)

// backgroundErrors receives Pebble's background errors (failed flushes and
// compactions). Pebble retries a failed flush at once and reports each
// failure, so a full disk gave one log line, with a stack trace, every few
// milliseconds; the first error is logged, then at most one line per
// backgroundLogEvery with the count of those not logged. The first error
// that says the disk is full is also sent on noSpace.
type backgroundErrors struct {
	log     *slog.Logger
	noSpace chan error // capacity 1

	mu         sync.Mutex
	lastLog    time.Time
	suppressed int
}

const backgroundLogEvery = 10 * time.Second

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
	b.mu.Lock()
	now := time.Now()
	if !b.lastLog.IsZero() && now.Sub(b.lastLog) < backgroundLogEvery {
		b.suppressed++
		b.mu.Unlock()
		return
	}
	suppressed := b.suppressed
	b.lastLog, b.suppressed = now, 0
	b.mu.Unlock()
	// err.Error(): the error's own %+v form carries a stack trace.
	b.log.Error("pebble background error", "err", err.Error(), "not_logged_since_last", suppressed)
}

// isNoSpace reports whether err says the disk (or the volume) is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device")
}
