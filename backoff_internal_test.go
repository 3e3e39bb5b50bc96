package symcache

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/symcache/symcache/fetch"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestBackoff_ZeroLetsThrough(t *testing.T) {
	var b backoff
	if be := b.wait(t0); be != nil {
		t.Errorf("zero backoff: wait() = %v, want nil", be)
	}
	if d := b.retryAfter(t0); d != time.Second {
		t.Errorf("zero backoff: retryAfter() = %v, want 1s (the least)", d)
	}
}

func TestBackoff_Fail_DoublesWithJitterUpToAMinute(t *testing.T) {
	var b backoff
	cause := errors.New("connection refused")
	for i, hi := range []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60} {
		hi *= time.Second
		until := b.fail(cause, t0)
		if d := until.Sub(t0); d < hi/2 || d > hi {
			t.Errorf("failure %d: backoff %v, want in [%v, %v]", i+1, d, hi/2, hi)
		}
		be := b.wait(t0)
		if be == nil || !be.Until.Equal(until) || !errors.Is(be, cause) {
			t.Fatalf("failure %d: wait() = %v, want a *BackoffError until %v caused by %v", i+1, be, until, cause)
		}
		if b.wait(until) != nil {
			t.Errorf("failure %d: wait(until) = %v, want nil: the backoff is over", i+1, b.wait(until))
		}
	}
	b.succeed()
	if be, last := b.wait(t0), b.lastErr(); be != nil || last != nil {
		t.Errorf("after succeed: wait() = %v, lastErr() = %v, want nil, nil", be, last)
	}
	if d := b.fail(cause, t0).Sub(t0); d > time.Second {
		t.Errorf("first failure after a success: backoff %v, want at most 1s", d)
	}
}

func TestBackoff_Fail_FailureSaysLonger(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want time.Duration
	}{
		{"Retry-After of a 429", &fetch.StatusError{Code: http.StatusTooManyRequests, RetryAfter: 2 * time.Minute}, 2 * time.Minute},
		{"Retry-After of a 503", &fetch.StatusError{Code: http.StatusServiceUnavailable, RetryAfter: 90 * time.Second}, 90 * time.Second},
		{"host blocked in the Gate", &fetch.BackoffError{Host: "api.binance.com", Code: http.StatusTeapot, Until: t0.Add(5 * time.Minute)}, 5 * time.Minute},
		// The deployment's backoff holds as it is, even when shorter than
		// this process's own would be.
		{"another process's backoff", &fetch.BackoffError{Until: t0.Add(100 * time.Millisecond), Cause: peerFailure("upstream 503")}, 100 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b backoff
			if until := b.fail(tt.err, t0); !until.Equal(t0.Add(tt.want)) {
				t.Errorf("fail(%v) = now+%v, want now+%v", tt.err, until.Sub(t0), tt.want)
			}
			if d := b.retryAfter(t0); d != max(tt.want, time.Second) {
				t.Errorf("retryAfter() = %v, want %v", d, max(tt.want, time.Second))
			}
		})
	}
}
