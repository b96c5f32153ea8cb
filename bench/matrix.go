package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MatrixOptions configures `floe bench matrix`.
type MatrixOptions struct {
	Out          string        // BENCHMARKS.md
	Quick        bool          // shorter cases, smaller backlog
	CaseDuration time.Duration // per throughput case
	Backlog      uint64        // events in the consume backlog
	DataDir      string        // parent of the broker's temporary data dir
	BrokerBin    string        // the floe binary (default: this one)
	BrokerArgs   []string      // extra broker flags
	HTTPClient   string
	// Repeat runs each produce case (and its baseline) this many times on
	// the same broker; the row reports the run of median events/s and
	// lists every run's. Default 3, --quick 1.
	Repeat   int
	Only     string // run only the cases whose id contains this
	KeepData bool
	// WaitIdle, when set, makes each case wait (up to this long) until the
	// other processes of the machine use less than 0.25 cores.
	WaitIdle time.Duration
	Log      io.Writer
}

// matrixCase is one row of the matrix.
type matrixCase struct {
	id       string
	title    string
	target   string
	baseline bool   // against the no-op server
	durable  bool   // a baseline whose server fdatasyncs each body first
	mode     string // produce, consume, e2e, fill
	cfg      Config
	check    func(r *Result) (bool, string)
}

// row is the outcome of a case.
type row struct {
	Case      string  `json:"case"`
	ID        string  `json:"id"`
	Target    string  `json:"target"`
	Result    *Result `json:"result,omitempty"`
	Pass      *bool   `json:"pass,omitempty"`
	Why       string  `json:"why,omitempty"`
	BrokerCPU float64 `json:"broker_cpu_cores,omitempty"`
	BrokerRSS int64   `json:"broker_rss_max_bytes,omitempty"`
	// OtherCPU is what the other processes of the machine used (cores):
	// the machine's busy time minus the broker's and the tool's.
	OtherCPU float64 `json:"other_cpu_cores"`
	// StolenCPU is the CPU the hypervisor gave to others while this
	// machine's CPUs were ready to run (cores; steal in /proc/stat).
	StolenCPU float64 `json:"stolen_cpu_cores"`
	Baseline  bool    `json:"baseline,omitempty"`
	Err       string  `json:"error,omitempty"`
	// Runs are the events/s of each successful run of a repeated case, in
	// the order they ran; the row's other fields are those of the median
	// run. FailedRuns counted apart, with FirstRunErr the first one's error.
	Runs        []float64 `json:"runs_events_per_sec,omitempty"`
	FailedRuns  int       `json:"failed_runs,omitempty"`
	FirstRunErr string    `json:"first_run_error,omitempty"`
	// ProducedBytes is the event bytes acknowledged over all the runs of
	// the case (the median run's alone is Result.Produce.Bytes).
	ProducedBytes uint64 `json:"produced_bytes_all_runs,omitempty"`
	// Errors are the failed requests of all the runs of the case added up
	// (keys as in Side.Errors; an e2e case's failed polls as "poll ..."),
	// ErrorRuns the runs that had any. Failed says why runs failed
	// (Result.failed(), as floe bench fails a run: failed requests,
	// missing or malformed events),
	// "run 2: ..." for a repeated case. A row with Failed or FailedRuns
	// does not pass, whatever its median run measured.
	Errors    map[string]uint64 `json:"errors_all_runs,omitempty"`
	ErrorRuns int               `json:"runs_with_errors,omitempty"`
	Failed    string            `json:"failed,omitempty"`
}

