package symcache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
)

// This file holds what an operator asks of a Cache (httpapi's admin
// endpoints): drop a market's cached snapshot, and refresh it now without
// breaking a backoff.

// dropper is an L1 that can drop a market, as *l1.Cache can.
type dropper interface {
	Del(m exchangeinfo.Market)
}

// currentDeleter is an L2 that can delete a market's current snapshot, as
// *l2.Store can.
type currentDeleter interface {
	DeleteCurrent(ctx context.Context, market string) error
}

// Invalidate drops the market's snapshot from this process's L1 and, if
// dropL2 is set and there is an L2, deletes L2's current snapshot too (never
// last_good): the next Get then loads it again, from L2 or Binance. The last
// good snapshot in memory stays, as the fallback when Binance fails (so
// during a backoff the next Get is still answered from memory, without
// asking Binance). l2Deleted reports whether L2's current was deleted; it is
// false without an L2. L2 goes first, so that no Get between the two puts
// the old snapshot back into L1 from L2. A fetch under way may still store
// its snapshot after Invalidate returns.
//
// It returns an error matching ErrUnknownMarket for a market not served,
// and an error, having changed nothing, when L1 (or, with dropL2, L2)
// cannot drop entries. When deleting from L2 fails, L1 is dropped anyway and
// the error is returned.
func (c *Cache) Invalidate(ctx context.Context, m exchangeinfo.Market, dropL2 bool) (l2Deleted bool, err error) {
	if _, ok := c.markets[m]; !ok {
		return false, fmt.Errorf("%w: %q", ErrUnknownMarket, string(m))
	}
	mem, ok := c.l1.(dropper)
	if !ok {
		return false, fmt.Errorf("invalidate %s: the L1 tier (%T) cannot drop entries", m, c.l1)
	}
	var store currentDeleter
	if dropL2 && c.l2 != nil {
		if store, ok = c.l2.(currentDeleter); !ok {
			return false, fmt.Errorf("invalidate %s: the L2 tier (%T) cannot delete entries", m, c.l2)
		}
	}
	if store != nil {
		if err = store.DeleteCurrent(ctx, string(m)); err != nil {
			err = fmt.Errorf("invalidate %s: %w", m, err)
		}
	}
	mem.Del(m)
	return store != nil && err == nil, err
}

// BackoffError is what TryRefresh returns instead of asking Binance while
// the market is in a backoff: after a failed fetch (for at least Binance's
// Retry-After after a 429 or 418), or while another process of the
// deployment holds the refresh lock as a backoff.
type BackoffError struct {
	Market exchangeinfo.Market
	Until  time.Time // no fetch before this
	Cause  error     // the failure behind the backoff; may be nil
}

func (e *BackoffError) Error() string {
	if e.Cause == nil {
		return fmt.Sprintf("symcache %s: upstream in backoff until %s", e.Market, e.Until.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("symcache %s: upstream in backoff until %s: %v", e.Market, e.Until.UTC().Format(time.RFC3339), e.Cause)
}

func (e *BackoffError) Unwrap() error { return e.Cause }

// TryRefresh is Refresh for an operator: it fetches the market from Binance
// now (joining a fetch already under way) and updates every tier, unless the
// market is in a backoff: then it sends nothing and returns a *BackoffError
// saying until when. (Refresh itself holds back only for a host blocked by a
// 429 or 418, or another process's backoff in Redis, not for this process's
// own backoff, e.g. after a 503 with Retry-After.) The Result's Source is
// Miss when this process fetched the snapshot, HitL2 when another process of
// the deployment did while this one waited for the refresh lock. A caller
// that gives up does not cancel the fetch; it is bounded by
// Config.FetchTimeout. An upstream failure is returned as Refresh returns
// it, and leaves what is served as it was.
func (c *Cache) TryRefresh(ctx context.Context, m exchangeinfo.Market) (Result, error) {
	ms, ok := c.markets[m]
	if !ok {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownMarket, string(m))
	}
	now := c.cfg.Now()
	if until, cause := ms.waiting(now); !until.IsZero() {
		return Result{}, &BackoffError{Market: m, Until: until, Cause: cause}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.FetchTimeout)
	defer cancel()
	f, err := c.fetch(fctx, ms, now)
	if err != nil {
		var be *fetch.BackoffError
		var sb *SharedBackoffError
		if errors.As(err, &be) || errors.As(err, &sb) { // nothing was sent: a gate, or another process
			until, _ := ms.waiting(c.cfg.Now())
			if be != nil && be.Until.After(until) {
				until = be.Until
			}
			if sb != nil && sb.Until.After(until) {
				until = sb.Until
			}
			return Result{}, &BackoffError{Market: m, Until: until, Cause: err}
		}
		return Result{}, err
	}
	r := Result{Snapshot: f.s, Source: Miss, Expires: f.s.FetchedAt().Add(c.cfg.TTL)}
	if f.peer {
		r.Source = HitL2
	}
	return r, nil
}

// waiting returns when the market's backoff ends and the failure behind it,
// or a zero time when Binance may be asked at now.
func (ms *market) waiting(now time.Time) (time.Time, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.lastErr == nil || !now.Before(ms.retryAt) {
		return time.Time{}, nil
	}
	return ms.retryAt, ms.lastErr
}
