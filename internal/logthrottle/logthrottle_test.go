package logthrottle_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/logthrottle"
	"github.com/symcache/symcache/internal/testutil"
)

var start = time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)

// newLogger returns a logger throttled with cfg on a fake clock, writing
// JSON lines to the returned buffer.
func newLogger(cfg logthrottle.Config) (*slog.Logger, *logthrottle.Handler, *testutil.LogBuffer, *testutil.Clock) {
	buf := new(testutil.LogBuffer)
	clk := testutil.NewClock(start)
	cfg.Now = clk.Now
	h := logthrottle.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}), cfg)
	return slog.New(h), h, buf, clk
}

// TestHandler_Burst: 10,000 identical warnings in one interval write the
// burst, and the next interval opens with one line counting the rest.
func TestHandler_Burst(t *testing.T) {
	const burst, total = 10, 10_000
	log, _, buf, clk := newLogger(logthrottle.Config{Burst: burst, Interval: 10 * time.Second})
	for i := range total {
		log.Warn("admin request refused", "i", i)
	}
	if got := len(buf.Records(t)); got != burst {
		t.Fatalf("lines after %d warnings in one interval = %d, want %d", total, got, burst)
	}
	if n := buf.Count(t, "repeated", total-burst); n != 0 {
		t.Errorf("summary written before the interval ended")
	}

	clk.Advance(10 * time.Second)
	log.Warn("admin request refused", "i", total)
	recs := buf.Records(t)
	if len(recs) != burst+2 {
		t.Fatalf("lines after the next interval's first warning = %d, want %d (the burst, the summary, the warning)", len(recs), burst+2)
	}
	sum := recs[burst]
	if sum["level"] != "WARN" || sum["msg"] != "admin request refused" || sum["repeated"] != float64(total-burst) {
		t.Errorf("summary = %v, want level WARN, the message and repeated %d", sum, total-burst)
	}
	if recs[burst+1]["i"] != float64(total) {
		t.Errorf("line after the summary = %v, want the warning i=%d", recs[burst+1], total)
	}

	// A quiet interval ends with nothing to say.
	clk.Advance(time.Minute)
	log.Warn("admin request refused")
	if n := buf.Count(t, "msg", "admin request refused", "repeated", 0); n != 0 {
		t.Errorf("a summary of 0 dropped was written")
	}
	if got := len(buf.Records(t)); got != burst+3 {
		t.Errorf("lines = %d, want %d", got, burst+3)
	}
}

// TestHandler_PerInterval: whatever the rate, each interval holds at most
// the burst and one summary.
func TestHandler_PerInterval(t *testing.T) {
	const burst = 5
	log, _, buf, clk := newLogger(logthrottle.Config{Burst: burst, Interval: time.Second})
	for range 5 { // intervals
		before := len(buf.Records(t))
		for range 1000 {
			log.Error("request failed", "status", 503)
			clk.Advance(time.Millisecond) // 1000 records span one interval
		}
		if got := len(buf.Records(t)) - before; got > burst+1 {
			t.Errorf("lines in one interval = %d, want at most %d", got, burst+1)
		}
	}
	for _, r := range buf.Records(t) {
		if n, ok := r["repeated"]; ok && n != float64(1000-burst) {
			t.Errorf("summary %v, want repeated %d", r, 1000-burst)
		}
	}
}

// TestHandler_KindsAreIndependent: a kind is a level and a message.
func TestHandler_KindsAreIndependent(t *testing.T) {
	const burst = 3
	log, _, buf, _ := newLogger(logthrottle.Config{Burst: burst})
	for range 100 {
		log.Warn("one")
		log.Warn("two")
		log.Error("one")
	}
	for _, tt := range []struct{ level, msg string }{{"WARN", "one"}, {"WARN", "two"}, {"ERROR", "one"}} {
		if n := buf.Count(t, "level", tt.level, "msg", tt.msg); n != burst {
			t.Errorf("%s %q lines = %d, want %d", tt.level, tt.msg, n, burst)
		}
	}
}

// TestHandler_BelowWarnPasses: Debug and Info are not throttled.
func TestHandler_BelowWarnPasses(t *testing.T) {
	log, _, buf, _ := newLogger(logthrottle.Config{Burst: 1})
	for range 50 {
		log.Debug("tick")
		log.Info("admin action")
	}
	if n := buf.Count(t, "msg", "tick"); n != 50 {
		t.Errorf("debug lines = %d, want 50", n)
	}
	if n := buf.Count(t, "msg", "admin action"); n != 50 {
		t.Errorf("info lines = %d, want 50", n)
	}
}

