package symcache

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/l2"
)

// This file keeps a market warm in the background, and, with a
// Coordinator, in step with the other processes of a deployment: their
// refreshers tick at the same moments so that the refresh lock lets one of
// them fetch, and each takes up the snapshots the others announce.

// errFutureMeta is a meta key dated in the future: it names no snapshot.
var errFutureMeta = errors.New("meta dated in the future")

// refresher keeps the market warm until ctx ends: a warm-up, then a tick
// every refresh period.
func (m *market) refresher(ctx context.Context) {
	m.warmUp(ctx)
	t := time.NewTimer(m.untilTick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(m.untilTick())
		m.restoreL2LastGood(ctx)
		// During another process's backoff the tick asks the lock again (one
		// Redis call, no request to Binance): when an operator deleted the
		// marker, this process resumes now rather than at the marker's end.
		if be := m.backoff.wait(m.sh.now()); be != nil && !isPeerFailure(be.Cause) {
			continue
		}
		if err := m.tick(ctx); err != nil && ctx.Err() == nil {
			m.sh.log.Warn("refresh failed", "market", m.name, "err", err)
		}
	}
}

// warmUp makes the market servable at start: a snapshot in L2 is only kept
// in memory (the first request promotes it to L1) and, when fresh, is
// enough; else Binance is asked.
func (m *market) warmUp(ctx context.Context) {
	if s := m.lastGood.Load(); s != nil && m.sh.fresh(s) {
		return // a request (or the disk copy) got there first
	}
	if m.sh.l2 != nil {
		rctx, cancel := context.WithTimeout(ctx, m.sh.cfg.FetchTimeout)
		s, _ := m.readL2(rctx, l2Current)
		if s == nil {
			s, _ = m.readL2(rctx, l2LastGood)
		}
		cancel()
		if s != nil {
			fresh := m.sh.fresh(s)
			if fresh {
				// Into L1 too, before the market counts as ready: its
				// first request is answered from memory instead of
				// reading and parsing the snapshot again.
				m.toL1(s)
			}
			m.keepLastGood(s)
			if fresh {
				return
			}
		}
	}
	// Any snapshot newer than what memory holds will do, another process's
	// included (it may have stored one since L2 was read above).
	if _, err := m.fetch(ctx, m.newest()); err != nil && ctx.Err() == nil {
		m.sh.log.Warn("warm-up fetch failed", "market", m.name, "err", err)
	}
}

// tick is one background refresh. Alone, it fetches. With a Coordinator,
// when the meta key shows that some process already stored a snapshot in
// this period, it takes that one up (if newer than its own); else it
// fetches, which takes the lock or waits for whoever holds it.
func (m *market) tick(ctx context.Context) error {
	if m.sh.co == nil {
		_, err := m.fetch(ctx, m.sh.now())
		return err
	}
	start := m.epoch(m.sh.now())
	mctx, cancel := context.WithTimeout(ctx, m.sh.cfg.FetchTimeout)
	meta, err := m.sh.co.Meta(mctx, string(m.name))
	cancel()
	if err == nil && m.sh.future(meta.FetchedAt) {
		m.dated("l2", "meta", meta.FetchedAt)
		err = errFutureMeta // names no snapshot: fetch
	}
	if err == nil && !meta.FetchedAt.Before(start) {
		if meta.FetchedAt.After(m.newest()) {
			m.readPeer(ctx, meta)
		}
		return nil
	}
	_, err = m.fetch(ctx, start)
	return err
}

// untilTick is how long the refresher sleeps: RefreshInterval, or with a
// Coordinator until just after the next period starts (a few milliseconds
// of jitter, so that Redis is not asked by every process in the same
// millisecond).
func (m *market) untilTick() time.Duration {
	every := m.sh.cfg.RefreshInterval
	if m.sh.co == nil {
		return every
	}
	now := m.sh.now()
	jitter := rand.N(min(every/100, 20*time.Millisecond) + 1)
	return m.epoch(now).Add(every).Sub(now) + jitter
}

// epoch returns the start of the refresh period t falls in. Every process
// with the same RefreshInterval has the same periods, so they all try to
// refresh at the same moments and the lock lets one of them fetch.
func (m *market) epoch(t time.Time) time.Time { return t.Truncate(m.sh.cfg.RefreshInterval) }

// announceGap is the least time between two reads of announced snapshots
// of one market: announcements come once per refresh period from a healthy
// deployment, and a flood of them (forged, say) must not turn into a flood
// of megabyte reads from Redis.
const announceGap = 250 * time.Millisecond

// announced takes up a snapshot another process announced, unless memory
// holds it or a newer one already (its own announcements included), or it
// is dated in the future. Within announceGap of the last read, the newest
// announcement waits for flushAnnounced.
func (m *market) announced(ctx context.Context, meta l2.Meta) {
	if m.sh.future(meta.FetchedAt) {
		m.dated("announcement", "invalidate", meta.FetchedAt)
		return
	}
	if !meta.FetchedAt.After(m.newest()) {
		return
	}
	m.announce.Lock()
	wait := m.announce.last.Add(announceGap).After(m.sh.now())
	if wait {
		if meta.FetchedAt.After(m.announce.pending.FetchedAt) {
			m.announce.pending = meta
		}
	} else {
		m.announce.last, m.announce.pending = m.sh.now(), l2.Meta{}
	}
	m.announce.Unlock()
	if !wait {
		m.readPeer(ctx, meta)
	}
}

// flushAnnounced reads the announcement that waited for announceGap, once
// the gap has passed.
func (m *market) flushAnnounced(ctx context.Context) {
	m.announce.Lock()
	meta := m.announce.pending
	due := !meta.FetchedAt.IsZero() && !m.announce.last.Add(announceGap).After(m.sh.now())
	if due {
		m.announce.last, m.announce.pending = m.sh.now(), l2.Meta{}
	}
	m.announce.Unlock()
	if due && meta.FetchedAt.After(m.newest()) {
		m.readPeer(ctx, meta)
	}
}

// readPeer reads the snapshot meta names from L2 and takes it up; one read at a
// time per market.
func (m *market) readPeer(ctx context.Context, meta l2.Meta) {
	after := meta.FetchedAt.Add(-time.Millisecond) // Meta keeps milliseconds
	m.peerReads.do(ctx, func() (struct{}, error) {
		rctx, cancel := context.WithTimeout(m.sh.life, m.sh.cfg.FetchTimeout)
		defer cancel()
		if s, _ := m.readL2(rctx, l2Current); s != nil && s.FetchedAt().After(after) {
			m.takePeer(s)
		}
		return struct{}{}, nil
	})
}

// peerInL2 returns the market's snapshot in L2 when the meta key names
// one fetched after after that this process has not read yet, else nil.
func (m *market) peerInL2(ctx context.Context, after time.Time) *exchangeinfo.Snapshot {
	meta, err := m.sh.co.Meta(ctx, string(m.name))
	if err == nil && m.sh.future(meta.FetchedAt) {
		m.dated("l2", "meta", meta.FetchedAt)
		return nil
	}
	if err != nil || !meta.FetchedAt.After(after) || !m.seen.first(meta) {
		return nil
	}
	s, _ := m.readL2(ctx, l2Current)
	if s == nil || !s.FetchedAt().After(after) {
		return nil
	}
	return s
}

// takePeer makes a snapshot another process stored this process's own (see
// takeFromL2), when it is newer than what memory holds.
func (m *market) takePeer(s *exchangeinfo.Snapshot) {
	if !s.FetchedAt().After(m.newest()) {
		return
	}
	m.takeFromL2(s)
	m.stats.adopted.Add(1)
}
