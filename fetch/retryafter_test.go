package fetch_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/symcache/symcache/fetch"
)

// TestBounds_RetryAfter: the exported clamp is the Client's: defaults for
// zero fields, 60s for a missing value, bounds per status.
func TestBounds_RetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name        string
		b           fetch.Bounds
		code        int
		v           string
		want        time.Duration
		wantClamped bool
	}{
		{"429", fetch.Bounds{}, http.StatusTooManyRequests, "30", 30 * time.Second, false},
		{"429 missing", fetch.Bounds{}, http.StatusTooManyRequests, "", time.Minute, false},
		{"429 too long", fetch.Bounds{}, http.StatusTooManyRequests, "86400", fetch.DefaultRateLimitMax, true},
		{"429 own max", fetch.Bounds{RateLimitMax: 10 * time.Second}, http.StatusTooManyRequests, "", 10 * time.Second, false},
		{"418 too short", fetch.Bounds{}, http.StatusTeapot, "5", fetch.DefaultBanMin, true},
		{"418 date", fetch.Bounds{}, http.StatusTeapot, now.Add(time.Hour).Format(http.TimeFormat), time.Hour, false},
		{"418 too long", fetch.Bounds{}, http.StatusTeapot, "999999999", fetch.DefaultBanMax, true},
		{"503", fetch.Bounds{}, http.StatusServiceUnavailable, "30", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, clamped := tt.b.RetryAfter(tt.code, tt.v, now)
			if d != tt.want || clamped != tt.wantClamped {
				t.Errorf("RetryAfter(%d, %q) = %v, %v; want %v, %v", tt.code, tt.v, d, clamped, tt.want, tt.wantClamped)
			}
		})
	}
}

func TestGateHost(t *testing.T) {
	for raw, want := range map[string]string{
		"https://API.binance.com":       "api.binance.com",
		"https://api.binance.com:443/x": "api.binance.com",
		"http://127.0.0.1:80":           "127.0.0.1",
		"http://127.0.0.1:8080":         "127.0.0.1:8080",
		"https://u:p@[::1]:9443/p":      "[::1]:9443",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := fetch.GateHost(u); got != want {
			t.Errorf("GateHost(%q) = %q, want %q", raw, got, want)
		}
	}
}
