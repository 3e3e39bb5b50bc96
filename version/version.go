// Package version says which build of symcache is running.
//
// A release build stamps the three variables at link time, as the Dockerfile
// does:
//
//	go build -ldflags "-X github.com/symcache/symcache/version.Version=0.2.0 \
//	  -X github.com/symcache/symcache/version.Commit=$(git rev-parse HEAD) \
//	  -X github.com/symcache/symcache/version.Date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/sidecar
//
// Whatever is not stamped (or is stamped empty, as an unset Docker ARG is)
// comes from what the go command recorded in the binary: the module version
// for `go install …@v0.2.0`, and the VCS revision and commit time for a build
// inside a Git work tree (unless -buildvcs=false). What is known nowhere stays
// "dev" for Version and empty for Commit and Date.
package version

import (
	"cmp"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set with -ldflags "-X github.com/symcache/symcache/version.Name=value".
// After package initialization they hold the resolved values described in the
// package documentation.
var (
	// Version is the release, such as "0.2.0"; "dev" when unknown.
	Version = "dev"
	// Commit is the VCS revision the binary was built from; a build from a
	// work tree with uncommitted changes ends in "-dirty".
	Commit = ""
	// Date is when the binary was built (RFC 3339), or, when not stamped, the
	// time of the commit it was built from.
	Date = ""
)

func init() {
	bi, _ := debug.ReadBuildInfo() // nil when the binary carries none
	Version, Commit, Date = resolve(Version, Commit, Date, bi)
}

// resolve fills what the linker did not stamp from the binary's build
// information (bi may be nil).
func resolve(ver, commit, date string, bi *debug.BuildInfo) (string, string, string) {
	ver, commit, date = strings.TrimSpace(ver), strings.TrimSpace(commit), strings.TrimSpace(date)
	if bi != nil {
		if ver == "" || ver == "dev" {
			// "(devel)" is what a build from a work tree records.
			if v := bi.Main.Version; v != "" && v != "(devel)" {
				ver = v
			}
		}
		var rev, at string
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if commit == "" && rev != "" {
			commit = rev
			if dirty {
				commit += "-dirty"
			}
		}
		date = cmp.Or(date, at)
	}
	return cmp.Or(ver, "dev"), commit, date
}

// Build describes the running binary.
type Build struct {
	Version   string // the release, or "dev"
	Commit    string // the VCS revision, or empty when unknown
	Date      string // the build (or commit) time, RFC 3339, or empty when unknown
	GoVersion string // the Go toolchain that built it, such as "go1.26.8"
	Platform  string // GOOS/GOARCH, such as "linux/amd64"
}

// Info returns the resolved build description.
func Info() Build {
	return Build{
		Version:   Version,
		Commit:    Commit,
		Date:      Date,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
}

// String is the build in one line, such as
// "0.2.0 (commit 3f2c1e9d…, built 2026-11-26T11:00:00Z, go1.26.8 linux/amd64)";
// unknown parts are left out.
func (b Build) String() string {
	var s strings.Builder
	s.WriteString(b.Version)
	s.WriteString(" (")
	if b.Commit != "" {
		s.WriteString("commit " + b.Commit + ", ")
	}
	if b.Date != "" {
		s.WriteString("built " + b.Date + ", ")
	}
	s.WriteString(b.GoVersion + " " + b.Platform + ")")
	return s.String()
}

// String is Info().String().
func String() string { return Info().String() }
