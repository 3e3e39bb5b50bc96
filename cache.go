package symcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/l1"
	"github.com/symcache/symcache/l2"
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

// ErrUnavailable means no tier has a snapshot to serve: nothing valid was
// ever seen, or the newest is older than Config.StaleMax. The error is an
// *UnavailableError.
var ErrUnavailable = errors.New("symcache: unavailable")

// ErrUnknownMarket means Get was asked for a market the Cache does not serve.
var ErrUnknownMarket = errors.New("symcache: market not served")

// UnavailableError is returned when there is nothing to serve.
type UnavailableError struct {
	Market     exchangeinfo.Market
	Cause      error         // why the upstream failed; may be nil
	RetryAfter time.Duration // when a retry may succeed (the upstream backoff), at least a second
}

func (e *UnavailableError) Error() string {
	if e.Cause == nil {
		return fmt.Sprintf("symcache %s: unavailable", e.Market)
	}
	return fmt.Sprintf("symcache %s: unavailable: %v", e.Market, e.Cause)
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

func (e *UnavailableError) Unwrap() error { return e.Cause }

// ShrinkError rejects an upstream answer that lost more symbols than
// Config.MaxSymbolLoss allows, compared with the last good snapshot.
type ShrinkError struct {
	Market   exchangeinfo.Market
	Had, Got int // symbols in the last good snapshot and in the answer
}

func (e *ShrinkError) Error() string {
	return fmt.Sprintf("symcache %s: upstream answer lost %d of %d symbols", e.Market, e.Had-e.Got, e.Had)
}

// Memory is the in-process tier, as *l1.Cache implements it.
type Memory interface {
	Get(m exchangeinfo.Market) (*exchangeinfo.Snapshot, bool)
	Set(s *exchangeinfo.Snapshot, ttl time.Duration) bool
}

// Store is the shared tier, as *l2.Store implements it.
type Store interface {
	Current(ctx context.Context, market string) (l2.Envelope, error)
	LastGood(ctx context.Context, market string) (l2.Envelope, error)
	Put(ctx context.Context, e l2.Envelope, ttl time.Duration) error
	SeedLastGood(ctx context.Context, e l2.Envelope) (bool, error)
}

// Disk is an on-disk last good copy per market, as *disk.Store implements it.
type Disk interface {
	Load(m exchangeinfo.Market) (*exchangeinfo.Snapshot, error)
	Save(s *exchangeinfo.Snapshot) error
}

// Upstream fetches and validates one market's snapshot, as *fetch.Client does.
type Upstream interface {
	Fetch(ctx context.Context) (*exchangeinfo.Snapshot, error)
}

// Config configures a Cache. Only Upstreams is required.
type Config struct {
	// Upstreams has one entry per market to serve and keep warm.
	Upstreams map[exchangeinfo.Market]Upstream
	// L1 is the in-process tier. If nil, an *l1.Cache with its default
	// budget, owned (and closed) by the Cache.
	L1 Memory
	// L2 is the shared tier. If nil, there is none: pass a nil interface,
	// never a nil *l2.Store.
	L2 Store
	// TTL is how long a snapshot stays fresh after it was fetched. If zero, 5m.
	TTL time.Duration
	// RefreshInterval is the background refresh period per market. If zero,
	// 1m; if negative, there is no background refresh (nor warm-up at start).
	RefreshInterval time.Duration
	// StaleMax is the oldest snapshot still served when Binance fails. If
	// zero, 24h; if negative, no limit.
	StaleMax time.Duration
	// FetchTimeout bounds one shared upstream fetch, all base URLs included,
	// whoever waits for it. If zero, 30s.
	FetchTimeout time.Duration
	// LockLease is the lease of the refresh lock in Redis (see Coordinator):
	// the holder renews it every third of it while it fetches, and a process
	// that dies while fetching keeps the others waiting this long at most.
	// If zero, FetchTimeout plus a second, but at most three quarters of
	// RefreshInterval.
	LockLease time.Duration
	// MaxSymbolLoss is the largest fraction of the last good snapshot's
	// symbols a new answer may lack: an answer that lost more is rejected
	// (a partial answer must not delist half the market for every client),
	// unless the same answer keeps coming for at least a TTL, three times or
	// more in a row. If zero, 0.5; if negative, any loss is accepted.
	MaxSymbolLoss float64
	// Disk keeps a last good copy per market outside the process. If nil,
	// none. New loads it, and every snapshot fetched or read from L2 that is
	// newer is saved to it.
	Disk Disk
	// Logger receives what would otherwise be invisible: stale answers,
	// failed refreshes. If nil, slog.Default().
	Logger *slog.Logger
	// Now tells the time. If nil, time.Now.
	Now func() time.Time
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

// Cache is the composed read path. It is safe for concurrent use. Close it
// to stop the background refreshers.
type Cache struct {
	cfg     Config
	l1      Memory
	ownL1   *l1.Cache
	l2      Store
	co      Coordinator // the L2 Store, when it is one; else nil
	lease   time.Duration
	log     *slog.Logger
	markets map[exchangeinfo.Market]*market
	order   []exchangeinfo.Market
	group   singleflight.Group

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// market is the per-market state.
type market struct {
	name     exchangeinfo.Market
	upstream Upstream
	lastGood atomic.Pointer[exchangeinfo.Snapshot] // newest valid snapshot seen

	loading atomic.Int32 // loads and fetches under way

	mu       sync.Mutex
	failures int       // consecutive failed fetches
	retryAt  time.Time // no upstream fetch before this
	lastErr  error
	suspect  suspect   // a shrunken answer seen in a row
	saved    time.Time // FetchedAt of the newest snapshot saved to disk
	tried    l2.Meta   // the snapshot named in L2's meta key last read from L2 (see try)

	stats counters
}

// suspect is an upstream answer that lost too many symbols, and how often
// and since when it has been seen in a row.
type suspect struct {
	etag  string
	first time.Time
	count int
}

const (
	minBackoff = time.Second
	maxBackoff = time.Minute
)

// New returns a Cache and starts a refresher per market, unless
// RefreshInterval is negative.
func New(cfg Config) (*Cache, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("symcache: no upstreams configured")
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5 * time.Minute
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = time.Minute
	}
	if cfg.StaleMax == 0 {
		cfg.StaleMax = 24 * time.Hour
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 30 * time.Second
	}
	if cfg.MaxSymbolLoss == 0 {
		cfg.MaxSymbolLoss = 0.5
	}
	if cfg.MaxSymbolLoss >= 1 {
		return nil, errors.New("symcache: MaxSymbolLoss must be below 1")
	}
	if cfg.TTL < 0 || cfg.FetchTimeout < 0 || cfg.LockLease < 0 {
		return nil, errors.New("symcache: TTL, FetchTimeout and LockLease must be positive")
	}
	if cfg.LockLease == 0 {
		cfg.LockLease = cfg.FetchTimeout + time.Second
		if cfg.RefreshInterval > 0 {
			cfg.LockLease = min(cfg.LockLease, cfg.RefreshInterval*3/4)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Cache{cfg: cfg, l1: cfg.L1, l2: cfg.L2, lease: cfg.LockLease, log: cfg.Logger, markets: make(map[exchangeinfo.Market]*market)}
	if co, ok := cfg.L2.(Coordinator); ok {
		c.co = co
	}
	for _, m := range exchangeinfo.Markets() {
		up, ok := cfg.Upstreams[m]
		if !ok {
			continue
		}
		if up == nil {
			return nil, fmt.Errorf("symcache: nil upstream for %s", m)
		}
		c.markets[m] = &market{name: m, upstream: up}
		c.order = append(c.order, m)
	}
	if len(c.order) != len(cfg.Upstreams) {
		return nil, errors.New("symcache: upstreams include an unknown market")
	}
	if c.l1 == nil {
		own, err := l1.New(l1.Config{})
		if err != nil {
			return nil, err
		}
		c.l1, c.ownL1 = own, own
	}
	if cfg.Disk != nil {
		for _, m := range c.order {
			s, err := cfg.Disk.Load(m)
			if err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					c.log.Warn("ignoring the disk copy", "market", m, "tier", "disk", "err", err)
				}
				continue
			}
			ms := c.markets[m]
			ms.saved = s.FetchedAt()
			c.remember(ms, s)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	if c.co != nil {
		c.wg.Add(1)
		go c.watch(ctx)
	}
	if cfg.RefreshInterval > 0 {
		for _, m := range c.order {
			c.wg.Add(1)
			go c.refresher(ctx, c.markets[m])
		}
	}
	return c, nil
}

// Close stops the refreshers, waits for them, and closes an L1 the Cache
// made itself. It does not close the L2 or upstream clients it was given.
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

// Get returns the market's snapshot from the first tier that has a fresh one,
// else from Binance, else the last good one (see the package doc). If ctx ends
// first, Get returns ctx.Err(); a fetch it started goes on for other callers.
func (c *Cache) Get(ctx context.Context, m exchangeinfo.Market) (Result, error) {
	r, err := c.get(ctx, m)
	if err == nil {
		r.Expires = r.Snapshot.FetchedAt().Add(c.cfg.TTL)
	}
	return r, err
}

func (c *Cache) get(ctx context.Context, m exchangeinfo.Market) (Result, error) {
	ms, ok := c.markets[m]
	if !ok {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownMarket, string(m))
	}
	if s, ok := c.l1.Get(m); ok && c.fresh(s) {
		ms.stats.l1Hits.Add(1)
		return Result{Snapshot: s, Source: HitL1}, nil
	}
	ms.stats.l1Misses.Add(1)
	// A snapshot past its TTL answers at once while Binance is being asked
	// (stale-while-revalidate) or is in backoff (stale-if-error), without a
	// round trip to Redis.
	if s := ms.lastGood.Load(); s != nil && !c.fresh(s) && c.servable(s) {
		if err, waiting := ms.backoff(c.cfg.Now()); waiting {
			ms.stats.served(err)
			return Result{Snapshot: s, Source: Stale, Reason: reason(err)}, nil
		}
		if ms.loading.Load() > 0 {
			ms.stats.served(nil)
			return Result{Snapshot: s, Source: Stale, Reason: "refresh in progress"}, nil
		}
	}
	ch := c.group.DoChan("load:"+string(m), func() (any, error) {
		ms.loading.Add(1)
		defer ms.loading.Add(-1)
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.FetchTimeout)
		defer cancel()
		return c.load(fctx, ms)
	})
	select {
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case r := <-ch:
		if r.Shared {
			ms.stats.sharedWaits.Add(1)
		}
		if r.Err != nil {
			return Result{}, r.Err
		}
		return r.Val.(Result), nil
	}
}

// load runs once per market at a time, for every caller that missed L1.
func (c *Cache) load(ctx context.Context, ms *market) (Result, error) {
	readLastGood := false // this load learnt what L2's last_good holds
	if c.l2 != nil {
		if c.co != nil { // note which snapshot this read gets, so it is not read twice
			if meta, err := c.co.Meta(ctx, string(ms.name)); err == nil {
				ms.try(meta)
			}
		}
		s := c.readL2(ctx, ms, c.l2.Current, l2.CurrentKey(string(ms.name)))
		if s != nil && c.fresh(s) {
			ms.stats.l2Hits.Add(1)
			go s.Gzip() // unless L2 gave it: compressed once, off the path of this load
			c.l1.Set(s, c.cfg.TTL-s.Age(c.cfg.Now()))
			c.remember(ms, s)
			c.save(ms, s)
			return Result{Snapshot: s, Source: HitL2}, nil
		}
		ms.stats.l2Misses.Add(1)
		if s != nil {
			c.remember(ms, s) // past its TTL, still valid: a fallback, and the yardstick of checkShrink
		}
		if ms.lastGood.Load() == nil { // a new process: know last good before judging a fresh answer
			var s *exchangeinfo.Snapshot
			// Unless Redis answered, the fallback asks again: there, last_good
			// may be all that stands between the caller and an error.
			s, readLastGood = c.readL2Answered(ctx, ms, c.l2.LastGood, l2.LastGoodKey(string(ms.name)))
			if s != nil {
				c.remember(ms, s)
			}
		}
	}
	if err, waiting := ms.backoff(c.cfg.Now()); waiting {
		return c.fallback(ctx, ms, err, !readLastGood)
	}
	var after time.Time // another process's snapshot serves if newer than what memory holds
	if old := ms.lastGood.Load(); old != nil {
		after = old.FetchedAt()
	}
	f, err := c.fetch(ctx, ms, after)
	if err != nil {
		return c.fallback(ctx, ms, err, !readLastGood)
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

// fetch asks Binance, once per market at a time, and on success writes every
// tier. A failure starts or extends the backoff. With a Coordinator, once per
// market at a time across processes: a snapshot another process stored,
// fetched after after, is taken instead.
func (c *Cache) fetch(ctx context.Context, ms *market, after time.Time) (fetched, error) {
	v, err, _ := c.group.Do("fetch:"+string(ms.name), func() (any, error) {
		ms.loading.Add(1)
		defer ms.loading.Add(-1)
		token := ""
		if c.co != nil {
			tok, peer, err := c.claim(ctx, ms, after)
			if peer != nil {
				c.adopt(ms, peer)
				return fetched{s: peer, peer: true}, nil
			}
			if err != nil {
				ms.stats.fetch(outcome(err)).Add(1)
				ms.failed(err, c.cfg.Now())
				return nil, err
			}
			token = tok
		}
		stopKeeping := c.keep(ms, token)
		s, err := ms.upstream.Fetch(ctx)
		if err == nil && s.Market() != ms.name {
			err = fmt.Errorf("upstream for %s returned a %s snapshot", ms.name, s.Market())
		}
		if err == nil {
			err = c.checkShrink(ms, s)
		}
		if err != nil {
			stopKeeping()
			ms.stats.fetch(outcome(err)).Add(1)
			ms.failed(err, c.cfg.Now())
			c.release(ms, token, err)
			return nil, err
		}
		ms.stats.fetch(outcomeOK).Add(1)
		ms.succeeded()
		s.Gzip() // compressed once, when the snapshot is made, not per request
		c.l1.Set(s, c.cfg.TTL-s.Age(c.cfg.Now()))
		c.remember(ms, s) // before the L2 write: the watcher then knows its announcement as this process's own
		c.store(ctx, s)
		stopKeeping()
		c.save(ms, s)
		c.release(ms, token, nil) // after the store: whoever waits finds it in L2
		return fetched{s: s}, nil
	})
	if err != nil {
		return fetched{}, err
	}
	return v.(fetched), nil
}

// store writes a fresh snapshot to L2 (the caller has put it in L1). An L2
// failure is logged by l2 and otherwise ignored: L1 and memory still serve it. The write has l2's own
// budget, not what a slow fetch left of FetchTimeout.
func (c *Cache) store(ctx context.Context, s *exchangeinfo.Snapshot) {
	if c.l2 != nil {
		_ = c.l2.Put(context.WithoutCancel(ctx), envelope(s), c.cfg.TTL)
	}
}

// fallback serves the newest valid snapshot known, in memory or (when
// readL2 is set: the caller has not just read it) in L2's last_good, when
// the upstream failed with cause.
func (c *Cache) fallback(ctx context.Context, ms *market, cause error, readL2 bool) (Result, error) {
	best := ms.lastGood.Load()
	if c.l2 != nil && readL2 {
		// A fetch that ran out of time leaves ctx done: the read has l2's own
		// budget (LastGoodTimeout), whatever the fetch left.
		if s := c.readL2(context.WithoutCancel(ctx), ms, c.l2.LastGood, l2.LastGoodKey(string(ms.name))); s != nil && (best == nil || s.FetchedAt().After(best.FetchedAt())) {
			best = s
			c.remember(ms, s)
		}
	}
	if best == nil || !c.servable(best) {
		ms.stats.unavailable.Add(1)
		return Result{}, &UnavailableError{Market: ms.name, Cause: cause, RetryAfter: ms.retryAfter(c.cfg.Now())}
	}
	if c.fresh(best) { // e.g. loaded from disk or L2 at start: the in-process tier has it now
		c.l1.Set(best, c.cfg.TTL-best.Age(c.cfg.Now()))
		ms.stats.l1Hits.Add(1)
		return Result{Snapshot: best, Source: HitL1}, nil
	}
	ms.stats.served(cause)
	why := reason(cause)
	c.log.Warn("serving stale snapshot", "market", ms.name, "age", best.Age(c.cfg.Now()).Round(time.Second).String(), "reason", why, "err", cause)
	return Result{Snapshot: best, Source: Stale, Reason: why}, nil
}

// readL2 reads and validates a snapshot envelope; anything unusable is a miss.
func (c *Cache) readL2(ctx context.Context, ms *market, read func(context.Context, string) (l2.Envelope, error), key string) *exchangeinfo.Snapshot {
	s, _ := c.readL2Answered(ctx, ms, read, key)
	return s
}

// readL2Answered is readL2, also telling whether the read settled what L2
// holds: true for a valid snapshot, an absent key or an envelope holding no
// valid exchangeInfo; false when it failed (Redis down or slow past the
// budget, or a value that was no envelope), which is worth another try.
func (c *Cache) readL2Answered(ctx context.Context, ms *market, read func(context.Context, string) (l2.Envelope, error), key string) (*exchangeinfo.Snapshot, bool) {
	e, err := read(ctx, string(ms.name))
	if err != nil {
		if err == l2.ErrMiss {
			return nil, true
		}
		ms.stats.l2Errors.Add(1) // unreadable or corrupt; l2 logged it
		return nil, false
	}
	// The snapshot memory already holds needs no second parse (megabytes).
	if old := ms.lastGood.Load(); old != nil && e.FetchedAt.Equal(old.FetchedAt()) && e.ETag == old.ETag() {
		return old, true
	}
	s, err := exchangeinfo.Parse(ms.name, e.ExchangeInfo, e.FetchedAt)
	if err != nil {
		ms.stats.l2Errors.Add(1)
		c.log.Warn("ignoring invalid snapshot in redis", "market", ms.name, "tier", "l2", "key", key, "err", err)
		return nil, true
	}
	if e.BodyGzip != nil {
		s.UseGzip(e.BodyGzip) // a gzip L2 value carries the body's gzip: no compressing
	}
	return s, true
}

// Refresh fetches the market from Binance now (joining a fetch already under
// way) and updates every tier.
func (c *Cache) Refresh(ctx context.Context, m exchangeinfo.Market) (*exchangeinfo.Snapshot, error) {
	ms, ok := c.markets[m]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMarket, string(m))
	}
	fctx, cancel := context.WithTimeout(ctx, c.cfg.FetchTimeout)
	defer cancel()
	f, err := c.fetch(fctx, ms, c.cfg.Now())
	return f.s, err
}

// refresher keeps one market warm until ctx ends. With a Coordinator its
// ticks fall at the start of each refresh period (see epoch), the same
// moments in every process.
func (c *Cache) refresher(ctx context.Context, ms *market) {
	defer c.wg.Done()
	c.warm(ctx, ms)
	t := time.NewTimer(c.untilTick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(c.untilTick())
		c.seed(ctx, ms)
		if _, waiting := ms.backoff(c.cfg.Now()); waiting {
			continue
		}
		var err error
		if c.co != nil {
			err = c.refreshShared(ctx, ms)
		} else {
			_, err = c.Refresh(ctx, ms.name)
		}
		if err != nil && ctx.Err() == nil {
			c.log.Warn("refresh failed", "market", ms.name, "err", err)
		}
	}
}

// untilTick is how long the refresher sleeps: RefreshInterval, or with a
// Coordinator until just after the next period starts (a few milliseconds
// of jitter, so that Redis is not asked by every process in the same
// millisecond).
func (c *Cache) untilTick() time.Duration {
	if c.co == nil {
		return c.cfg.RefreshInterval
	}
	now := c.cfg.Now()
	jitter := rand.N(min(c.cfg.RefreshInterval/100, 20*time.Millisecond) + 1)
	return c.epoch(now).Add(c.cfg.RefreshInterval).Sub(now) + jitter
}

// warm makes the market servable at start: a fresh snapshot in L2 is only
// remembered (the first request promotes it to L1); else Binance is asked.
func (c *Cache) warm(ctx context.Context, ms *market) {
	if s := ms.lastGood.Load(); s != nil && c.fresh(s) {
		return // a request (or the disk copy) got there first
	}
	if c.l2 != nil {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.FetchTimeout)
		s := c.readL2(rctx, ms, c.l2.Current, l2.CurrentKey(string(ms.name)))
		if s == nil {
			s = c.readL2(rctx, ms, c.l2.LastGood, l2.LastGoodKey(string(ms.name)))
		}
		cancel()
		if s != nil {
			c.remember(ms, s)
			if c.fresh(s) {
				return
			}
		}
	}
	// Any snapshot newer than what memory holds will do, another process's
	// included (it may have stored one since L2 was read above).
	var after time.Time
	if old := ms.lastGood.Load(); old != nil {
		after = old.FetchedAt()
	}
	fctx, cancel := context.WithTimeout(ctx, c.lease+c.cfg.FetchTimeout)
	defer cancel()
	if _, err := c.fetch(fctx, ms, after); err != nil && ctx.Err() == nil {
		c.log.Warn("warm-up fetch failed", "market", ms.name, "err", err)
	}
}

// checkShrink rejects an answer that lost more than MaxSymbolLoss of the last
// good snapshot's symbols, unless the same answer has kept coming for at
// least a TTL and three times in a row: then the market really shrank.
func (c *Cache) checkShrink(ms *market, s *exchangeinfo.Snapshot) error {
	old := ms.lastGood.Load()
	if old == nil || c.cfg.MaxSymbolLoss < 0 || float64(s.Len()) >= float64(old.Len())*(1-c.cfg.MaxSymbolLoss) {
		ms.mu.Lock()
		ms.suspect = suspect{}
		ms.mu.Unlock()
		return nil
	}
	now := c.cfg.Now()
	ms.mu.Lock()
	if ms.suspect.etag != s.ETag() {
		ms.suspect = suspect{etag: s.ETag(), first: now}
	}
	ms.suspect.count++
	sp := ms.suspect
	ms.mu.Unlock()
	if sp.count >= 3 && now.Sub(sp.first) >= c.cfg.TTL {
		c.log.Warn("accepting an upstream answer with far fewer symbols: it kept coming",
			"market", ms.name, "symbols", s.Len(), "last_good_symbols", old.Len(), "times", sp.count)
		return nil
	}
	err := &ShrinkError{Market: ms.name, Had: old.Len(), Got: s.Len()}
	c.log.Error("rejected an upstream answer that lost most symbols; still serving the last good one",
		"market", ms.name, "symbols", s.Len(), "last_good_symbols", old.Len(), "times", sp.count)
	return err
}

// save writes s to the disk copy when it is newer than what was saved.
func (c *Cache) save(ms *market, s *exchangeinfo.Snapshot) {
	if c.cfg.Disk == nil {
		return
	}
	ms.mu.Lock()
	newer := s.FetchedAt().After(ms.saved)
	if newer {
		ms.saved = s.FetchedAt()
	}
	ms.mu.Unlock()
	if !newer {
		return
	}
	if err := c.cfg.Disk.Save(s); err != nil {
		c.log.Warn("saving the disk copy failed", "market", ms.name, "tier", "disk", "err", err)
	}
}

// seed puts the memory's last good snapshot back into Redis when Redis has
// none (it restarted empty, say), so that other processes have a fallback
// before the next successful fetch.
func (c *Cache) seed(ctx context.Context, ms *market) {
	s := ms.lastGood.Load()
	if c.l2 == nil || s == nil || !c.servable(s) {
		return
	}
	if wrote, err := c.l2.SeedLastGood(ctx, envelope(s)); err == nil && wrote {
		c.log.Info("restored last_good in redis from memory", "market", ms.name, "tier", "l2")
	}
}

// remember keeps s as the market's last good snapshot unless a newer one is
// already held.
func (c *Cache) remember(ms *market, s *exchangeinfo.Snapshot) {
	for {
		old := ms.lastGood.Load()
		if old != nil && !s.FetchedAt().After(old.FetchedAt()) {
			return
		}
		if ms.lastGood.CompareAndSwap(old, s) {
			return
		}
	}
}

func (c *Cache) fresh(s *exchangeinfo.Snapshot) bool { return s.Age(c.cfg.Now()) < c.cfg.TTL }

func (c *Cache) servable(s *exchangeinfo.Snapshot) bool {
	return c.cfg.StaleMax < 0 || s.Age(c.cfg.Now()) <= c.cfg.StaleMax
}

// failed records a failed fetch and sets the next time Binance may be asked:
// the later of an exponential backoff with jitter and the upstream's own
// Retry-After.
func (ms *market) failed(err error, now time.Time) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.failures++
	ms.lastErr = err
	d := minBackoff << min(ms.failures-1, 6)
	d = min(d, maxBackoff)
	d = d/2 + rand.N(d/2+1) // jitter: [d/2, d]
	until := now.Add(d)
	var be *fetch.BackoffError
	var se *fetch.StatusError
	switch {
	case errors.As(err, &be) && be.Until.After(until):
		until = be.Until
	case errors.As(err, &se) && se.RetryAfter > 0 && now.Add(se.RetryAfter).After(until):
		until = now.Add(se.RetryAfter)
	}
	if sb := (*SharedBackoffError)(nil); errors.As(err, &sb) {
		until = sb.Until // the deployment's, whatever this process's own count
	}
	ms.retryAt = until
}

