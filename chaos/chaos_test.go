package chaos

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/disk"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
	"github.com/symcache/symcache/rules"
)

// The run's shape. The timings are short so that a few seconds see every
// tier expire, refresh and back off, yet long enough for a 3.7 MB snapshot
// to be fetched and parsed under -race on a small machine.
const (
	defaultDuration = 8 * time.Second // plain `go test ./...`; make chaos sets 60s
	sidecars        = 3
	clients         = 16
	diskSlot        = 0 // this sidecar keeps a disk copy (SYMCACHE_STATE_DIR); the others do not
	redisMaxDown    = 5 * time.Second

	refreshInterval = 500 * time.Millisecond
	ttl             = 2 * time.Second
	attemptTimeout  = 1500 * time.Millisecond // fetch.Config.Timeout: one upstream attempt
	fetchTimeout    = 2 * time.Second         // symcache.Config.FetchTimeout: one shared fetch
	slowDelay       = 3 * time.Second         // "slow" upstream: later than both timeouts
	retryAfter      = 2 * time.Second         // sent with every 429 and 418

	// lockLease is symcache.Config.LockLease: the default for these
	// settings (¾ of the refresh interval), set so that the lock faults
	// know it.
	lockLease = refreshInterval * 3 / 4

	warmUpLimit    = 30 * time.Second // the first successful fetch of every sidecar
	requestTimeout = 30 * time.Second // a client request; far above any legitimate wait

	window = 50 * time.Millisecond // stampede window
	// gateSlack forgives a request whose Fetch passed the Gate just before a
	// concurrent fetch of the same sidecar received a 429 (the two are not
	// atomic), and the clock's granularity at the end of the block.
	gateSlack = 50 * time.Millisecond
	maxFailed = 40 // failures reported one by one; the rest are counted
)

func chaosDuration(t *testing.T) time.Duration {
	v := os.Getenv("SYMCACHE_CHAOS_DURATION")
	if v == "" {
		return defaultDuration
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("SYMCACHE_CHAOS_DURATION=%q: want a positive Go duration such as 60s", v)
	}
	return d
}

func chaosSeed(t *testing.T) uint64 {
	v := os.Getenv("SYMCACHE_CHAOS_SEED")
	if v == "" {
		return uint64(time.Now().UnixNano())
	}
	s, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("SYMCACHE_CHAOS_SEED=%q: want an unsigned integer", v)
	}
	return s
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run skipped with -short")
	}
	d := chaosDuration(t)
	seed := chaosSeed(t)
	t.Logf("chaos: duration %v, seed %d (replay the fault script with SYMCACHE_CHAOS_SEED=%d)", d, seed, seed)
	redis.SetLogger(quietRedis{}) // go-redis' own dial errors while Redis is down

	w := newWorld(t, seed)
	defer func() { // also after a t.Fatal
		w.report()
		t.Logf("fault script and findings (seed %d):\n%s", seed, w.events.lines(w.start, 1000))
		if t.Failed() {
			t.Logf("chaos: FAILED; replay the fault script with SYMCACHE_CHAOS_SEED=%d SYMCACHE_CHAOS_DURATION=%v", seed, d)
		}
	}()
	w.run(d)
	w.verify()
	w.verifyChangeLog("at the end")
}

// ---------------------------------------------------------------------------
// Valid snapshot versions and the answers they give.

// version is one valid exchangeInfo answer the fake Binance may serve.
type version struct {
	name string
	body []byte
	snap *exchangeinfo.Snapshot
}

// market is a served market, its valid versions, and what every request of
// the run may legitimately answer.
type market struct {
	idx      int
	m        exchangeinfo.Market
	versions []*version
	// symbols are in every version: requests for them are valid whatever
	// version a sidecar holds.
	symbols []string
	// queries maps a raw query of the Binance path to its answer on each
	// version (spot only; the futures paths take no parameters).
	queries map[string][][]byte
	rules   map[string][][]byte // symbol → json of rules.For, per version
	orders  map[string][][]byte // raw normalize query → json of Normalize, per version

	// poison is a valid exchangeInfo that is none of the versions (one
	// symbol HALT, same length): the body of the future-dated values the
	// script writes into Redis. An answer made from it is wrong data;
	// pQueries, pRules and pOrders are its answers, where it has one.
	poison   *version
	pQueries map[string][]byte
	pRules   map[string][]byte
	pOrders  map[string][]byte
	// grown and absurd are valid answers no sidecar may take: more than 4
	// times the largest version, and one with a symbol of 2 MiB.
	grown, absurd []byte
}

var serverTimeRE = regexp.MustCompile(`"serverTime"\s*:\s*(\d+)`)

// bump returns body with its serverTime moved by ms: a valid version with the
// same symbols, so that versions keep changing even if a shrink guard refuses
// the small snapshot after the large one.
func bump(t *testing.T, body []byte, ms int64) []byte {
	loc := serverTimeRE.FindSubmatchIndex(body)
	if loc == nil {
		t.Fatal("fixture without serverTime")
	}
	n, err := strconv.ParseInt(string(body[loc[2]:loc[3]]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), body[:loc[2]]...)
	out = strconv.AppendInt(out, n+ms, 10)
	return append(out, body[loc[3]:]...)
}

var (
	firstLimitRE = regexp.MustCompile(`"limit"\s*:\s*(\d+)`)
	firstTickRE  = regexp.MustCompile(`"tickSize"\s*:\s*"([0-9.]+)"`)
)

// edit returns body with its first rate limit one higher and its first
// tick size with one more digit: a version whose change log records a
// rate_limits and a filter change.
func edit(t *testing.T, body []byte) []byte {
	out := body
	for _, e := range []struct {
		re     *regexp.Regexp
		change func([]byte) []byte
	}{
		{firstLimitRE, func(v []byte) []byte {
			n, _ := strconv.Atoi(string(v))
			return strconv.AppendInt(nil, int64(n+1), 10)
		}},
		{firstTickRE, func(v []byte) []byte { return append(slices.Clone(v), '1') }},
	} {
		loc := e.re.FindSubmatchIndex(out)
		if loc == nil {
			t.Fatalf("fixture without %s", e.re)
		}
		out = slices.Concat(out[:loc[2]], e.change(out[loc[2]:loc[3]]), out[loc[3]:])
	}
	return out
}

