package floe_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	floev1 "github.com/floe-streams/floe/gen/floe/v1"
)

// TestBinary runs the floe binary as a child process: graceful shutdown
// under load (SIGTERM, then SIGINT), durability of every acknowledged
// request across the restart, and a second process refused on the same
// data directory.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the floe binary")
	}
	if runtime.GOOS == "windows" {
		t.Skip("signals")
	}
	bin := floeBinary(t)
	t.Run("GracefulShutdownUnderLoad", func(t *testing.T) { sdGracefulShutdown(t, bin) })
	t.Run("DataDirInUse", func(t *testing.T) { sdDataDirInUse(t, bin) })
	t.Run("OpenStreamDrains", func(t *testing.T) { sdOpenStream(t, bin) })
	t.Run("NohupKeepsIgnoringSIGHUP", func(t *testing.T) { sdNohup(t, bin) })
}

// sdNohup starts floe with SIGHUP ignored, as nohup does: it keeps running
// after a SIGHUP, which it would stop on otherwise.
func sdNohup(t *testing.T, bin string) {
	p := sdStartCmd(t, func(args []string) *exec.Cmd {
		// An ignored signal stays ignored across exec.
		return exec.Command("sh", append([]string{"-c", `trap "" HUP; exec "$0" "$@"`, bin}, args...)...)
	}, t.TempDir())
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		t.Fatalf("floe started with SIGHUP ignored stopped on SIGHUP: %v", p.err)
	case <-time.After(time.Second):
	}
	if code, _ := p.stop(t, syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}

// sdProc is a running floe process.
type sdProc struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, after done
	mu     sync.Mutex
	stderr bytes.Buffer // its log (JSON lines)
	addrs  struct{ GRPC, Discovery, Producer, Consumer, Metrics string }
}

// sdStartFloe starts floe on dir with every listener on a free loopback port,
// and waits for its startup line, which gives the bound addresses.
func sdStartFloe(t *testing.T, bin, dir string, extra ...string) *sdProc {
	t.Helper()
	return sdStartCmd(t, func(args []string) *exec.Cmd { return exec.Command(bin, args...) }, dir, extra...)
}

// sdStartCmd is sdStartFloe with the command made by command from floe's
// arguments.
func sdStartCmd(t *testing.T, command func(args []string) *exec.Cmd, dir string, extra ...string) *sdProc {
	t.Helper()
	p := &sdProc{done: make(chan struct{})}
	args := append([]string{
		"--data-dir", dir, "--log-format", "json", "--advertised-host", "127.0.0.1",
		"--grpc-addr", "127.0.0.1:0", "--discovery-addr", "127.0.0.1:0", "--producer-addr", "127.0.0.1:0",
		"--consumer-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--shutdown-timeout", "10s",
	}, extra...)
	p.cmd = command(args)
	p.cmd.Env = []string{} // no FLOE_* from the test's environment
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan []byte, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.stderr.Write(line)
			p.stderr.WriteByte('\n')
			p.mu.Unlock()
			if bytes.Contains(line, []byte(`"msg":"floe started"`)) {
				started <- bytes.Clone(line)
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("floe pid %d log:\n%s", p.cmd.Process.Pid, p.log())
		}
	})
	select {
	case line := <-started:
		var entry struct {
			Listening struct{ GRPC, Discovery, Producer, Consumer, Metrics string }
		}
		if err := json.Unmarshal(line, &entry); err != nil {
			t.Fatalf("startup line %s: %v", line, err)
		}
		p.addrs = entry.Listening
	case <-p.done:
		t.Fatalf("floe exited at startup: %v\n%s", p.err, p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("floe did not start within 30s\n%s", p.log())
	}
	return p
}

func (p *sdProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// stop sends sig and waits for the exit; it returns the exit code and how
// long the process took to exit.
func (p *sdProc) stop(t *testing.T, sig os.Signal, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("floe did not exit within %v of %v", limit, sig)
	}
	took := time.Since(start)
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode(), took
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0, took
}

