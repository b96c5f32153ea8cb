//go:build !unix

package floe

// fileLimit is unknown here: listeners are not limited.
func fileLimit() uint64 { return 0 }
