package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/floe-streams/floe"
	"github.com/floe-streams/floe/bench"
	"github.com/floe-streams/floe/store"
)

// env is a fake environment.
type env map[string]string

func (e env) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

// writeFile writes a config file named floe.yaml in a new directory and
// returns its path.
func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "floe.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigPrecedence(t *testing.T) {
	const file = `# settings
data-dir: /from/file
max-request-bytes: 8MiB
max-poll-wait: 10s
metrics-addr: ""
consumer-ranges: 8
`
	for _, tc := range []struct {
		name     string
		args     []string
		env      env
		file     string // config file text; "" for none
		check    func(floe.Options) string
		wantFrom map[string]string
	}{{
		name: "defaults",
		check: func(o floe.Options) string {
			return strings.Join([]string{o.DataDir, o.MetricsAddr, o.PprofAddr, o.GRPCAddr,
				itoa(o.MaxRequestBytes), itoa(o.MaxEventBytes), itoa(o.MaxPollBytes), o.MaxPollWait.String(),
				itoa64(o.CacheSize), o.ShutdownTimeout.String(), itoa(o.ConsumerRanges), itoa64(o.PageCacheWindow), itoa(o.MaxTopics)}, " ")
		},
	}, {
		name: "file over defaults",
		file: file,
		check: func(o floe.Options) string {
			return o.DataDir + " " + itoa(o.MaxRequestBytes) + " " + o.MaxPollWait.String()
		},
		wantFrom: map[string]string{"data-dir": "floe.yaml:2", "max-request-bytes": "floe.yaml:3", "metrics-addr": "floe.yaml:5"},
	}, {
		name: "env over file",
		file: file,
		env:  env{"FLOE_DATA_DIR": "/from/env", "FLOE_MAX_POLL_WAIT": "1m"},
		check: func(o floe.Options) string {
			return o.DataDir + " " + itoa(o.MaxRequestBytes) + " " + o.MaxPollWait.String()
		},
		wantFrom: map[string]string{"data-dir": "FLOE_DATA_DIR", "max-request-bytes": "floe.yaml:3"},
	}, {
		name: "flags over env over file",
		args: []string{"--data-dir", "/from/flag", "--max-request-bytes=1MiB", "--max-event-bytes", "512KiB"},
		file: file,
		env:  env{"FLOE_DATA_DIR": "/from/env", "FLOE_MAX_REQUEST_BYTES": "2MiB"},
		check: func(o floe.Options) string {
			return o.DataDir + " " + itoa(o.MaxRequestBytes) + " " + itoa(o.MaxEventBytes)
		},
		wantFrom: map[string]string{"data-dir": "--data-dir", "max-request-bytes": "--max-request-bytes"},
	}, {
		name:  "an empty variable sets an empty value",
		env:   env{"FLOE_METRICS_ADDR": "", "FLOE_PPROF_ADDR": "127.0.0.1:6060"},
		check: func(o floe.Options) string { return "[" + o.MetricsAddr + "] " + o.PprofAddr },
	}, {
		name:  "an empty string in the file sets an empty value",
		file:  file,
		check: func(o floe.Options) string { return "[" + o.MetricsAddr + "] " + itoa(o.ConsumerRanges) },
	}, {
		name:  "FLOE_CONFIG names the file",
		env:   env{"FLOE_CONFIG": "$FILE"},
		file:  "data-dir: /via/env\n",
		check: func(o floe.Options) string { return o.DataDir },
	}, {
		name:  "an empty or comments-only file sets nothing",
		file:  "# nothing yet\n",
		check: func(o floe.Options) string { return o.DataDir },
	}, {
		name: "sizes, durations and YAML numbers",
		file: "max-request-bytes: 1048576\nretention-max-bytes: 10GiB\nretention-max-age: -1s\nmember-timeout: 1h30m\n",
		check: func(o floe.Options) string {
			return itoa(o.MaxRequestBytes) + " " + itoa64(o.RetentionMaxBytes) + " " + o.RetentionMaxAge.String() + " " + o.MemberTimeout.String()
		},
	}, {
		name:  "page cache window off",
		env:   env{"FLOE_PAGE_CACHE_WINDOW": "off"},
		check: func(o floe.Options) string { return itoa64(o.PageCacheWindow) },
	}, {
		name:  "max topics off",
		env:   env{"FLOE_MAX_TOPICS": "off"},
		check: func(o floe.Options) string { return itoa(o.MaxTopics) },
	}, {
		name:  "max topics",
		args:  []string{"--max-topics", "50000"},
		check: func(o floe.Options) string { return itoa(o.MaxTopics) },
	}, {
		name:  "page cache window size",
		args:  []string{"--page-cache-window", "256MiB"},
		check: func(o floe.Options) string { return itoa64(o.PageCacheWindow) },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			args, e := tc.args, tc.env
			if e == nil {
				e = env{}
			}
			if tc.file != "" {
				path := writeFile(t, tc.file)
				if e["FLOE_CONFIG"] == "$FILE" {
					e["FLOE_CONFIG"] = path
				} else {
					args = append([]string{"--config", path}, args...)
				}
			}
			c, err := parseConfig(args, e.lookup, io.Discard)
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			got := tc.check(c.opts)
			if want := wantPrecedence[tc.name]; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			for name, want := range tc.wantFrom {
				if got := filepath.Base(c.from[name]); got != want {
					t.Errorf("%s set by %q, want %q", name, got, want)
				}
			}
			if c.opts.Logger == nil {
				t.Error("no logger")
			}
		})
	}
}

