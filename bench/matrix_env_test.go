package bench

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// The matrix's children run without the shell's FLOE_* variables: the
// broker would read its settings from them (and FLOE_CONFIG's file) while
// the report says it ran with its defaults. The Go runtime's stay.
func TestStartChildWithoutFloeEnv(t *testing.T) {
	if _, err := exec.LookPath("env"); err != nil {
		t.Skip("no env command")
	}
	t.Setenv("FLOE_CACHE_SIZE", "1GiB")
	t.Setenv("FLOE_CONFIG", "/etc/floe.yaml")
	t.Setenv("GOGC", "400")
	var out bytes.Buffer
	c, err := startChild("env", nil, &out)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("env did not exit")
	}
	env := strings.Split(out.String(), "\n")
	for _, kv := range env {
		if strings.HasPrefix(kv, "FLOE_") {
			t.Errorf("the child inherited %s", kv)
		}
	}
	if !slices.Contains(env, "GOGC=400") {
		t.Errorf("the child lost GOGC=400:\n%s", out.String())
	}
}

func TestChildEnv(t *testing.T) {
	env, dropped := childEnv([]string{"PATH=/bin", "FLOE_CONFIG=/etc/floe.yaml", "GOMEMLIMIT=1GiB", "FLOE_CACHE_SIZE=1GiB",
		"HOME=/root", "GOGC=400", "GODEBUG=", "GOFLAGS=-mod=mod", "floe_lower=x"})
	if want := []string{"PATH=/bin", "GOMEMLIMIT=1GiB", "HOME=/root", "GOGC=400", "GODEBUG=", "GOFLAGS=-mod=mod", "floe_lower=x"}; !slices.Equal(env, want) {
		t.Errorf("env %q, want %q", env, want)
	}
	if want := []string{"FLOE_CACHE_SIZE", "FLOE_CONFIG"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %q, want %q", dropped, want)
	}
	// GODEBUG= is listed: an empty GOMEMLIMIT, say, still stops the
	// broker from setting --memory-limit.
	if got, want := runtimeEnv(env), []string{"GOGC=400", "GOMEMLIMIT=1GiB", "GODEBUG=''"}; !slices.Equal(got, want) {
		t.Errorf("runtime env %q, want %q", got, want)
	}
}

// The report lists every setting of the broker that is not its default:
// the flags of --broker-args and the Go runtime's variables, and names the
// FLOE_* variables it did not pass on.
func TestReportListsNonDefaultSettings(t *testing.T) {
	r := report{
		Opts:      MatrixOptions{Repeat: 3, CaseDuration: 15 * time.Second, Backlog: 10, HTTPClient: "raw", BrokerArgs: []string{"--cache-size", "32MiB"}},
		BrokerCmd: "floe --data-dir /d --log-level warn --cache-size 32MiB", Command: "floe bench matrix --out B.md --broker-args '--cache-size 32MiB'",
		Env: []string{"GOGC=400", "GOMEMLIMIT=1GiB"}, DroppedEnv: []string{"FLOE_CACHE_SIZE", "FLOE_CONFIG"},
	}
	md := r.markdown()
	for _, want := range []string{
		"| broker | `GOGC=400 GOMEMLIMIT=1GiB floe --data-dir /d --log-level warn --cache-size 32MiB` (defaults otherwise)",
		"FLOE_CACHE_SIZE, FLOE_CONFIG of the environment not passed to it",
		"| broker settings not at their default | `--cache-size 32MiB` (--broker-args); `GOGC=400 GOMEMLIMIT=1GiB` (environment) |",
		"| command | `GOGC=400 GOMEMLIMIT=1GiB floe bench matrix --out B.md --broker-args '--cache-size 32MiB'` |",
		"> **Not the Go runtime's defaults**: the matrix, its broker and its load tool ran with `GOGC=400 GOMEMLIMIT=1GiB` from the environment",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}

	r = report{Opts: MatrixOptions{Repeat: 3, HTTPClient: "raw"}, BrokerCmd: "floe --data-dir /d --log-level warn", Command: "floe bench matrix --out B.md"}
	md = r.markdown()
	for _, want := range []string{
		"| broker | `floe --data-dir /d --log-level warn` (defaults otherwise), a child process of the matrix |",
		"| broker settings not at their default | none but the listeners, data directory and log level of its command line |",
		"| command | `floe bench matrix --out B.md` |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "Not the Go runtime's defaults") || strings.Contains(md, "not passed") {
		t.Errorf("a default run's report warns:\n%s", md)
	}
}