func runMatrixCommand(ctx context.Context, args []string) int {
	var o MatrixOptions
	fs := flag.NewFlagSet("floe bench matrix", flag.ContinueOnError)
	fs.StringVar(&o.Out, "out", "BENCHMARKS.md", "markdown report to write")
	fs.BoolVar(&o.Quick, "quick", false, "short run: 4 s cases, 1M-event backlog")
	fs.DurationVar(&o.CaseDuration, "case-duration", 0, "duration of each throughput case (default 15s, --quick 4s)")
	fs.Uint64Var(&o.Backlog, "backlog", 0, "events of the consume backlog (default 10,000,000; --quick 1,000,000)")
	fs.StringVar(&o.DataDir, "data-dir", "", "where the broker's temporary data directory goes (default: $TMPDIR unless it is tmpfs, else .)")
	fs.StringVar(&o.BrokerBin, "broker-bin", "", "floe binary to start as the broker (default: this executable)")
	brokerArgs := fs.String("broker-args", "", "extra broker flags, space separated")
	fs.StringVar(&o.HTTPClient, "http-client", "raw", "REST client of the load: raw, std or h2c (see floe bench produce --help)")
	fs.IntVar(&o.Repeat, "repeat", 0, "runs of each produce case, the row reporting the median (default 3, --quick 1)")
	fs.StringVar(&o.Only, "only", "", "run only the cases whose id contains this (e.g. rest-1x200, consume, e2e)")
	fs.BoolVar(&o.KeepData, "keep-data", false, "keep the broker's data directory")
	fs.DurationVar(&o.WaitIdle, "wait-idle", 0, "before each case, wait up to this long for other processes to use < 0.25 cores (shared machines)")
	jsonOut := fs.Bool("json", false, "also print the rows as JSON on stdout")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	bad := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "floe bench matrix: "+format+"\n", args...)
		return 2
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["repeat"] && o.Repeat < 1 {
		return bad("--repeat: must be at least 1")
	}
	if o.CaseDuration < 0 || o.WaitIdle < 0 {
		return bad("--case-duration and --wait-idle must not be negative")
	}
	if err := o.checkOnly(); err != nil {
		return bad("%v", err)
	}
	if *brokerArgs != "" {
		o.BrokerArgs = strings.Fields(*brokerArgs)
	}
	o.Log = os.Stderr
	rows, err := RunMatrix(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floe bench matrix:", err)
		return 1
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rows)
	}
	return 0
}

// selected reports whether --only selects mc.
func (o *MatrixOptions) selected(mc matrixCase) bool {
	if o.Only == "" {
		return true
	}
	if strings.Contains(mc.id, o.Only) {
		return true
	}
	// Consume cases need their backlog.
	return mc.id == "consume-fill" && strings.Contains("consume", o.Only)
}

// checkOnly fails when --only selects no case, naming the cases: the run
// would otherwise write a report of nothing over the last one.
func (o *MatrixOptions) checkOnly() error {
	var ids []string
	for _, mc := range o.cases() {
		if o.selected(mc) && mc.id != "consume-fill" {
			return nil
		}
		ids = append(ids, mc.id)
	}
	return fmt.Errorf("--only %q matches no case; the cases are %s", o.Only, strings.Join(ids, ", "))
}