var wantPrecedence = map[string]string{
	"defaults":                                        "./floe-data :9253  :9249 4194304 1048576 2097152 30s 67108864 30s 4 1073741824 10000",
	"file over defaults":                              "/from/file 8388608 10s",
	"env over file":                                   "/from/env 8388608 1m0s",
	"flags over env over file":                        "/from/flag 1048576 524288",
	"an empty variable sets an empty value":           "[] 127.0.0.1:6060",
	"an empty string in the file sets an empty value": "[] 8",
	"FLOE_CONFIG names the file":                      "/via/env",
	"an empty or comments-only file sets nothing":     "./floe-data",
	"sizes, durations and YAML numbers":               "1048576 10737418240 -1s 1h30m0s",
	"page cache window off":                           "-1",
	"page cache window size":                          "268435456",
	"max topics off":                                  "-1",
	"max topics":                                      "50000",
}

// --config wins over FLOE_CONFIG.
func TestConfigFlagOverConfigEnv(t *testing.T) {
	flagFile, envFile := writeFile(t, "data-dir: /flag-file\n"), writeFile(t, "data-dir: /env-file\n")
	c, err := parseConfig([]string{"--config", flagFile}, env{"FLOE_CONFIG": envFile}.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.DataDir != "/flag-file" {
		t.Errorf("data-dir %q, want /flag-file", c.opts.DataDir)
	}
}

func TestConfigRejections(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  env
		file string
		want []string // substrings of the error; "FILE" stands for the file's path
	}{
		{name: "unknown key", file: "data-dir: /x\ndat-dir: /y\n", want: []string{`FILE:2: unknown setting "dat-dir"`}},
		{name: "invalid size in file", file: "\nmax-request-bytes: 4XB\n", want: []string{`FILE:2: max-request-bytes: "4XB" is not a size`}},
		{name: "invalid duration in file", file: "max-poll-wait: 30\n", want: []string{`FILE:1: max-poll-wait: "30" is not a duration`}},
		{name: "invalid number in file", file: "consumer-ranges: four\n", want: []string{`FILE:1: consumer-ranges: "four" is not a whole number`}},
		{name: "list value", file: "data-dir:\n  - /a\n  - /b\n", want: []string{"FILE:1: data-dir: expected a single value"}},
		{name: "null value", file: "metrics-addr:\n", want: []string{`FILE:1: metrics-addr: no value`}},
		{name: "duplicate key", file: "data-dir: /a\ndata-dir: /b\n", want: []string{"FILE:2: data-dir: set twice (also at FILE:1)"}},
		{name: "config in config", file: "config: other.yaml\n", want: []string{"FILE:1: config: a config file cannot name another one"}},
		{name: "not a mapping", file: "- data-dir\n", want: []string{"FILE:1: expected a mapping"}},
		{name: "two documents", file: "data-dir: /a\n---\ndata-dir: /b\n", want: []string{"one YAML document"}},
		{name: "malformed YAML", file: "data-dir: [\n", want: []string{"config: FILE:", "yaml"}},
		{name: "every bad key at once", file: "a: 1\nb: 2\n", want: []string{`FILE:1: unknown setting "a"`, `FILE:2: unknown setting "b"`}},
		{name: "missing file", args: []string{"--config", "/nonexistent/floe.yaml"}, want: []string{"config: open /nonexistent/floe.yaml"}},
		{name: "missing file from FLOE_CONFIG", env: env{"FLOE_CONFIG": "/nonexistent/f.yaml"}, want: []string{"config: open /nonexistent/f.yaml"}},
		{name: "invalid env", env: env{"FLOE_MAX_POLL_WAIT": "soon"}, want: []string{`max-poll-wait: FLOE_MAX_POLL_WAIT="soon"`}},
		{name: "empty env for a number", env: env{"FLOE_CONSUMER_RANGES": ""}, want: []string{`consumer-ranges: FLOE_CONSUMER_RANGES=""`}},
		{name: "invalid flag", args: []string{"--cache-size", "lots"}, want: []string{"invalid value", "-cache-size", "floe --help"}},
		{name: "unknown flag", args: []string{"--data-dirr", "x"}, want: []string{"flag provided but not defined: -data-dirr"}},
		{name: "positional argument", args: []string{"serve"}, want: []string{`unexpected argument "serve"`}},
		{name: "range from env", env: env{"FLOE_CONSUMER_RANGES": "5000"}, want: []string{"consumer-ranges: 5000 not in [1, 1024] (set by FLOE_CONSUMER_RANGES)"}},
		{name: "cross-setting from file", file: "max-request-bytes: 1MiB\nmax-event-bytes: 2MiB\n", want: []string{"max-event-bytes: 2097152 is over max-request-bytes 1048576 (set by FILE:2; max-request-bytes set by FILE:1)"}},
		{name: "cross-setting, both set", env: env{"FLOE_MAX_REQUEST_BYTES": "100"}, args: []string{"--max-event-bytes", "1MiB"},
			want: []string{"max-event-bytes: 1048576 is over max-request-bytes 100 (set by --max-event-bytes; max-request-bytes set by FLOE_MAX_REQUEST_BYTES)"}},
		{name: "produce memory under the largest request", args: []string{"--produce-memory", "1MiB"},
			want: []string{"produce-memory: 1048576 is less than max-request-bytes 4194304: the largest request would not fit (set by --produce-memory)"}},
		{name: "address from flag", args: []string{"--metrics-addr", "9253"}, want: []string{`metrics-addr: "9253" is not host:port`, "(set by --metrics-addr)"}},
		// Refused before the store opens, not at listen after it did.
		{name: "port out of range", args: []string{"--grpc-addr", "127.0.0.1:99999"}, want: []string{`grpc-addr: "127.0.0.1:99999": the port must be a number from 0 to 65535 (set by --grpc-addr)`}},
		{name: "port name", env: env{"FLOE_METRICS_ADDR": ":http"}, want: []string{`metrics-addr: ":http": the port must be a number`}},
		{name: "memory limit without a unit", args: []string{"--memory-limit", "200"},
			want: []string{"memory-limit: 200 bytes is less than the broker needs (at least 64MiB; a size without a unit is in bytes: 200MiB?) (set by --memory-limit)"}},
		{name: "log level from file", file: "log-level: loud\n", want: []string{`log-level: "loud" is not debug, info, warn or error (set by FILE:1)`}},
		{name: "log format from env", env: env{"FLOE_LOG_FORMAT": "xml"}, want: []string{`log-format: "xml" is not text or json (set by FLOE_LOG_FORMAT)`}},
		{name: "negative duration", args: []string{"--shutdown-timeout=-1s"}, want: []string{"shutdown-timeout: -1s is negative (set by --shutdown-timeout)"}},
		{name: "page cache window", file: "page-cache-window: none\n", want: []string{`FILE:1: page-cache-window: "none" is not a size or off`}},
		{name: "CORS origin with a path", env: env{"FLOE_CORS_ORIGINS": "https://a.example, https://b.example/portal"},
			want: []string{`cors-origins: "https://b.example/portal" is not an origin (an origin has no path, query or user)`, "(set by FLOE_CORS_ORIGINS)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, e := tc.args, tc.env
			if e == nil {
				e = env{}
			}
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file)
				args = append([]string{"--config", path}, args...)
			}
			_, err := parseConfig(args, e.lookup, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "FILE", path); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// cors-origins is a comma-separated list wherever it is set; blanks around
// the origins and empty items are dropped.
func TestCORSOriginsList(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  env
		file string
		want []string
	}{
		{args: []string{"--cors-origins", "https://a.example, http://localhost:8080"}, want: []string{"https://a.example", "http://localhost:8080"}},
		{env: env{"FLOE_CORS_ORIGINS": "*"}, want: []string{"*"}},
		{file: "cors-origins: \"https://a.example,,https://*.b.example \"\n", want: []string{"https://a.example", "https://*.b.example"}},
		{env: env{"FLOE_CORS_ORIGINS": ""}, want: nil},
		{want: nil},
	} {
		args := tc.args
		if tc.file != "" {
			args = append([]string{"--config", writeFile(t, tc.file)}, args...)
		}
		e := tc.env
		if e == nil {
			e = env{}
		}
		c, err := parseConfig(args, e.lookup, io.Discard)
		if err != nil {
			t.Errorf("%v %v %q: %v", tc.args, tc.env, tc.file, err)
			continue
		}
		if !slices.Equal(c.opts.CORSOrigins, tc.want) {
			t.Errorf("%v %v %q: origins %q, want %q", tc.args, tc.env, tc.file, c.opts.CORSOrigins, tc.want)
		}
	}
}

func TestHelpDocumentsEverySetting(t *testing.T) {
	if _, err := parseConfig([]string{"--help"}, env{}.lookup, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"-h"}, env{}.lookup, &out, &errOut); code != 0 {
		t.Fatalf("run -h: exit %d: %s", code, errOut.String())
	}
	help := out.String()
	for _, want := range []string{"precedence", "--config or FLOE_CONFIG", "Unknown keys"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	newFlagSet(&config{}).VisitAll(func(f *flag.Flag) {
		if want := "--" + f.Name + " (" + envName(f.Name) + ")"; !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	})
	for name, def := range defaults {
		if !strings.Contains(help, "(default "+def+")") && !strings.Contains(help, "(default: "+def+", ") {
			t.Errorf("help lacks the default %s of %s", def, name)
		}
	}
}

// An invalid setting exits 2 before anything starts; a data directory that
// cannot be used exits 1.
func TestRunExitCodes(t *testing.T) {
	var errOut bytes.Buffer
	if code := run([]string{"--consumer-ranges", "0x"}, env{}.lookup, io.Discard, &errOut); code != 2 {
		t.Errorf("invalid flag: exit %d, want 2", code)
	}
	if !strings.HasPrefix(errOut.String(), "floe: ") {
		t.Errorf("stderr %q", errOut.String())
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	code := run([]string{"--data-dir", notDir, "--grpc-addr", "127.0.0.1:0", "--discovery-addr", "127.0.0.1:0",
		"--producer-addr", "127.0.0.1:0", "--consumer-addr", "127.0.0.1:0", "--metrics-addr", ""}, env{}.lookup, io.Discard, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "data-dir") {
		t.Errorf("data dir that is a file: exit %d, stderr %q", code, errOut.String())
	}
}

func TestStartupAttrsNameSources(t *testing.T) {
	path := writeFile(t, "cache-size: 32MiB\n")
	c, err := parseConfig([]string{"--config", path, "--log-format", "json"}, env{"FLOE_DATA_DIR": "/d"}.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	logger, _ := newLogger("info", "text", &buf)
	logger.LogAttrs(t.Context(), 0, "x", c.opts.StartupAttrs...)
	for _, want := range []string{"config=" + path, "log-format=json", "set-by.data-dir=FLOE_DATA_DIR",
		"set-by.cache-size=" + path + ":1", "set-by.log-format=--log-format"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("startup attrs %q lack %q", buf.String(), want)
		}
	}
}

func itoa(v int) string     { return strconv.Itoa(v) }
func itoa64(v int64) string { return strconv.FormatInt(v, 10) }

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  env
		want int64
	}{
		{"default", nil, nil, 200 << 20},
		{"flag", []string{"--memory-limit", "1GiB"}, nil, 1 << 30},
		{"env", nil, env{"FLOE_MEMORY_LIMIT": "0"}, 0},
	} {
		c, err := parseConfig(tc.args, tc.env.lookup, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.memoryLimit != tc.want {
			t.Errorf("%s: memory limit %d, want %d", tc.name, c.memoryLimit, tc.want)
		}
	}
	if _, err := parseConfig([]string{"--memory-limit", "lots"}, env{}.lookup, io.Discard); err == nil || !strings.Contains(err.Error(), "memory-limit") {
		t.Errorf("an invalid memory limit: %v, want an error naming memory-limit", err)
	}
}

// max-event-bytes, unless set, follows a request limit under its default:
// --max-request-bytes 512KiB alone failed, the event limit being over it.
func TestMaxEventBytesFollowsASmallerRequestLimit(t *testing.T) {
	c, err := parseConfig([]string{"--max-request-bytes", "512KiB"}, env{}.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.MaxEventBytes != 512<<10 {
		t.Errorf("max-event-bytes %d, want the request limit, 524288", c.opts.MaxEventBytes)
	}
	if c, err = parseConfig([]string{"--max-request-bytes", "8MiB"}, env{}.lookup, io.Discard); err != nil {
		t.Fatal(err)
	}
	if c.opts.MaxEventBytes != 1<<20 {
		t.Errorf("with a larger request limit: max-event-bytes %d, want its default, 1MiB", c.opts.MaxEventBytes)
	}
}

func TestZeroIsRefusedWhereMeaningless(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		env     env
		mention string
	}{
		{[]string{"--retention-max-age", "0"}, nil, "retention-max-age: 0 is not allowed: it would delete every event at once"},
		{[]string{"--consumer-ranges=0"}, nil, "consumer-ranges: 0 is not allowed"},
		{nil, env{"FLOE_MAX_POLL_WAIT": "0s"}, "max-poll-wait: 0 is not allowed: use a duration such as 30s (set by FLOE_MAX_POLL_WAIT)"},
		{[]string{"--shutdown-timeout", "0"}, nil, "shutdown-timeout: 0 is not allowed"},
		{[]string{"--page-cache-window", "0"}, nil, "page-cache-window: 0 is not allowed: use a size such as 1GiB, or off"},
		{[]string{"--group-offset-retention", "0"}, nil, "group-offset-retention: 0 is not allowed"},
		{[]string{"--max-topics", "0"}, nil, "max-topics: 0 is not allowed: use a number such as 10000, or off"},
		{[]string{"--max-topics", "-1"}, nil, `invalid value "-1" for flag -max-topics: "-1" is not a whole number or off`},
		{[]string{"--gomaxprocs", "0"}, nil, `invalid value "0" for flag -gomaxprocs: "0" is not a whole number of at least 1 or auto`},
		{nil, env{"FLOE_GOMAXPROCS": "two"}, `gomaxprocs: FLOE_GOMAXPROCS="two": "two" is not a whole number of at least 1 or auto`},
		{nil, env{"FLOE_DATA_DIR": ""}, "data-dir: an empty path is not allowed: name a directory (set by FLOE_DATA_DIR)"},
		{[]string{"--data-dir", " "}, nil, "data-dir: an empty path is not allowed"},
		{nil, env{"FLOE_PRODUCER_ADDR": ""}, "producer-addr: an empty address is not allowed: use host:port, e.g. :9251 (set by FLOE_PRODUCER_ADDR)"},
		{[]string{"--grpc-addr="}, nil, "grpc-addr: an empty address is not allowed"},
	} {
		_, err := parseConfig(tc.args, tc.env.lookup, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%v %v: %v, want an error with %q", tc.args, tc.env, err, tc.mention)
		}
	}
	// 0 stays valid where it means something.
	for _, args := range [][]string{{"--retention-max-bytes", "0"}, {"--memory-limit", "0"}, {"--retention-max-age", "-1s"}, {"--metrics-addr="}} {
		if _, err := parseConfig(args, env{}.lookup, io.Discard); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// The bench matrix starts its broker with every listener on a free port
// (bench.BrokerListenFlags): a listener flag it does not know would stay on
// its default port, where a broker already running stops the matrix's.
func TestBenchMatrixSetsEveryListener(t *testing.T) {
	fs := newFlagSet(&config{})
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.HasSuffix(f.Name, "-addr") || f.Name == "pprof-addr" { // pprof is off by default
			return
		}
		n++
		if !slices.Contains(bench.BrokerListenFlags, f.Name) {
			t.Errorf("--%s (default %q) is not in bench.BrokerListenFlags", f.Name, f.DefValue)
		}
	})
	if n != len(bench.BrokerListenFlags) {
		t.Errorf("%d listener flags, bench.BrokerListenFlags has %d", n, len(bench.BrokerListenFlags))
	}
}

// The startup line shows the memory limit in effect: GOMEMLIMIT's when it
// is set, whatever --memory-limit says.
// An empty GOMEMLIMIT is unset, for the runtime and for floe: taken as set,
// it left the broker without any memory limit.
func TestEmptyGOMEMLIMITIsUnset(t *testing.T) {
	if gomemlimitSet(env{"GOMEMLIMIT": ""}.lookup) || !gomemlimitSet(env{"GOMEMLIMIT": "1GiB"}.lookup) || gomemlimitSet(env{}.lookup) {
		t.Error("GOMEMLIMIT: an empty value must count as unset, a value as set")
	}
}

// FLOE_ variables that name no setting are listed for a warning, except
// those Kubernetes defines for a Service named floe.
func TestUnknownEnv(t *testing.T) {
	got := unknownEnv([]string{
		"FLOE_RETENTION_MAXAGE=1h", "FLOE_DATA_DIR=/d", "FLOE_CONFIG=f.yaml", "HOME=/root", "FLOE_MAX_REQUEST_SIZE=1MiB",
		"FLOE_SERVICE_HOST=10.0.0.1", "FLOE_SERVICE_PORT=9250", "FLOE_PORT=tcp://10.0.0.1:9250", "FLOE_PORT_9250_TCP_ADDR=10.0.0.1",
	})
	if want := []string{"FLOE_MAX_REQUEST_SIZE", "FLOE_RETENTION_MAXAGE"}; !slices.Equal(got, want) {
		t.Errorf("unknownEnv = %v, want %v", got, want)
	}
}

// The broker runs twice as many Ps as the runtime chose unless told
// otherwise; GOMAXPROCS in the environment wins over the setting, and the
// startup line says what is in effect and who set it.
func TestGoMaxProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.SetDefaultGOMAXPROCS()
	base := runtime.GOMAXPROCS(0)
	limit, limited := cgroupCPULimit(rootFS)
	auto := autoProcs(base, runtime.NumCPU(), limit, limited)
	for _, tc := range []struct {
		name    string
		setting string
		env     env
		want    int
		setBy   string
	}{
		{name: "auto", setting: "auto", env: env{}, want: auto},
		{name: "set", setting: "3", env: env{}, want: 3},
		{name: "GOMAXPROCS wins", setting: "3", env: env{"GOMAXPROCS": "1"}, want: base, setBy: "GOMAXPROCS"},
		{name: "empty GOMAXPROCS is unset", setting: "auto", env: env{"GOMAXPROCS": ""}, want: auto},
		// The runtime ignores a GOMAXPROCS that is not a number of at least 1.
		{name: "GOMAXPROCS=0 is unset", setting: "3", env: env{"GOMAXPROCS": "0"}, want: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GOMAXPROCS(base)
			c, err := parseConfig([]string{"--gomaxprocs", tc.setting}, noEnv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			attrs := applyGoMaxProcs(c.goMaxProcs, tc.env.lookup)
			if got := runtime.GOMAXPROCS(0); got != tc.want {
				t.Errorf("GOMAXPROCS %d, want %d", got, tc.want)
			}
			line := fmt.Sprint(attrs)
			if want := fmt.Sprintf("gomaxprocs=%d", tc.want); !strings.Contains(line, want) {
				t.Errorf("startup attrs %s, want %s", line, want)
			}
			if gotBy := strings.Contains(line, "gomaxprocs-set-by=GOMAXPROCS"); gotBy != (tc.setBy != "") {
				t.Errorf("startup attrs %s: set-by shown %v, want %v", line, gotBy, tc.setBy != "")
			}
		})
	}
	// run is called more than once in one process (these tests): auto
	// doubles the runtime's choice, not what the previous call set.
	applyGoMaxProcs(0, env{}.lookup)
	applyGoMaxProcs(0, env{}.lookup)
	if got := runtime.GOMAXPROCS(0); got != auto {
		t.Errorf("auto applied twice: GOMAXPROCS %d, want %d", got, auto)
	}
}

