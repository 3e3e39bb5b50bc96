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

// staleReasons are the classes of stale answers, as Stats.StaleByReason
// counts them: the fetch outcomes that cause one, and a refresh in progress.
var staleReasons = append(outcomes[1:len(outcomes):len(outcomes)], staleRefreshing)

const staleRefreshing = "refresh_in_progress"

type counters struct {
	l1Hits, l1Misses, l2Hits, l2Misses, l2Errors  atomic.Uint64
	stale, unavailable, sharedWaits               atomic.Uint64
	locksAcquired, lockWaits, lockErrors, adopted atomic.Uint64
	locksLost                                     atomic.Uint64
	fetches                                       [len(outcomes)]atomic.Uint64 // indexed like outcomes
	staleBy                                       [len(outcomes)]atomic.Uint64 // indexed like staleReasons
}

// served counts a stale answer caused by err (nil: a refresh in progress).
func (c *counters) served(err error) {
	c.stale.Add(1)
	r := staleRefreshing
	if err != nil {
		r = outcome(err)
	}
	for i, o := range staleReasons {
		if o == r {
			c.staleBy[i].Add(1)
			return
		}
	}
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
	// StaleByReason splits Stale by cause: "refresh_in_progress", or the
	// fetch outcome that made the snapshot stale ("status", "rate_limited",
	// "backoff", "invalid", "shrunk", "timeout", "error").
	StaleByReason map[string]uint64
	// Upstream is the upstream client's own counters (requests by base URL
	// and status, latency, Binance's used weight), when it keeps them, as
	// *fetch.Client does; else nil.
	Upstream *fetch.Metrics
	// SharedWaits counts Gets that joined a load another caller started.
	SharedWaits uint64
	// With a Coordinator: LocksAcquired counts fetches this process made
	// holding the refresh lock; LockWaits, fetches it left to another
	// process that held the lock, waiting for its snapshot; LockErrors,
	// fetches made without the lock because Redis could not be asked;
	// LocksLost, fetches that outlived the lock's lease (another process
	// may have fetched too); Adopted, snapshots another process fetched that
	// this one took up.
	LocksAcquired, LockWaits, LockErrors, LocksLost, Adopted uint64

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
			LocksLost:     ms.stats.locksLost.Load(),
			Adopted:       ms.stats.adopted.Load(),

			Fetches: make(map[string]uint64, len(outcomes)),
			State:   c.state(ms),
		}
		for i, o := range outcomes {
			st.Fetches[o] = ms.stats.fetches[i].Load()
		}
		st.StaleByReason = make(map[string]uint64, len(staleReasons))
		for i, r := range staleReasons {
			st.StaleByReason[r] = ms.stats.staleBy[i].Load()
		}
		if um, ok := ms.upstream.(interface{ Metrics() fetch.Metrics }); ok {
			m := um.Metrics()
			st.Upstream = &m
		}
		out = append(out, st)
	}
	return out
}

// Tiers are counters of the tiers shared by every market.
type Tiers struct {
	// L1Bytes is the L1's cost in use, when it tells (*l1.Cache does); -1 if not.
	L1Bytes int64
	// L2Errors counts failed Redis calls by operation ("get", "put", "lock",
	// "meta", "publish", …), when the Store counts them (*l2.Store does).
	L2Errors map[string]uint64
}

// Tiers returns the shared tiers' counters.
func (c *Cache) Tiers() Tiers {
	t := Tiers{L1Bytes: -1}
	if m, ok := c.l1.(interface{ UsedBytes() int64 }); ok {
		t.L1Bytes = m.UsedBytes()
	}
	if s, ok := c.l2.(interface{ Errors() map[string]uint64 }); ok {
		t.L2Errors = s.Errors()
	}
	return t
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
