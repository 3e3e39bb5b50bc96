package testutil_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/testutil"
)

func TestLogBuffer_concurrentWriters(t *testing.T) {
	var b testutil.LogBuffer
	log := b.Logger()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				log.Info("hello", "writer", i, "n", j)
				_ = b.String() // reading while others write is fine
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "\n"); got != 400 {
		t.Errorf("lines = %d, want 400", got)
	}
	if got := len(b.Records(t)); got != 400 {
		t.Errorf("len(Records()) = %d, want 400", got)
	}
}

func TestLogBuffer_Logger(t *testing.T) {
	var b testutil.LogBuffer
	b.Logger().Debug("quiet", "market", "spot")
	recs := b.Records(t)
	if len(recs) != 1 || recs[0]["level"] != "DEBUG" || recs[0]["msg"] != "quiet" || recs[0]["market"] != "spot" {
		t.Errorf("Records() after one Debug = %v, want one DEBUG record with msg and market", recs)
	}
}

func TestLogBuffer_Count(t *testing.T) {
	var b testutil.LogBuffer
	log := b.Logger()
	log.Warn("l2 unavailable", "tier", "l2", "key", "symcache:{spot}:current")
	log.Warn("l2 unavailable", "tier", "l2", "key", "symcache:{spot}:last_good")
	log.Error("request failed", "status", 503, "ok", false)
	log.Info("serving stale", "age", "3m0s")

	for _, tt := range []struct {
		name  string
		attrs []any
		want  int
	}{
		{"everything", nil, 4},
		{"level", []any{"level", "WARN"}, 2},
		{"level and msg", []any{"level", "ERROR", "msg", "request failed"}, 1},
		{"level and key", []any{"level", "WARN", "key", "symcache:{spot}:current"}, 1},
		{"number", []any{"status", 503}, 1},
		{"number as JSON decodes it", []any{"status", 503.0}, 1},
		{"bool", []any{"ok", false}, 1},
		{"other number", []any{"status", 500}, 0},
		{"number is not a string", []any{"status", "503"}, 0},
		{"absent key", []any{"market", nil}, 0},
		{"wrong level", []any{"level", "warn"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.Count(t, tt.attrs...); got != tt.want {
				t.Errorf("Count(%v) = %d, want %d", tt.attrs, got, tt.want)
			}
		})
	}
}

// fatalTB records a Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f) // stands in for runtime.Goexit
}

// fatal reports what f's call of tb.Fatalf said, or "" if it made none.
func fatal(f func(tb testing.TB)) (msg string) {
	tb := &fatalTB{}
	defer func() {
		if r := recover(); r != nil && r != any(tb) {
			panic(r)
		}
		msg = tb.msg
	}()
	f(tb)
	return ""
}

func TestLogBuffer_misuse(t *testing.T) {
	var notJSON testutil.LogBuffer
	fmt.Fprintln(&notJSON, "plain text")
	for _, tt := range []struct {
		name string
		call func(tb testing.TB)
		want string
	}{
		{"Records of a line not JSON", func(tb testing.TB) { notJSON.Records(tb) }, "not a JSON object"},
		{"Count of a line not JSON", func(tb testing.TB) { notJSON.Count(tb, "level", "INFO") }, "not a JSON object"},
		{"Count of an odd attrs", func(tb testing.TB) { new(testutil.LogBuffer).Count(tb, "level") }, "pairs"},
		{"Count of a key not a string", func(tb testing.TB) { new(testutil.LogBuffer).Count(tb, 1, 2) }, "not a string"},
		{"Count of a value not JSON", func(tb testing.TB) { new(testutil.LogBuffer).Count(tb, "f", func() {}) }, `value of "f"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := fatal(tt.call); !strings.Contains(got, tt.want) {
				t.Errorf("Fatalf message = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestLogBuffer_Reset(t *testing.T) {
	var b testutil.LogBuffer
	b.Logger().Info("before")
	b.Reset()
	b.Logger().Info("after")
	if recs := b.Records(t); len(recs) != 1 || recs[0]["msg"] != "after" {
		t.Errorf("Records() after Reset = %v, want only the later record", recs)
	}
	b.Reset()
	if got := b.String(); got != "" {
		t.Errorf("String() after Reset = %q, want empty", got)
	}
}

func TestGzip(t *testing.T) {
	in := []byte(`{"symbols":[]}`)
	zr, err := gzip.NewReader(bytes.NewReader(testutil.Gzip(t, in)))
	if err != nil {
		t.Fatalf("gzip.NewReader(Gzip(%q)) = %v", in, err)
	}
	if out, err := io.ReadAll(zr); err != nil || !bytes.Equal(out, in) {
		t.Errorf("Gzip(%q) inflates to %q, %v; want the input", in, out, err)
	}
}

func TestWaitFor(t *testing.T) {
	n := 0
	testutil.WaitFor(t, time.Second, "the third look", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("ok called %d times, want 3", n)
	}
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { recover() }() // Fatalf's Goexit stand-in
		testutil.WaitFor(ft, 20*time.Millisecond, "never", func() bool { return false })
	}()
	if !strings.Contains(ft.msg, "waited 20ms for never") {
		t.Errorf("WaitFor that never holds: %q, want it to fail naming what it waited for", ft.msg)
	}
}

// fatalRecorder records Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic("fatal")
}

func (f *fatalRecorder) Helper() {}