// auto doubles the Ps when the runtime gave the process every CPU, and
// keeps the runtime's choice under a CPU quota, which more threads would
// exhaust and then be throttled. The runtime rounds a quota up, to 2 at
// least, so a quota under the CPUs can leave chosen == cpus.
func TestAutoProcs(t *testing.T) {
	for _, tc := range []struct {
		chosen, cpus int
		limit        float64
		limited      bool
		want         int
	}{
		{2, 2, 0, false, 4}, {1, 1, 0, false, 2}, {16, 16, 0, false, 32},
		{2, 8, 0, false, 2}, {1, 64, 0, false, 1},
		{2, 8, 1.5, true, 2},
		{2, 2, 0.5, true, 2}, {2, 2, 1.5, true, 2}, {4, 4, 3.5, true, 4},
		{2, 2, 2, true, 4}, {4, 4, 8, true, 8},
	} {
		if got := autoProcs(tc.chosen, tc.cpus, tc.limit, tc.limited); got != tc.want {
			t.Errorf("autoProcs(%d chosen, %d CPUs, limit %v %v) = %d, want %d", tc.chosen, tc.cpus, tc.limit, tc.limited, got, tc.want)
		}
	}
}

func TestCgroupCPULimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fs      fstest.MapFS
		limit   float64
		limited bool
	}{
		{"none", fstest.MapFS{}, 0, false},
		{"v2 namespace", fstest.MapFS{
			"proc/self/cgroup":      {Data: []byte("0::/\n")},
			"sys/fs/cgroup/cpu.max": {Data: []byte("50000 100000\n")},
		}, 0.5, true},
		{"v2 unlimited", fstest.MapFS{
			"proc/self/cgroup":      {Data: []byte("0::/\n")},
			"sys/fs/cgroup/cpu.max": {Data: []byte("max 100000\n")},
		}, 0, false},
		{"v2 parent lower", fstest.MapFS{
			"proc/self/cgroup":                       {Data: []byte("0::/kubepods/pod1/c1\n")},
			"sys/fs/cgroup/kubepods/pod1/c1/cpu.max": {Data: []byte("max 100000\n")},
			"sys/fs/cgroup/kubepods/pod1/cpu.max":    {Data: []byte("150000 100000\n")},
			"sys/fs/cgroup/kubepods/cpu.max":         {Data: []byte("max 100000\n")},
		}, 1.5, true},
		{"v2 own cgroup mounted as root", fstest.MapFS{
			"proc/self/cgroup":      {Data: []byte("0::/docker/abc\n")},
			"sys/fs/cgroup/cpu.max": {Data: []byte("100000 100000\n")},
		}, 1, true},
		{"v1", fstest.MapFS{
			"proc/self/cgroup":                      {Data: []byte("12:memory:/x\n4:cpu,cpuacct:/x\n0::/\n")},
			"sys/fs/cgroup/cpu/x/cpu.cfs_quota_us":  {Data: []byte("-1\n")},
			"sys/fs/cgroup/cpu/x/cpu.cfs_period_us": {Data: []byte("100000\n")},
			"sys/fs/cgroup/cpu/cpu.cfs_quota_us":    {Data: []byte("250000\n")},
			"sys/fs/cgroup/cpu/cpu.cfs_period_us":   {Data: []byte("100000\n")},
		}, 2.5, true},
	} {
		limit, limited := cgroupCPULimit(tc.fs)
		if limit != tc.limit || limited != tc.limited {
			t.Errorf("%s: %v %v, want %v %v", tc.name, limit, limited, tc.limit, tc.limited)
		}
	}
}

func TestStartupLineShowsTheEffectiveMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(220 << 20)
	defer debug.SetMemoryLimit(old)
	attrs := []slog.Attr{slog.Int64("memory-limit", 100<<20)}
	got := effectiveMemoryLimit(attrs, env{"GOMEMLIMIT": "220MiB"}.lookup)
	if len(got) != 2 || got[0].Value.Int64() != 220<<20 || got[1].Value.String() != "GOMEMLIMIT" {
		t.Fatalf("attrs %v", got)
	}
	if attrs[0].Value.Int64() != 100<<20 {
		t.Fatal("the caller's attrs were changed")
	}
}

// gRPC's and the gateway runtime's log lines go to the broker's logger, in
// its format: an error of one call as a warning, the rest at debug.
func TestGRPCLogThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	logger, err := newLogger("info", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	g := newGRPCLogger(logger, noEnv)
	g.Errorf("Failed to write response: %v", "i/o timeout")
	g.Warning("client went away")
	g.Info("connection state")
	var rec map[string]any
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &rec) != nil {
		t.Fatalf("want one JSON line at info level, got:\n%s", buf.String())
	}
	if rec["level"] != "WARN" || rec["msg"] != "Failed to write response: i/o timeout" {
		t.Fatalf("line %v", rec)
	}
	if g.V(1) || !g.V(0) {
		t.Error("verbosity: want level 0 only")
	}
}

