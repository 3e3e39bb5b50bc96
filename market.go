package symcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/l2"
)

// This file is the read path of one market, top to bottom: get, load,
// fetch, fallback.

// market is one market's read path and state: the newest valid snapshot it
// holds, and how it gets a newer one. A Cache hands it every call for its
// market.
type market struct {
	name     exchangeinfo.Market
	upstream Upstream
	sh       *shared

	lastGood  atomic.Pointer[exchangeinfo.Snapshot] // newest valid snapshot seen
	l1Refused atomic.Pointer[exchangeinfo.Snapshot] // the last snapshot L1 did not keep
	// l1Hot is the snapshot this process last put in L1: a hit reads it
	// without L1's hash lookup (an eighth of a small answer's handler time). Only
	// toL1 sets it, and invalidate clears it with L1.
	l1Hot   atomic.Pointer[exchangeinfo.Snapshot]
	loading atomic.Int32 // loads and fetches under way
	// lastFuture is the time (UnixMilli) of the last future-dated value met;
	// lastFutureLog, when (UnixNano) one was last logged.
	lastFuture, lastFutureLog atomic.Int64

	loads     flight[Result]   // Gets that missed L1
	fetches   flight[fetched]  // upstream fetches
	peerReads flight[struct{}] // reads of another process's snapshot from L2

	announce struct { // announcements of other processes' snapshots (see announced)
		sync.Mutex
		last    time.Time // when one was last read
		pending l2.Meta   // the newest one waiting for announceGap
	}

	backoff backoff
	guard   answerGuard
	lock    *refreshLock // nil: this process alone
	seen    l2Seen
	disk    diskCopy
	feed    *feed // nil: no change log
	stats   counters
}

func newMarket(name exchangeinfo.Market, up Upstream, sh *shared) *market {
	m := &market{name: name, upstream: up, sh: sh}
	m.guard = answerGuard{market: name, maxLoss: sh.cfg.MaxSymbolLoss, maxGrowth: sh.cfg.MaxGrowth,
		maxSymbolBytes: sh.cfg.MaxSymbolBytes, persist: sh.cfg.TTL, log: sh.log}
	m.disk = diskCopy{disk: sh.cfg.Disk, market: name, log: sh.log, errors: &m.stats.diskErrors}
	m.feed = newFeed(sh.cfg)
	if sh.co != nil {
		m.lock = &refreshLock{co: sh.co, market: name, lease: sh.cfg.LockLease, log: sh.log}
	}
	return m
}

// get answers a Get: a fresh snapshot from L1; else, while Binance is being
// asked or in backoff, memory's stale one without a round trip to Redis;
// else a load, shared by every caller that misses meanwhile.
func (m *market) get(ctx context.Context) (Result, error) {
	if s := m.l1Hot.Load(); s != nil && m.sh.fresh(s) {
		m.stats.l1Hits.Add(1)
		return Result{Snapshot: s, Source: HitL1}, nil
	}
	if s, ok := m.sh.l1.Get(m.name); ok && m.sh.fresh(s) {
		m.stats.l1Hits.Add(1)
		return Result{Snapshot: s, Source: HitL1}, nil
	}
	if s := m.l1Refused.Load(); s != nil && s == m.lastGood.Load() && m.sh.fresh(s) {
		m.stats.l1Hits.Add(1) // in this process's memory, though not in L1
		return Result{Snapshot: s, Source: HitL1}, nil
	}
	m.stats.l1Misses.Add(1)
	if s := m.lastGood.Load(); s != nil && !m.sh.fresh(s) && m.sh.servable(s) {
		if be := m.backoff.wait(m.sh.now()); be != nil { // stale-if-error
			return m.stale(s, be.Cause), nil
		}
		if m.loading.Load() > 0 { // stale-while-revalidate
			return m.stale(s, nil), nil
		}
	}
	r, shared, err := m.loads.do(ctx, func() (Result, error) {
		m.loading.Add(1)
		defer m.loading.Add(-1)
		ctx, cancel := context.WithTimeout(m.sh.life, m.sh.cfg.FetchTimeout)
		defer cancel()
		return m.load(ctx)
	})
	if shared {
		m.stats.sharedWaits.Add(1)
	}
	return r, err
}

