package symcache_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// world is one test's surroundings, every part real but Binance: a fake
// Binance replaying testdata/binance (it notes when each request came),
// maybe a real redis-server (maybe behind a Proxy), a clock, and the logs.
// Each process is one more sidecar of a deployment over them: its own L1,
// Gate and upstream clients, the same Redis and Binance.
type world struct {
	t        testing.TB
	upstream *fetchtest.Upstream // nil in memory (inMemory)
	redis    *l2test.Server      // nil: no Redis
	proxy    *l2test.Proxy       // nil: processes reach redis directly
	rdb      *redis.Client       // straight to redis, to look at what it holds
	l2       l2.Config           // of each process's L2: Client (through proxy if any) and Logger set
	clock    *testutil.Clock
	logs     *testutil.LogBuffer
	log      *slog.Logger
	tr       http.RoundTripper // in memory: the processes' transport to Binance

	mu    sync.Mutex
	times map[string][]time.Time // Binance's requests by path
}

// A worldOption changes the world newWorld builds.
type worldOption func(*worldSpec)

type worldSpec struct {
	redis    bool
	l2       l2.Config
	proxied  bool
	standing bool
	tr       http.RoundTripper
}

// withRedis starts a redis-server; each process's L2 has cfg (its Client
// and Logger filled in).
func withRedis(cfg l2.Config) worldOption {
	return func(s *worldSpec) { s.redis, s.l2 = true, cfg }
}

// throughProxy puts an l2test.Proxy between the processes and Redis, with
// go-redis' own socket timeouts off: l2's budget is the only bound.
func throughProxy() worldOption { return func(s *worldSpec) { s.proxied = true } }

// standingClock makes the clock stand still unless advanced, so that
// backoff windows do not melt on a slow machine. Otherwise it runs with the
// real one, plus what the test advances.
func standingClock() worldOption { return func(s *worldSpec) { s.standing = true } }

// inMemory has processes reach Binance through tr instead of a fake Binance
// on loopback: for tests in a synctest bubble.
func inMemory(tr http.RoundTripper) worldOption { return func(s *worldSpec) { s.tr = tr } }

// relaxed is the L2 config of tests whose fault is not slowness: JSON (the
// default), with a read budget well above the 50ms default, since a GET of
// the 3.7 MB spot value takes up to 20ms under -race on an idle machine,
// and more on a busy one.
var relaxed = l2.Config{Timeout: time.Second}

func newWorld(t testing.TB, opts ...worldOption) *world {
	t.Helper()
	var spec worldSpec
	for _, o := range opts {
		o(&spec)
	}
	w := &world{t: t, clock: new(testutil.Clock), logs: new(testutil.LogBuffer), tr: spec.tr, times: map[string][]time.Time{}}
	w.log = slog.New(slog.NewJSONHandler(w.logs, nil))
	if spec.standing {
		w.clock = testutil.NewClock(time.Now())
	}
	if spec.tr == nil {
		w.upstream = w.startBinance()
	}
	if spec.redis {
		w.redis = l2test.Start(t)
		// The processes' client is not the one that looks: go-redis answers
		// a pool's calls with its last dial error for a while after dials
		// failed, and the processes' background reads fail while Redis is
		// down.
		w.rdb = w.redis.Client(t)
		w.l2 = spec.l2
		w.l2.Client, w.l2.Logger = w.redis.Client(t), w.log
	}
	if spec.proxied {
		w.proxy = w.redis.Proxy(t)
		rdb := redis.NewClient(&redis.Options{Addr: w.proxy.Addr(), ContextTimeoutEnabled: true, ReadTimeout: -1, WriteTimeout: -1})
		t.Cleanup(func() { rdb.Close() })
		w.l2.Client = rdb
	}
	return w
}

// startBinance serves the recorded answers on loopback, noting when each
// request came.
func (w *world) startBinance() *fetchtest.Upstream {
	h, err := fetchtest.LoadDir(fixtures.Path(w.t, "binance"))
	if err != nil {
		w.t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.times[r.URL.Path] = append(w.times[r.URL.Path], time.Now())
		w.mu.Unlock()
		h.ServeHTTP(rw, r)
	}))
	w.t.Cleanup(ts.Close)
	return &fetchtest.Upstream{Server: ts, Handler: h}
}

// requests returns when Binance was asked for market m.
func (w *world) requests(m exchangeinfo.Market) []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Time(nil), w.times[m.Path()]...)
}

// A processOption changes the process w.process starts.
type processOption func(*processSpec)

type processSpec struct {
	markets []exchangeinfo.Market
	baseURL string
	client  *http.Client
	timeout time.Duration
	alone   bool
}

// markets serves these markets instead of spot and USD-M.
func markets(ms ...exchangeinfo.Market) processOption {
	return func(s *processSpec) { s.markets = ms }
}