func (o *MatrixOptions) defaults() {
	if o.CaseDuration == 0 {
		o.CaseDuration = 15 * time.Second
		if o.Quick {
			o.CaseDuration = 4 * time.Second
		}
	}
	if o.Backlog == 0 {
		o.Backlog = 10_000_000
		if o.Quick {
			o.Backlog = 1_000_000
		}
	}
	if o.DataDir == "" {
		o.DataDir = os.TempDir()
		if isTmpfs(o.DataDir) {
			o.DataDir = "."
		}
	}
	if o.HTTPClient == "" {
		o.HTTPClient = "raw"
	}
	if o.Repeat <= 0 {
		o.Repeat = 3
		if o.Quick {
			o.Repeat = 1
		}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// command is the command line that reproduces the run.
func (o *MatrixOptions) command() string {
	cmd := "floe bench matrix --out " + o.Out
	if o.Quick {
		cmd += " --quick"
	}
	if o.Only != "" {
		cmd += " --only " + o.Only
	}
	if o.WaitIdle > 0 {
		cmd += " --wait-idle " + o.WaitIdle.String()
	}
	if (o.Quick && o.Repeat != 1) || (!o.Quick && o.Repeat != 3) {
		cmd += fmt.Sprintf(" --repeat %d", o.Repeat)
	}
	if o.HTTPClient != "raw" {
		cmd += " --http-client " + o.HTTPClient
	}
	if len(o.BrokerArgs) > 0 {
		cmd += " --broker-args '" + strings.Join(o.BrokerArgs, " ") + "'"
	}
	return cmd
}

// cases is the standard matrix.
func (o *MatrixOptions) cases() []matrixCase {
	d := o.CaseDuration
	base := Config{
		API: "rest", HTTPClient: o.HTTPClient, Topic: "bench", Connections: 16, EventsPerRequest: 1,
		EventSize: 200, Consumers: 1, Inflight: 16, From: "earliest", PollTimeout: 500 * time.Millisecond,
		Idle: 10 * time.Second, Drain: 10 * time.Second, Progress: 2 * time.Second,
		// As the command line's: without it, a paced run a few requests
		// behind its schedule when --duration ends failed at once.
		LateLimit: DefaultLateLimit,
	}
	with := func(f func(c *Config)) Config {
		c := base
		f(&c)
		return c
	}
	rest1 := with(func(c *Config) { c.Mode, c.Topic, c.Duration = "produce", "bench-rest-1x200", d })
	rest100 := with(func(c *Config) {
		c.Mode, c.Topic, c.Duration, c.EventsPerRequest = "produce", "bench-rest-100x200", d, 100
	})
	rest1k := with(func(c *Config) {
		c.Mode, c.Topic, c.Duration, c.EventsPerRequest, c.EventSize, c.Connections = "produce", "bench-rest-100x1k", d, 100, 1024, 8
	})
	p99 := func(r *Result) float64 { return r.Produce.Latency.P99 }
	eps := func(r *Result) float64 { return r.main().EventsPerSec }
	return []matrixCase{
		{id: "baseline-1x200", title: "BASELINE no-op HTTP server: 1 event of 200 B per request, 16 connections", baseline: true, mode: "produce", cfg: rest1},
		{id: "baseline-100x200", title: "BASELINE no-op HTTP server: NDJSON 100 × 200 B, 16 connections", baseline: true, mode: "produce", cfg: rest100},
		{id: "baseline-100x1k", title: "BASELINE no-op HTTP server: NDJSON 100 × 1 KiB, 8 connections", baseline: true, mode: "produce", cfg: rest1k},
		{id: "baseline-durable-1x200", title: "BASELINE durable no-op HTTP server (answers once the body is fdatasynced): 1 event of 200 B per request, 16 connections", baseline: true, durable: true, mode: "produce", cfg: rest1},
		{id: "baseline-durable-100x200", title: "BASELINE durable no-op HTTP server: NDJSON 100 × 200 B, 16 connections", baseline: true, durable: true, mode: "produce", cfg: rest100},
		{id: "baseline-durable-100x1k", title: "BASELINE durable no-op HTTP server: NDJSON 100 × 1 KiB, 8 connections", baseline: true, durable: true, mode: "produce", cfg: rest1k},
		{id: "rest-1x200", title: "REST produce, 1 event of 200 B per request, 16 connections", target: "≥ 25,000 events/s, p99 ≤ 5 ms",
			mode: "produce", cfg: rest1, check: func(r *Result) (bool, string) {
				return eps(r) >= 25000 && p99(r) <= 5, fmt.Sprintf("%s events/s, p99 %s", rateCommas(eps(r)), fmtMS(p99(r)))
			}},
		{id: "rest-100x200", title: "REST produce, NDJSON 100 × 200 B, 16 connections", target: "≥ 750,000 events/s, p99 ≤ 15 ms",
			mode: "produce", cfg: rest100, check: func(r *Result) (bool, string) {
				return eps(r) >= 750000 && p99(r) <= 15, fmt.Sprintf("%s events/s, p99 %s", rateCommas(eps(r)), fmtMS(p99(r)))
			}},
		{id: "rest-100x1k", title: "REST produce, NDJSON 100 × 1 KiB, 8 connections", target: "≥ 220,000 events/s (≥ 220 MB/s)",
			mode: "produce", cfg: rest1k, check: func(r *Result) (bool, string) {
				return eps(r) >= 220000 && r.Produce.MBPerSec >= 220, fmt.Sprintf("%s events/s, %.0f MB/s", rateCommas(eps(r)), r.Produce.MBPerSec)
			}},
		{id: "grpc-stream-100x200", title: "gRPC produce (ProduceStream), batches of 100 × 200 B, 16 streams × 16 in flight", target: "≥ 1,000,000 events/s",
			mode: "produce", cfg: with(func(c *Config) {
				c.Mode, c.API, c.GRPCStream, c.Topic, c.Duration, c.EventsPerRequest = "produce", "grpc", true, "bench-grpc-100x200", d, 100
			}), check: func(r *Result) (bool, string) { return eps(r) >= 1e6, fmt.Sprintf("%s events/s", rateCommas(eps(r))) }},
		{id: "grpc-stream-body-100x200", title: "gRPC produce (ProduceStream), batches of 100 × 200 B as one NDJSON body, 16 streams × 16 in flight", target: "≥ 1,000,000 events/s",
			mode: "produce", cfg: with(func(c *Config) {
				c.Mode, c.API, c.GRPCStream, c.GRPCBody, c.Topic, c.Duration, c.EventsPerRequest = "produce", "grpc", true, true, "bench-grpc-body-100x200", d, 100
			}), check: func(r *Result) (bool, string) { return eps(r) >= 1e6, fmt.Sprintf("%s events/s", rateCommas(eps(r))) }},
		{id: "consume-fill", title: fmt.Sprintf("backlog: REST produce of %s events, NDJSON 100 × 200 B, 16 connections", commas(o.Backlog)),
			mode: "fill", cfg: with(func(c *Config) {
				c.Mode, c.Topic, c.Count, c.Duration, c.EventsPerRequest = "produce", "bench-backlog", o.Backlog, 3*time.Minute, 100
			})},
		{id: "consume-1", title: "REST consume of the backlog, 1 consumer", target: "≥ 1,000,000 events/s, 0 missing, 0 malformed",
			mode: "consume", cfg: with(func(c *Config) {
				c.Mode, c.Topic, c.Consumers, c.Duration, c.PollTimeout = "consume", "bench-backlog", 1, 2*time.Minute, 100*time.Millisecond
			}), check: consumeCheck},
		{id: "consume-4", title: "REST consume of the backlog, 4 consumers", target: "≥ 1,000,000 events/s, 0 missing, 0 malformed",
			mode: "consume", cfg: with(func(c *Config) {
				c.Mode, c.Topic, c.Consumers, c.Duration, c.PollTimeout = "consume", "bench-backlog", 4, 2*time.Minute, 100*time.Millisecond
			}), check: consumeCheck},
		{id: "e2e", title: "e2e: REST produce 20,000 events/s (NDJSON 10 × 200 B per request, 16 connections) while 4 consumers long-poll (timeout=1000 ms)",
			target: "end-to-end p99 ≤ 50 ms",
			mode:   "e2e", cfg: with(func(c *Config) {
				c.Mode, c.Topic, c.Duration, c.Rate, c.EventsPerRequest, c.Connections = "e2e", "bench-e2e", d, 20000, 10, 16
				c.Consumers, c.From, c.PollTimeout = 4, "latest", time.Second
			}), check: func(r *Result) (bool, string) {
				ok := r.E2E.P99 <= 50 && r.Verify.Missing == 0 && r.Verify.Malformed == 0 && r.Produce.EventsPerSec >= 0.95*r.Rate
				return ok, fmt.Sprintf("e2e p99 %s at %s events/s, %d missing", fmtMS(r.E2E.P99), rateCommas(r.Produce.EventsPerSec), r.Verify.Missing)
			}},
	}
}

func consumeCheck(r *Result) (bool, string) {
	v := r.Verify
	// Unread: stopped at its --duration bound before every event arrived.
	return r.Consume.EventsPerSec >= 1e6 && v.Missing == 0 && v.Unread == 0 && v.Malformed == 0,
		fmt.Sprintf("%s events/s, %d missing, %d unread, %d malformed, %d duplicated", rateCommas(r.Consume.EventsPerSec), v.Missing, v.Unread, v.Malformed, v.Duplicated)
}

// child is a process the matrix started: the broker or the no-op server.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu      sync.Mutex
	rssMax  int64 // of the current case
	rssAll  int64 // of the whole run
	stopped atomic.Bool
}

func startChild(bin string, args []string, log io.Writer) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env, _ = childEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	go c.sample()
	return c, nil
}

