package main

import "github.com/floe-streams/floe/bench"

// runBench runs the load tool: floe bench produce|consume|e2e|matrix.
func runBench(args []string) int { return bench.Main(args) }
