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

// StatusError is an answer whose status is not 200.
type StatusError struct {
	Code       int
	URL        string        // the request URL, without userinfo
	RetryAfter time.Duration // from Retry-After: always set for 429 and 418 (60s if missing), else only if sent
	Msg        string        // Binance's "msg" if the body was {"code":…,"msg":…}, else the body's first 200 bytes
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("GET %s: %d %s", e.URL, e.Code, http.StatusText(e.Code))
	if e.RetryAfter > 0 {
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

// BackoffError means no request was sent because a host is blocked in the
// Gate by an earlier 429 or 418, until Until.
type BackoffError struct {
	Host  string    // as in Gate.Block
	Code  int       // the status that blocked it
	Until time.Time // no request to Host before this
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("%s blocked until %s after status %d", e.Host, e.Until.UTC().Format(time.RFC3339), e.Code)
}