// sample tracks the child's resident memory every 50 ms.
func (c *child) sample() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			ps := readProc(c.cmd.Process.Pid)
			c.mu.Lock()
			c.rssMax = max(c.rssMax, ps.rss)
			c.rssAll = max(c.rssAll, ps.rss, ps.hwm)
			c.mu.Unlock()
		}
	}
}

// caseStart resets the per-case peak and returns the CPU time so far.
func (c *child) caseStart() time.Duration {
	c.mu.Lock()
	c.rssMax = 0
	c.mu.Unlock()
	return readProc(c.cmd.Process.Pid).cpu
}

func (c *child) caseEnd(cpu0 time.Duration, wall time.Duration) (cores float64, rss int64) {
	ps := readProc(c.cmd.Process.Pid)
	c.mu.Lock()
	rss = max(c.rssMax, ps.rss)
	c.rssAll = max(c.rssAll, rss, ps.hwm)
	c.mu.Unlock()
	if wall > 0 {
		cores = float64(ps.cpu-cpu0) / float64(wall)
	}
	return cores, rss
}

func (c *child) stop() error {
	if c.stopped.Swap(true) {
		return nil
	}
	ps := readProc(c.cmd.Process.Pid)
	c.mu.Lock()
	c.rssAll = max(c.rssAll, ps.hwm)
	c.mu.Unlock()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return errors.New("did not stop within 60 s of SIGTERM: killed")
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		return c.err
	}
	return nil
}

