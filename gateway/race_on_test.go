//go:build race

package gateway

// raceEnabled: the race detector makes sync.Pool drop a share of what it is
// given, so tests of buffer reuse cannot count allocations.
const raceEnabled = true
