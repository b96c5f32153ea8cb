// Package bench is Floe's load tool: floe bench produce|consume|e2e|matrix.
//
// Every produced event carries the run id, a dense sequence number, its send
// time and a hash binding them to its padding (event.go), so that a consumer
// checks that every acknowledged event arrived, once and intact (verify.go,
// with the acks of the producing run: track.go), and measures the end-to-end
// latency (e2e.go). Latencies go to a log-bucketed histogram (hist.go).
//
// `floe bench matrix` (matrix.go) starts a no-op HTTP server (baseline.go)
// and a broker as child processes of the same binary, runs the standard
// matrix against them and writes BENCHMARKS.md (report.go) with the machine
// (sysinfo.go), the broker's CPU and resident memory, and pass/fail against
// the targets.
package bench
