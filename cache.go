package symcache

import (
	"context"
	"sync"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/l1"
)

// Source says which tier answered a Get. Its String form is the X-Cache header.
type Source int

// The sources, in the order a Get tries them.
const (
	HitL1 Source = iota + 1 // "HIT-L1": fresh, from the in-process cache
	HitL2                   // "HIT-L2": fresh, from Redis
	Miss                    // "MISS": fetched from Binance for this request
	Stale                   // "STALE": past its TTL, served because Binance failed
)

func (s Source) String() string {
	switch s {
	case HitL1:
		return "HIT-L1"
	case HitL2:
		return "HIT-L2"
	case Miss:
		return "MISS"
	case Stale:
		return "STALE"
	}
	return "UNKNOWN"
}

// Result is a snapshot and where it came from.
type Result struct {
	Snapshot *exchangeinfo.Snapshot
	Source   Source
	// Reason says why a Stale result was served, e.g. "upstream 503".
	Reason string
	// Expires is when the snapshot stops being fresh (its fetch time plus
	// Config.TTL); in the past for a Stale result.
	Expires time.Time
}

// Cache is the composed read path: it owns the markets' lifecycle (their
// background refreshers, the watcher of other processes' announcements)
// and hands each call to the market it names. It is safe for concurrent
// use. Close it to stop the background work.
type Cache struct {
	sh      *shared
	markets map[exchangeinfo.Market]*market
	order   []exchangeinfo.Market
	ownL1   *l1.Cache // the L1 the Cache made, closed by Close

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New returns a Cache, with each market's last good snapshot loaded from
// the disk copy (if any), and starts a refresher per market (unless
// RefreshInterval is negative) and, with a Coordinator, a watcher of the
// other processes' announcements, and of their bans with a Gate.
func New(cfg Config) (*Cache, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cache{markets: make(map[exchangeinfo.Market]*market)}
	life, stop := context.WithCancel(context.Background())
	c.sh = &shared{cfg: cfg, l1: cfg.L1, l2: cfg.L2, co: cfg.Coordinator, log: cfg.Logger, life: life}
	if c.sh.l1 == nil {
		own, err := l1.New(l1.Config{})
		if err != nil {
			stop()
			return nil, err
		}
		c.sh.l1, c.ownL1 = own, own
	}
	c.stop = stop
	for _, name := range exchangeinfo.Markets() {
		if up, ok := cfg.Upstreams[name]; ok {
			m := newMarket(name, up, c.sh)
			if s := m.disk.load(cfg.Now().Add(MaxSkew)); s != nil {
				m.keepLastGood(s)
			}
			c.markets[name] = m
			c.order = append(c.order, name)
		}
	}
	if c.sh.co != nil {
		c.wg.Go(func() { c.watch(life) })
		if cfg.Gate != nil {
			c.shareBans(life, cfg.Gate)
		}
	}
	if cfg.RefreshInterval > 0 {
		for _, name := range c.order {
			c.wg.Go(func() { c.markets[name].refresher(life) })
		}
	}
	return c, nil
}

// watch hands each snapshot another process announces to its market,
// until ctx ends, and soon after each announceGap the announcements that
// waited. A
// missed announcement is caught up by the next refresh tick, which looks at
// the meta key.
func (c *Cache) watch(ctx context.Context) {
	metas := c.sh.co.Watch(ctx)
	t := time.NewTicker(announceGap / 5)
	defer t.Stop()
	for {
		select {
		case meta, ok := <-metas:
			if !ok {
				return
			}
			if m, ok := c.markets[exchangeinfo.Market(meta.Market)]; ok && ctx.Err() == nil {
				if m.feed != nil {
					m.feed.notify() // the snapshot came with its changes
				}
				m.announced(ctx, meta)
			}
		case <-t.C:
			for _, name := range c.order {
				c.markets[name].flushAnnounced(ctx)
			}
		}
	}
}

// Close stops the background work, waits for it, and closes an L1 the
// Cache made itself. A fetch under way is cancelled. Close does not close
// the L2 or upstream clients it was given.
func (c *Cache) Close() error {
	c.stop()
	c.wg.Wait()
	if c.ownL1 != nil {
		c.ownL1.Close()
	}
	return nil
}

// Markets lists the markets the Cache serves, in a fixed order.
func (c *Cache) Markets() []exchangeinfo.Market {
	return append([]exchangeinfo.Market(nil), c.order...)
}

func (c *Cache) market(m exchangeinfo.Market) (*market, error) {
	if ms, ok := c.markets[m]; ok {
		return ms, nil
	}
	return nil, unknownMarket(m)
}

// Get returns the market's snapshot from the first tier that has a fresh one,
// else from Binance, else the last good one (see the package doc). If ctx ends
// first, Get returns ctx.Err(); a fetch it started goes on for other callers.
func (c *Cache) Get(ctx context.Context, m exchangeinfo.Market) (Result, error) {
	ms, err := c.market(m)
	if err != nil {
		return Result{}, err
	}
	r, err := ms.get(ctx)
	if err == nil {
		r.Expires = r.Snapshot.FetchedAt().Add(c.sh.cfg.TTL)
	}
	return r, err
}

// Refresh fetches the market from Binance now (joining a fetch already under
// way) and updates every tier, unless the market is in a backoff: after a
// failed fetch (for at least Binance's Retry-After after a 429 or 418), while
// a host is blocked, or while another process of the deployment holds the
// refresh lock as a backoff. Then it sends nothing and returns a
// *BackoffError saying until when. The Result's Source is Miss when this
// process fetched the snapshot, HitL2 when another process of the deployment
// did while this one waited for the refresh lock. A caller that gives up
// does not cancel the fetch (it is bounded by Config.FetchTimeout). An
// upstream failure is returned as is, and leaves what is served as it was.
func (c *Cache) Refresh(ctx context.Context, m exchangeinfo.Market) (Result, error) {
	ms, err := c.market(m)
	if err != nil {
		return Result{}, err
	}
	r, err := ms.refresh(ctx)
	if err == nil {
		r.Expires = r.Snapshot.FetchedAt().Add(c.sh.cfg.TTL)
	}
	return r, err
}

// ClearBackoff ends every backoff of the market: this process's, the blocks
// its upstream keeps for a 429 or 418, and the deployment's marker in Redis
// (with a Coordinator). It is for an operator who knows better than the
// backoff, e.g. after a bogus 418 from a proxy; asking Binance during a
// ban of its own only makes the ban longer. It reports whether there was a
// backoff to end, and returns an error only when Redis could not be asked
// (this process's backoff is ended anyway). The next Refresh or Get asks
// Binance.
func (c *Cache) ClearBackoff(ctx context.Context, m exchangeinfo.Market) (cleared bool, err error) {
	ms, err := c.market(m)
	if err != nil {
		return false, err
	}
	return ms.clearBackoff(ctx)
}

// Invalidate drops the market's snapshot from this process's L1 and, if
// dropL2 is set and there is an L2, deletes L2's current snapshot too (never
// last_good): the next Get then loads it again, from L2 or Binance. The last
// good snapshot in memory stays, as the fallback when Binance fails (so
// during a backoff the next Get is still answered from memory, without
// asking Binance). l2Deleted reports whether L2's current was deleted; it is
// false without an L2. L2 goes first, so that no Get between the two puts
// the old snapshot back into L1 from L2. A fetch under way may still store
// its snapshot after Invalidate returns. When deleting from L2 fails, L1 is
// dropped anyway and the error is returned.
func (c *Cache) Invalidate(ctx context.Context, m exchangeinfo.Market, dropL2 bool) (l2Deleted bool, err error) {
	ms, err := c.market(m)
	if err != nil {
		return false, err
	}
	return ms.invalidate(ctx, dropL2)
}

// Stats returns every market's counters and state, in Markets order.
func (c *Cache) Stats() []Stats {
	out := make([]Stats, 0, len(c.order))
	for _, m := range c.order {
		out = append(out, c.markets[m].statsNow())
	}
	return out
}

// Ready reports every market's state, and whether all can be served.
func (c *Cache) Ready() ([]MarketState, bool) {
	all := true
	out := make([]MarketState, 0, len(c.order))
	for _, m := range c.order {
		st := c.markets[m].state()
		all = all && st.Ready
		out = append(out, st)
	}
	return out, all
}