func (ms *market) succeeded() {
	ms.mu.Lock()
	ms.failures, ms.retryAt, ms.lastErr = 0, time.Time{}, nil
	ms.mu.Unlock()
}

// backoff reports whether Binance must not be asked yet, and the error that
// caused the wait.
func (ms *market) backoff(now time.Time) (error, bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.lastErr, ms.lastErr != nil && now.Before(ms.retryAt)
}

func (ms *market) retryAfter(now time.Time) time.Duration {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return max(ms.retryAt.Sub(now), time.Second)
}

// reason turns a fetch error into the short text of a stale answer.
func reason(err error) string {
	var se *fetch.StatusError
	var be *fetch.BackoffError
	var sh *ShrinkError
	var sb *SharedBackoffError
	switch {
	case err == nil:
		return "upstream not asked"
	case errors.As(err, &sh):
		return fmt.Sprintf("upstream answer lost %d of %d symbols", sh.Had-sh.Got, sh.Had)
	case errors.As(err, &sb):
		return "another sidecar's fetch failed: " + sb.Reason
	case errors.As(err, &be):
		return fmt.Sprintf("rate limited until %s", be.Until.UTC().Format(time.RFC3339))
	case errors.As(err, &se) && se.RateLimited():
		return fmt.Sprintf("upstream %d, retry after %s", se.Code, se.RetryAfter)
	case errors.As(err, &se):
		return fmt.Sprintf("upstream %d", se.Code)
	case errors.Is(err, exchangeinfo.ErrInvalid):
		return "upstream answer invalid"
	case errors.Is(err, context.DeadlineExceeded):
		return "upstream timeout"
	}
	return "upstream unreachable"
}

func envelope(s *exchangeinfo.Snapshot) l2.Envelope {
	return l2.Envelope{
		Market:       string(s.Market()),
		FetchedAt:    s.FetchedAt().UTC(),
		ServerTime:   s.ServerTime().UnixMilli(),
		ETag:         s.ETag(),
		ExchangeInfo: s.Body(),
		BodyGzip:     s.Gzip(), // made when the snapshot was; a gzip L2 stores it as it is
	}
}
