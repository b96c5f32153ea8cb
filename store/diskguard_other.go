//go:build !unix

package store

// freeDiskBytes cannot tell here: the guard is off.
func freeDiskBytes(string) (int64, bool) { return 0, false }

// volumeBytes cannot tell here either.
func volumeBytes(string) (int64, bool) { return 0, false }
