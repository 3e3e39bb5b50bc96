package fetch

import (
	"fmt"
	"net/http"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
)

// ErrInvalid is matched (errors.Is) by every error for an answer with status
// 200 whose body is not a valid exchangeInfo: not JSON, an HTML page, cut
// short, too large, no or empty symbols, a Binance error body. It is
// exchangeinfo.ErrInvalid; the error in the chain is an
// *exchangeinfo.InvalidError that says why.
var ErrInvalid = exchangeinfo.ErrInvalid

// StatusError is an answer whose status is not 200, a redirect included
// (none is followed).
type StatusError struct {
	Code int
	URL  string // the request URL, without userinfo
	// RetryAfter is how long the answer's host is blocked in the Gate: for a
	// 429, its Retry-After (60s if missing or unparsable) at most
	// Config.RateLimitMax; for a 418, the same between Config.BanMin and
	// Config.BanMax. It is 0 for any other status, whatever was sent: the
	// caller's own backoff applies.
	RetryAfter time.Duration
	// RetryAfterSent is the Retry-After header as sent, whatever the
	// status: its first 64 bytes, as valid UTF-8; empty if none.
	RetryAfterSent string
	// RetryAfterClamped reports that RetryAfterSent was a valid Retry-After
	// out of bounds for Code (429 or 418), so RetryAfter is the nearest
	// bound. Each clamp is also logged once, at Warn.
	RetryAfterClamped bool
	// Msg is Binance's "msg" if the body was {"code":…,"msg":…}; for a 3xx
	// with a Location, "redirect to <Location> not followed"; else the
	// body's first 200 bytes.
	Msg string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("GET %s: %d %s", e.URL, e.Code, http.StatusText(e.Code))
	switch {
	case e.RetryAfterClamped:
		s += fmt.Sprintf(" (retry after %v; Retry-After %q out of bounds)", e.RetryAfter, e.RetryAfterSent)
	case e.RetryAfter > 0:
		s += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	if e.Msg != "" {
		s += fmt.Sprintf(": %q", e.Msg)
	}
	return s
}

// RateLimited reports whether Binance refused for rate limiting: 429 (limit
// broken) or 418 (IP banned after more requests despite 429s).
func (e *StatusError) RateLimited() bool {
	return e.Code == http.StatusTooManyRequests || e.Code == http.StatusTeapot
}

// BackoffError means no request was sent: Binance is not to be asked before
// Until. A Client returns one when a host it would ask is blocked in its Gate
// by an earlier 429 or 418 (Host and Code say which). Package symcache
// returns one for a market in backoff after a failed fetch, this process's
// or another one's (Cause says which failure). It is the one error type for
// every such wait.
type BackoffError struct {
	Until time.Time // no request before this
	Host  string    // the host a Gate blocked, as in Gate.Block; empty otherwise
	Code  int       // the status that blocked Host (429 or 418)
	Cause error     // the failure behind the backoff, when known
}

func (e *BackoffError) Error() string {
	until := e.Until.UTC().Format(time.RFC3339)
	switch {
	case e.Host != "":
		return fmt.Sprintf("%s blocked until %s after status %d", e.Host, until, e.Code)
	case e.Cause != nil:
		return fmt.Sprintf("upstream in backoff until %s: %v", until, e.Cause)
	}
	return "upstream in backoff until " + until
}

// Unwrap returns Cause.
func (e *BackoffError) Unwrap() error { return e.Cause }