// gRPC's own variables choose what it logs, as with its default logger:
// GRPC_GO_LOG_SEVERITY_LEVEL brings its info or warnings up to the level the
// broker shows by default, GRPC_GO_LOG_VERBOSITY_LEVEL its verbose logs.
func TestGRPCLogHonoursGRPCVariables(t *testing.T) {
	for _, tc := range []struct {
		severity, verbosity string
		want                []string // messages logged at --log-level info
		v2                  bool     // V(2)
	}{
		{"", "", []string{"error"}, false},
		{"error", "", []string{"error"}, false},
		{"warning", "", []string{"warning", "error"}, false},
		{"INFO", "2", []string{"info", "warning", "error"}, true},
		{"loud", "x", []string{"GRPC_GO_LOG_SEVERITY_LEVEL is not info, warning or error: left out",
			"GRPC_GO_LOG_VERBOSITY_LEVEL is not a level (0, 1, 2, ...): left out", "error"}, false},
	} {
		var buf bytes.Buffer
		logger, err := newLogger("info", "json", &buf)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"GRPC_GO_LOG_SEVERITY_LEVEL": tc.severity, "GRPC_GO_LOG_VERBOSITY_LEVEL": tc.verbosity}
		g := newGRPCLogger(logger, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		g.Infof("%s", "info")
		g.Warningln("warning")
		g.Error("error")
		if got := logMessages(t, &buf); !slices.Equal(got, tc.want) {
			t.Errorf("severity %q verbosity %q: logged %q, want %q", tc.severity, tc.verbosity, logMessages(t, &buf), tc.want)
		}
		if g.V(2) != tc.v2 || !g.V(0) {
			t.Errorf("severity %q verbosity %q: V(2) %v V(0) %v", tc.severity, tc.verbosity, g.V(2), g.V(0))
		}
	}
}

