package symcache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/l2"
)

// The tiers a Cache consumes, each with exactly the methods it calls.

// Memory is the in-process tier, as *l1.Cache implements it.
type Memory interface {
	Get(m exchangeinfo.Market) (*exchangeinfo.Snapshot, bool)
	// Set stores s for ttl and reports whether the next Get sees it.
	Set(s *exchangeinfo.Snapshot, ttl time.Duration) bool
	Del(m exchangeinfo.Market)
}

// Store is the shared tier, as *l2.Store implements it.
type Store interface {
	Current(ctx context.Context, market string) (l2.Envelope, error)
	LastGood(ctx context.Context, market string) (l2.Envelope, error)
	Put(ctx context.Context, e l2.Envelope, ttl time.Duration) error
	SeedLastGood(ctx context.Context, e l2.Envelope) (bool, error)
	DeleteCurrent(ctx context.Context, market string) error
}

// Disk is an on-disk last good copy per market, as *disk.Store implements it.
type Disk interface {
	Load(m exchangeinfo.Market) (*exchangeinfo.Snapshot, error)
	Save(s *exchangeinfo.Snapshot) error
}

// Upstream fetches and validates one market's snapshot, as *fetch.Client does.
type Upstream interface {
	Fetch(ctx context.Context) (*exchangeinfo.Snapshot, error)
	// Unblock lifts any wait the upstream keeps itself (a host blocked by a
	// 429 or 418) and reports whether there was one.
	Unblock() bool
}

// shared is what every market of a Cache has in common: the tiers, the
// settings, and the Cache's lifetime.
type shared struct {
	cfg  Config          // defaults filled in
	l1   Memory          // never nil
	l2   Store           // nil: no L2
	co   Coordinator     // nil: this process alone
	log  *slog.Logger    // never nil
	life context.Context // ends when the Cache is closed
}

func (sh *shared) now() time.Time { return sh.cfg.Now() }

// MaxSkew is how far ahead of this process's clock a snapshot, an L2
// envelope, a meta key or an announcement may be dated (another host's clock
// may run ahead): l2's bound, one minute. Anything dated later is invalid
// everywhere: it would be served as fresh for as long as it is in the future.
const MaxSkew = l2.MaxSkew

// future reports whether t is too far ahead of now to be believed.
func (sh *shared) future(t time.Time) bool { return t.After(sh.now().Add(MaxSkew)) }

func (sh *shared) fresh(s *exchangeinfo.Snapshot) bool { return s.Age(sh.now()) < sh.cfg.TTL }

func (sh *shared) servable(s *exchangeinfo.Snapshot) bool {
	return sh.cfg.StaleMax < 0 || s.Age(sh.now()) <= sh.cfg.StaleMax
}

// The moves of a snapshot between tiers, named after the tier they touch.

// keepLastGood makes s the market's last good snapshot in memory, unless a
// newer one is held already (or s is dated in the future).
func (m *market) keepLastGood(s *exchangeinfo.Snapshot) {
	if m.sh.future(s.FetchedAt()) {
		return
	}
	for {
		old := m.lastGood.Load()
		if old != nil && !s.FetchedAt().After(old.FetchedAt()) {
			return
		}
		if m.lastGood.CompareAndSwap(old, s) {
			return
		}
	}
}

// newest is when memory's last good snapshot was fetched; zero when none.
func (m *market) newest() time.Time {
	if s := m.lastGood.Load(); s != nil {
		return s.FetchedAt()
	}
	return time.Time{}
}

// toL1 puts s in L1 for the rest of its TTL. When L1 does not keep it (a
// snapshot larger than L1's budget, say), Get serves it from memory while it
// is fresh, rather than asking Binance on every request.
func (m *market) toL1(s *exchangeinfo.Snapshot) {
	if m.sh.l1.Set(s, m.sh.cfg.TTL-s.Age(m.sh.now())) {
		for { // never back to an older one
			old := m.l1Hot.Load()
			if old != nil && old.FetchedAt().After(s.FetchedAt()) || m.l1Hot.CompareAndSwap(old, s) {
				return
			}
		}
	}
	if old := m.l1Refused.Swap(s); old != s {
		m.sh.log.Warn("L1 did not keep the snapshot (larger than its budget?); serving it from memory", "market", m.name, "tier", "l1", "bytes", s.Size())
	}
}

// takeFromL2 takes a snapshot read from L2 into this process: L1, memory and
// the disk copy.
func (m *market) takeFromL2(s *exchangeinfo.Snapshot) {
	go s.Gzip() // unless L2 gave it: compressed once, off the caller's path
	m.toL1(s)
	m.keepLastGood(s)
	m.disk.save(s)
}

// l2Key names the two snapshots of a market in L2.
type l2Key uint8

const (
	l2Current l2Key = iota
	l2LastGood
)

