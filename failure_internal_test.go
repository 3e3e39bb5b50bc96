package symcache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
)

func TestClassify(t *testing.T) {
	until := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		err    error
		class  string
		reason string
	}{
		{nil, "refresh_in_progress", "refresh in progress"},
		{&ShrinkError{Market: exchangeinfo.Spot, Had: 100, Got: 10}, "shrunk", "upstream answer lost 90 of 100 symbols"},
		{&fetch.BackoffError{Until: until, Cause: peerFailure("upstream 503")}, "backoff", "another sidecar's fetch failed: upstream 503"},
		{fmt.Errorf("fetch: %w", &fetch.BackoffError{Host: "api.binance.com", Code: 418, Until: until}), "backoff", "rate limited until 2026-01-02T03:04:05Z"},
		{&fetch.StatusError{Code: http.StatusTooManyRequests, RetryAfter: time.Minute}, "rate_limited", "upstream 429, retry after 1m0s"},
		{&fetch.StatusError{Code: http.StatusServiceUnavailable}, "status", "upstream 503"},
		{fmt.Errorf("fetch: %w", &exchangeinfo.InvalidError{}), "invalid", "upstream answer invalid"},
		{fmt.Errorf("GET: %w", context.DeadlineExceeded), "timeout", "upstream timeout"},
		{errors.New("connection refused"), "error", "upstream unreachable"},
	} {
		f := classify(tt.err)
		if f.class.String() != tt.class || f.reason != tt.reason {
			t.Errorf("classify(%v) = %s %q, want %s %q", tt.err, f.class, f.reason, tt.class, tt.reason)
		}
	}
}

// Every class has a label, and the two lists of Stats name each label once.
func TestClass_Labels(t *testing.T) {
	seen := map[string]bool{}
	for c := range numClasses {
		if l := c.String(); l == "" || seen[l] {
			t.Errorf("class %d label %q: empty or repeated", c, l)
		} else {
			seen[l] = true
		}
	}
	failures := fetchClasses[1:]
	if fetchClasses[0] != classOK || !slices.Equal(failures, staleClasses[:len(staleClasses)-1]) || staleClasses[len(staleClasses)-1] != classRefreshing {
		t.Errorf("fetchClasses %v, staleClasses %v: want ok plus every failure, and every failure plus refresh_in_progress", fetchClasses, staleClasses)
	}
}