// gRPC's components log through the ln methods, with their name as the
// first operand ("[core]", then the message): operands are spaced as
// fmt.Sprintln spaces them, as gRPC's own logger does.
func TestGRPCLogLnSpacesOperands(t *testing.T) {
	var buf bytes.Buffer
	logger, err := newLogger("debug", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	g := newGRPCLogger(logger, noEnv)
	g.Infoln("[core]", "Server created")
	g.Warningln("[transport]", "client went away")
	g.Errorln("[core]", "Failed", 2)
	want := []string{"[core] Server created", "[transport] client went away", "[core] Failed 2"}
	if got := logMessages(t, &buf); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// noEnv is an environment without variables.
func noEnv(string) (string, bool) { return "", false }

// logMessages returns the messages of the JSON log lines in buf.
func logMessages(t *testing.T, buf *bytes.Buffer) []string {
	t.Helper()
	var msgs []string
	for line := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, rec["msg"].(string))
	}
	return msgs
}

// A data directory written with another consumer-ranges stops floe with an
// error that says where this broker's number came from: a variable or a
// config file the operator forgot is the usual culprit.
func TestConsumerRangesChangedNamesTheSource(t *testing.T) {
	dir := t.TempDir()
	listen := []string{"--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--discovery-addr", "127.0.0.1:0",
		"--producer-addr", "127.0.0.1:0", "--consumer-addr", "127.0.0.1:0", "--metrics-addr", ""}
	// A directory written with 8 sub-ranges, holding an event.
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := store.Stream{Topic: "t", Token: -1 << 63, RangeIndex: 0, Version: 1}
	if _, err := s.Append(context.Background(), st, [][]byte{[]byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(s.RecordSetting("consumer-ranges", "8"), s.Close()); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "consumer-ranges: 2\n")
	for _, tc := range []struct {
		name string
		args []string
		env  env
		want string
	}{
		{"default", nil, env{}, "(this broker's consumer-ranges is the default)"},
		{"flag", []string{"--consumer-ranges", "16"}, env{}, "(this broker's consumer-ranges is set by --consumer-ranges)"},
		{"environment", nil, env{"FLOE_CONSUMER_RANGES": "4"}, "(this broker's consumer-ranges is set by FLOE_CONSUMER_RANGES)"},
		{"file", []string{"--config", path}, env{}, "(this broker's consumer-ranges is set by " + path + ":1)"},
	} {
		var errOut bytes.Buffer
		exit := make(chan int, 1)
		go func() { exit <- run(append(slices.Clone(listen), tc.args...), tc.env.lookup, io.Discard, &errOut) }()
		var code int
		select {
		case code = <-exit:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: floe started on a directory written with another consumer-ranges", tc.name)
		}
		if code != 1 || !strings.Contains(errOut.String(), "--consumer-ranges 8") || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q, want 1 and %q", tc.name, code, errOut.String(), tc.want)
		}
	}
}
