package floe_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// floeBin is the floe binary, built once per test run for the tests that run
// it as a child process (durability, shutdown).
var floeBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// floeBinary builds cmd/floe (CGO_ENABLED=0) on first use and returns its
// path.
func floeBinary(t testing.TB) string {
	t.Helper()
	floeBin.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if floeBin.dir, floeBin.err = os.MkdirTemp("", "floe-bin-*"); floeBin.err != nil {
			return
		}
		floeBin.path = filepath.Join(floeBin.dir, "floe")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", floeBin.path, "./cmd/floe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			floeBin.err = fmt.Errorf("go build ./cmd/floe: %v\n%s", err, out)
		}
	})
	if floeBin.err != nil {
		t.Fatal(floeBin.err)
	}
	return floeBin.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if floeBin.dir != "" {
		os.RemoveAll(floeBin.dir)
	}
	os.Exit(code)
}
