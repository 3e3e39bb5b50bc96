package fetch

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestGate(t *testing.T) {
	t0 := time.Date(2025, 12, 24, 8, 0, 0, 0, time.UTC)
	var g Gate // the zero Gate is ready to use
	if _, _, ok := g.Blocked("api.binance.com", t0); ok {
		t.Fatalf("Blocked() on an empty Gate = true, want false")
	}
	g.Block("API.binance.com", 429, t0.Add(time.Minute))
	g.Block("api.binance.com", 418, t0.Add(time.Second)) // earlier: the later block stays
	for _, tt := range []struct {
		host     string
		now      time.Time
		wantOK   bool
		wantCode int
	}{
		{"api.binance.com", t0, true, 429},
		{"Api.Binance.Com", t0.Add(59 * time.Second), true, 429},
		{"fapi.binance.com", t0, false, 0},
		{"api.binance.com", t0.Add(time.Minute), false, 0}, // the deadline itself is free
	} {
		until, code, ok := g.Blocked(tt.host, tt.now)
		if ok != tt.wantOK || code != tt.wantCode || ok && !until.Equal(t0.Add(time.Minute)) {
			t.Errorf("Blocked(%q, +%v) = %v, %d, %v, want +1m, %d, %v", tt.host, tt.now.Sub(t0), until, code, ok, tt.wantCode, tt.wantOK)
		}
	}
	g.Block("api.binance.com", 418, t0.Add(time.Hour)) // later: replaces
	if until, code, ok := g.Blocked("api.binance.com", t0); !ok || code != 418 || !until.Equal(t0.Add(time.Hour)) {
		t.Errorf("Blocked() = %v, %d, %v, want +1h, 418, true", until, code, ok)
	}
}

