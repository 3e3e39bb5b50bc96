package symcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/l2"
)

// This file shares one upstream fetch per market among every process using
// the same Redis: a refresh lock, refreshes aligned to the same moments, and
// announcements that move every L1 to a new snapshot at once.

// Coordinator is what a shared tier offers so that the processes sharing it
// ask Binance once per market between them, as *l2.Store implements it. An
// L2 Store that is also a Coordinator is used as one.
type Coordinator interface {
	Lock(ctx context.Context, market string, lease time.Duration) (token string, held l2.Held, err error)
	Extend(ctx context.Context, market, token string, lease time.Duration) error
	Unlock(ctx context.Context, market, token string) error
	Hold(ctx context.Context, market, token string, d time.Duration, reason string) error
	Meta(ctx context.Context, market string) (l2.Meta, error)
	Watch(ctx context.Context) <-chan l2.Meta
}

// SharedBackoffError is a fetch not made because another process of the
// deployment failed to fetch the market and holds its lock as a backoff.
type SharedBackoffError struct {
	Market exchangeinfo.Market
	Reason string    // the holder's, e.g. "upstream 429, retry after 1m0s"
	Until  time.Time // no fetch before this
}

func (e *SharedBackoffError) Error() string {
	return fmt.Sprintf("%s: another process's fetch failed (%s); none before %s", e.Market, e.Reason, e.Until.UTC().Format(time.RFC3339))
}

// lockPoll is how often a process waiting for another's fetch looks again.
const lockPoll = 50 * time.Millisecond

