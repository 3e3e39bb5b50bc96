package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/symcache/symcache", Version: "(devel)"}}
		for i := 0; i+1 < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	withMain := func(v string) *debug.BuildInfo {
		bi := vcs()
		bi.Main.Version = v
		return bi
	}
	tests := []struct {
		name                  string
		ver, commit, date     string
		bi                    *debug.BuildInfo
		wantVer, wantC, wantD string
	}{
		{"nothing known", "dev", "", "", nil, "dev", "", ""},
		{"no build info, stamped", "1.2.3", "abc", "2026-11-26T11:00:00Z", nil, "1.2.3", "abc", "2026-11-26T11:00:00Z"},
		{"stamped wins over vcs", "1.2.3", "abc", "2026-11-26T11:00:00Z",
			vcs("vcs.revision", "fff", "vcs.time", "2020-01-01T00:00:00Z", "vcs.modified", "true"),
			"1.2.3", "abc", "2026-11-26T11:00:00Z"},
		{"vcs fills the unstamped", "dev", "", "",
			vcs("vcs.revision", "0123abcd", "vcs.time", "2026-11-25T08:00:00Z", "vcs.modified", "false"),
			"dev", "0123abcd", "2026-11-25T08:00:00Z"},
		{"dirty work tree", "dev", "", "", vcs("vcs.revision", "0123abcd", "vcs.modified", "true"), "dev", "0123abcd-dirty", ""},
		// An unset Docker ARG stamps an empty string: it must not hide the fallbacks.
		{"stamped empty", "", " ", "", vcs("vcs.revision", "0123abcd", "vcs.time", "2026-11-25T08:00:00Z"),
			"dev", "0123abcd", "2026-11-25T08:00:00Z"},
		{"go install of a release", "dev", "", "", withMain("v0.2.0"), "v0.2.0", "", ""},
		{"stamped version wins over the module's", "0.2.1", "", "", withMain("v0.2.0"), "0.2.1", "", ""},
		{"devel is not a version", "", "", "", withMain("(devel)"), "dev", "", ""},
		{"only a date stamped", "dev", "", "2026-11-26T11:00:00Z", vcs("vcs.revision", "0123abcd", "vcs.time", "2026-11-25T08:00:00Z"),
			"dev", "0123abcd", "2026-11-26T11:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, c, d := resolve(tt.ver, tt.commit, tt.date, tt.bi)
			if v != tt.wantVer || c != tt.wantC || d != tt.wantD {
				t.Errorf("resolve(%q, %q, %q) = %q, %q, %q; want %q, %q, %q",
					tt.ver, tt.commit, tt.date, v, c, d, tt.wantVer, tt.wantC, tt.wantD)
			}
		})
	}
}

func TestBuild_String(t *testing.T) {
	tests := []struct {
		name string
		b    Build
		want string
	}{
		{"all known", Build{"0.2.0", "3f2c1e9d", "2026-11-26T11:00:00Z", "go1.26.8", "linux/amd64"},
			"0.2.0 (commit 3f2c1e9d, built 2026-11-26T11:00:00Z, go1.26.8 linux/amd64)"},
		{"unknown commit and date", Build{"dev", "", "", "go1.26.8", "linux/arm64"}, "dev (go1.26.8 linux/arm64)"},
		{"commit only", Build{"dev", "3f2c1e9d-dirty", "", "go1.26.8", "linux/amd64"}, "dev (commit 3f2c1e9d-dirty, go1.26.8 linux/amd64)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.String(); got != tt.want {
				t.Errorf("%#v.String() = %q, want %q", tt.b, got, tt.want)
			}
		})
	}
}

// The test binary is not stamped, and the go command here may or may not
// record VCS data: Info must still describe it sensibly.
func TestInfo(t *testing.T) {
	b := Info()
	if b.Version == "" || b.Version != Version || b.Commit != Commit || b.Date != Date {
		t.Errorf("Info() = %+v, want the package variables (%q, %q, %q)", b, Version, Commit, Date)
	}
	if b.GoVersion != runtime.Version() || b.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("Info() = %+v, want Go %s on %s/%s", b, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	if s := String(); !strings.HasPrefix(s, b.Version+" (") || !strings.Contains(s, runtime.Version()) {
		t.Errorf("String() = %q, want it to start with %q and name %s", s, b.Version+" (", runtime.Version())
	}
}