// sdOutcome counts the answers of the load.
type sdOutcome struct {
	ok, unavailable, otherStatus, transportErr atomic.Int64
	okAfterSignal                              atomic.Int64
}

func sdGracefulShutdown(t *testing.T, bin string) {
	dir := t.TempDir()
	p := sdStartFloe(t, bin, dir)
	const (
		topic   = "shutdown-load"
		workers = 16
	)
	client := &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true},
	}
	defer client.CloseIdleConnections()

	var (
		out      sdOutcome
		signaled atomic.Bool
		ackedMu  sync.Mutex
		acked    = map[string]bool{}   // events answered 200
		lost     = map[string]string{} // events that got no answer: the error
		wg       sync.WaitGroup
		stopLoad = make(chan struct{})
	)
	url := "http://" + p.addrs.Producer + "/v1/topic/" + topic + "/messages"
	for w := range workers {
		wg.Go(func() {
			failures := 0
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				event := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(event))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					out.transportErr.Add(1)
					ackedMu.Lock()
					lost[event] = err.Error()
					ackedMu.Unlock()
					if failures++; failures > 20 {
						return // the listener is gone
					}
					time.Sleep(5 * time.Millisecond)
					continue
				}
				body, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case rerr != nil:
					// Headers arrived but not the whole body: a response
					// cut in half.
					t.Errorf("%s: status %d, body cut: %v", event, resp.StatusCode, rerr)
				case resp.StatusCode == http.StatusOK:
					var ack struct{ Count int }
					if err := json.Unmarshal(body, &ack); err != nil || ack.Count != 1 {
						t.Errorf("%s: 200 with body %q", event, body)
					}
					out.ok.Add(1)
					if signaled.Load() {
						out.okAfterSignal.Add(1)
					}
					ackedMu.Lock()
					acked[event] = true
					ackedMu.Unlock()
				case resp.StatusCode == http.StatusServiceUnavailable:
					out.unavailable.Add(1)
				default:
					out.otherStatus.Add(1)
					t.Errorf("%s: unexpected status %d: %s", event, resp.StatusCode, body)
				}
			}
		})
	}

	// A long poll (30 s) is waiting when the signal comes: it must be
	// answered at once, not hold the shutdown.
	consumer := "http://" + p.addrs.Consumer + "/v1/consumer/"
	if code := statusOf(t, http.MethodPut, consumer+"register?consumerId=idle&topic=idle-topic", "", ""); code != http.StatusOK {
		t.Fatalf("register: %d", code)
	}
	longPoll := make(chan string, 1)
	go func() {
		resp, err := client.Post(consumer+"poll?consumerId=idle&timeout=30000", "", nil)
		if err != nil {
			longPoll <- err.Error()
			return
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		longPoll <- fmt.Sprintf("%d %v", resp.StatusCode, err)
	}()

	// Let the load run, then SIGTERM in the middle of it.
	deadline := time.Now().Add(20 * time.Second)
	for out.ok.Load() < 500 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if out.ok.Load() == 0 {
		close(stopLoad)
		wg.Wait()
		t.Fatal("no produce request succeeded before the signal")
	}
	// Signal while the broker is serving produce requests: on a loaded
	// machine the load's goroutines may all be between requests at a given
	// moment, and the drain would not be exercised (then the requests sent
	// meanwhile find their connections closed as idle).
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if sdProducesInFlight(t, p.addrs.Metrics) >= workers/4 {
			break
		}
	}
	signaled.Store(true)
	code, took := p.stop(t, syscall.SIGTERM, 15*time.Second)
	close(stopLoad)
	wg.Wait()
	for _, err := range firstN(lost, 3) {
		t.Logf("transport error: %s", err)
	}
	t.Logf("SIGTERM: exit %d after %v; answers: %d ok (%d after the signal), %d unavailable, %d other, %d transport errors",
		code, took.Round(time.Millisecond), out.ok.Load(), out.okAfterSignal.Load(), out.unavailable.Load(),
		out.otherStatus.Load(), out.transportErr.Load())
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if took > 5*time.Second {
		t.Errorf("shutdown took %v: a long poll or a request held it", took)
	}
	select {
	case got := <-longPoll:
		// 204 (nothing) or 503 (the groups are closed): an answer.
		if got != "204 <nil>" && got != "503 <nil>" {
			t.Errorf("long poll in flight at SIGTERM: %s, want 204 or 503", got)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("long poll in flight at SIGTERM not answered")
	}
	if out.okAfterSignal.Load() == 0 {
		t.Errorf("no request in flight at SIGTERM was answered 200: the drain is not exercised")
	}
	if !strings.Contains(p.log(), `"msg":"floe stopped"`) {
		t.Errorf("no 'floe stopped' line")
	}

	// Restart on the same directory: every event answered 200 is there.
	p2 := sdStartFloe(t, bin, dir)
	got := sdReadAll(t, "http://"+p2.addrs.Consumer, topic, len(acked), 60*time.Second)
	missing := 0
	for ev := range acked {
		if !got[ev] {
			if missing++; missing <= 10 {
				t.Errorf("event %s was answered 200 but is not in the store after the restart", ev)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged events missing", missing, len(acked))
	}
	t.Logf("read back %d events, %d acknowledged", len(got), len(acked))
	// A request that got no answer must not have been stored: the server
	// never read it (refused, or sent on a connection the server was
	// closing as idle). Stored without an answer would be a request cut in
	// half by the shutdown.
	for ev, err := range lost {
		if got[ev] {
			t.Errorf("event %s is stored but its request got no answer (%s)", ev, err)
		}
	}

	if code, took := p2.stop(t, syscall.SIGINT, 15*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGINT (took %v), want 0", code, took)
	}
}

// sdProducesInFlight is the number of produce requests the broker whose
// metrics listen on addr is serving.
func sdProducesInFlight(t *testing.T, addr string) int {
	for l := range strings.Lines(scrape(t, addr)) {
		if v, ok := strings.CutPrefix(l, `floe_http_requests_in_flight{api="producer"} `); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(n)
		}
	}
	return 0
}

// sdReadAll reads topic from the earliest offset with a new consumer group
// until it has at least want distinct events and a poll comes back empty,
// or until limit.
func sdReadAll(t *testing.T, consumerURL, topic string, want int, limit time.Duration) map[string]bool {
	t.Helper()
	id := "verify-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	reg := consumerURL + "/v1/consumer/register?consumerId=" + id + "&group=" + id + "&topic=" + topic + "&onNewGroup=startFromEarliest"
	if code := statusOf(t, http.MethodPut, reg, "", ""); code != http.StatusOK {
		t.Fatalf("register: %d", code)
	}
	got := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, consumerURL+"/v1/consumer/poll?consumerId="+id+"&timeout=200", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("poll after %d events: %v", len(got), err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch resp.StatusCode {
		case http.StatusNoContent:
			if len(got) >= want {
				return got
			}
		case http.StatusOK:
			var batches []struct{ Values []json.RawMessage }
			if err := json.Unmarshal(body, &batches); err != nil {
				t.Fatalf("poll body %q: %v", body, err)
			}
			for _, b := range batches {
				for _, v := range b.Values {
					var compact bytes.Buffer
					if err := json.Compact(&compact, v); err != nil {
						t.Fatal(err)
					}
					got[compact.String()] = true
				}
			}
		default:
			t.Fatalf("poll: %d %s", resp.StatusCode, body)
		}
	}
}

// A second process on the data directory of a running one exits 1 and
// names the directory and the holder's pid.
func sdDataDirInUse(t *testing.T, bin string) {
	if signal.Ignored(syscall.SIGHUP) {
		// Run under nohup: floe would inherit the ignored SIGHUP. A
		// caught signal is reset to its default across exec.
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGHUP)
		defer signal.Stop(c)
	}
	dir := t.TempDir()
	first := sdStartFloe(t, bin, dir)
	var stderr bytes.Buffer
	second := exec.Command(bin, "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--discovery-addr", "127.0.0.1:0",
		"--producer-addr", "127.0.0.1:0", "--consumer-addr", "127.0.0.1:0", "--metrics-addr", "")
	second.Env = []string{}
	second.Stderr = &stderr
	err := second.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second floe on %s: %v, want exit 1\n%s", dir, err, stderr.String())
	}
	want := fmt.Sprintf("data directory %s is in use by another floe process (pid %d", dir, first.cmd.Process.Pid)
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q does not say %q", stderr.String(), want)
	}
	// With --log-format json, the reason is a JSON record too: a log
	// pipeline that parses records lost the plain line.
	stderr.Reset()
	second = exec.Command(bin, "--data-dir", dir, "--log-format", "json", "--grpc-addr", "127.0.0.1:0", "--discovery-addr", "127.0.0.1:0",
		"--producer-addr", "127.0.0.1:0", "--consumer-addr", "127.0.0.1:0", "--metrics-addr", "")
	second.Env = []string{}
	second.Stderr = &stderr
	if err := second.Run(); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second floe with json logs: %v, want exit 1\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	var last struct{ Level, Msg, Err string }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Level != "ERROR" ||
		last.Msg != "floe cannot start" || !strings.Contains(last.Err, want) {
		t.Errorf("last line %q (%v): want a JSON ERROR record saying %q", lines[len(lines)-1], err, want)
	}
	// SIGHUP (a closed terminal) stops it gracefully, as SIGTERM does,
	// and the log says why.
	if code, _ := first.stop(t, syscall.SIGHUP, 15*time.Second); code != 0 {
		t.Errorf("first floe: exit %d after SIGHUP, want 0", code)
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	if log := first.stderr.String(); !strings.Contains(log, "hangup signal received") {
		t.Errorf("the log does not say the broker stopped on SIGHUP:\n%s", log)
	}
}

