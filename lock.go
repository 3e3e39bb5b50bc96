package symcache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/l2"
)

// Coordinator shares one upstream fetch per market among every process
// using the same Redis, as *l2.Store implements it: a refresh lock that
// decides which process asks Binance, a meta key naming the newest stored
// snapshot, and announcements of each new one.
type Coordinator interface {
	Lock(ctx context.Context, market string, lease time.Duration) (token string, held l2.Held, err error)
	Extend(ctx context.Context, market, token string, lease time.Duration) error
	Unlock(ctx context.Context, market, token string) error
	Hold(ctx context.Context, market, token string, d time.Duration, reason string) error
	Meta(ctx context.Context, market string) (l2.Meta, error)
	Watch(ctx context.Context) <-chan l2.Meta
	// ClearBackoff deletes the lock only if it stands for a backoff.
	ClearBackoff(ctx context.Context, market string) (bool, error)
	// Ban, Unban and WatchBans share Binance's bans of hosts (see
	// Config.Gate). WatchBans should set each Ban's Seen: without it, a ban
	// read just before this process lifted it may block the host again
	// until the lift's own announcement comes back.
	Ban(ctx context.Context, host string, code int, d time.Duration) error
	Unban(ctx context.Context, host string) error
	WatchBans(ctx context.Context, poll time.Duration) <-chan l2.Ban
}

// lockPoll is how often a process waiting for another's fetch looks again.
const lockPoll = 50 * time.Millisecond

// refreshLock is one market's side of the refresh lock: it decides whether
// this process fetches or waits for another's snapshot, keeps the lock
// while this process fetches, and leaves it as the deployment's backoff
// when the fetch fails.
type refreshLock struct {
	co     Coordinator
	market exchangeinfo.Market
	lease  time.Duration
	log    *slog.Logger

	acquired, waited, errors, lost atomic.Uint64 // as Stats counts them
}

// claim decides who fetches. It returns a token when this process holds the
// lock; no token and no snapshot when Redis could not be asked (this process
// then fetches by itself); or the snapshot another process stored, as
// newer finds it (newer returns nil until there is one). It gives up when
// ctx ends or the lock stands for a backoff (a *BackoffError).
func (l *refreshLock) claim(ctx context.Context, newer func(context.Context) *exchangeinfo.Snapshot) (token string, peer *exchangeinfo.Snapshot, err error) {
	m := string(l.market)
	waited := false
	for {
		if s := newer(ctx); s != nil {
			if waited {
				l.waited.Add(1)
			}
			return "", s, nil
		}
		token, held, err := l.co.Lock(ctx, m, l.lease)
		switch {
		case err != nil && ctx.Err() != nil:
			return "", nil, ctx.Err()
		case err != nil:
			l.errors.Add(1)
			l.log.Warn("refresh lock unavailable, fetching without it", "market", l.market, "tier", "l2", "err", err)
			return "", nil, nil
		case token != "":
			// Someone may have stored a newer snapshot between the look above
			// and the lock: then there is nothing to fetch.
			if s := newer(ctx); s != nil {
				l.unlock(token)
				return "", s, nil
			}
			l.acquired.Add(1)
			return token, nil, nil
		case held.Backoff:
			return "", nil, &fetch.BackoffError{Until: held.Until, Cause: peerFailure(held.Reason)}
		}
		waited = true
		select {
		case <-ctx.Done():
			return "", nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// keep renews the lock every third of its lease while this process
// fetches, so that a slow fetch keeps it (a process that dies stops
// renewing, and loses it at the end of the lease). The returned func stops
// the renewals. Without a lock or a token it does nothing.
func (l *refreshLock) keep(token string) (stop func()) {
	if l == nil || token == "" {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(l.lease/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), l.lease/3)
			err := l.co.Extend(ctx, string(l.market), token, l.lease)
			cancel()
			if errors.Is(err, l2.ErrLockLost) {
				return // release counts and logs it
			}
			if err != nil {
				l.log.Warn("refresh lock: renewing failed; it may run out", "market", l.market, "tier", "l2", "err", err)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// release ends this process's hold on the lock after its fetch: released
// on success; on failure kept for hold as the deployment's backoff, with
// the failure's reason, so that no other process asks Binance before then.
// Without a lock or a token it does nothing.
func (l *refreshLock) release(token string, fetchErr error, hold time.Duration) {
	if l == nil || token == "" {
		return
	}
	if fetchErr == nil {
		l.unlock(token)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.co.Hold(ctx, string(l.market), token, hold, classify(fetchErr).reason); err != nil {
		l.log.Warn("refresh lock: keeping it as a backoff failed", "market", l.market, "tier", "l2", "err", err)
	}
}

func (l *refreshLock) unlock(token string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	switch err := l.co.Unlock(ctx, string(l.market), token); {
	case errors.Is(err, l2.ErrLockLost):
		l.lost.Add(1)
		l.log.Warn("refresh lock lost: the fetch outlived its lease; another sidecar may have fetched too", "market", l.market, "tier", "l2", "lease", l.lease.String())
	case err != nil:
		l.log.Warn("refresh lock: release failed; it expires with its lease", "market", l.market, "tier", "l2", "err", err)
	}
}
