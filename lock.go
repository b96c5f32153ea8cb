package floe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrDataDirInUse is returned by New (wrapped in a *DataDirInUseError) when
// another floe process, or another Node in this process, holds the data
// directory.
var ErrDataDirInUse = errors.New("data directory is in use by another floe process")

// DataDirInUseError names the data directory and the pid that holds it.
type DataDirInUseError struct {
	Dir      string
	PID      string // as written in the lock file; "unknown" if empty
	LockFile string
}

func (e *DataDirInUseError) Error() string {
	return fmt.Sprintf("data directory %s is in use by another floe process (pid %s; lock %s)", e.Dir, e.PID, e.LockFile)
}

// Is makes errors.Is(err, ErrDataDirInUse) true.
func (e *DataDirInUseError) Is(target error) bool { return target == ErrDataDirInUse }

// lockFileName is the lock a node holds on its data directory while it
// runs, next to Pebble's own LOCK file; it contains the holder's pid.
const lockFileName = "floe.lock"

// dirLock is the exclusive lock of a data directory.
type dirLock struct{ f *os.File }

// lockDataDir creates dir if needed and takes its lock without waiting.
func lockDataDir(dir string) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data-dir: %w", err)
	}
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data-dir: %w", err)
	}
	if err := tryLock(f); err != nil {
		defer f.Close()
		if errors.Is(err, errLocked) {
			// Dir cleaned as path is, so that the lock reads as Dir/floe.lock.
			return nil, &DataDirInUseError{Dir: filepath.Clean(dir), PID: holder(f), LockFile: path}
		}
		return nil, fmt.Errorf("data-dir: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// holder is the pid written in a held lock file, or "unknown".
func holder(f *os.File) string {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	if pid := strings.TrimSpace(string(buf[:n])); pid != "" {
		return pid
	}
	return "unknown"
}

// release drops the lock. The file stays: removing it could race with the
// next holder.
func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
