//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package floe

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// tryLock does nothing where flock is not available: Pebble's own LOCK file
// still refuses a second opener, with a less clear message.
func tryLock(*os.File) error { return nil }

func unlock(*os.File) error { return nil }
