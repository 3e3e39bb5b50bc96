package symcache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
)

// class is what became of a fetch, as the metrics count it: its label is
// the outcome of Stats.Fetches and, for a failure, the reason of
// Stats.StaleByReason.
type class uint8

const (
	classOK          class = iota // a valid snapshot
	classStatus                   // a non-200 answer other than 429/418
	classRateLimited              // 429 or 418
	classBackoff                  // not sent: a host's Retry-After, or another process's backoff
	classInvalid                  // a 200 whose body failed validation
	classShrunk                   // valid, but lost more symbols than MaxSymbolLoss allows
	classGrown                    // valid, but far larger than last good (MaxGrowth, MaxSymbolBytes)
	classTimeout                  // no whole answer within FetchTimeout
	classError                    // network and other errors
	classRefreshing               // not a fetch: a stale answer while one is under way
	numClasses
)

var classLabels = [numClasses]string{"ok", "status", "rate_limited", "backoff", "invalid", "shrunk", "grown", "timeout", "error", "refresh_in_progress"}

func (c class) String() string { return classLabels[c] }

// fetchClasses are the outcomes of Stats.Fetches; staleClasses, the
// reasons of Stats.StaleByReason.
var (
	fetchClasses = []class{classOK, classStatus, classRateLimited, classBackoff, classInvalid, classShrunk, classGrown, classTimeout, classError}
	staleClasses = []class{classStatus, classRateLimited, classBackoff, classInvalid, classShrunk, classGrown, classTimeout, classError, classRefreshing}
)

// failure is a failed fetch as the read path tells it: its class, and the
// short text of a stale answer's Warning and of /readyz, such as
// "upstream 503".
type failure struct {
	class  class
	reason string
}

// classify tells what err, a fetch's failure, means. A nil err is a stale
// answer served while a fetch is under way.
func classify(err error) failure {
	var se *fetch.StatusError
	var be *fetch.BackoffError
	var sh *ShrinkError
	var gr *GrowthError
	var peer peerFailure
	switch {
	case err == nil:
		return failure{classRefreshing, "refresh in progress"}
	case errors.As(err, &sh):
		return failure{classShrunk, fmt.Sprintf("upstream answer lost %d of %d symbols", sh.Had-sh.Got, sh.Had)}
	case errors.As(err, &gr):
		return failure{classGrown, "upstream answer far larger: " + gr.Reason}
	case errors.As(err, &be) && errors.As(be.Cause, &peer):
		return failure{classBackoff, peer.Error()}
	case errors.As(err, &be):
		return failure{classBackoff, fmt.Sprintf("rate limited until %s", be.Until.UTC().Format(time.RFC3339))}
	case errors.As(err, &se) && se.RateLimited():
		return failure{classRateLimited, fmt.Sprintf("upstream %d, retry after %s", se.Code, se.RetryAfter)}
	case errors.As(err, &se):
		return failure{classStatus, fmt.Sprintf("upstream %d", se.Code)}
	case errors.Is(err, exchangeinfo.ErrInvalid):
		return failure{classInvalid, "upstream answer invalid"}
	case errors.Is(err, context.DeadlineExceeded):
		return failure{classTimeout, "upstream timeout"}
	}
	return failure{classError, "upstream unreachable"}
}

// peerFailure is the failure behind another process's backoff: the reason
// it left on the refresh lock.
type peerFailure string

func (p peerFailure) Error() string { return "another sidecar's fetch failed: " + string(p) }

func isPeerFailure(err error) bool {
	var p peerFailure
	return errors.As(err, &p)
}
