package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// floe --version prints one line naming the binary, its Go version and
// platform, and exits 0 without reading any setting or starting a broker.
func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	// An invalid setting beside it does not matter: nothing is read.
	if code := run([]string{"--version", "--max-request-bytes", "nonsense"}, noEnv, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	line := out.String()
	want := runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if !strings.HasPrefix(line, "floe ") || !strings.HasSuffix(line, want) || strings.Count(line, "\n") != 1 {
		t.Errorf("floe --version printed %q, want one line \"floe ... (commit ..., %s", line, want)
	}
}
