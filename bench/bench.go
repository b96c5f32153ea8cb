// Package bench is Floe's load tool: floe bench.
package bench

import (
	"fmt"
	"os"
)

// Main runs floe bench with args and returns the exit code.
func Main(args []string) int {
	fmt.Fprintln(os.Stderr, "floe bench: not built yet")
	return 2
}