// claim decides who fetches the market: this process (with a token: it
// holds the lock; without one: Redis could not be asked and it goes on by
// itself) or another one, whose snapshot, fetched after after, claim returns
// once it is stored. It gives up when ctx ends or the lock stands for a
// backoff.
func (c *Cache) claim(ctx context.Context, ms *market, after time.Time) (token string, peer *exchangeinfo.Snapshot, err error) {
	m := string(ms.name)
	waited := false
	for {
		if s := c.peerSnapshot(ctx, ms, after); s != nil {
			if waited {
				ms.stats.lockWaits.Add(1)
			}
			return "", s, nil
		}
		token, held, err := c.co.Lock(ctx, m, c.lease)
		switch {
		case err != nil && ctx.Err() != nil:
			return "", nil, ctx.Err()
		case err != nil:
			ms.stats.lockErrors.Add(1)
			c.log.Warn("refresh lock unavailable, fetching without it", "market", ms.name, "tier", "l2", "err", err)
			return "", nil, nil
		case token != "":
			// Someone may have stored a newer snapshot between the look above
			// and the lock: then there is nothing to fetch.
			if s := c.peerSnapshot(ctx, ms, after); s != nil {
				c.unlock(ms, token)
				return "", s, nil
			}
			ms.stats.locksAcquired.Add(1)
			return token, nil, nil
		case held.Backoff:
			return "", nil, &SharedBackoffError{Market: ms.name, Reason: held.Reason, Until: held.Until}
		}
		waited = true
		select {
		case <-ctx.Done():
			return "", nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// peerSnapshot returns the market's snapshot in L2 when the meta key names
// one fetched after after that this process has not read yet, else nil.
func (c *Cache) peerSnapshot(ctx context.Context, ms *market, after time.Time) *exchangeinfo.Snapshot {
	meta, err := c.co.Meta(ctx, string(ms.name))
	if err != nil || !meta.FetchedAt.After(after) || !ms.try(meta) {
		return nil
	}
	s := c.readL2(ctx, ms, c.l2.Current, l2.CurrentKey(string(ms.name)))
	if s == nil || !s.FetchedAt().After(after) {
		return nil
	}
	return s
}

// try records that the snapshot meta names is being read from L2, and
// reports whether it was not already: a value found unusable once is not
// read (nor logged) again until another one is stored.
func (ms *market) try(meta l2.Meta) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if meta == ms.tried {
		return false
	}
	ms.tried = meta
	return true
}

// keep renews the lock every third of its lease while this process fetches,
// so that a slow fetch keeps it (a process that dies stops renewing, and
// loses it at the end of the lease). The returned func stops the renewals.
func (c *Cache) keep(ms *market, token string) (stop func()) {
	if token == "" {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(c.lease/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.lease/3)
			err := c.co.Extend(ctx, string(ms.name), token, c.lease)
			cancel()
			if errors.Is(err, l2.ErrLockLost) {
				return // release counts and logs it
			}
			if err != nil {
				c.log.Warn("refresh lock: renewing failed; it may run out", "market", ms.name, "tier", "l2", "err", err)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// release ends this process's hold on the lock after its fetch: released on
// success; on failure kept as the deployment's backoff until the market's
// own next try, so that no other process asks Binance before then.
func (c *Cache) release(ms *market, token string, fetchErr error) {
	if token == "" {
		return
	}
	if fetchErr == nil {
		c.unlock(ms, token)
		return
	}
	d := ms.retryAfter(c.cfg.Now())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.co.Hold(ctx, string(ms.name), token, d, reason(fetchErr)); err != nil {
		c.log.Warn("refresh lock: keeping it as a backoff failed", "market", ms.name, "tier", "l2", "err", err)
	}
}

func (c *Cache) unlock(ms *market, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	switch err := c.co.Unlock(ctx, string(ms.name), token); {
	case errors.Is(err, l2.ErrLockLost):
		ms.stats.locksLost.Add(1)
		c.log.Warn("refresh lock lost: the fetch outlived its lease; another sidecar may have fetched too", "market", ms.name, "tier", "l2", "lease", c.lease.String())
	case err != nil:
		c.log.Warn("refresh lock: release failed; it expires with its lease", "market", ms.name, "tier", "l2", "err", err)
	}
}

// adopt makes a snapshot another process stored this process's own: L1,
// memory and disk, when it is newer than what this process holds.
func (c *Cache) adopt(ms *market, s *exchangeinfo.Snapshot) {
	if old := ms.lastGood.Load(); old != nil && !s.FetchedAt().After(old.FetchedAt()) {
		return
	}
	go s.Gzip() // unless L2 gave it
	c.l1.Set(s, c.cfg.TTL-s.Age(c.cfg.Now()))
	c.remember(ms, s)
	c.save(ms, s)
	ms.stats.adopted.Add(1)
}

// watch moves every market to each snapshot another process announces,
// until ctx ends. A missed announcement is caught up by the next refresh
// tick, which looks at the meta key.
func (c *Cache) watch(ctx context.Context) {
	defer c.wg.Done()
	for meta := range c.co.Watch(ctx) {
		ms, ok := c.markets[exchangeinfo.Market(meta.Market)]
		if !ok || ctx.Err() != nil {
			continue // another market's, or Close was called
		}
		if old := ms.lastGood.Load(); old != nil && !meta.FetchedAt.After(old.FetchedAt()) {
			continue // its own, or one it has
		}
		c.follow(ctx, ms, meta.FetchedAt.Add(-time.Millisecond)) // Meta keeps milliseconds
	}
}

// follow reads the market's snapshot from L2 and adopts it when it was
// fetched after after; one read at a time per market.
func (c *Cache) follow(ctx context.Context, ms *market, after time.Time) {
	c.group.Do("follow:"+string(ms.name), func() (any, error) {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.FetchTimeout)
		defer cancel()
		s := c.readL2(rctx, ms, c.l2.Current, l2.CurrentKey(string(ms.name)))
		if s != nil && s.FetchedAt().After(after) {
			c.adopt(ms, s)
		}
		return nil, nil
	})
}

// epoch returns the start of the refresh period t falls in. Every process
// with the same RefreshInterval has the same periods, so they all try to
// refresh at the same moments and the lock lets one of them fetch.
func (c *Cache) epoch(t time.Time) time.Time { return t.Truncate(c.cfg.RefreshInterval) }

// refreshShared is a refresh tick of a process sharing Redis with others:
// when the meta key shows that some process already stored a snapshot in
// this period, it adopts that one (if newer than its own); else it fetches,
// which takes the lock or waits for whoever holds it.
func (c *Cache) refreshShared(ctx context.Context, ms *market) error {
	start := c.epoch(c.cfg.Now())
	// Long enough to wait for another process's fetch (a lease at most) and
	// then make one.
	rctx, cancel := context.WithTimeout(ctx, c.lease+c.cfg.FetchTimeout)
	defer cancel()
	meta, err := c.co.Meta(rctx, string(ms.name))
	if err == nil && !meta.FetchedAt.Before(start) {
		if old := ms.lastGood.Load(); old == nil || meta.FetchedAt.After(old.FetchedAt()) {
			c.follow(rctx, ms, meta.FetchedAt.Add(-time.Millisecond))
		}
		return nil
	}
	_, err = c.fetch(rctx, ms, start)
	return err
}
