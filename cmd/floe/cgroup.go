package main

import (
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
)

// rootFS is the file system cgroupCPULimit reads.
var rootFS fs.FS = os.DirFS("/")

// cgroupCPULimit is the CPU bandwidth limit of the process's cgroup in CPUs
// (quota / period), the lowest along its path to the root of the hierarchy;
// limited is false when there is none or it cannot be read. It reads the
// files the Go runtime reads to choose GOMAXPROCS (cgroup v2 cpu.max, v1
// cpu.cfs_quota_us and cpu.cfs_period_us), with the hierarchies mounted
// where systemd and container runtimes mount them (/sys/fs/cgroup and
// /sys/fs/cgroup/cpu), inside a cgroup namespace or not.
func cgroupCPULimit(fsys fs.FS) (limit float64, limited bool) {
	data, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	consider := func(l float64, ok bool) {
		if ok && (!limited || l < limit) {
			limit, limited = l, true
		}
	}
	for line := range strings.Lines(string(data)) {
		// hierarchy-ID:controllers:path
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			consider(walkCgroup(fsys, "sys/fs/cgroup", f[2], cpuMax))
		case hasController(f[1], "cpu"):
			consider(walkCgroup(fsys, "sys/fs/cgroup/cpu", f[2], cfsQuota))
		}
	}
	return limit, limited
}

func hasController(list, c string) bool {
	for name := range strings.SplitSeq(list, ",") {
		if name == c {
			return true
		}
	}
	return false
}

// walkCgroup reads the limit of cgroup dir, under the hierarchy mounted at
// mount, and of its parents, and returns the lowest. Without a cgroup
// namespace the process may see its own cgroup as the mount's root (a
// container's bind mount): when dir is not there, only the root counts.
func walkCgroup(fsys fs.FS, mount, dir string, read func(fs.FS, string) (float64, bool)) (limit float64, limited bool) {
	dir = strings.Trim(path.Clean("/"+dir), "/")
	if _, err := fs.Stat(fsys, path.Join(mount, dir)); err != nil {
		dir = ""
	}
	for {
		if l, ok := read(fsys, path.Join(mount, dir)); ok && (!limited || l < limit) {
			limit, limited = l, true
		}
		if dir == "" {
			return limit, limited
		}
		if dir = path.Dir(dir); dir == "." {
			dir = ""
		}
	}
}

// cpuMax reads cgroup v2 cpu.max: "max 100000" or "50000 100000".
func cpuMax(fsys fs.FS, dir string) (float64, bool) {
	data, err := fs.ReadFile(fsys, path.Join(dir, "cpu.max"))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(data))
	if len(f) != 2 || f[0] == "max" {
		return 0, false
	}
	return ratio(f[0], f[1])
}

// cfsQuota reads cgroup v1 cpu.cfs_quota_us ("-1": none) and
// cpu.cfs_period_us.
func cfsQuota(fsys fs.FS, dir string) (float64, bool) {
	q, err := fs.ReadFile(fsys, path.Join(dir, "cpu.cfs_quota_us"))
	if err != nil {
		return 0, false
	}
	p, err := fs.ReadFile(fsys, path.Join(dir, "cpu.cfs_period_us"))
	if err != nil {
		return 0, false
	}
	return ratio(strings.TrimSpace(string(q)), strings.TrimSpace(string(p)))
}

func ratio(quota, period string) (float64, bool) {
	q, err1 := strconv.ParseInt(quota, 10, 64)
	p, err2 := strconv.ParseInt(period, 10, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0, false
	}
	return float64(q) / float64(p), true
}