// runtimeEnvVars are the Go runtime's variables that change how the broker
// runs: GOGC and GOMEMLIMIT its memory, which the matrix's RSS target
// measures (GOMEMLIMIT, even empty, overrides the broker's --memory-limit),
// GOMAXPROCS its cores, GODEBUG its runtime.
var runtimeEnvVars = []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"}

// childEnv is the environment of the matrix's children (the broker and the
// no-op server): environ without its FLOE_* variables, which would set the
// broker's settings (FLOE_CONFIG: from a file) unseen by the report, which
// says the broker ran with its defaults and its command line; dropped are
// their names. The Go runtime's variables stay: GOGC has no broker flag,
// so the matrix is how a GOGC is measured, and the load tool (this
// process) runs under them anyway; the report lists them (runtimeEnv).
func childEnv(environ []string) (env, dropped []string) {
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "FLOE_") {
			dropped = append(dropped, name)
			continue
		}
		env = append(env, kv)
	}
	slices.Sort(dropped)
	return env, dropped
}

// runtimeEnv are the variables of runtimeEnvVars that env sets, as
// NAME=value (quoted for a shell when it must be), in runtimeEnvVars order.
func runtimeEnv(env []string) []string {
	var out []string
	for _, name := range runtimeEnvVars {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, name+"="); ok {
				out = append(out, name+"="+shellQuote(v))
				break
			}
		}
	}
	return out
}

