package symcache

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/l2"
)

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
	// Coordinator shares each market's upstream fetch with the other
	// processes using the same Redis (an *l2.Store is one; pass the same
	// value as L2): a refresh lock, refreshes aligned on the same moments,
	// announcements of new snapshots, and a backoff for the whole
	// deployment. If nil, this process fetches alone. It needs L2.
	Coordinator Coordinator
	// Gate is the fetch.Gate the Upstreams block Binance's hosts in after a
	// 429 or 418 (and a forward.Forwarder, if requests are forwarded too).
	// With a Coordinator, the Cache shares its blocks with every process on
	// the same Redis, both ways: they usually leave by one egress IP, which
	// Binance bans as a whole. If nil, blocks stay in each process.
	Gate *fetch.Gate
	// TTL is how long a snapshot stays fresh after it was fetched. If zero, 5m.
	TTL time.Duration
	// RefreshInterval is the background refresh period per market. If zero,
	// 1m; if negative, there is no background refresh (nor warm-up at start).
	RefreshInterval time.Duration
	// StaleMax is the oldest snapshot still served when Binance fails. If
	// zero, 24h; if negative, no limit.
	StaleMax time.Duration
	// FetchTimeout bounds one upstream fetch, all base URLs included, whoever
	// waits for it; with a Coordinator, waiting for another process's fetch
	// may add up to LockLease. A caller that gives up never ends a fetch
	// that others wait for. If zero, 30s.
	FetchTimeout time.Duration
	// LockLease is the lease of the refresh lock (see Coordinator): the
	// holder renews it every third of it while it fetches, and a process
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
	// MaxGrowth is how many times larger than the last good snapshot, in
	// symbols or in bytes, a new answer may be: a larger one is held back
	// like a shrunken one (see MaxSymbolLoss). If zero, 4; if negative, any
	// growth is accepted.
	MaxGrowth float64
	// MaxSymbolBytes is the largest symbol object a new answer may hold (the
	// largest Binance sends is a few KB): an answer with a larger one is held
	// back like a shrunken one. If zero, 64 KiB; if negative, no limit.
	MaxSymbolBytes int
	// ChangesMax and ChangesAge are how much of each market's change log
	// is kept (see Cache.Changes): an entry goes once it is neither among
	// the last ChangesMax nor younger than ChangesAge. If zero, 10,000 and
	// 30 days. A negative ChangesMax keeps no change log: no changes are
	// computed, and L2 is written with Put.
	ChangesMax int
	ChangesAge time.Duration
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

// withDefaults checks cfg and fills in the zero values as documented.
func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Upstreams) == 0 {
		return cfg, errors.New("symcache: no upstreams configured")
	}
	for m, up := range cfg.Upstreams {
		if !slices.Contains(exchangeinfo.Markets(), m) {
			return cfg, errors.New("symcache: upstreams include an unknown market")
		}
		if up == nil {
			return cfg, fmt.Errorf("symcache: nil upstream for %s", m)
		}
	}
	if cfg.Coordinator != nil && cfg.L2 == nil {
		return cfg, errors.New("symcache: a Coordinator needs an L2 Store")
	}
	if cfg.MaxSymbolLoss >= 1 {
		return cfg, errors.New("symcache: MaxSymbolLoss must be below 1")
	}
	if cfg.MaxGrowth > 0 && cfg.MaxGrowth <= 1 {
		return cfg, errors.New("symcache: MaxGrowth must be above 1")
	}
	if cfg.TTL < 0 || cfg.FetchTimeout < 0 || cfg.LockLease < 0 || cfg.ChangesAge < 0 {
		return cfg, errors.New("symcache: TTL, FetchTimeout, LockLease and ChangesAge must be positive")
	}
	cfg.ChangesMax = cmp.Or(cfg.ChangesMax, l2.DefaultChangesMax)
	cfg.ChangesAge = cmp.Or(cfg.ChangesAge, l2.DefaultChangesAge)
	cfg.TTL = cmp.Or(cfg.TTL, 5*time.Minute)
	cfg.RefreshInterval = cmp.Or(cfg.RefreshInterval, time.Minute)
	cfg.StaleMax = cmp.Or(cfg.StaleMax, 24*time.Hour)
	cfg.FetchTimeout = cmp.Or(cfg.FetchTimeout, 30*time.Second)
	cfg.MaxSymbolLoss = cmp.Or(cfg.MaxSymbolLoss, 0.5)
	cfg.MaxGrowth = cmp.Or(cfg.MaxGrowth, 4)
	cfg.MaxSymbolBytes = cmp.Or(cfg.MaxSymbolBytes, 64<<10)
	if cfg.LockLease == 0 {
		cfg.LockLease = cfg.FetchTimeout + time.Second
		if cfg.RefreshInterval > 0 {
			cfg.LockLease = min(cfg.LockLease, cfg.RefreshInterval*3/4)
		}
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}
