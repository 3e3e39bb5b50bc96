package l2test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// stopTB is a testing.TB whose Fatal and Skip record the outcome and end the
// goroutine, so that a test can check that a helper fails or skips.
type stopTB struct {
	testing.TB
	outcome, msg string
}

func (f *stopTB) Helper() {}
func (f *stopTB) Fatal(args ...any) {
	f.outcome, f.msg = "fail", fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *stopTB) Fatalf(format string, args ...any) {
	f.outcome, f.msg = "fail", fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *stopTB) Skipf(format string, args ...any) {
	f.outcome, f.msg = "skip", fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a stopTB, and returns how it ended: "fail", "skip" or "".
func run(t *testing.T, f func(testing.TB)) (outcome, msg string) {
	tb := &stopTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
	}()
	<-done
	return tb.outcome, tb.msg
}

// TestStartCluster_noClusterSupport checks that StartCluster skips when
// redis-server refuses --cluster-enabled, except under CI=true, where it
// fails; and that it fails, CI or not, when redis-server is missing.
func TestStartCluster_noClusterSupport(t *testing.T) {
	old := t.TempDir() // a redis-server of before clusters, and a redis-cli
	for name, script := range map[string]string{
		"redis-server": "#!/bin/sh\necho '*** FATAL CONFIG FILE ERROR ***'\necho \">>> 'cluster-enabled \\\"yes\\\"'\"\necho 'Bad directive or wrong number of arguments'\nexit 1\n",
		"redis-cli":    "#!/bin/sh\nexit 1\n",
	} {
		if err := os.WriteFile(filepath.Join(old, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	none := t.TempDir()
	tests := []struct {
		name, path, ci string
		want, says     string
	}{
		{"no cluster support", old, "", "skip", "lacks cluster support"},
		{"no cluster support, CI=false", old, "false", "skip", "lacks cluster support"},
		{"no cluster support, CI=true", old, "true", "fail", "CI=true"},
		{"no redis-server", none, "", "fail", "redis-server not installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", tt.path)
			t.Setenv("CI", tt.ci)
			got, msg := run(t, func(tb testing.TB) { StartCluster(tb) })
			if got != tt.want || !strings.Contains(msg, tt.says) {
				t.Errorf("StartCluster ended with %q: %s, want %q saying %q", got, msg, tt.want, tt.says)
			}
		})
	}
}