// shellQuote is v as a shell word: as is when it is plain, else in single
// quotes.
func shellQuote(v string) string {
	if v != "" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,:=/+-") == "" {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// freeAddrs returns n loopback addresses with free ports (they could be
// taken again before the child binds them; unlikely on a bench machine).
func freeAddrs(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// waitHTTP waits until GET url answers 200.
func waitHTTP(ctx context.Context, url string, c *child) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("exited: %v", c.err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within 30 s", url)
}

// RunMatrix runs the standard matrix and writes the report.
func RunMatrix(ctx context.Context, o MatrixOptions) ([]row, error) {
	o.defaults()
	if err := o.checkOnly(); err != nil {
		return nil, err
	}
	bin := o.BrokerBin
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		bin = exe
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp(o.DataDir, "floe-bench-data-*")
	if err != nil {
		return nil, err
	}
	if !o.KeepData {
		defer os.RemoveAll(dataDir)
	}
	fmt.Fprintf(o.Log, "floe bench matrix: measuring the machine (data dir %s)\n", dataDir)
	m := readMachine(dataDir)
	env, dropped := childEnv(os.Environ())
	if len(dropped) > 0 {
		fmt.Fprintf(o.Log, "floe bench matrix: not passing %s to the broker: it runs with its defaults and --broker-args\n", strings.Join(dropped, ", "))
	}
	goEnv := runtimeEnv(env)
	if len(goEnv) > 0 {
		fmt.Fprintf(o.Log, "floe bench matrix: %s set: the broker and the load tool run with it, the report says so\n", strings.Join(goEnv, " "))
	}
	started := time.Now()
	load0 := loadAvg()
	cases := o.cases()
	var rows []row
	var noop, broker *child
	var noopDurable bool
	durableLog := filepath.Join(dataDir, "durable-baseline.log")
	// stopNoop stops the no-op server and removes its log, which is not
	// the broker's data.
	stopNoop := func() {
		_ = noop.stop()
		noop = nil
		_ = os.Remove(durableLog)
	}
	var addrs []string
	var brokerCmd string
	var backlog *acks
	var backlogRun string
	defer func() {
		if noop != nil {
			stopNoop()
		}
		if broker != nil {
			_ = broker.stop()
		}
	}()
	run := func(mc matrixCase, c Config, target *child) row {
		rw := row{Case: mc.title, ID: mc.id, Target: mc.target, Baseline: mc.baseline}
		fmt.Fprintf(o.Log, "\n== %s: %s\n", mc.id, mc.title)
		c.Log = o.Log
		if o.WaitIdle > 0 {
			waitIdle(ctx, o.WaitIdle, target, o.Log)
		}
		cpu0 := target.caseStart()
		busy0, steal0 := machineCPU()
		tool0 := processCPU()
		start := time.Now()
		var res *Result
		var err error
		switch mc.mode {
		case "produce":
			res, err = Run(ctx, &c)
		case "fill":
			res, backlog, err = produceCase(ctx, &c)
			backlogRun = c.Run
			if err == nil && res.Produce.Events < c.Count {
				res.Notes = append(res.Notes, fmt.Sprintf("the backlog reached only %s of %s events within %v: the consume cases read that", commas(res.Produce.Events), commas(c.Count), c.Duration))
			}
		case "consume":
			if backlog == nil {
				err = errors.New("no backlog (the consume-fill case did not run)")
				break
			}
			c.Run = backlogRun
			res, err = runConsume(ctx, &c, backlog)
		case "e2e":
			res, err = Run(ctx, &c)
		}
		wall := time.Since(start)
		rw.BrokerCPU, rw.BrokerRSS = target.caseEnd(cpu0, wall)
		if wall > 0 {
			busy1, steal1 := machineCPU()
			busy := float64(busy1-busy0) / float64(wall)
			rw.OtherCPU = max(0, busy-rw.BrokerCPU-float64(processCPU()-tool0)/float64(wall))
			rw.StolenCPU = float64(steal1-steal0) / float64(wall)
		}
		if err != nil {
			rw.Err = err.Error()
			fmt.Fprintf(o.Log, "error: %v\n", err)
			return rw
		}
		res.Name = mc.id
		rw.Result = res
		printSummary(o.Log, res)
		fmt.Fprintf(o.Log, "broker: %.2f CPU cores, RSS max %.0f MiB; other processes: %.2f cores; stolen by the hypervisor: %.2f cores\n",
			rw.BrokerCPU, float64(rw.BrokerRSS)/(1<<20), rw.OtherCPU, rw.StolenCPU)
		if mc.check != nil {
			ok, why := mc.check(res)
			rw.Pass, rw.Why = &ok, why
		}
		if why := res.failed(); why != "" {
			fmt.Fprintf(o.Log, "failed: %s\n", why)
		}
		return rw
	}

	// repeat runs a produce case o.Repeat times (other cases once: the
	// consume cases read their backlog once, and e2e is paced); medianRow
	// judges the runs, a single one too.
	repeat := func(mc matrixCase, once func() row) row {
		if mc.mode != "produce" || o.Repeat == 1 {
			return medianRow([]row{once()})
		}
		var runs []row
		for i := range o.Repeat {
			if i > 0 && ctx.Err() != nil {
				break
			}
			fmt.Fprintf(o.Log, "\n(run %d of %d)", i+1, o.Repeat)
			rw := once()
			if ctx.Err() != nil && len(runs) > 0 {
				// Cut short by the interruption: the runs before stand.
				break
			}
			runs = append(runs, rw)
		}
		return medianRow(runs)
	}

	for _, mc := range cases {
		if ctx.Err() != nil {
			break
		}
		if !o.selected(mc) {
			continue
		}
		c := mc.cfg
		if mc.baseline {
			if noop != nil && noopDurable != mc.durable {
				stopNoop()
			}
			if noop == nil {
				a, err := freeAddrs(1)
				if err != nil {
					return nil, err
				}
				args := []string{"bench", "noop-server", "--addr", a[0]}
				if mc.durable {
					// On the broker's disk, beside its data directory.
					args = append(args, "--fsync-file", durableLog)
				}
				if noop, err = startChild(bin, args, o.Log); err != nil {
					return nil, fmt.Errorf("no-op server: %w", err)
				}
				noopDurable = mc.durable
				if err := waitHTTP(ctx, "http://"+a[0]+"/status", noop); err != nil {
					return nil, fmt.Errorf("no-op server: %w", err)
				}
				addrs = a
			}
			c.Producer = addrs[0]
			rows = append(rows, repeat(mc, func() row { return run(mc, c, noop) }))
			continue
		}
		if noop != nil {
			stopNoop()
		}
		if broker == nil {
			a, err := freeAddrs(len(BrokerListenFlags))
			if err != nil {
				return nil, err
			}
			args := brokerArgs(a, filepath.Join(dataDir, "floe"), o.BrokerArgs)
			brokerCmd = "floe " + strings.Join(args, " ")
			if broker, err = startChild(bin, args, o.Log); err != nil {
				return nil, fmt.Errorf("broker: %w", err)
			}
			for _, p := range []string{a[2], a[3]} { // producer, consumer
				if err := waitHTTP(ctx, "http://"+p+"/status", broker); err != nil {
					return nil, fmt.Errorf("broker: %w", err)
				}
			}
			addrs = a
		}
		c.GRPC, c.Producer, c.Consumer = addrs[0], addrs[2], addrs[3]
		rows = append(rows, repeat(mc, func() row { return run(mc, c, broker) }))
	}
	var stopErr error
	var rssAll, disk int64
	if broker != nil {
		disk = dirSize(dataDir)
		stopErr = broker.stop()
		rssAll = broker.rssAll
	}
	rep := report{
		Machine: m, Opts: o, Rows: rows, Started: started, Took: time.Since(started),
		BrokerCmd: brokerCmd, BrokerRSS: rssAll, DiskBytes: disk, StopErr: stopErr,
		Interrupted: ctx.Err() != nil, LoadBefore: load0, LoadAfter: loadAvg(), Command: o.command(),
		Env: goEnv, DroppedEnv: dropped,
	}
	met, total := 0, 0
	for _, rw := range rows {
		if rw.Pass != nil {
			total++
			if *rw.Pass {
				met++
			}
		}
	}
	fmt.Fprintf(o.Log, "\n%d of %d targets met (broker peak RSS %.0f MiB)\n", met, total, float64(rssAll)/(1<<20))
	if o.Out != "" {
		if err := os.WriteFile(o.Out, []byte(rep.markdown()), 0o644); err != nil {
			return rows, err
		}
		fmt.Fprintf(o.Log, "\nwrote %s\n", o.Out)
	}
	return rows, nil
}

// BrokerListenFlags are the broker's listener flags that the matrix sets,
// each to a free address, so that a broker already running with the
// default ports does not stop the matrix's. The broker's tests check that
// every listener flag it has, but --pprof-addr (off by default), is here.
var BrokerListenFlags = []string{"grpc-addr", "discovery-addr", "producer-addr", "consumer-addr", "metrics-addr"}

// brokerArgs is the command line of the matrix's broker: the listener
// flags on the addresses a (one each, in BrokerListenFlags order), then
// extra.
func brokerArgs(a []string, dataDir string, extra []string) []string {
	var args []string
	for i, f := range BrokerListenFlags {
		args = append(args, "--"+f, a[i])
	}
	args = append(args, "--data-dir", dataDir, "--log-level", "warn")
	return append(args, extra...)
}

// medianRow returns the successful run of median events/s (the lower of
// the two middle ones for an even count), with every successful run's
// events/s in Runs, the failed runs counted in FailedRuns, the highest RSS
// of all, and the event bytes acknowledged by all. The row is an error only
// when every run failed. The median measures the case; the verdict answers
// for every run (settle): a failed run, or failed requests, missing or
// malformed events in any run, and the case does not pass.
func medianRow(runs []row) row {
	if len(runs) == 1 {
		return settle(runs[0], runs)
	}
	var ok []row
	var eps []float64
	var failed int
	var firstErr string
	var rss int64
	var produced uint64
	for _, rw := range runs {
		rss = max(rss, rw.BrokerRSS)
		if rw.Err != "" || rw.Result == nil {
			if failed == 0 {
				firstErr = rw.Err
			}
			failed++
			continue
		}
		ok = append(ok, rw)
		eps = append(eps, rw.Result.main().EventsPerSec)
		if rw.Result.Produce != nil {
			produced += rw.Result.Produce.Bytes
		}
	}
	if len(ok) == 0 {
		med := runs[0]
		med.FailedRuns, med.BrokerRSS = failed, rss
		return settle(med, runs)
	}
	order := make([]int, len(ok))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(eps[a], eps[b]) })
	med := ok[order[(len(ok)-1)/2]]
	med.Runs, med.FailedRuns, med.FirstRunErr = eps, failed, firstErr
	med.BrokerRSS, med.ProducedBytes = rss, produced
	return settle(med, runs)
}