func TestGate_OnChange(t *testing.T) {
	t0 := time.Date(2025, 12, 24, 8, 0, 0, 0, time.UTC)
	var g Gate
	var got []Change
	g.OnChange(func(c Change) { got = append(got, c) })

	g.Block("API.binance.com", 429, t0.Add(time.Minute))
	g.Block("api.binance.com", 418, t0.Add(time.Second)) // ends earlier: no change
	g.Block("api.binance.com", 418, t0.Add(time.Hour))   // ends later: a change
	g.Apply(Change{Host: "FAPI.binance.com", Code: 418, Until: t0.Add(2 * time.Hour)})
	g.Apply(Change{Host: "dapi.binance.com", Code: 503, Until: t0.Add(time.Minute)}) // taken as a 429
	g.Unblock("api.binance.com")
	g.Unblock("eapi.binance.com") // none here; another process may have one
	g.Apply(Change{Host: "fapi.binance.com"})

	want := []Change{
		{Host: "api.binance.com", Code: 429, Until: t0.Add(time.Minute)},
		{Host: "api.binance.com", Code: 418, Until: t0.Add(time.Hour)},
		{Host: "api.binance.com"},
		{Host: "eapi.binance.com"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("OnChange saw %v, want %v (Apply's changes not reported)", got, want)
	}
	if blocks, want := g.Blocks(t0), []Change{{Host: "dapi.binance.com", Code: 429, Until: t0.Add(time.Minute)}}; !slices.Equal(blocks, want) {
		t.Errorf("Blocks() = %v, want %v", blocks, want)
	}
	if blocks := g.Blocks(t0.Add(time.Minute)); len(blocks) != 0 {
		t.Errorf("Blocks() at their end = %v, want none", blocks)
	}
}

func TestGate_Weight(t *testing.T) {
	t0 := time.Date(2025, 12, 24, 8, 0, 30, 0, time.UTC)
	var g Gate
	if w, at := g.Weight("api.binance.com"); w != 0 || !at.IsZero() {
		t.Errorf("Weight() of an empty Gate = %d, %v, want 0, zero", w, at)
	}
	g.NoteWeight("API.binance.com", 40, t0)
	g.NoteWeight("api.binance.com", 7, t0.Add(-time.Second)) // older: ignored
	if w, at := g.Weight("api.binance.com"); w != 40 || !at.Equal(t0) {
		t.Errorf("Weight() = %d, %v, want 40, %v", w, at, t0)
	}
	for _, tt := range []struct {
		a, b time.Time
		want bool
	}{
		{t0, t0.Add(29 * time.Second), true},
		{t0, t0.Add(30 * time.Second), false}, // 08:01:00: a new minute
		{t0, t0.Add(-31 * time.Second), false},
		{time.Time{}, time.Time{}, false},
	} {
		if got := SameMinute(tt.a, tt.b); got != tt.want {
			t.Errorf("SameMinute(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestUsedWeightHeader(t *testing.T) {
	for _, tt := range []struct {
		v      []string
		want   int64
		wantOK bool
	}{
		{[]string{"42"}, 42, true},
		{[]string{" 6001 "}, 6001, true},
		{nil, 0, false},
		{[]string{"-1"}, 0, false},
		{[]string{"4x"}, 0, false},
	} {
		h := http.Header{}
		for _, v := range tt.v {
			h.Add("x-mbx-used-weight-1m", v)
		}
		if w, ok := UsedWeightHeader(h); ok != tt.wantOK || ok && w != tt.want {
			t.Errorf("UsedWeightHeader(%q) = %d, %v, want %d, %v", tt.v, w, ok, tt.want, tt.wantOK)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 12, 24, 8, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		v      string
		want   time.Duration
		wantOK bool
	}{
		{"7", 7 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"99999999999999999999", time.Duration(1<<63 - 1), true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"Wednesday, 24-Dec-25 08:00:30 GMT", 30 * time.Second, true}, // RFC 850
		{"Wed Dec 24 08:01:00 2025", time.Minute, true},               // ANSI C asctime
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},        // in the past
		{"", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"+5", 0, false},
		{"soon", 0, false},
		{"2025-12-24T08:01:00Z", 0, false},
	} {
		got, ok := parseRetryAfter(tt.v, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseRetryAfter(%q) = %v, %v, want %v, %v", tt.v, got, ok, tt.want, tt.wantOK)
		}
	}
}

// FuzzParseRetryAfter checks parseRetryAfter, and that whatever a
// Retry-After says, the wait bounds.retryAfter gives is within the bounds of
// its status: [0, rateLimitMax] for a 429, [banMin, banMax] for a 418, 0 for
// any other; clamped exactly when the parsed value is out of them.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2025, 12, 24, 8, 0, 0, 0, time.UTC)
	for _, s := range []string{"7", "0", "60", "99999999999999999999", "Wed, 24 Dec 2025 08:02:00 GMT", "soon", "-1", "",
		"315360000", "1e23", "Fri, 01 Jan 2100 00:00:00 GMT", "Wed, 24 Dec 2025 07:00:00 GMT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		checkBounds(t, v, d, ok, now)
		if d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, want >= 0", v, d)
		}
		if !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, false, want 0 when not ok", v, d)
		}
		if !ok {
			return
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 && n <= 1<<32 && d != time.Duration(n)*time.Second {
			t.Fatalf("parseRetryAfter(%q) = %v, want %ds", v, d, n)
		}
		// Whatever parsed, the same duration written as delta-seconds parses
		// back to it (to the second).
		secs := int64(d / time.Second)
		if back, ok := parseRetryAfter(strconv.FormatInt(secs, 10), now); !ok || back != time.Duration(secs)*time.Second {
			t.Fatalf("parseRetryAfter(%d) = %v, %v, want %ds, true", secs, back, ok, secs)
		}
	})
}

// checkBounds checks bounds.retryAfter(code, v, now) for v, which
// parseRetryAfter read as parsed, ok.
func checkBounds(t *testing.T, v string, parsed time.Duration, ok bool, now time.Time) {
	t.Helper()
	for _, b := range []bounds{
		{rateLimitMax: 5 * time.Minute, banMin: 2 * time.Minute, banMax: 72 * time.Hour}, // the defaults
		{rateLimitMax: time.Second, banMin: time.Hour, banMax: time.Hour},
		{rateLimitMax: time.Duration(1<<63 - 1), banMin: time.Nanosecond, banMax: time.Duration(1<<63 - 1)},
	} {
		for _, tt := range []struct {
			code   int
			lo, hi time.Duration
		}{
			{http.StatusTooManyRequests, 0, b.rateLimitMax},
			{http.StatusTeapot, b.banMin, b.banMax},
			{http.StatusServiceUnavailable, 0, 0},
			{http.StatusMovedPermanently, 0, 0},
		} {
			d, clamped := b.retryAfter(tt.code, v, now)
			if d < tt.lo || d > tt.hi {
				t.Fatalf("%+v.retryAfter(%d, %q) = %v, want within [%v, %v]", b, tt.code, v, d, tt.lo, tt.hi)
			}
			wantClamped := tt.hi > 0 && ok && (parsed < tt.lo || parsed > tt.hi)
			if clamped != wantClamped {
				t.Fatalf("%+v.retryAfter(%d, %q) clamped = %v, want %v (parsed %v, %v)", b, tt.code, v, clamped, wantClamped, parsed, ok)
			}
			if ok && !clamped && tt.hi > 0 && d != parsed {
				t.Fatalf("%+v.retryAfter(%d, %q) = %v, want %v as parsed", b, tt.code, v, d, parsed)
			}
		}
	}
}