// upstreamAt asks Binance at url instead of the world's fake Binance.
func upstreamAt(url string) processOption { return func(s *processSpec) { s.baseURL = url } }

// upstreamClient asks Binance with c.
func upstreamClient(c *http.Client) processOption { return func(s *processSpec) { s.client = c } }

// fetchTimeout bounds each upstream request by d, and the fetch too unless
// the Config says otherwise.
func fetchTimeout(d time.Duration) processOption { return func(s *processSpec) { s.timeout = d } }

// alone leaves the process without a Coordinator: for tests that move the
// clock, since the refresh lock's lease and the backoff it carries run on
// Redis' own clock.
func alone() processOption { return func(s *processSpec) { s.alone = true } }

// process starts one more process of the world's deployment, closed when
// the test ends. It serves spot and USD-M unless told otherwise, with its
// own L1 and Gate (cfg.Gate if set), and the world's Redis (if any) as L2
// and Coordinator, with which it shares its Gate's bans.
// Zero fields of cfg get no background refresh, the world's logger and clock.
func (w *world) process(cfg symcache.Config, opts ...processOption) *symcache.Cache {
	w.t.Helper()
	spec := processSpec{markets: []exchangeinfo.Market{exchangeinfo.Spot, exchangeinfo.USDM}}
	for _, o := range opts {
		o(&spec)
	}
	switch {
	case spec.baseURL != "":
	case w.upstream != nil:
		spec.baseURL = w.upstream.URL
	default:
		spec.baseURL, spec.client = "http://binance.test", &http.Client{Transport: w.tr}
	}
	gate := cfg.Gate
	if gate == nil {
		gate = fetch.NewGate() // per process, as in separate sidecars
	}
	cfg.Upstreams = map[exchangeinfo.Market]symcache.Upstream{}
	for _, m := range spec.markets {
		up, err := fetch.New(fetch.Config{Market: m, BaseURLs: []string{spec.baseURL}, HTTPClient: spec.client, Timeout: spec.timeout, Gate: gate, Logger: w.log, Now: w.clock.Now})
		if err != nil {
			w.t.Fatal(err)
		}
		cfg.Upstreams[m] = up
	}
	if w.redis != nil && cfg.L2 == nil {
		store := l2.New(w.l2)
		cfg.L2 = store
		if !spec.alone {
			cfg.Coordinator, cfg.Gate = store, gate
		}
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = -1
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = spec.timeout
	}
	if cfg.Logger == nil {
		cfg.Logger = w.log
	}
	if cfg.Now == nil {
		cfg.Now = w.clock.Now
	}
	c, err := symcache.New(cfg)
	if err != nil {
		w.t.Fatalf("symcache.New = %v", err)
	}
	w.t.Cleanup(func() { c.Close() })
	return c
}

// restartRedis restarts redis-server empty on the same port, and waits until
// the processes' client reaches it again: after failed dials, go-redis
// answers with the last dial error until its probe, once a second, gets
// through.
func (w *world) restartRedis() {
	w.t.Helper()
	w.redis.Restart(w.t)
	for deadline := time.Now().Add(5 * time.Second); w.l2.Client.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			w.t.Fatal("the processes' Redis client did not reconnect within 5s of the restart")
		}
	}
}

// store returns another process's view of the world's Redis: an l2.Store
// straight to redis-server.
func (w *world) store() *l2.Store {
	cfg := w.l2
	cfg.Client = w.rdb
	return l2.New(cfg)
}

// raw returns what Redis holds at key.
func (w *world) raw(key string) []byte {
	w.t.Helper()
	b, err := w.rdb.Get(context.Background(), key).Bytes()
	if err != nil {
		w.t.Fatalf("redis GET %s: %v", key, err)
	}
	return b
}

// exists counts the keys Redis holds.
func (w *world) exists(keys ...string) int64 {
	w.t.Helper()
	n, err := w.rdb.Exists(context.Background(), keys...).Result()
	if err != nil {
		w.t.Fatalf("redis EXISTS %v: %v", keys, err)
	}
	return n
}

func discard() *slog.Logger                  { return slog.New(slog.DiscardHandler) }
func spotFixture(t testing.TB) []byte        { return fixtures.Read(t, "binance/spot_exchangeinfo.json") }
func usdmFixture(t testing.TB) []byte        { return fixtures.Read(t, "binance/usdm_exchangeinfo.json") }
func spotRequests(u *fetchtest.Upstream) int { return u.Requests(exchangeinfo.Spot.Path()) }

// get calls c.Get and fails the test unless it answers from want.
func get(t testing.TB, c *symcache.Cache, m exchangeinfo.Market, want symcache.Source) symcache.Result {
	t.Helper()
	r, err := c.Get(context.Background(), m)
	if err != nil {
		t.Fatalf("Get(%s) = %v, want %v", m, err, want)
	}
	if r.Source != want {
		t.Fatalf("Get(%s).Source = %v, want %v", m, r.Source, want)
	}
	return r
}