// readL2 reads and validates a snapshot from L2; anything unusable is nil.
// answered reports whether the read settled what L2 holds: true for a valid
// snapshot, an absent key or an envelope holding no valid exchangeInfo;
// false when it failed (Redis down or slow past its budget, or a value that
// was no envelope), which is worth another try.
func (m *market) readL2(ctx context.Context, k l2Key) (s *exchangeinfo.Snapshot, answered bool) {
	read, key := m.sh.l2.Current, l2.CurrentKey(string(m.name))
	if k == l2LastGood {
		read, key = m.sh.l2.LastGood, l2.LastGoodKey(string(m.name))
	}
	e, err := read(ctx, string(m.name))
	if err != nil {
		if err == l2.ErrMiss {
			return nil, true
		}
		m.stats.l2Errors.Add(1) // unreadable or corrupt; l2 logged it
		return nil, false
	}
	if m.sh.future(e.FetchedAt) {
		m.stats.l2Errors.Add(1)
		m.dated("l2", key, e.FetchedAt)
		return nil, true
	}
	// The snapshot memory already holds needs no second parse (megabytes).
	if old := m.lastGood.Load(); old != nil && e.FetchedAt.Equal(old.FetchedAt()) && e.ETag == old.ETag() {
		return old, true
	}
	s, err = exchangeinfo.Parse(m.name, e.ExchangeInfo, e.FetchedAt)
	if err != nil {
		m.stats.l2Errors.Add(1)
		m.sh.log.Warn("ignoring invalid snapshot in redis", "market", m.name, "tier", "l2", "key", key, "err", err)
		return nil, true
	}
	if e.BodyGzip != nil {
		s.UseGzip(e.BodyGzip) // a gzip L2 value carries the body's gzip: no compressing
	}
	return s, true
}

// restoreL2LastGood puts memory's last good snapshot back into L2 when L2
// has none (Redis restarted empty, say), so that other processes have a
// fallback before the next successful fetch.
func (m *market) restoreL2LastGood(ctx context.Context) {
	s := m.lastGood.Load()
	if m.sh.l2 == nil || s == nil || !m.sh.servable(s) {
		return
	}
	if wrote, err := m.sh.l2.SeedLastGood(ctx, envelope(s)); err == nil && wrote {
		m.sh.log.Info("restored last_good in redis from memory", "market", m.name, "tier", "l2")
	}
}

// l2Seen remembers which snapshot, as L2's meta key names it, this process
// last read from L2, so that a value found unusable once is not read (nor
// logged) again until another one is stored.
type l2Seen struct {
	mu   sync.Mutex
	meta l2.Meta
}

// first records meta as read and reports whether it was not already.
func (r *l2Seen) first(meta l2.Meta) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if meta == r.meta {
		return false
	}
	r.meta = meta
	return true
}

// diskCopy is a market's last good copy on disk: it saves a snapshot only
// when it is newer than the one saved.
type diskCopy struct {
	disk   Disk // nil: no disk copy
	market exchangeinfo.Market
	log    *slog.Logger
	errors *atomic.Uint64 // counts copies refused or that could not be saved

	mu    sync.Mutex
	saved time.Time // FetchedAt of the newest snapshot saved or loaded
}

// load returns the copy on disk, or nil when there is none or it is
// unusable: unreadable, invalid, or dated after latest.
func (d *diskCopy) load(latest time.Time) *exchangeinfo.Snapshot {
	if d.disk == nil {
		return nil
	}
	s, err := d.disk.Load(d.market)
	if err == nil && s.FetchedAt().After(latest) {
		err = fmt.Errorf("fetched at %s, in the future", s.FetchedAt().UTC().Format(time.RFC3339))
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			d.errors.Add(1)
			d.log.Warn("ignoring the disk copy", "market", d.market, "tier", "disk", "err", err)
		}
		return nil
	}
	d.mu.Lock()
	d.saved = s.FetchedAt()
	d.mu.Unlock()
	return s
}

// save writes s to disk when it is newer than what was saved.
func (d *diskCopy) save(s *exchangeinfo.Snapshot) {
	if d.disk == nil {
		return
	}
	d.mu.Lock()
	newer := s.FetchedAt().After(d.saved)
	if newer {
		d.saved = s.FetchedAt()
	}
	d.mu.Unlock()
	if !newer {
		return
	}
	if err := d.disk.Save(s); err != nil {
		d.errors.Add(1)
		d.log.Warn("saving the disk copy failed", "market", d.market, "tier", "disk", "err", err)
	}
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

// dated counts and logs a value from source dated too far in the future to
// be believed. It is logged once per value, however often it is met, and
// at most once a minute per market: forged announcements each carry a value
// of their own. The count says how many there were.
func (m *market) dated(source, key string, at time.Time) {
	m.stats.futureDated.Add(1)
	ms := at.UnixMilli() // the precision of a meta key: one value however it is read
	now := m.sh.now().UnixNano()
	last := m.lastFutureLog.Load()
	if old := m.lastFuture.Swap(ms); old != ms && (last == 0 || now-last >= int64(time.Minute)) && m.lastFutureLog.CompareAndSwap(last, now) {
		m.sh.log.Warn("ignoring a value dated in the future", "market", m.name, "tier", source, "key", key,
			"fetched_at", at.UTC().Format(time.RFC3339Nano), "max_skew", MaxSkew.String(), "future_dated_total", m.stats.futureDated.Load())
	}
}