// firstN returns up to n values of m.
func firstN(m map[string]string, n int) []string {
	var out []string
	for _, v := range m {
		if len(out) == n {
			break
		}
		out = append(out, v)
	}
	return out
}

// A gRPC produce stream that its client keeps open holds a graceful stop;
// --shutdown-timeout bounds it: the connection is closed, the exit code is
// 1 (the shutdown was not clean) and the data acknowledged is durable.
func sdOpenStream(t *testing.T, bin string) {
	dir := t.TempDir()
	p := sdStartFloe(t, bin, dir, "--shutdown-timeout", "10s")
	stream, err := floev1.NewProducerClient(dial(t, p.addrs.GRPC)).ProduceStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	req := &floev1.ProduceStreamRequest{RequestId: 1, Topic: "held", Events: []*floev1.Event{{Data: []byte(`{"held":1}`)}}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetAck() == nil {
		t.Fatalf("ack: %v %v", resp, err)
	}
	// The client keeps its stream open: the drain ends it, well before
	// the shutdown timeout, and the broker exits cleanly.
	code, took := p.stop(t, syscall.SIGTERM, 15*time.Second)
	t.Logf("exit %d after %v", code, took.Round(time.Millisecond))
	if code != 0 || took > 5*time.Second {
		t.Errorf("exit %d after %v: want 0, well before the 10s shutdown timeout", code, took)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("the open stream ended with %v, want Unavailable", err)
	}
	p2 := sdStartFloe(t, bin, dir)
	if got := sdReadAll(t, "http://"+p2.addrs.Consumer, "held", 1, 30*time.Second); !got[`{"held":1}`] {
		t.Errorf("the acknowledged event is missing after the restart: %v", got)
	}
}