// TestHandler_WithAttrsAndGroup: derived loggers keep their attributes and
// groups, and share the throttle of their kind; the summary carries neither.
func TestHandler_WithAttrsAndGroup(t *testing.T) {
	log, _, buf, clk := newLogger(logthrottle.Config{Burst: 2})
	spot := log.With("market", "spot")
	grouped := log.WithGroup("req").With("path", "/admin/status")
	spot.Warn("serving stale")
	grouped.Warn("serving stale", "status", 401)
	log.Warn("serving stale") // the third of the kind: dropped
	recs := buf.Records(t)
	if len(recs) != 2 {
		t.Fatalf("lines = %d, want 2: %v", len(recs), recs)
	}
	if recs[0]["market"] != "spot" {
		t.Errorf("first line = %v, want market spot", recs[0])
	}
	req, _ := recs[1]["req"].(map[string]any)
	if req["path"] != "/admin/status" || req["status"] != float64(401) {
		t.Errorf("second line = %v, want req.path and req.status", recs[1])
	}
	clk.Advance(time.Minute)
	spot.Warn("serving stale")
	recs = buf.Records(t)
	if len(recs) != 4 || recs[2]["repeated"] != float64(1) || recs[2]["market"] != nil || recs[3]["market"] != "spot" {
		t.Errorf("after the interval: %v, want a bare summary (repeated 1) then the spot line", recs[2:])
	}
}

// TestHandler_Concurrent, under -race: every record is either written or
// counted in the summary.
func TestHandler_Concurrent(t *testing.T) {
	const burst, goroutines, each = 10, 8, 1000
	log, _, buf, clk := newLogger(logthrottle.Config{Burst: burst})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			l := log.With("g", g)
			for range each {
				l.Warn("flood")
				l.Info("calm")
			}
		})
	}
	wg.Wait()
	if n := buf.Count(t, "msg", "flood"); n != burst {
		t.Errorf("flood lines = %d, want %d", n, burst)
	}
	if n := buf.Count(t, "msg", "calm"); n != goroutines*each {
		t.Errorf("info lines = %d, want %d", n, goroutines*each)
	}
	clk.Advance(time.Hour)
	log.Warn("flood")
	if n := buf.Count(t, "msg", "flood", "repeated", goroutines*each-burst); n != 1 {
		t.Errorf("summaries of %d dropped = %d, want 1:\n%s", goroutines*each-burst, n, buf.String())
	}
}

// TestHandler_QuietKindIsSummarized: with no further record of the kind, the
// summary comes after the interval of real time.
func TestHandler_QuietKindIsSummarized(t *testing.T) {
	buf := new(testutil.LogBuffer)
	log := slog.New(logthrottle.New(slog.NewJSONHandler(buf, nil), logthrottle.Config{Burst: 2, Interval: 50 * time.Millisecond}))
	for range 7 {
		log.Warn("redis down")
	}
	for deadline := time.Now().Add(5 * time.Second); buf.Count(t, "repeated", 5) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no summary 5s after a 50ms interval:\n%s", buf.String())
		}
	}
	// The kind starts afresh.
	log.Warn("redis down")
	if n := buf.Count(t, "msg", "redis down"); n != 4 {
		t.Errorf("lines = %d, want 4 (two, the summary, one more):\n%s", n, buf.String())
	}
}

// TestHandler_Close writes what is pending.
func TestHandler_Close(t *testing.T) {
	log, h, buf, _ := newLogger(logthrottle.Config{Burst: 1})
	for range 4 {
		log.Error("sidecar stopped")
	}
	log.Warn("other") // nothing dropped: no summary
	if err := h.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	if n := buf.Count(t, "level", "ERROR", "msg", "sidecar stopped", "repeated", 3); n != 1 {
		t.Errorf("summaries after Close = %d, want 1:\n%s", n, buf.String())
	}
	if got := len(buf.Records(t)); got != 3 {
		t.Errorf("lines = %d, want 3:\n%s", got, buf.String())
	}
}

// TestHandler_Enabled follows the wrapped handler.
func TestHandler_Enabled(t *testing.T) {
	h := logthrottle.New(slog.NewJSONHandler(new(testutil.LogBuffer), &slog.HandlerOptions{Level: slog.LevelWarn}), logthrottle.Config{})
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelError) {
		t.Error("Enabled(Info), Enabled(Error) = true, false; want false, true as the wrapped handler")
	}
}

// TestHandler_TooManyKinds: messages made per record (which slog's
// constant messages are not) cannot grow the table without bound, nor pass
// unthrottled: past the table's size, new kinds share one window.
func TestHandler_TooManyKinds(t *testing.T) {
	const burst = 10
	log, h, buf, _ := newLogger(logthrottle.Config{Burst: burst})
	for i := range 5000 {
		log.Warn(fmt.Sprintf("client %d refused", i))
	}
	lines := len(buf.Records(t))
	if lines < burst || lines > 1024+burst {
		t.Errorf("lines for 5,000 kinds = %d, want at most the table's 1,024 and a burst", lines)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, r := range buf.Records(t) {
		if n, ok := r["repeated"].(float64); ok {
			total += int(n)
		} else {
			total++
		}
	}
	if total != 5000 {
		t.Errorf("records written or counted = %d, want 5000", total)
	}
}
