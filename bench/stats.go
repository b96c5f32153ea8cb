package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stats are the counters of one side (producing or consuming) of a run.
type stats struct {
	events   atomic.Uint64
	bytes    atomic.Uint64 // of events, without framing
	requests atomic.Uint64
	lat      Histogram     // per request (produce) or per poll (consume)
	unsent   atomic.Uint64 // paced produce: events scheduled and never sent (--late-limit)

	mu       sync.Mutex
	errs     map[string]uint64
	examples map[string]string // the first message of each error key
}

func newStats() *stats { return &stats{errs: map[string]uint64{}, examples: map[string]string{}} }

func (s *stats) addErr(key string) { s.addErrExample(key, "") }

// addErrExample counts an error and keeps the first message the broker
// gave for its key (an HTTP status or gRPC code says less than "invalid
// topic ...").
func (s *stats) addErrExample(key, msg string) {
	s.mu.Lock()
	s.errs[key]++
	if _, ok := s.examples[key]; !ok && msg != "" {
		s.examples[key] = oneLine(msg)
	}
	s.mu.Unlock()
}

// oneLine is msg on one line (its whitespace runs made single spaces), cut
// to 200 bytes.
func oneLine(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 200 {
		msg = strings.ToValidUTF8(msg[:200], "") + "..."
	}
	return msg
}

func (s *stats) errorExamples() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.examples) == 0 {
		return nil
	}
	return maps.Clone(s.examples)
}

// errorMessage is what an error answer's body says: the message of the
// broker's JSON error, else the body itself, cut to 200 bytes.
func errorMessage(body []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	msg := string(body)
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	return oneLine(msg)
}

func (s *stats) errors() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.errs)
}

func (s *stats) errCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, c := range s.errs {
		n += c
	}
	return n
}

// httpErrKey names an HTTP failure: "http 503", or the transport error.
func httpErrKey(status int, err error) string {
	if err != nil {
		return "transport: " + shortErr(err)
	}
	return fmt.Sprintf("http %d", status)
}

