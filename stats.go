package symcache

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
)

// Fetch outcomes, as Stats.Fetches counts them.
const (
	outcomeOK          = "ok"           // a valid snapshot
	outcomeStatus      = "status"       // a non-200 answer other than 429/418
	outcomeRateLimited = "rate_limited" // 429 or 418
	outcomeBackoff     = "backoff"      // not sent: the host is in a Retry-After wait
	outcomeInvalid     = "invalid"      // a 200 whose body failed validation
	outcomeShrunk      = "shrunk"       // valid, but lost more symbols than MaxSymbolLoss allows
	outcomeTimeout     = "timeout"
	outcomeError       = "error" // network and other errors
)

var outcomes = [...]string{outcomeOK, outcomeStatus, outcomeRateLimited, outcomeBackoff, outcomeInvalid, outcomeShrunk, outcomeTimeout, outcomeError}

func outcome(err error) string {
	var se *fetch.StatusError
	var be *fetch.BackoffError
	var sh *ShrinkError
	var sb *SharedBackoffError
	switch {
	case errors.As(err, &sh):
		return outcomeShrunk
	case errors.As(err, &sb):
		return outcomeBackoff
	case errors.As(err, &be):
		return outcomeBackoff
	case errors.As(err, &se) && se.RateLimited():
		return outcomeRateLimited
	case errors.As(err, &se):
		return outcomeStatus
	case errors.Is(err, exchangeinfo.ErrInvalid):
		return outcomeInvalid
	case errors.Is(err, context.DeadlineExceeded):
		return outcomeTimeout
	}
	return outcomeError
}

type counters struct {
	l1Hits, l1Misses, l2Hits, l2Misses, l2Errors  atomic.Uint64
	stale, unavailable, sharedWaits               atomic.Uint64
	locksAcquired, lockWaits, lockErrors, adopted atomic.Uint64
	fetches                                       [len(outcomes)]atomic.Uint64 // indexed like outcomes
}

func (c *counters) fetch(outcome string) *atomic.Uint64 {
	for i, o := range outcomes {
		if o == outcome {
			return &c.fetches[i]
		}
	}
	return &c.fetches[len(outcomes)-1]
}

// Stats are one market's counters since the Cache was made, and its state now.
type Stats struct {
	Market exchangeinfo.Market
	// Tier hits and misses: an L2 lookup happens once per L1 miss that is not
	// answered from memory during a backoff.
	L1Hits, L1Misses, L2Hits, L2Misses uint64
	// L2Errors counts L2 reads that failed or held something unusable.
	L2Errors uint64
	// Fetches counts upstream fetches by outcome: "ok", "status",
	// "rate_limited", "backoff", "invalid", "shrunk", "timeout", "error".
	Fetches map[string]uint64
	// Stale counts answers served past their TTL; Unavailable, Gets that
	// had nothing to serve.
	Stale, Unavailable uint64
	// SharedWaits counts Gets that joined a load another caller started.
	SharedWaits uint64
	// With a Coordinator: LocksAcquired counts fetches this process made
	// holding the refresh lock; LockWaits, fetches it left to another
	// process that held the lock, waiting for its snapshot; LockErrors,
	// fetches made without the lock because Redis could not be asked;
	// Adopted, snapshots another process fetched that this one took up.
	LocksAcquired, LockWaits, LockErrors, Adopted uint64

	State MarketState
}

// MarketState is what a market can serve now.
type MarketState struct {
	Market    exchangeinfo.Market `json:"market"`
	State     string              `json:"state"` // "fresh", "stale" or "empty"
	Ready     bool                `json:"ready"` // something within StaleMax can be served
	FetchedAt time.Time           `json:"fetched_at,omitzero"`
	Age       float64             `json:"age_seconds"`
	ETag      string              `json:"etag,omitempty"`
	Symbols   int                 `json:"symbols"`
	Reason    string              `json:"reason,omitempty"` // why it is stale: e.g. "upstream 503", "past TTL"
	LastError string              `json:"last_error,omitempty"`
}

// Stats returns every market's counters and state, in Markets order.
func (c *Cache) Stats() []Stats {
	out := make([]Stats, 0, len(c.order))
	for _, m := range c.order {
		ms := c.markets[m]
		st := Stats{
			Market:      m,
			L1Hits:      ms.stats.l1Hits.Load(),
			L1Misses:    ms.stats.l1Misses.Load(),
			L2Hits:      ms.stats.l2Hits.Load(),
			L2Misses:    ms.stats.l2Misses.Load(),
			L2Errors:    ms.stats.l2Errors.Load(),
			Stale:       ms.stats.stale.Load(),
			Unavailable: ms.stats.unavailable.Load(),
			SharedWaits: ms.stats.sharedWaits.Load(),

			LocksAcquired: ms.stats.locksAcquired.Load(),
			LockWaits:     ms.stats.lockWaits.Load(),
			LockErrors:    ms.stats.lockErrors.Load(),
			Adopted:       ms.stats.adopted.Load(),

			Fetches: make(map[string]uint64, len(outcomes)),
			State:   c.state(ms),
		}
		for i, o := range outcomes {
			st.Fetches[o] = ms.stats.fetches[i].Load()
		}
		out = append(out, st)
	}
	return out
}

// Ready reports every market's state, and whether all can be served.
func (c *Cache) Ready() ([]MarketState, bool) {
	all := true
	out := make([]MarketState, 0, len(c.order))
	for _, m := range c.order {
		st := c.state(c.markets[m])
		all = all && st.Ready
		out = append(out, st)
	}
	return out, all
}

func (c *Cache) state(ms *market) MarketState {
	st := MarketState{Market: ms.name, State: "empty"}
	ms.mu.Lock()
	if ms.lastErr != nil {
		st.LastError = ms.lastErr.Error()
	}
	ms.mu.Unlock()
	s := ms.lastGood.Load()
	if s == nil {
		return st
	}
	age := s.Age(c.cfg.Now())
	st.FetchedAt, st.Age, st.ETag, st.Symbols = s.FetchedAt().UTC(), age.Seconds(), s.ETag(), s.Len()
	st.State = "stale"
	if c.fresh(s) {
		st.State = "fresh"
	} else if err, _ := ms.backoff(c.cfg.Now()); err != nil {
		st.Reason = reason(err)
	} else {
		st.Reason = "past TTL"
	}
	st.Ready = c.servable(s)
	return st
}