// load finds a snapshot for the callers that missed L1: L2's current one
// if fresh (promoted to L1); else Binance's; else the last good one.
func (m *market) load(ctx context.Context) (Result, error) {
	lastGoodRead := false // this load learnt what L2's last_good holds
	if m.sh.l2 != nil {
		if m.sh.co != nil { // note which snapshot this read gets, so it is not read twice
			if meta, err := m.sh.co.Meta(ctx, string(m.name)); err == nil {
				m.seen.first(meta)
			}
		}
		s, _ := m.readL2(ctx, l2Current)
		if s != nil && m.sh.fresh(s) {
			m.stats.l2Hits.Add(1)
			m.takeFromL2(s)
			return Result{Snapshot: s, Source: HitL2}, nil
		}
		m.stats.l2Misses.Add(1)
		if s != nil {
			m.keepLastGood(s) // past its TTL, still valid: a fallback, and the answer guard's yardstick
		}
		if m.lastGood.Load() == nil { // a new process: know last good before judging a fresh answer
			// Unless Redis answered, the fallback asks again: there, last_good
			// may be all that stands between the caller and an error.
			var s *exchangeinfo.Snapshot
			if s, lastGoodRead = m.readL2(ctx, l2LastGood); s != nil {
				m.keepLastGood(s)
			}
		}
	}
	if be := m.backoff.wait(m.sh.now()); be != nil {
		return m.fallback(ctx, be.Cause, !lastGoodRead)
	}
	// Another process's snapshot serves if newer than what memory holds. The
	// fetch bounds itself: waiting for it is not cut short by what the L2
	// reads above left of ctx.
	f, err := m.fetch(context.WithoutCancel(ctx), m.newest())
	if err != nil {
		return m.fallback(ctx, err, !lastGoodRead)
	}
	if f.peer {
		return Result{Snapshot: f.s, Source: HitL2}, nil
	}
	return Result{Snapshot: f.s, Source: Miss}, nil
}

// fetched is what fetch got: a snapshot, and whether another process
// fetched it (then it came through L2).
type fetched struct {
	s    *exchangeinfo.Snapshot
	peer bool
}

// fetch gets a snapshot fetched after after. It asks Binance once per
// market at a time, however many callers wait, and with a Coordinator once
// per market across processes: a snapshot another process stores meanwhile
// is taken from L2 instead. The fetch runs on its own, bounded by
// FetchTimeout (plus LockLease to wait for another process): a caller whose
// ctx ends stops waiting, and the fetch goes on for the others.
func (m *market) fetch(ctx context.Context, after time.Time) (fetched, error) {
	f, _, err := m.fetches.do(ctx, func() (fetched, error) {
		m.loading.Add(1)
		defer m.loading.Add(-1)
		bound := m.sh.cfg.FetchTimeout
		if m.lock != nil {
			bound += m.sh.cfg.LockLease
		}
		ctx, cancel := context.WithTimeout(m.sh.life, bound)
		defer cancel()
		return m.fetchOnce(ctx, after)
	})
	return f, err
}

// fetchOnce is one fetch: the refresh lock decides who asks Binance; a
// valid answer goes to every tier; a failure starts or extends the backoff.
func (m *market) fetchOnce(ctx context.Context, after time.Time) (fetched, error) {
	token := ""
	if m.lock != nil {
		tok, peer, err := m.lock.claim(ctx, func(ctx context.Context) *exchangeinfo.Snapshot { return m.peerInL2(ctx, after) })
		if peer != nil {
			m.takePeer(peer)
			return fetched{s: peer, peer: true}, nil
		}
		if err != nil {
			m.failed(err)
			return fetched{}, err
		}
		token = tok
	}
	stopKeeping := m.lock.keep(token)
	s, err := m.fromUpstream(ctx)
	if err != nil {
		stopKeeping()
		m.failed(err)
		m.lock.release(token, err, m.backoff.retryAfter(m.sh.now()))
		return fetched{}, err
	}
	m.stats.fetches[classOK].Add(1)
	m.backoff.succeed()
	s.Gzip() // compressed once, when the snapshot is made, not per request
	m.toL1(s)
	prev := m.lastGood.Load()
	m.keepLastGood(s) // before the L2 write: the watcher then knows its announcement as this process's own
	m.store(ctx, prev, s)
	stopKeeping()
	m.disk.save(s)
	m.lock.release(token, nil, 0) // after the L2 write: whoever waits finds it there
	return fetched{s: s}, nil
}

// fromUpstream asks Binance and checks the answer against memory's last
// good snapshot (see answerGuard).
func (m *market) fromUpstream(ctx context.Context) (*exchangeinfo.Snapshot, error) {
	s, err := m.upstream.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	if s.Market() != m.name {
		return nil, fmt.Errorf("upstream for %s returned a %s snapshot", m.name, s.Market())
	}
	if err := m.guard.check(m.lastGood.Load(), s, m.sh.now()); err != nil {
		return nil, err
	}
	return s, nil
}