func newMarket(t *testing.T, idx int, m exchangeinfo.Market, files ...string) *market {
	mk := &market{idx: idx, m: m, queries: map[string][][]byte{}, rules: map[string][][]byte{}, orders: map[string][][]byte{}}
	var bodies [][]byte
	var names []string
	for _, f := range files {
		bodies = append(bodies, fixtures.Read(t, "binance/"+f))
		names = append(names, f)
	}
	bodies = append(bodies, edit(t, bump(t, bodies[0], 1000)))
	names = append(names, files[0]+"+1s, edited")
	seen := map[int64]bool{}
	for i, b := range bodies {
		s, err := exchangeinfo.Parse(m, b, time.Now())
		if err != nil {
			t.Fatalf("fixture %s: %v", names[i], err)
		}
		if seen[s.ServerTime().UnixMilli()] {
			t.Fatalf("fixture %s: serverTime not unique among the versions", names[i])
		}
		seen[s.ServerTime().UnixMilli()] = true
		mk.versions = append(mk.versions, &version{name: names[i], body: b, snap: s})
	}
	// The symbols every version lists.
	for _, sym := range mk.versions[0].snap.Symbols() {
		inAll := true
		for _, v := range mk.versions[1:] {
			if _, ok := v.snap.Lookup(sym.Name); !ok {
				inAll = false
			}
		}
		if inAll {
			mk.symbols = append(mk.symbols, sym.Name)
		}
	}
	if len(mk.symbols) < 2 {
		t.Fatalf("%s: fewer than two symbols common to every version", m)
	}
	mk.makePoison(t)
	mk.makeOversized(t)
	for _, sym := range mk.symbols {
		for _, v := range mk.versions {
			s, _ := v.snap.Lookup(sym)
			r, err := rules.For(m, s)
			if err != nil {
				t.Fatalf("rules.For(%s, %s) on %s: %v", m, sym, v.name, err)
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			mk.rules[sym] = append(mk.rules[sym], b)
		}
	}
	return mk
}

// addQuery records what each version answers to a Binance-path query.
func (mk *market) addQuery(t *testing.T, raw string) {
	for _, v := range mk.versions {
		q, err := exchangeinfo.ParseQuery(mk.m, raw)
		if err != nil {
			t.Fatalf("ParseQuery(%q): %v", raw, err)
		}
		b, err := v.snap.Answer(q)
		if err != nil {
			t.Fatalf("%s: Answer(%q) on %s: %v", mk.m, raw, v.name, err)
		}
		mk.queries[raw] = append(mk.queries[raw], b)
	}
	q, _ := exchangeinfo.ParseQuery(mk.m, raw)
	if b, err := mk.poison.snap.Answer(q); err == nil {
		mk.pQueries[raw] = b
	}
}

// addOrder records what each version answers to a normalize query of sym.
func (mk *market) addOrder(t *testing.T, sym string, o rules.Order) string {
	raw := url.Values{"price": {o.Price}, "quantity": {o.Quantity}, "side": {string(o.Side)}}.Encode()
	key := sym + "?" + raw
	for _, v := range mk.versions {
		s, _ := v.snap.Lookup(sym)
		r, err := rules.For(mk.m, s)
		if err != nil {
			t.Fatal(err)
		}
		n, err := r.Normalize(o)
		if err != nil {
			t.Fatalf("%s %s: Normalize(%+v) on %s: %v", mk.m, sym, o, v.name, err)
		}
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		mk.orders[key] = append(mk.orders[key], b)
	}
	s, _ := mk.poison.snap.Lookup(sym)
	if r, err := rules.For(mk.m, s); err == nil {
		if n, err := r.Normalize(o); err == nil {
			mk.pOrders[key], _ = json.Marshal(n)
		}
	}
	return key
}

func (mk *market) byBody(b []byte) *version {
	for _, v := range mk.versions {
		if len(v.body) == len(b) && bytes.Equal(v.body, b) {
			return v
		}
	}
	return nil
}

func (mk *market) byServerTime(ms int64) *version {
	for _, v := range mk.versions {
		if v.snap.ServerTime().UnixMilli() == ms {
			return v
		}
	}
	return nil
}

func oneOf(b []byte, want [][]byte) bool {
	for _, w := range want {
		if len(w) == len(b) && bytes.Equal(w, b) {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// The fake Binance: fetchtest's Handler behind a recorder.

// arrival is one upstream request as the fake Binance saw it.
type arrival struct {
	at     time.Time // when it arrived
	done   time.Time // when the answer was written (or the client gave up)
	from   string    // the sidecar incarnation, from the base URL's path prefix
	path   string    // the market path
	status int       // 0 when nothing was written
}

// upstream is a fake Binance. Every sidecar incarnation has its own base URL
// path prefix (/s1g0, ...), so each request is attributed to its sender.
type upstream struct {
	h   *fetchtest.Handler
	srv *httptest.Server

	mu       sync.Mutex
	arrivals []arrival
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{h: fetchtest.NewHandler()}
	u.srv = httptest.NewServer(u)
	t.Cleanup(u.srv.Close)
	return u
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := arrival{at: time.Now()}
	rest := strings.TrimPrefix(r.URL.Path, "/")
	a.from, a.path, _ = strings.Cut(rest, "/")
	a.path = "/" + a.path
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = a.path, ""
	rec := &statusRecorder{ResponseWriter: w}
	u.h.ServeHTTP(rec, r2)
	a.done, a.status = time.Now(), rec.status
	u.mu.Lock()
	u.arrivals = append(u.arrivals, a)
	u.mu.Unlock()
}

func (u *upstream) snapshot() []arrival {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.arrivals)
}

// ---------------------------------------------------------------------------
// A sidecar's view of its own upstream requests.

// block is a Retry-After a sidecar received: from when the answer was read
// until its end.
type block struct {
	from, until time.Time
	status      int
	path        string
}

// probe is a sidecar's http.RoundTripper for Binance. It sees every request
// the sidecar sends, when it sends it, and every 429/418 it receives: the
// ground truth for "one request in flight" and "nothing during Retry-After".
type probe struct {
	base *http.Transport
	name string

	mu          sync.Mutex
	inflight    map[string]int
	maxInflight map[string]int
	blocks      []block
	sent        []sent
	violations  []string
}

// sent is one request a sidecar sent, and which of its code paths sent it.
type sent struct {
	at   time.Time
	path string
	via  string // "warm", "refresher", "load" (a Get) or "?"
}

// via names the Cache code path on the calling goroutine's stack. A fetch
// shared through singleflight runs on its first caller's goroutine (or, for
// a Get, on the goroutine DoChan started, which runs Cache.load).
func via() string {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	seen := map[string]bool{}
	for {
		f, more := frames.Next()
		if _, name, ok := strings.Cut(f.Function, ".(*Cache)."); ok {
			seen[name] = true
		}
		if !more {
			break
		}
	}
	for _, name := range []string{"warm", "refresher", "load", "Refresh"} { // outermost first
		if seen[name] {
			return name
		}
	}
	return "?"
}

func newProbe(name string) *probe {
	return &probe{
		name: name,
		base: &http.Transport{
			Proxy:               nil, // loopback only, whatever the environment says
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
		},
		inflight:    map[string]int{},
		maxInflight: map[string]int{},
	}
}

func marketPath(p string) string {
	for _, m := range exchangeinfo.Markets() {
		if strings.HasSuffix(p, m.Path()) {
			return m.Path()
		}
	}
	return p
}

func (p *probe) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	path := marketPath(req.URL.Path)
	caller := via()
	p.mu.Lock()
	p.sent = append(p.sent, sent{at: start, path: path, via: caller})
	for _, b := range p.blocks {
		// The Gate is per host: a 429 on one market's path blocks the other's too.
		if start.After(b.from.Add(gateSlack)) && start.Before(b.until) {
			p.violations = append(p.violations, fmt.Sprintf("%s sent GET %s %v after a %d on %s, %v before its Retry-After ended",
				p.name, path, start.Sub(b.from).Round(time.Millisecond), b.status, b.path, b.until.Sub(start).Round(time.Millisecond)))
		}
	}
	p.inflight[path]++
	p.maxInflight[path] = max(p.maxInflight[path], p.inflight[path])
	p.mu.Unlock()

	resp, err := p.base.RoundTrip(req)
	if err != nil {
		p.release(path)
		return nil, err
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusTeapot {
		now := time.Now()
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		p.mu.Lock()
		p.blocks = append(p.blocks, block{from: now, until: now.Add(time.Duration(secs) * time.Second), status: resp.StatusCode, path: path})
		p.mu.Unlock()
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { p.release(path) }}
	return resp, nil
}

func (p *probe) release(path string) {
	p.mu.Lock()
	p.inflight[path]--
	p.mu.Unlock()
}

// releaseBody ends a request's time in flight when its body is closed.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// ---------------------------------------------------------------------------
// Sidecars.

// incarnation is one life of a sidecar: a Cache, its HTTP server, its Redis
// client and its Binance clients, from start to Close.
type incarnation struct {
	slot, gen int
	name      string
	url       string
	cache     *symcache.Cache
	srv       *httptest.Server
	rdb       *redis.Client
	store     *l2.Store
	probe     *probe
	born      time.Time
	died      time.Time // set by close
	closing   atomic.Bool
	warm      [2]atomic.Bool // per market index: Ready once, so it can always serve
}

// isWarm reports whether the incarnation holds a servable snapshot of the
// market: from then on it must answer every request for it (StaleMax is 24h).
func (inc *incarnation) isWarm(mi int, m exchangeinfo.Market) bool {
	if inc.warm[mi].Load() {
		return true
	}
	states, _ := inc.cache.Ready()
	for _, st := range states {
		if st.Market == m && st.Ready {
			inc.warm[mi].Store(true)
			return true
		}
	}
	return false
}

func (w *world) startSidecar(slot, gen int) *incarnation {
	t := w.t
	t.Helper()
	inc := &incarnation{slot: slot, gen: gen, name: fmt.Sprintf("s%dg%d", slot, gen), born: time.Now()}
	inc.probe = newProbe(inc.name)
	log := slog.New(w.logs).With("sidecar", inc.name)
	gate := fetch.NewGate() // one per sidecar, shared by its markets (same host)
	hc := &http.Client{Transport: inc.probe}
	ups := map[exchangeinfo.Market]symcache.Upstream{}
	for _, mk := range w.markets {
		c, err := fetch.New(fetch.Config{
			Market:     mk.m,
			BaseURLs:   []string{w.up.srv.URL + "/" + inc.name},
			HTTPClient: hc,
			Timeout:    attemptTimeout,
			Gate:       gate,
			Logger:     log,
			// The script's 418s ask for seconds, not the 2 minutes of
			// Binance's shortest ban: the run must see bans end.
			BanMin: time.Second,
		})
		if err != nil {
			t.Fatalf("fetch.New(%s): %v", mk.m, err)
		}
		ups[mk.m] = c
	}
	inc.rdb = redis.NewClient(&redis.Options{Addr: w.redis.Addr(), ContextTimeoutEnabled: true})
	enc := l2.JSON
	if slot%2 == 1 {
		enc = l2.Gzip // every sidecar must read what any other wrote
	}
	store := l2.New(l2.Config{Client: inc.rdb, Encoding: enc, Logger: log})
	inc.store = store
	cfg := symcache.Config{
		Upstreams:       ups,
		L2:              store,
		Coordinator:     coordProbe{Store: store, name: inc.name, log: &w.locks},
		TTL:             ttl,
		RefreshInterval: refreshInterval,
		FetchTimeout:    fetchTimeout,
		LockLease:       lockLease,
		Logger:          log,
	}
	var onDisk []*market // markets with a disk copy at start
	if slot == diskSlot {
		d, err := disk.New(w.stateDir)
		if err != nil {
			t.Fatalf("disk.New: %v", err)
		}
		cfg.Disk = d
		for _, mk := range w.markets {
			if _, err := os.Stat(filepath.Join(w.stateDir, string(mk.m)+".json")); err == nil {
				onDisk = append(onDisk, mk)
			}
		}
	}
	c, err := symcache.New(cfg)
	if err != nil {
		t.Fatalf("symcache.New: %v", err)
	}
	inc.cache = c
	for _, mk := range onDisk {
		if !inc.isWarm(mk.idx, mk.m) {
			w.fail("%s started with a disk copy of %s, yet cannot serve it", inc.name, mk.m)
		}
	}
	e, err := httpapi.New(httpapi.Config{Cache: c, Logger: log})
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	inc.srv = httptest.NewServer(e)
	inc.url = inc.srv.URL
	w.mu.Lock()
	w.incs = append(w.incs, inc)
	w.mu.Unlock()
	w.slots[slot].Store(inc)
	return inc
}

// close stops the incarnation as a process would stop: no more connections,
// in-flight requests finished, then the Cache, Redis and Binance clients.
func (inc *incarnation) close() {
	if inc.closing.Swap(true) {
		return
	}
	inc.srv.Close()
	inc.cache.Close()
	inc.rdb.Close()
	inc.probe.base.CloseIdleConnections()
	inc.died = time.Now()
}

// closeSidecar closes inc; for the sidecar with a disk copy, it notes a
// market it could serve but left no copy of (the next start may have
// nothing to serve if Redis is empty and Binance fails).
func (w *world) closeSidecar(inc *incarnation) {
	inc.close()
	if inc.slot != diskSlot {
		return
	}
	states, _ := inc.cache.Ready()
	for _, st := range states {
		if _, err := os.Stat(filepath.Join(w.stateDir, string(st.Market)+".json")); st.Ready && err != nil {
			w.stats.noDisk.add(fmt.Sprintf("%s %s", inc.name, st.Market))
			w.events.add("(finding) %s held a servable %s snapshot but left no disk copy", inc.name, st.Market)
		}
	}
}

// ---------------------------------------------------------------------------
// The world.

type world struct {
	t          *testing.T
	seed       uint64
	rnd        *rand.Rand // the fault script's, seeded
	start      time.Time
	redis      *l2test.Server
	redisUp    atomic.Bool
	redisLives atomic.Int64 // Redis stops so far (counted once it is dead): each restart comes back empty
	// lastGoodSince is, per market, since when (UnixNano) the checker has
	// seen a valid last_good in Redis without a gap; 0 when it has not.
	lastGoodSince [2]atomic.Int64
	checks        atomic.Int64 // rounds of the Redis checker
	checkSlowest  atomic.Int64 // its slowest round
	up            *upstream
	markets       []*market
	kinds         []kind
	logs          *logCounter
	events        eventLog
	slow          eventLog // answers that took over a second

	// The hostile faults (hostile_test.go). metaGen counts, per market, the
	// meta keys the script replaced: then the next write is compared with
	// nothing, in Redis and in the checker.
	metaGen   [2]atomic.Int64
	ctl       *redis.Client  // the script's own Redis client
	inj       injected       // what the script wrote into Redis
	oversizeN int            // oversized answers so far
	oversizes []span         // when they were sent
	lockBusy  [2]atomic.Bool // a TTL-less lock of the market is being watched
	locks     lockLog        // every sidecar's Lock calls
	resume    durations      // how soon refreshing resumed after a TTL-less lock
	hostile   counter        // what the hostile faults did
	wrongData atomic.Int64   // answers or Redis values made from the poisoned version
	// upNow is each market's upstream answer, as the script last set it.
	upNow [2]struct {
		mode string
		r    fetchtest.Response
	}

	stateDir string // the disk copy of sidecar diskSlot, kept across its restarts

	slots [sidecars]atomic.Pointer[incarnation]
	mu    sync.Mutex
	incs  []*incarnation // every incarnation, in start order

	failures atomic.Int64
	stats    stats
	faults   counter
	l2stats  counter
}

func newWorld(t *testing.T, seed uint64) *world {
	w := &world{t: t, seed: seed, rnd: rand.New(rand.NewPCG(seed, 0x5eed)), logs: &logCounter{}, start: time.Now(), stateDir: t.TempDir()}
	w.stats.byKind = map[string]*kindStats{}
	w.logs.redisUp = w.redisUp.Load
	spot := newMarket(t, 0, exchangeinfo.Spot, "spot_testnet_exchangeinfo_2021-07-11.json", "spot_exchangeinfo.json")
	usdm := newMarket(t, 1, exchangeinfo.USDM, "usdm_exchangeinfo.json", "usdm_exchangeinfo_2024-02-12.json")
	w.markets = []*market{spot, usdm}
	w.kinds = w.requestKinds()

	w.redis = l2test.Start(t)
	w.redisUp.Store(true)
	w.ctl = redis.NewClient(&redis.Options{Addr: w.redis.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { w.ctl.Close() })
	w.up = newUpstream(t)
	for _, mk := range w.markets {
		w.setUpstream(mk, "healthy", 0)
	}
	for i := range sidecars {
		w.startSidecar(i, 0)
	}
	t.Cleanup(func() {
		for i := range w.slots {
			w.closeSidecar(w.slots[i].Load())
		}
	})
	return w
}

// run drives clients, the Redis checker and the fault script for d, then
// joins them all.
func (w *world) run(d time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // also when the script fails the test

	httpc := &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DisableCompression:  true, // gzip is asked for, and checked, explicitly
			MaxIdleConnsPerHost: clients,
			IdleConnTimeout:     10 * time.Second,
		},
	}
	defer httpc.CloseIdleConnections()
	for i := range clients {
		r := rand.New(rand.NewPCG(w.seed, uint64(i)+1))
		wg.Go(func() { w.client(ctx, httpc, r) })
	}
	wg.Go(func() { w.checkRedis(ctx) })

	// The script starts once every sidecar has made its first successful fetch.
	deadline := time.Now().Add(warmUpLimit)
	for !w.allWarm() {
		if time.Now().After(deadline) {
			w.t.Fatalf("sidecars not ready %v after start with a healthy upstream", warmUpLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.events.add("all sidecars warm after %v", time.Since(w.start).Round(time.Millisecond))
	end := time.Now().Add(d)
	w.script(ctx, &wg, end)
	cancel()
	wg.Wait()
	w.events.add("stop")
	for i := range w.slots { // so that what verify counts is final
		w.closeSidecar(w.slots[i].Load())
	}
}

func (w *world) allWarm() bool {
	for i := range w.slots {
		inc := w.slots[i].Load()
		for _, mk := range w.markets {
			if !inc.isWarm(mk.idx, mk.m) {
				return false
			}
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// The fault script.

// upstream modes, with their weights in the script.
var modes = []struct {
	name   string
	weight int
}{
	{"healthy", 8},
	{"5xx", 3},
	{"slow", 2},
	{"429", 2},
	{"418", 1},
	{"html", 1},
	{"truncated", 1},
	{"cut", 1},
	{"not-json", 1},
	{"no-symbols", 1},
	{"binance-error", 1},
}

func (w *world) pickMode() string {
	total := 0
	for _, m := range modes {
		total += m.weight
	}
	n := w.rnd.IntN(total)
	for _, m := range modes {
		if n < m.weight {
			return m.name
		}
		n -= m.weight
	}
	panic("unreachable")
}

// setUpstream makes mode the fake Binance's answer for mk; v picks the
// version for the modes that carry a valid body.
func (w *world) setUpstream(mk *market, mode string, v int) {
	good := mk.versions[v].body
	var r fetchtest.Response
	rateLimited := http.Header{"Retry-After": {strconv.Itoa(int(retryAfter / time.Second))}}
	switch mode {
	case "healthy":
		r = fetchtest.Response{Body: good, Gzip: true}
	case "5xx":
		codes := []int{500, 502, 503, 504}
		r = fetchtest.Response{Status: codes[w.rnd.IntN(len(codes))], Body: []byte(`<html><body><h1>Bad Gateway</h1></body></html>`),
			Header: http.Header{"Content-Type": {"text/html"}}}
	case "slow":
		r = fetchtest.Response{Body: good, Gzip: true, Delay: slowDelay}
	case "429":
		r = fetchtest.Response{Status: http.StatusTooManyRequests, Header: rateLimited,
			Body: []byte(`{"code":-1003,"msg":"Too many requests; current limit of IP is 6000 requests per minute."}`)}
	case "418":
		r = fetchtest.Response{Status: http.StatusTeapot, Header: rateLimited,
			Body: []byte(`{"code":-1003,"msg":"Way too many requests; IP banned."}`)}
	case "html":
		r = fetchtest.Response{Body: []byte("<!DOCTYPE html><html><body>Maintenance</body></html>"), Header: http.Header{"Content-Type": {"text/html"}}}
	case "truncated": // a 200 whose JSON stops early, with a matching Content-Length
		r = fetchtest.Response{Body: good[:len(good)/2]}
	case "cut": // the connection closes mid-body
		r = fetchtest.Response{Body: good, Truncate: len(good) / 3}
	case "not-json":
		r = fetchtest.Response{Body: []byte("Service Unavailable")}
	case "no-symbols":
		r = fetchtest.Response{Body: []byte(`{"timezone":"UTC","serverTime":1700000000000,"rateLimits":[],"exchangeFilters":[]}`)}
	case "binance-error":
		r = fetchtest.Response{Body: []byte(`{"code":-1000,"msg":"An unknown error occurred while processing the request."}`)}
	default:
		panic("unknown mode " + mode)
	}
	w.up.h.Set(mk.m.Path(), r)
	w.faults.add("upstream " + mode)
	if mode == "healthy" || mode == "slow" {
		mode += " (" + mk.versions[v].name + ")"
	}
	w.upNow[mk.idx].mode, w.upNow[mk.idx].r = mode, r
	w.events.add("upstream %s %s", mk.m, mode)
}

// actions are what the fault script may do at each step, with their
// weights: a 60 s run has some 45 steps.
var actions = []struct {
	name   string
	weight int
}{
	{"upstream", 6},      // one market's upstream mode
	{"upstream both", 2}, // both markets'
	{"redis", 2},         // stop Redis, or bring it back empty
	{"sidecar", 2},       // restart one sidecar
	{"future-dated", 2},  // a poisoned value dated ahead in Redis
	{"lock", 3},          // a refresh lock without a TTL
	{"oversized", 2},     // an upstream answer no sidecar may take, for less than a TTL
	{"flood", 1},         // forged announcements for a second
}

func (w *world) pickAction() string {
	total := 0
	for _, a := range actions {
		total += a.weight
	}
	n := w.rnd.IntN(total)
	for _, a := range actions {
		if n < a.weight {
			return a.name
		}
		n -= a.weight
	}
	panic("unreachable")
}

// script changes one thing every 0.5–2 s until end. The watches of
// TTL-less locks it starts run in wg until ctx ends.
func (w *world) script(ctx context.Context, wg *sync.WaitGroup, end time.Time) {
	redisDownSince := time.Time{}
	for {
		pause := 500*time.Millisecond + time.Duration(w.rnd.Int64N(int64(1500*time.Millisecond)))
		if time.Until(end) < pause {
			time.Sleep(max(time.Until(end), 0))
			return
		}
		time.Sleep(pause)
		action := w.pickAction()
		if !w.redisUp.Load() && time.Since(redisDownSince) > redisMaxDown {
			action = "redis" // bring Redis back: a long outage only makes new sidecars wait
		}
		switch action {
		case "upstream", "upstream both":
			targets := w.markets
			if action == "upstream" {
				targets = []*market{w.markets[w.rnd.IntN(len(w.markets))]}
			}
			mode := w.pickMode()
			for _, mk := range targets {
				w.setUpstream(mk, mode, w.rnd.IntN(len(mk.versions)))
			}
		case "future-dated":
			w.futureDated()
		case "lock":
			w.ttlLessLock(ctx, wg)
		case "oversized":
			w.oversized()
		case "flood":
			w.flood()
		case "redis": // kill it, or bring it back (empty)
			if w.redisUp.Load() {
				w.redisUp.Store(false)
				for i := range w.lastGoodSince {
					w.lastGoodSince[i].Store(0)
				}
				w.verifyChangeLog("before a redis stop") // its log dies with it
				w.redis.Stop()
				// Once it is dead: it comes back empty (see the checker).
				w.redisLives.Add(1)
				redisDownSince = time.Now()
				w.faults.add("redis stop")
				w.events.add("redis stop")
			} else {
				w.redis.Restart(w.t)
				w.redisUp.Store(true)
				w.faults.add("redis restart")
				w.events.add("redis restart (empty) after %v down", time.Since(redisDownSince).Round(time.Millisecond))
			}
		case "sidecar": // restart one
			slot := w.rnd.IntN(sidecars)
			old := w.slots[slot].Load()
			began := time.Now()
			w.closeSidecar(old)
			inc := w.startSidecar(slot, old.gen+1)
			w.faults.add("sidecar restart")
			w.events.add("sidecar %s → %s (%v to close)", old.name, inc.name, inc.born.Sub(began).Round(time.Millisecond))
		}
	}
}

// ---------------------------------------------------------------------------
// Clients.

// kind is one sort of request: how to make it, and what a 200 may hold.
type kind struct {
	name   string
	market int  // the market index it depends on; -1 for the probes
	ready  bool // /readyz: depends on every market
	gzip   bool // send Accept-Encoding: gzip and require a gzip answer
	build  func(r *rand.Rand) (path string, check func(h http.Header, body []byte) error)
}

func (w *world) requestKinds() []kind {
	t := w.t
	spot, usdm := w.markets[0], w.markets[1]
	var ks []kind

	full := func(mk *market, gz bool) kind {
		name := string(mk.m) + " full"
		if gz {
			name += " gzip"
		}
		return kind{name: name, market: mk.idx, gzip: gz, build: func(*rand.Rand) (string, func(http.Header, []byte) error) {
			return mk.m.Path(), func(h http.Header, b []byte) error {
				v := mk.byBody(b)
				if v == nil && mk.isPoison(b) {
					return &wrongData{fmt.Sprintf("the body (%d bytes) is %s, from the future-dated value", len(b), mk.poison.name)}
				}
				if v == nil {
					return fmt.Errorf("body of %d bytes is none of the valid versions", len(b))
				}
				want := v.snap.ETag()
				if h.Get("Content-Encoding") == "gzip" { // its own tag (RFC 9110, 8.8.3)
					want = strings.TrimSuffix(want, `"`) + `-gzip"`
				}
				if got := h.Get("ETag"); got != want {
					return fmt.Errorf("ETag %s for the body of %s, want %s", got, v.name, want)
				}
				return nil
			}
		}}
	}
	ks = append(ks, full(spot, false), full(spot, true), full(usdm, false), full(usdm, true))

	// Binance's query parameters on spot: each answer must be what one
	// version answers.
	query := func(name string, raws ...string) kind {
		for _, raw := range raws {
			spot.addQuery(t, raw)
		}
		return kind{name: name, market: spot.idx, build: func(r *rand.Rand) (string, func(http.Header, []byte) error) {
			raw := raws[r.IntN(len(raws))]
			return spot.m.Path() + "?" + raw, func(_ http.Header, b []byte) error {
				if !oneOf(b, spot.queries[raw]) {
					if p, ok := spot.pQueries[raw]; ok && bytes.Equal(b, p) {
						return &wrongData{fmt.Sprintf("answer to %q (%d bytes) is %s's", raw, len(b), spot.poison.name)}
					}
					return fmt.Errorf("answer to %q (%d bytes) is none of the versions' answers", raw, len(b))
				}
				return nil
			}
		}}
	}
	var oneSymbol []string
	for _, s := range spot.symbols {
		oneSymbol = append(oneSymbol, "symbol="+s)
	}
	ks = append(ks,
		query("spot ?symbol=BTCUSDT", "symbol=BTCUSDT"),
		query("spot ?symbol=<any>", oneSymbol...),
		query("spot ?symbols=[…]", "symbols="+url.QueryEscape(`["BTCUSDT","ETHBTC"]`), "symbols="+url.QueryEscape(`["XRPUSDT","BNBBTC","LTCUSDT"]`)),
		query("spot ?symbolStatus=TRADING", "symbolStatus=TRADING"),
		query("spot ?symbol=&showPermissionSets=false", "symbol=ETHUSDT&showPermissionSets=false"),
	)

	for _, mk := range w.markets {
		ks = append(ks, kind{name: "/v1/symbols/" + string(mk.m) + "?limit=50", market: mk.idx, build: func(*rand.Rand) (string, func(http.Header, []byte) error) {
			return "/v1/symbols/" + string(mk.m) + "?limit=50", func(_ http.Header, b []byte) error { return mk.checkList(b, 50) }
		}})
		ks = append(ks, kind{name: "/v1/symbols/" + string(mk.m) + "/{symbol}", market: mk.idx, build: func(r *rand.Rand) (string, func(http.Header, []byte) error) {
			sym := mk.symbols[r.IntN(len(mk.symbols))]
			asked := sym
			if r.IntN(4) == 0 {
				asked = strings.ToLower(sym) // case-insensitive
			}
			return "/v1/symbols/" + string(mk.m) + "/" + asked, func(_ http.Header, b []byte) error {
				for _, v := range mk.versions {
					if s, _ := v.snap.Lookup(sym); bytes.Equal(s.Raw, b) {
						return nil
					}
				}
				if s, _ := mk.poison.snap.Lookup(sym); bytes.Equal(s.Raw, b) {
					return &wrongData{fmt.Sprintf("%s object is %s's", sym, mk.poison.name)}
				}
				return fmt.Errorf("%s object (%d bytes) is none of the versions' objects", sym, len(b))
			}
		}})
		ks = append(ks, kind{name: "/v1/symbols/" + string(mk.m) + "/{symbol}/rules", market: mk.idx, build: func(r *rand.Rand) (string, func(http.Header, []byte) error) {
			sym := mk.symbols[r.IntN(len(mk.symbols))]
			return "/v1/symbols/" + string(mk.m) + "/" + sym + "/rules", func(_ http.Header, b []byte) error {
				if !oneOf(b, mk.rules[sym]) {
					if p, ok := mk.pRules[sym]; ok && bytes.Equal(b, p) {
						return &wrongData{fmt.Sprintf("rules of %s %s are %s's", mk.m, b, mk.poison.name)}
					}
					return fmt.Errorf("rules of %s %s are none of the versions' rules", mk.m, b)
				}
				return nil
			}
		}})
	}
	orders := []string{
		spot.addOrder(t, "BTCUSDT", rules.Order{Price: "27123.456789", Quantity: "0.123456789", Side: rules.Buy}),
		spot.addOrder(t, "ETHBTC", rules.Order{Price: "0.0612345", Quantity: "1.23456", Side: rules.Sell}),
	}
	usdmOrders := []string{usdm.addOrder(t, "BTCUSDT", rules.Order{Price: "42000.123", Quantity: "0.0123", Side: rules.Sell})}
	for _, o := range []struct {
		mk   *market
		keys []string
	}{{spot, orders}, {usdm, usdmOrders}} {
		ks = append(ks, kind{name: "/v1/symbols/" + string(o.mk.m) + "/{symbol}/normalize", market: o.mk.idx, build: func(r *rand.Rand) (string, func(http.Header, []byte) error) {
			key := o.keys[r.IntN(len(o.keys))]
			sym, raw, _ := strings.Cut(key, "?")
			return "/v1/symbols/" + string(o.mk.m) + "/" + sym + "/normalize?" + raw, func(_ http.Header, b []byte) error {
				if !oneOf(b, o.mk.orders[key]) {
					if p, ok := o.mk.pOrders[key]; ok && bytes.Equal(b, p) {
						return &wrongData{fmt.Sprintf("normalize %s answered %s, %s's answer", key, b, o.mk.poison.name)}
					}
					return fmt.Errorf("normalize %s answered %s, none of the versions' answers", key, b)
				}
				return nil
			}
		}})
	}

	ks = append(ks,
		kind{name: "/readyz", market: -1, ready: true, build: func(*rand.Rand) (string, func(http.Header, []byte) error) {
			return "/readyz", func(_ http.Header, b []byte) error {
				var r struct {
					Ready   *bool `json:"ready"`
					Markets []struct {
						Market    string    `json:"market"`
						FetchedAt time.Time `json:"fetched_at"`
						ETag      string    `json:"etag"`
					} `json:"markets"`
				}
				if err := json.Unmarshal(b, &r); err != nil || r.Ready == nil || !*r.Ready || len(r.Markets) != len(w.markets) {
					return fmt.Errorf("200 with body %.300s, want ready with %d markets", b, len(w.markets))
				}
				// Never the future-dated value, not even as a state.
				for _, st := range r.Markets {
					for _, mk := range w.markets {
						if st.Market == string(mk.m) && st.ETag == mk.poison.snap.ETag() {
							return &wrongData{fmt.Sprintf("/readyz names %s's ETag for %s", mk.poison.name, mk.m)}
						}
					}
					if st.FetchedAt.After(time.Now().Add(l2.MaxSkew)) {
						return &wrongData{fmt.Sprintf("/readyz: %s fetched at %s, dated ahead", st.Market, st.FetchedAt.Format(time.RFC3339))}
					}
				}
				return nil
			}
		}},
		kind{name: "/healthz", market: -1, build: func(*rand.Rand) (string, func(http.Header, []byte) error) {
			return "/healthz", func(_ http.Header, b []byte) error {
				if string(b) != "ok\n" {
					return fmt.Errorf("body %q, want %q", b, "ok\n")
				}
				return nil
			}
		}},
		kind{name: "/metrics", market: -1, build: func(*rand.Rand) (string, func(http.Header, []byte) error) {
			return "/metrics", func(_ http.Header, b []byte) error {
				if !bytes.Contains(b, []byte("\ngo_goroutines ")) || !bytes.Contains(b, []byte("symcache_")) {
					return fmt.Errorf("metrics without go_goroutines or symcache_ series (%d bytes)", len(b))
				}
				return nil
			}
		}},
	)
	return ks
}

// checkList checks a /v1/symbols/{market}?limit= page: the first limit
// symbols of one version, byte for byte, with that version's count.
func (mk *market) checkList(b []byte, limit int) error {
	var a struct {
		Market     string            `json:"market"`
		ServerTime int64             `json:"server_time"`
		FetchedAt  string            `json:"fetched_at"`
		Count      int               `json:"count"`
		Symbols    []json.RawMessage `json:"symbols"`
		NextCursor *string           `json:"next_cursor"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	if a.Market != string(mk.m) {
		return fmt.Errorf("market %q, want %q", a.Market, mk.m)
	}
	at, err := time.Parse(time.RFC3339Nano, a.FetchedAt)
	if err != nil {
		return fmt.Errorf("fetched_at %q: %v", a.FetchedAt, err)
	}
	if at.After(time.Now().Add(l2.MaxSkew)) {
		return &wrongData{fmt.Sprintf("a page fetched at %s, dated ahead", a.FetchedAt)}
	}
	v := mk.byServerTime(a.ServerTime)
	if v == nil {
		return fmt.Errorf("server_time %d is none of the versions'", a.ServerTime)
	}
	err = page(v, a.Count, a.Symbols, a.NextCursor, limit)
	if err != nil && a.ServerTime == mk.poison.snap.ServerTime().UnixMilli() && page(mk.poison, a.Count, a.Symbols, a.NextCursor, limit) == nil {
		return &wrongData{fmt.Sprintf("the page is %s's", mk.poison.name)}
	}
	return err
}

// page checks a page of limit symbols against version v.
func page(v *version, count int, symbols []json.RawMessage, next *string, limit int) error {
	syms := v.snap.Symbols()
	want := min(limit, len(syms))
	if count != len(syms) || len(symbols) != want || next == nil || (*next == "") != (len(syms) <= limit) {
		return fmt.Errorf("count %d, %d symbols, next_cursor %v; want %s's %d, %d, next_cursor only if more", count, len(symbols), next, v.name, len(syms), want)
	}
	for i, s := range symbols {
		if !bytes.Equal(s, syms[i].Raw) {
			return fmt.Errorf("symbol %d is not %s's %s byte for byte", i, v.name, syms[i].Name)
		}
	}
	return nil
}

// client sends random requests to random sidecars until ctx ends.
func (w *world) client(ctx context.Context, hc *http.Client, r *rand.Rand) {
	for ctx.Err() == nil {
		inc := w.slots[r.IntN(sidecars)].Load()
		k := w.kinds[r.IntN(len(w.kinds))]
		path, check := k.build(r)
		// Warm is read before the request is sent: from then on the
		// incarnation holds a servable snapshot, so any 5xx is a bug.
		warm := true
		switch {
		case k.ready:
			for _, mk := range w.markets {
				warm = warm && inc.isWarm(mk.idx, mk.m)
			}
		case k.market >= 0:
			warm = inc.isWarm(k.market, w.markets[k.market].m)
		}
		w.do(hc, inc, k, path, warm, check)
	}
}

func (w *world) do(hc *http.Client, inc *incarnation, k kind, path string, warm bool, check func(http.Header, []byte) error) {
	ks := w.stats.kind(k.name)
	req, err := http.NewRequest(http.MethodGet, inc.url+path, nil)
	if err != nil {
		w.fail("%s: %v", path, err)
		return
	}
	if k.gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	began := time.Now()
	resp, err := hc.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	took := time.Since(began)
	ks.observe(took)
	if err != nil {
		if inc.closing.Load() { // the sidecar is being restarted: refused or reset connections are expected
			ks.add("conn-error-restart")
			time.Sleep(10 * time.Millisecond) // until the new one is up; no need to spin
			return
		}
		ks.add("conn-error")
		w.fail("%s GET %s: %v (after %v)", inc.name, path, err, took.Round(time.Millisecond))
		return
	}
	ks.add(strconv.Itoa(resp.StatusCode))
	if took > time.Second {
		w.slow.add("%s GET %s: %d %s in %v", inc.name, path, resp.StatusCode, resp.Header.Get("X-Cache"), took.Round(time.Millisecond))
	}
	if xc := resp.Header.Get("X-Cache"); xc != "" {
		w.stats.xcache.add(xc)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusServiceUnavailable && !warm:
		// Nothing to serve yet (a new sidecar after Redis was emptied, while
		// Binance fails): the documented 503 with Retry-After. But not while Redis
		// has held a valid last_good since well before the request (a load
		// the request joined may have started up to FetchTimeout earlier).
		if resp.Header.Get("Retry-After") == "" && !k.ready {
			w.fail("%s GET %s: 503 without Retry-After", inc.name, path)
		}
		if k.market >= 0 {
			// Could a peer have served it? Then Redis lacked a last_good
			// that some sidecar held in memory.
			peer := "nothing anywhere"
			for i := range w.slots {
				if p := w.slots[i].Load(); p != inc && p.isWarm(k.market, w.markets[k.market].m) {
					peer = "a peer held one"
				}
			}
			w.stats.unready.add(fmt.Sprintf("%s (%s)", w.markets[k.market].m, peer))
			since := w.lastGoodSince[k.market].Load()
			if since != 0 && time.Unix(0, since).Before(began.Add(-fetchTimeout-250*time.Millisecond)) && w.lastGoodSince[k.market].Load() == since {
				w.fail("%s GET %s: 503 although Redis has held a valid last_good of %s since +%v (request sent at +%v): %.200s", inc.name, path,
					w.markets[k.market].m, time.Unix(0, since).Sub(w.start).Round(time.Millisecond), began.Sub(w.start).Round(time.Millisecond), body)
			}
		}
		return
	default:
		w.fail("%s GET %s: status %d (warm %v, X-Cache %q) after %v: %.300s", inc.name, path, resp.StatusCode, warm, resp.Header.Get("X-Cache"), took.Round(time.Millisecond), body)
		return
	}
	enc := resp.Header.Get("Content-Encoding")
	if k.gzip != (enc == "gzip") {
		w.fail("%s GET %s: Content-Encoding %q, want gzip %v", inc.name, path, enc, k.gzip)
		return
	}
	if enc == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			w.fail("%s GET %s: bad gzip: %v", inc.name, path, err)
			return
		}
	}
	if k.market >= 0 {
		switch xc := resp.Header.Get("X-Cache"); xc {
		case "HIT-L1", "HIT-L2", "MISS", "STALE":
		default:
			w.fail("%s GET %s: X-Cache %q", inc.name, path, xc)
		}
	}
	err = check(resp.Header, body)
	if k.market >= 0 && err == nil {
		err = checkDated(resp.Header)
	}
	if err != nil {
		if _, ok := err.(*wrongData); ok {
			w.wrongData.Add(1)
		}
		w.fail("%s GET %s (X-Cache %s): %v", inc.name, path, resp.Header.Get("X-Cache"), err)
	}
}

// ---------------------------------------------------------------------------
// Redis.

// checkRedis reads every market's current and last_good keys, raw, every
// 250 ms, and checks each value present; and the disk copy likewise.
func (w *world) checkRedis(ctx context.Context) {
	rdb := redis.NewClient(&redis.Options{Addr: w.redis.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	defer rdb.Close()
	store := l2.New(l2.Config{Client: rdb, Timeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastFetched := map[string]time.Time{}
	lives := w.redisLives.Load()
	var metaGen [2]int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		began := time.Now()
		w.checks.Add(1)
		unreachable := false // go-redis takes 400 ms to give up dialing: once per round is enough
		for _, mk := range w.markets {
			for _, key := range []string{l2.LastGoodKey(string(mk.m)), l2.CurrentKey(string(mk.m))} {
				if unreachable {
					w.lastGoodSince[mk.idx].Store(0)
					continue
				}
				livesAtRead := w.redisLives.Load()
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				b, err := rdb.Get(rctx, "symcache:"+key).Bytes()
				cancel()
				switch {
				case errors.Is(err, redis.Nil):
					w.l2stats.add("miss " + key)
					w.lastGoodSince[mk.idx].Store(0)
					// Gone (Redis restarted empty): what comes next is compared
					// with nothing, an older snapshot put back first included.
					delete(lastFetched, key)
					continue
				case err != nil && ctx.Err() != nil:
					continue
				case err != nil:
					unreachable = true
					w.lastGoodSince[mk.idx].Store(0)
					if w.redisUp.Load() {
						w.l2stats.add("error while up")
						w.events.add("(checker) redis GET %s: %v", key, err)
					} else {
						w.l2stats.add("down")
					}
					continue
				}
				w.l2stats.add("read " + key)
				if w.inj.has(b) { // the script's own future-dated value: never valid
					w.l2stats.add("injected " + key)
					if strings.HasSuffix(key, "last_good") {
						w.lastGoodSince[mk.idx].Store(0)
					}
					continue
				}
				fetched, err := checkEnvelope(mk, b)
				if err != nil {
					if _, ok := err.(*wrongData); ok {
						w.wrongData.Add(1)
					}
					w.fail("redis %s: %v", key, err)
					continue
				}
				if n := w.redisLives.Load(); n != lives {
					// Redis restarted empty since the last read: an older
					// snapshot put back first is no write going back in time.
					clear(lastFetched)
					lives = n
				}
				if g := w.metaGen[mk.idx].Load(); g != metaGen[mk.idx] {
					// Likewise when the script replaced the meta key with one
					// dated ahead: it names nothing, so blocks no write.
					for _, k := range []string{l2.LastGoodKey(string(mk.m)), l2.CurrentKey(string(mk.m))} {
						delete(lastFetched, k)
					}
					metaGen[mk.idx] = g
				}
				// A read that a stop overlapped may have been answered by
				// either Redis: it is compared with nothing, nor kept.
				if strings.HasSuffix(key, "last_good") && livesAtRead == lives {
					w.lastGoodSince[mk.idx].CompareAndSwap(0, time.Now().UnixNano())
					if prev := lastFetched[key]; fetched.Before(prev) {
						w.l2stats.add("last_good went back in time")
						w.fail("redis %s went back in time by %v: an older fetch was written after a newer one", key, prev.Sub(fetched))
					}
					lastFetched[key] = fetched
				}
			}
			// The disk copy, replaced atomically: the old one or the new one.
			if b, err := os.ReadFile(filepath.Join(w.stateDir, string(mk.m)+".json")); err == nil {
				w.l2stats.add("read disk " + string(mk.m))
				line, body, _ := bytes.Cut(b, []byte("\n"))
				if mk.isPoison(body) {
					w.wrongData.Add(1)
					w.fail("WRONG DATA: the disk copy of %s is %s, from the future-dated value", mk.m, mk.poison.name)
				} else if !json.Valid(line) || mk.byBody(body) == nil {
					w.fail("disk copy of %s (%d bytes) is not a header line and one of the valid versions", mk.m, len(b))
				}
			}
			// And through l2 itself, which must give Binance's bytes back
			// exactly (every fourth round: it reads the same value again).
			if w.checks.Load()%4 == 0 && !unreachable {
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				e, err := store.LastGood(rctx, string(mk.m))
				cancel()
				injected := err == nil && w.inj.dated(e.FetchedAt) && mk.isPoison(bytes.TrimRight(e.ExchangeInfo, " \t\r\n"))
				if err == nil && mk.byBody(e.ExchangeInfo) == nil && !injected {
					w.fail("l2 LastGood(%s): exchange_info of %d bytes is none of the valid versions byte for byte", mk.m, len(e.ExchangeInfo))
				}
			}
		}
		w.checkSlowest.Store(max(w.checkSlowest.Load(), int64(time.Since(began))))
	}
}

// checkEnvelope decodes an envelope as stored (JSON, or JSON gzipped) and
// checks it holds one of the market's valid versions.
func checkEnvelope(mk *market, b []byte) (time.Time, error) {
	if len(b) > 1 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return time.Time{}, fmt.Errorf("gzip: %v", err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			return time.Time{}, fmt.Errorf("gunzip: %v", err)
		}
	}
	var e struct {
		Market       string          `json:"market"`
		FetchedAt    string          `json:"fetched_at"`
		ServerTime   int64           `json:"server_time"`
		ETag         string          `json:"etag"`
		ExchangeInfo json.RawMessage `json:"exchange_info"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return time.Time{}, fmt.Errorf("envelope is not JSON (%d bytes): %v", len(b), err)
	}
	fetched, err := time.Parse(time.RFC3339, e.FetchedAt)
	if err != nil {
		return time.Time{}, fmt.Errorf("fetched_at %q: %v", e.FetchedAt, err)
	}
	if e.Market != string(mk.m) {
		return time.Time{}, fmt.Errorf("market %q, want %q", e.Market, mk.m)
	}
	var v *version
	for _, c := range mk.versions {
		if bytes.Equal(bytes.TrimRight(c.body, " \t\r\n"), e.ExchangeInfo) {
			v = c
		}
	}
	if v == nil && mk.isPoison(e.ExchangeInfo) {
		return time.Time{}, &wrongData{fmt.Sprintf("exchange_info is %s, in an envelope the script did not write (fetched_at %s): a sidecar wrote it", mk.poison.name, e.FetchedAt)}
	}
	if v == nil { // say why, if Parse can
		if _, err := exchangeinfo.Parse(mk.m, e.ExchangeInfo, fetched); err != nil {
			return time.Time{}, fmt.Errorf("exchange_info does not parse: %v", err)
		}
		return time.Time{}, fmt.Errorf("exchange_info (%d bytes) is none of the valid versions", len(e.ExchangeInfo))
	}
	// Byte for byte one of the versions, each of which passed
	// exchangeinfo.Parse when the run began: it parses.
	switch {
	case e.ServerTime != v.snap.ServerTime().UnixMilli():
		return time.Time{}, fmt.Errorf("server_time %d, want %d (%s)", e.ServerTime, v.snap.ServerTime().UnixMilli(), v.name)
	case e.ETag != v.snap.ETag():
		return time.Time{}, fmt.Errorf("etag %s, want %s (%s)", e.ETag, v.snap.ETag(), v.name)
	}
	return fetched, nil
}

// ---------------------------------------------------------------------------
// After the run.

func (w *world) verify() {
	t := w.t
	w.mu.Lock()
	incs := slices.Clone(w.incs)
	w.mu.Unlock()

	// Each sidecar's own view of what it sent.
	for _, inc := range incs {
		p := inc.probe
		p.mu.Lock()
		for path, n := range p.maxInflight {
			if n > 1 {
				w.fail("%s had %d requests for %s in flight at once, want 1 (singleflight)", inc.name, n, path)
			}
		}
		for _, v := range p.violations {
			w.fail("Retry-After not honoured: %s", v)
		}
		died := inc.died
		// The refresh budget: a warm-up, a refresh per RefreshInterval, and
		// as many again for Gets that found the snapshot expired (after a
		// backoff) or refreshes that bunched up behind a slow fetch.
		budget := 2 * (1 + int(died.Sub(inc.born)/refreshInterval))
		last := map[string]sent{}
		count := map[string]int{}
		for _, r := range p.sent {
			count[r.path]++
			w.stats.via.add(r.via)
			if prev, ok := last[r.path]; ok && r.at.Sub(prev.at) < window {
				w.stats.repeats.add(inc.name)
				w.events.addAt(r.at, "(repeat) %s sent GET %s from %s %v after the previous one, from %s",
					inc.name, r.path, r.via, r.at.Sub(prev.at).Round(time.Microsecond), prev.via)
			}
			last[r.path] = r
		}
		for path, n := range count {
			if n > budget {
				w.fail("%s sent %d requests for %s in %v, want at most %d (refresh every %v)", inc.name, n, path, died.Sub(inc.born).Round(time.Millisecond), budget, refreshInterval)
			}
		}
		p.mu.Unlock()
	}

	// The fake Binance's view: no stampede across sidecars either.
	arr := w.up.snapshot()
	byPath := map[string][]arrival{}
	for _, a := range arr {
		byPath[a.path] = append(byPath[a.path], a)
		w.stats.upstreamStatus.add(fmt.Sprintf("%s %d", a.path, a.status))
	}
	for _, mk := range w.markets {
		as := byPath[mk.m.Path()]
		w.stats.upstream.addN(mk.m.Path(), len(as))
		slices.SortFunc(as, func(a, b arrival) int { return a.at.Compare(b.at) })
		worst, worstAt := 0, 0
		for i := range as {
			j := i
			for j < len(as) && as[j].at.Sub(as[i].at) < window {
				j++
			}
			if j-i > worst {
				worst, worstAt = j-i, i
			}
		}
		w.stats.worstWindow.addN(mk.m.Path(), worst)
		// One request per sidecar, or two when a refresh follows a Get's
		// fetch closely; 16 clients without singleflight would be far more.
		if worst > 2*sidecars {
			var who []string
			for _, a := range as[worstAt : worstAt+worst] {
				who = append(who, fmt.Sprintf("%s@+%v", a.from, a.at.Sub(w.start).Round(time.Millisecond)))
			}
			w.fail("%d upstream requests for %s within %v, want at most %d: %s", worst, mk.m.Path(), window, 2*sidecars, strings.Join(who, " "))
		}
	}
	// Across sidecars: a 429 seen by one sidecar does not stop the others
	// (each has its own Gate, as separate processes would). Counted, not
	// asserted.
	for _, a := range arr {
		if a.status != http.StatusTooManyRequests && a.status != http.StatusTeapot {
			continue
		}
		for _, b := range arr {
			if b.from != a.from && b.at.After(a.done.Add(gateSlack)) && b.at.Before(a.done.Add(retryAfter)) {
				w.stats.crossGate.add(b.from)
			}
		}
	}
	if n := w.failures.Load(); n > maxFailed {
		t.Errorf("… and %d more failures", n-maxFailed)
	}
}

func (w *world) report() {
	t := w.t
	var lines []string
	for _, name := range mapsKeys(w.stats.byKind) {
		ks := w.stats.byKind[name]
		lines = append(lines, fmt.Sprintf("  %-44s %6d  max %-8v %s", name, ks.total(), ks.max().Round(time.Millisecond), ks.statuses.String()))
	}
	t.Logf("client requests by endpoint (count, slowest, statuses):\n%s", strings.Join(lines, "\n"))
	t.Logf("X-Cache: %s", w.stats.xcache.String())
	t.Logf("upstream requests: %s; by status: %s", w.stats.upstream.String(), w.stats.upstreamStatus.String())
	t.Logf("upstream requests by code path: %s; most within %v: %s", w.stats.via.String(), window, w.stats.worstWindow.String())
	t.Logf("upstream requests repeated by one sidecar within %v (see the (repeat) events): %s", window, w.stats.repeats.String())
	t.Logf("503s from sidecars that held no snapshot yet, and whether a peer held one: %s", w.stats.unready.String())
	t.Logf("disk sidecar held a snapshot but left no disk copy at close: %s", w.stats.noDisk.String())
	t.Logf("upstream requests from one sidecar during another's Retry-After (separate Gates; not asserted): %s", w.stats.crossGate.String())
	if n := w.slow.len(); n > 0 {
		t.Logf("answers slower than 1s: %d; the first:\n%s", n, w.slow.lines(w.start, 10))
	}
	t.Logf("faults injected: %s", w.faults.String())
	t.Logf("hostile faults, what became of them: %s", w.hostile.String())
	t.Logf("upstream requests that got an oversized answer: %s", w.oversizedAsked())
	t.Logf("refreshing resumed after a TTL-less lock (from the first sidecar meeting it, or the marker's deletion): %s", w.resume.String())
	t.Logf("answers or Redis values made from the poisoned, future-dated version: %d", w.wrongData.Load())
	w.mu.Lock()
	t.Logf("sidecar incarnations: %d", len(w.incs))
	var counted counter // what the sidecars counted, all incarnations
	for _, inc := range w.incs {
		for _, st := range inc.cache.Stats() {
			counted.addN("FutureDated "+string(st.Market), int(st.FutureDated))
			counted.addN(`Fetches["grown"] `+string(st.Market), int(st.Fetches["grown"]))
			counted.addN(`StaleByReason["grown"] `+string(st.Market), int(st.StaleByReason["grown"]))
		}
		errs := inc.store.Errors()
		for _, op := range []string{"lock_no_ttl", "too_large", "watch", "meta"} {
			counted.addN("l2 "+op, int(errs[op]))
		}
	}
	w.mu.Unlock()
	t.Logf("the sidecars counted: %s", counted.String())
	t.Logf("redis checker: %d rounds, slowest %v: %s", w.checks.Load(), time.Duration(w.checkSlowest.Load()).Round(time.Millisecond), w.l2stats.String())
	t.Logf("sidecar logs: %d warnings: %s", w.logs.warn.Load(), w.logs.warnMsg.String())
	t.Logf("sidecar logs: %d errors: %s%s", w.logs.errs.Load(), w.logs.byMsg.String(), w.logs.lastErrors())
}

// fail records a failed assertion; the first maxFailed are reported as they
// happen.
func (w *world) fail(format string, args ...any) {
	if w.failures.Add(1) <= maxFailed {
		w.t.Errorf("+%v "+format, append([]any{time.Since(w.start).Round(time.Millisecond)}, args...)...)
	}
}

// ---------------------------------------------------------------------------
// Bookkeeping.

type counter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counter) add(k string) { c.addN(k, 1) }

func (c *counter) addN(k string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k] += n
}

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range mapsKeys(c.m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, c.m[k]))
	}
	return strings.Join(parts, " ")
}

type kindStats struct {
	statuses counter
	mu       sync.Mutex
	slowest  time.Duration
	n        int
}

func (k *kindStats) add(status string) { k.statuses.add(status) }

func (k *kindStats) observe(d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n++
	k.slowest = max(k.slowest, d)
}

func (k *kindStats) total() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n
}

func (k *kindStats) max() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.slowest
}

type stats struct {
	mu             sync.Mutex
	byKind         map[string]*kindStats
	xcache         counter
	upstream       counter
	upstreamStatus counter
	repeats        counter
	crossGate      counter
	worstWindow    counter
	via            counter
	noDisk         counter
	unready        counter // 503s before a sidecar held a snapshot
}

func (s *stats) kind(name string) *kindStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.byKind[name]
	if k == nil {
		k = &kindStats{}
		s.byKind[name] = k
	}
	return k
}

func mapsKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// eventLog is what happened when, e.g. the fault script as it ran.
type eventLog struct {
	mu sync.Mutex
	l  []event
}

type event struct {
	at  time.Time
	msg string
}

func (e *eventLog) add(format string, args ...any) { e.addAt(time.Now(), format, args...) }

func (e *eventLog) addAt(at time.Time, format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.l = append(e.l, event{at, fmt.Sprintf(format, args...)})
}

func (e *eventLog) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.l)
}

// lines returns at most n events, in time order, relative to start.
func (e *eventLog) lines(start time.Time, n int) string {
	e.mu.Lock()
	l := slices.Clone(e.l)
	e.mu.Unlock()
	slices.SortStableFunc(l, func(a, b event) int { return a.at.Compare(b.at) })
	var b strings.Builder
	for i, ev := range l {
		if i == n {
			fmt.Fprintf(&b, "  … and %d more\n", len(l)-n)
			break
		}
		fmt.Fprintf(&b, "  +%-9v %s\n", ev.at.Sub(start).Round(time.Millisecond), ev.msg)
	}
	return strings.TrimRight(b.String(), "\n")
}

// logCounter is the sidecars' slog handler: it counts warnings and keeps the
// last errors (a 5xx is logged as one).
type logCounter struct {
	warn, errs atomic.Int64
	redisUp    func() bool
	mu         sync.Mutex
	last       []string
	byMsg      counter // errors by message, and whether Redis was up
	warnMsg    counter // likewise, warnings
}

