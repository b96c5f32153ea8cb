package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// machine describes where the matrix ran.
type machine struct {
	CPU      string
	Cores    int
	MemoryGB float64
	Kernel   string
	OS       string
	Disk     string
	Fsync    string // measured latency of a 4 KiB write + fdatasync
	// SyncBandwidth is the measured rate of 512 KiB writes, each followed by
	// fdatasync, appending to a new file and overwriting written blocks (as
	// Pebble's recycled WAL files do): the ceiling of durable writes.
	SyncBandwidth string
	Go            string
	Module        string
	Deps          []string
}

func readMachine(dataDir string) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemoryGB = kb / (1 << 20)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Disk = describeDisk(dataDir)
	m.Fsync = probeFsync(dataDir)
	m.SyncBandwidth = probeSyncBandwidth(dataDir)
	if bi, ok := debug.ReadBuildInfo(); ok {
		m.Module = bi.Main.Path + " " + bi.Main.Version
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			m.Module += " (commit " + rev[:min(12, len(rev))]
			if modified == "true" {
				m.Module += ", with uncommitted changes"
			}
			m.Module += ")"
		}
		for _, d := range bi.Deps {
			for _, want := range []string{"github.com/cockroachdb/pebble", "google.golang.org/grpc", "github.com/grpc-ecosystem/grpc-gateway", "google.golang.org/protobuf"} {
				if strings.HasPrefix(d.Path, want) {
					m.Deps = append(m.Deps, d.Path+" "+d.Version)
				}
			}
		}
		slices.Sort(m.Deps)
		m.Deps = slices.Compact(m.Deps)
		if rev == "" {
			m.Module += gitDescribe()
		}
	}
	return m
}

// gitDescribe names the commit of the working directory when the binary
// carries no VCS stamp (built with -buildvcs=false): " (working tree at
// commit X[, with uncommitted changes])", or "" outside a repository.
func gitDescribe() string {
	rev, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	out := " (working tree at commit " + strings.TrimSpace(string(rev))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		out += ", with uncommitted changes"
	}
	return out + "; the binary may differ if it was not rebuilt)"
}

// describeDisk names the file system and device that hold dir.
func describeDisk(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "unknown"
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	var best, fstype, dev string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		i := slices.Index(fields, "-")
		if i < 0 || len(fields) < i+3 || len(fields) < 5 {
			continue
		}
		mp := fields[4]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, fstype, dev = mp, fields[i+1], fields[i+2]
		}
	}
	out := fmt.Sprintf("%s on %s (mounted at %s)", fstype, dev, best)
	name := filepath.Base(dev)
	if b, err := os.ReadFile("/sys/class/block/" + name + "/queue/rotational"); err == nil {
		if strings.TrimSpace(string(b)) == "0" {
			out += ", non-rotational"
		} else {
			out += ", rotational"
		}
	}
	if b, err := os.ReadFile("/sys/class/block/" + name + "/size"); err == nil {
		if sectors, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil {
			out += fmt.Sprintf(", %.0f GiB", sectors*512/(1<<30))
		}
	}
	var st syscall.Statfs_t
	if syscall.Statfs(abs, &st) == nil {
		out += fmt.Sprintf(", %.0f GiB free", float64(st.Bavail)*float64(st.Bsize)/(1<<30))
	}
	return out
}

// isTmpfs reports whether dir is in memory (not the real disk).
func isTmpfs(dir string) bool {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return false
	}
	const tmpfsMagic, ramfsMagic = 0x01021994, 0x858458f6
	return st.Type == tmpfsMagic || st.Type == ramfsMagic
}

// probeFsync measures appending 4 KiB and fdatasync, 200 times: the floor of
// a durable acknowledgement on this disk.
func probeFsync(dir string) string {
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return "unknown: " + err.Error()
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var h Histogram
	for range 200 {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			return "unknown: " + err.Error()
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return "unknown: " + err.Error()
		}
		h.Record(time.Since(start))
	}
	s := h.Snapshot()
	return fmt.Sprintf("p50 %s, p99 %s, max %s", fmtMS(ms(s.Quantile(.5))), fmtMS(ms(s.Quantile(.99))), fmtMS(ms(time.Duration(s.Max))))
}

// probeSyncBandwidth writes 512 KiB and fdatasyncs, for about a second
// appending to a new file, then for about a second overwriting it from the
// start. A commit of the store is one WAL write and one fdatasync; each event
// is written twice (WAL, then a blob file at flush), so a produce rate of R
// bytes/s needs about 2R of this.
func probeSyncBandwidth(dir string) string {
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return "unknown: " + err.Error()
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 512<<10)
	for i := range buf {
		buf[i] = byte(i*131 + i>>9) // not zeros: some filesystems treat those specially
	}
	run := func(limit int) (mbps, perSync float64, n int, err error) {
		start := time.Now()
		for n < limit && (n < 8 || time.Since(start) < time.Second) {
			if _, err := f.Write(buf); err != nil {
				return 0, 0, 0, err
			}
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				return 0, 0, 0, err
			}
			n++
		}
		el := time.Since(start)
		return float64(n*len(buf)) / el.Seconds() / 1e6, el.Seconds() * 1000 / float64(n), n, nil
	}
	appMB, appMS, n, err := run(4096)
	if err != nil {
		return "unknown: " + err.Error()
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "unknown: " + err.Error()
	}
	overMB, overMS, _, err := run(n) // within the written part
	if err != nil {
		return "unknown: " + err.Error()
	}
	return fmt.Sprintf("appending %.0f MB/s (%.2fms per fdatasync), overwriting %.0f MB/s (%.2fms)", appMB, appMS, overMB, overMS)
}

// procStats reads the CPU time (user+system) and memory of a process.
type procStats struct {
	cpu   time.Duration
	rss   int64 // bytes
	hwm   int64 // peak RSS, bytes
	valid bool
}

func readProc(pid int) procStats {
	var ps procStats
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			f := strings.Fields(s[i+1:])
			// After the command: state is field 3; utime 14, stime 15.
			if len(f) > 13 {
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				ps.cpu = time.Duration(ut+st) * time.Second / 100 // USER_HZ
				ps.valid = true
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				ps.rss = kb << 10
			case "VmHWM:":
				ps.hwm = kb << 10
			}
		}
	}
	return ps
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// machineCPU is the CPU time the machine's processes used so far (user,
// nice, system, irq, softirq from /proc/stat), and the time the hypervisor
// ran something else while this machine's CPUs were ready to run (steal):
// on a virtual machine, CPU that neither the broker nor the tool got.
func machineCPU() (busy, steal time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return cpuLine(line)
}

// cpuLine reads the busy and steal times of /proc/stat's first line
// ("cpu  user nice system idle iowait irq softirq steal ..." in 1/100 s).
func cpuLine(line string) (busy, steal time.Duration) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var ticks [8]int64 // user nice system idle iowait irq softirq steal
	for i := range ticks {
		ticks[i], _ = strconv.ParseInt(f[1+i], 10, 64)
	}
	busy = time.Duration(ticks[0]+ticks[1]+ticks[2]+ticks[5]+ticks[6]) * time.Second / 100
	return busy, time.Duration(ticks[7]) * time.Second / 100
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