// failed counts a failed fetch and starts or extends the backoff.
func (m *market) failed(err error) {
	m.stats.fetches[classify(err).class].Add(1)
	m.backoff.fail(err, m.sh.now())
}

// fallback serves the newest valid snapshot known, in memory or (when
// readL2 is set: the caller has not just read it) in L2's last_good, after
// the upstream failed with cause.
func (m *market) fallback(ctx context.Context, cause error, readL2 bool) (Result, error) {
	best := m.lastGood.Load()
	if m.sh.l2 != nil && readL2 {
		// A fetch that ran out of time leaves ctx done: the read has l2's own
		// budget (LastGoodTimeout), whatever the fetch left.
		if s, _ := m.readL2(context.WithoutCancel(ctx), l2LastGood); s != nil && (best == nil || s.FetchedAt().After(best.FetchedAt())) {
			best = s
			m.keepLastGood(s)
		}
	}
	if best == nil || !m.sh.servable(best) {
		m.stats.unavailable.Add(1)
		return Result{}, &UnavailableError{Market: m.name, Cause: cause, RetryAfter: m.backoff.retryAfter(m.sh.now())}
	}
	if m.sh.fresh(best) { // e.g. loaded from disk or L2 at start: the in-process tier has it now
		m.toL1(best)
		m.stats.l1Hits.Add(1)
		return Result{Snapshot: best, Source: HitL1}, nil
	}
	r := m.stale(best, cause)
	m.sh.log.Warn("serving stale snapshot", "market", m.name, "age", best.Age(m.sh.now()).Round(time.Second).String(), "reason", r.Reason, "err", cause)
	return r, nil
}

// stale counts and returns s served past its TTL because of cause (nil: a
// fetch is under way).
func (m *market) stale(s *exchangeinfo.Snapshot, cause error) Result {
	f := classify(cause)
	m.stats.stale.Add(1)
	m.stats.staleBy[f.class].Add(1)
	return Result{Snapshot: s, Source: Stale, Reason: f.reason}
}

// refresh fetches now, unless the market is in a backoff: then it sends
// nothing and returns a *BackoffError.
func (m *market) refresh(ctx context.Context) (Result, error) {
	now := m.sh.now()
	if be := m.backoff.wait(now); be != nil {
		return Result{}, fmt.Errorf("symcache %s: %w", m.name, be)
	}
	f, err := m.fetch(ctx, now)
	var be *BackoffError
	if errors.As(err, &be) { // nothing was sent: a blocked host, or another process's backoff
		if own := m.backoff.wait(m.sh.now()); own != nil && own.Until.After(be.Until) {
			be = &BackoffError{Until: own.Until, Host: be.Host, Code: be.Code, Cause: be.Cause}
		}
		return Result{}, fmt.Errorf("symcache %s: %w", m.name, be)
	}
	if err != nil {
		return Result{}, err
	}
	if f.peer {
		return Result{Snapshot: f.s, Source: HitL2}, nil
	}
	return Result{Snapshot: f.s, Source: Miss}, nil
}

// clearBackoff ends the market's backoffs (see Cache.ClearBackoff).
func (m *market) clearBackoff(ctx context.Context) (cleared bool, err error) {
	cleared = m.backoff.wait(m.sh.now()) != nil
	m.backoff.succeed()
	cleared = m.upstream.Unblock() || cleared
	if m.sh.co != nil {
		held, cerr := m.sh.co.ClearBackoff(ctx, string(m.name))
		if cerr != nil {
			err = fmt.Errorf("clear backoff %s: %w", m.name, cerr)
		}
		cleared = held || cleared
	}
	m.sh.log.Warn("backoff ended by an operator", "market", m.name, "cleared", cleared)
	return cleared, err
}

// invalidate drops the market from L1 and, with dropL2, L2's current
// snapshot first (see Cache.Invalidate).
func (m *market) invalidate(ctx context.Context, dropL2 bool) (l2Deleted bool, err error) {
	if dropL2 && m.sh.l2 != nil {
		if err = m.sh.l2.DeleteCurrent(ctx, string(m.name)); err != nil {
			err = fmt.Errorf("invalidate %s: %w", m.name, err)
		}
	}
	m.l1Hot.Store(nil)
	m.sh.l1.Del(m.name)
	m.l1Refused.Store(nil)
	return dropL2 && m.sh.l2 != nil && err == nil, err
}