func (h *logCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	state := "redis down"
	if h.redisUp() {
		state = "redis up"
	}
	if r.Level < slog.LevelError {
		h.warn.Add(1)
		h.warnMsg.add(fmt.Sprintf("%q (%s)", r.Message, state))
		return nil
	}
	h.errs.Add(1)
	h.byMsg.add(fmt.Sprintf("%q (%s)", r.Message, state))
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%.200v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	h.last = append(h.last, b.String())
	if len(h.last) > 10 {
		h.last = h.last[1:]
	}
	h.mu.Unlock()
	return nil
}

func (h *logCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return &logChild{parent: h, attrs: as}
}

func (h *logCounter) WithGroup(string) slog.Handler { return h }

func (h *logCounter) lastErrors() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.last) == 0 {
		return ""
	}
	return "; last errors:\n  " + strings.Join(h.last, "\n  ")
}

// logChild is a logCounter with attributes (slog.Logger.With).
type logChild struct {
	parent *logCounter
	attrs  []slog.Attr
}

func (c *logChild) Enabled(ctx context.Context, l slog.Level) bool { return c.parent.Enabled(ctx, l) }

func (c *logChild) Handle(ctx context.Context, r slog.Record) error {
	r2 := r.Clone()
	r2.AddAttrs(c.attrs...)
	return c.parent.Handle(ctx, r2)
}

func (c *logChild) WithAttrs(as []slog.Attr) slog.Handler {
	return &logChild{parent: c.parent, attrs: append(slices.Clone(c.attrs), as...)}
}

func (c *logChild) WithGroup(string) slog.Handler { return c }

// quietRedis drops go-redis' own log lines (dial errors while Redis is down).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