// settle makes med, the row chosen among runs, answer for all of them: the
// request errors of every run added up in Errors (ErrorRuns: the runs that
// had any), why runs failed in Failed (Result.failed() of each), and no
// pass when any run failed, outright (FailedRuns) or by Result.failed().
func settle(med row, runs []row) row {
	var errs map[string]uint64
	var errRuns int
	var why []string
	for i, rw := range runs {
		if rw.Result == nil {
			continue
		}
		if e := runErrors(rw.Result); len(e) > 0 {
			if errs == nil {
				errs = map[string]uint64{}
			}
			for k, n := range e {
				errs[k] += n
			}
			errRuns++
		}
		if f := rw.Result.failed(); f != "" {
			if len(runs) > 1 {
				f = fmt.Sprintf("run %d: %s", i+1, f)
			}
			why = append(why, f)
		}
	}
	med.Errors, med.ErrorRuns, med.Failed = errs, errRuns, strings.Join(why, "; ")
	if med.Pass != nil && (med.Failed != "" || med.FailedRuns > 0) {
		fail := false
		med.Pass = &fail
	}
	return med
}

// runErrors are the failed requests of r: those of its main side as they
// are, and, when it has both, its consumers' failed polls as "poll ...".
func runErrors(r *Result) map[string]uint64 {
	errs := map[string]uint64{}
	add := func(s *Side, prefix string) {
		if s != nil {
			for k, n := range s.Errors {
				errs[prefix+k] += n
			}
		}
	}
	add(r.main(), "")
	if r.Produce != nil {
		add(r.Consume, "poll ")
	}
	return errs
}

// waitIdle waits until the machine's processes other than this one and the
// child use less than 0.25 cores over a second, or until limit.
func waitIdle(ctx context.Context, limit time.Duration, c *child, log io.Writer) {
	deadline := time.Now().Add(limit)
	for {
		busy0, _ := machineCPU()
		self0, child0, t0 := processCPU(), readProc(c.cmd.Process.Pid).cpu, time.Now()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		wall := float64(time.Since(t0))
		busy1, _ := machineCPU()
		other := float64(busy1-busy0-(processCPU()-self0)-(readProc(c.cmd.Process.Pid).cpu-child0)) / wall
		if other < 0.25 {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(log, "other processes still use %.2f cores after waiting %v: running anyway\n", other, limit)
			return
		}
		fmt.Fprintf(log, "waiting for the machine to quiet down (other processes use %.2f cores)\n", other)
	}
}

// produceCase is produce, keeping the acks for the consume cases.
func produceCase(ctx context.Context, c *Config) (*Result, *acks, error) {
	if c.Run == "" {
		c.Run = newRunID()
	}
	if err := c.validate(); err != nil {
		return nil, nil, err
	}
	return produce(ctx, c)
}
