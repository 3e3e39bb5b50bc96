package symcache

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/symcache/symcache/fetch"
)

// Backoff bounds: the wait after the first failed fetch, and the longest
// one that doubling reaches.
const (
	minBackoff = time.Second
	maxBackoff = time.Minute
)

// backoff says when Binance may be asked again after failed fetches of a
// market: after a wait that doubles with each failure in a row, from
// minBackoff to maxBackoff, with jitter; or later, when the failure itself
// says so (a Retry-After, a host blocked in the Gate, the deployment's
// backoff). The zero backoff lets every fetch through.
type backoff struct {
	mu       sync.Mutex
	failures int       // failed fetches in a row
	until    time.Time // no fetch before this
	cause    error     // the last failure; nil after a success
}

// fail records a failed fetch at now and returns when the next may be made.
func (b *backoff) fail(err error, now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	b.cause = err
	d := min(minBackoff<<min(b.failures-1, 6), maxBackoff)
	d = d/2 + rand.N(d/2+1) // jitter: [d/2, d]
	until := now.Add(d)
	var be *fetch.BackoffError
	var se *fetch.StatusError
	switch {
	case errors.As(err, &be) && isPeerFailure(be.Cause):
		until = be.Until // the deployment's, whatever this process's own count
	case errors.As(err, &be) && be.Until.After(until):
		until = be.Until
	case errors.As(err, &se) && se.RetryAfter > 0 && now.Add(se.RetryAfter).After(until):
		until = now.Add(se.RetryAfter)
	}
	b.until = until
	return until
}

// succeed records a successful fetch, or an operator's end of the backoff:
// the next fetch may be made at once.
func (b *backoff) succeed() {
	b.mu.Lock()
	b.failures, b.until, b.cause = 0, time.Time{}, nil
	b.mu.Unlock()
}

// wait returns the backoff in force at now, or nil when Binance may be asked.
func (b *backoff) wait(now time.Time) *fetch.BackoffError {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cause == nil || !now.Before(b.until) {
		return nil
	}
	return &fetch.BackoffError{Until: b.until, Cause: b.cause}
}

// retryAfter is how long until Binance may be asked, at least a second: a
// Retry-After for clients, or how long the deployment's backoff lasts.
func (b *backoff) retryAfter(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.until.Sub(now), time.Second)
}

// lastErr is the last failure, over or not; nil after a success.
func (b *backoff) lastErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cause
}