// shortErr strips addresses from network errors so that they group.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// cpuMeter measures the CPU time of the tool's process, and its allocations.
type cpuMeter struct {
	wall    time.Time
	cpu     time.Duration
	mallocs uint64
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuMeter {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return cpuMeter{wall: time.Now(), cpu: processCPU(), mallocs: ms.Mallocs}
}

// stop returns the cores used on average and the allocations made.
func (m cpuMeter) stop() (cores float64, mallocs uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	wall := time.Since(m.wall)
	if wall <= 0 {
		return 0, 0
	}
	return float64(processCPU()-m.cpu) / float64(wall), ms.Mallocs - m.mallocs
}

// Side is the outcome of one side of a run.
type Side struct {
	Events         uint64            `json:"events"`
	Bytes          uint64            `json:"bytes"`
	Requests       uint64            `json:"requests"`
	EventsPerSec   float64           `json:"events_per_sec"`
	MBPerSec       float64           `json:"mb_per_sec"`
	RequestsPerSec float64           `json:"requests_per_sec"`
	Latency        Latency           `json:"latency"`
	Errors         map[string]uint64 `json:"errors,omitempty"`
	// ErrorExamples holds the first message of each error, by its key.
	ErrorExamples map[string]string `json:"error_examples,omitempty"`
	// Unsent counts the events of a paced run (--rate) scheduled within
	// --duration and still not sent when it gave up on its schedule.
	Unsent uint64 `json:"unsent,omitempty"`
}

func (s *stats) side(elapsed time.Duration) Side {
	sec := elapsed.Seconds()
	out := Side{
		Events:   s.events.Load(),
		Bytes:    s.bytes.Load(),
		Requests: s.requests.Load(),
		Latency:  s.lat.Snapshot().Summary(),
		Errors:   s.errors(),
		Unsent:   s.unsent.Load(),

		ErrorExamples: s.errorExamples(),
	}
	if len(out.Errors) == 0 {
		out.Errors = nil
	}
	if sec > 0 {
		out.EventsPerSec = float64(out.Events) / sec
		out.MBPerSec = float64(out.Bytes) / sec / 1e6
		out.RequestsPerSec = float64(out.Requests) / sec
	}
	return out
}

// Result is the outcome of a run, printed as a summary or as JSON (--json).
type Result struct {
	Name             string  `json:"name,omitempty"`
	Mode             string  `json:"mode"`
	API              string  `json:"api"`
	Topic            string  `json:"topic"`
	Run              string  `json:"run"`
	Connections      int     `json:"connections,omitempty"`
	EventsPerRequest int     `json:"events_per_request,omitempty"`
	EventSize        int     `json:"event_size,omitempty"`
	Keys             int     `json:"keys,omitempty"`
	Consumers        int     `json:"consumers,omitempty"`
	Rate             float64 `json:"target_rate,omitempty"`
	GRPCBody         bool    `json:"grpc_body,omitempty"` // gRPC batches sent as NDJSON bodies (--grpc-body)
	Seconds          float64 `json:"seconds"`

	// Produce: requests are produce requests. Consume: polls.
	Produce *Side    `json:"produce,omitempty"`
	Consume *Side    `json:"consume,omitempty"`
	E2E     *Latency `json:"e2e_latency,omitempty"`
	Verify  *Verify  `json:"verify,omitempty"`

	// The load tool's own cost: CPU cores used on average, and heap
	// allocations per event.
	ToolCPU            float64  `json:"tool_cpu_cores"`
	ToolAllocsPerEvent float64  `json:"tool_allocs_per_event"`
	Notes              []string `json:"notes,omitempty"`
}

// main is the side that the run is about.
func (r *Result) main() *Side {
	if r.Produce != nil {
		return r.Produce
	}
	return r.Consume
}

func (r *Result) setToolCost(cores float64, mallocs uint64) {
	r.ToolCPU = cores
	if s := r.main(); s != nil && s.Events > 0 {
		var events uint64
		if r.Produce != nil {
			events += r.Produce.Events
		}
		if r.Consume != nil {
			events += r.Consume.Events
		}
		r.ToolAllocsPerEvent = float64(mallocs) / float64(events)
	}
}

// printSummary writes the human summary of r.
func printSummary(w io.Writer, r *Result) {
	api := r.API
	if r.GRPCBody {
		api += ", NDJSON bodies"
	}
	run := "run=" + r.Run
	if r.Run == "" && r.Verify != nil {
		run = fmt.Sprintf("runs=%d", r.Verify.Runs)
	}
	fmt.Fprintf(w, "\n== floe bench %s (%s) topic=%s %s  %.1fs\n", r.Mode, api, r.Topic, run, r.Seconds)
	fmt.Fprintf(w, "  ")
	if r.Connections > 0 {
		fmt.Fprintf(w, " connections=%d events/request=%s event-size=%sB keys=%s", r.Connections,
			commas(uint64(r.EventsPerRequest)), commas(uint64(r.EventSize)), commas(uint64(r.Keys)))
	}
	if r.Consumers > 0 {
		fmt.Fprintf(w, " consumers=%d", r.Consumers)
	}
	if r.Rate > 0 {
		fmt.Fprintf(w, " rate=%s/s", fmtRate(r.Rate))
	}
	fmt.Fprintln(w)
	side := func(name string, s *Side, unit string) {
		if s == nil {
			return
		}
		fmt.Fprintf(w, "%-8s %12s events  %10s events/s  %8.1f MB/s  %9s %ss/s\n",
			name, commas(s.Events), rateCommas(s.EventsPerSec), s.MBPerSec, rateCommas(s.RequestsPerSec), unit)
		if s.Latency.Count == 0 {
			fmt.Fprintf(w, "         %s latency: - (0 samples)\n", unit)
		} else {
			samples := "samples"
			if s.Latency.Count == 1 {
				samples = "sample"
			}
			fmt.Fprintf(w, "         %s latency: p50 %s  p99 %s  p99.9 %s  max %s  (mean %s, %s %s)\n",
				unit, fmtMS(s.Latency.P50), fmtMS(s.Latency.P99), fmtMS(s.Latency.P999), fmtMS(s.Latency.Max),
				fmtMS(s.Latency.Mean), commas(s.Latency.Count), samples)
		}
		if len(s.Errors) == 0 {
			fmt.Fprintf(w, "         errors: none\n")
		} else {
			keys := slices.Sorted(maps.Keys(s.Errors))
			var parts []string
			for _, k := range keys {
				part := fmt.Sprintf("%s ×%s", k, commas(s.Errors[k]))
				if ex := s.ErrorExamples[k]; ex != "" {
					part += fmt.Sprintf(" (%s)", ex)
				}
				parts = append(parts, part)
			}
			fmt.Fprintf(w, "         errors: %s\n", strings.Join(parts, ", "))
		}
	}
	side("produce", r.Produce, "request")
	side("consume", r.Consume, "poll")
	if r.E2E != nil {
		fmt.Fprintf(w, "end-to-end latency: p50 %s  p99 %s  p99.9 %s  max %s  (mean %s)\n",
			fmtMS(r.E2E.P50), fmtMS(r.E2E.P99), fmtMS(r.E2E.P999), fmtMS(r.E2E.Max), fmtMS(r.E2E.Mean))
	}
	if v := r.Verify; v != nil {
		unread := ""
		if v.Unread > 0 {
			unread = ", unread " + commas(v.Unread)
		}
		fmt.Fprintf(w, "verify (%s): expected %s, delivered %s, missing %s%s, duplicated %s, malformed %s, unacked delivered %s, phantom %s, foreign (other runs) %s\n",
			v.Mode, commas(v.Expected), commas(v.Delivered), commas(v.Missing), unread, commas(v.Duplicated), commas(v.Malformed),
			commas(v.Unacked), commas(v.Phantom), commas(v.Foreign))
	}
	fmt.Fprintf(w, "tool cost: %.2f CPU cores, %.2f allocations/event\n", r.ToolCPU, r.ToolAllocsPerEvent)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func fmtMS(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}

// fmtRate is a target rate as given: whole ones with thousands separators
// (20,000), others as they are (0.5).
func fmtRate(r float64) string {
	if r == math.Trunc(r) && r < 1e15 {
		return commas(uint64(r))
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// rateCommas is a rate rounded to a whole number, with thousands
// separators.
func rateCommas(v float64) string { return commas(uint64(math.Round(max(v, 0)))) }

func commas(v uint64) string {
	s := fmt.Sprint(v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// namedStats is one side shown by progress.
type namedStats struct {
	name string
	s    *stats
	e2e  *Histogram
}

// unit is what a side's requests are: produce requests or polls.
func (n namedStats) unit() string {
	if n.name == "consume" {
		return "polls"
	}
	return "req"
}

// quantiles formats the p50 and p99 of d, or "-" for an interval without
// samples.
func quantiles(d *HistSnapshot) (string, string) {
	if d.N == 0 {
		return "-", "-"
	}
	return fmtMS(ms(d.Quantile(.5))), fmtMS(ms(d.Quantile(.99)))
}

// progress prints a line per interval until stop is closed: the rates of
// the interval and its latency percentiles.
func progress(w io.Writer, every time.Duration, start time.Time, stop <-chan struct{}, sides ...namedStats) {
	if every <= 0 || w == nil {
		return
	}
	type prev struct {
		events, bytes, reqs uint64
		h, e2e              *HistSnapshot
	}
	prevs := make([]prev, len(sides))
	last := start
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			dt := now.Sub(last).Seconds()
			last = now
			var b strings.Builder
			fmt.Fprintf(&b, "[%6.1fs]", now.Sub(start).Seconds())
			for i, s := range sides {
				ev, by, rq := s.s.events.Load(), s.s.bytes.Load(), s.s.requests.Load()
				h := s.s.lat.Snapshot()
				d := h.Sub(prevs[i].h)
				p50, p99 := quantiles(d)
				fmt.Fprintf(&b, " %s %9s ev/s %7.1f MB/s %7s %s/s p50 %s p99 %s",
					s.name, rateCommas(float64(ev-prevs[i].events)/dt), float64(by-prevs[i].bytes)/dt/1e6,
					rateCommas(float64(rq-prevs[i].reqs)/dt), s.unit(), p50, p99)
				if n := s.s.errCount(); n > 0 {
					fmt.Fprintf(&b, " errors %d", n)
				}
				var e2e *HistSnapshot
				if s.e2e != nil {
					e2e = s.e2e.Snapshot()
					p50, p99 := quantiles(e2e.Sub(prevs[i].e2e))
					fmt.Fprintf(&b, " e2e p50 %s p99 %s", p50, p99)
				}
				prevs[i] = prev{ev, by, rq, h, e2e}
			}
			fmt.Fprintln(w, b.String())
		}
	}
}
