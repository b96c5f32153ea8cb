//go:build !unix

package store

// freeDiskBytes cannot tell here: the guard is off.
func freeDiskBytes(string) (int64, bool) { return 0, false }

// usableBytes cannot tell here either.
func usableBytes(string) (int64, bool) { return 0, false }
