package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version describes the binary in one line: its module version (with Go
// 1.24 and later, derived from the checkout's commit when built in one),
// the commit and whether the tree had uncommitted changes, the Go version
// and the platform. For example:
//
//	floe v0.0.0-20261121185852-e688ace1b2c3 (commit e688ace1b2c3, go1.26.0, linux/amd64)
func version() string {
	v, commit, modified := "devel", "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value[:min(len(s.Value), 12)]
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		commit += " with uncommitted changes"
	}
	return fmt.Sprintf("floe %s (commit %s, %s, %s/%s)", v, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
