package symcache_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/l2"
)

func TestCache_Get_EachTier(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	c := e.process(symcache.Config{})

	r := get(t, c, exchangeinfo.Spot, symcache.Miss)
	if !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) {
		t.Fatal("Get(spot) on a miss: body differs from the upstream's bytes")
	}
	if want := r.Snapshot.FetchedAt().Add(5 * time.Minute); !r.Expires.Equal(want) {
		t.Errorf("Expires = %v, want fetch time + TTL = %v", r.Expires, want)
	}
	get(t, c, exchangeinfo.Spot, symcache.HitL1)
	if n := spotRequests(e.upstream); n != 1 {
		t.Fatalf("upstream requests after a miss and a hit = %d, want 1", n)
	}

	// Both Redis keys hold the envelope with Binance's bytes as received;
	// read them with encoding/json, not with the code under test.
	for _, key := range []string{"symcache:{spot}:current", "symcache:{spot}:last_good"} {
		var env struct {
			Market       string          `json:"market"`
			FetchedAt    time.Time       `json:"fetched_at"`
			ServerTime   int64           `json:"server_time"`
			ETag         string          `json:"etag"`
			ExchangeInfo json.RawMessage `json:"exchange_info"`
		}
		if err := json.Unmarshal(e.raw(key), &env); err != nil {
			t.Fatalf("GET %s is not a JSON envelope: %v", key, err)
		}
		if env.Market != "spot" || env.ETag != r.Snapshot.ETag() || env.ServerTime != 1694185561976 || env.FetchedAt.IsZero() {
			t.Errorf("GET %s envelope = %s %s %d %v, want spot %s 1694185561976 and a fetch time", key, env.Market, env.ETag, env.ServerTime, env.FetchedAt, r.Snapshot.ETag())
		}
		if !bytes.Equal(env.ExchangeInfo, spotFixture(t)) {
			t.Errorf("GET %s exchange_info differs from the upstream's bytes", key)
		}
	}
	if ttl := e.rdb.TTL(context.Background(), "symcache:{spot}:current").Val(); ttl <= 0 || ttl > 5*time.Minute {
		t.Errorf("TTL current = %v, want in (0, 5m]", ttl)
	}
	if ttl := e.rdb.TTL(context.Background(), "symcache:{spot}:last_good").Val(); ttl != -1 {
		t.Errorf("TTL last_good = %v, want -1 (none)", ttl)
	}

	// A second process (its own L1) answers from Redis, then from its L1.
	c2 := e.process(symcache.Config{})
	r2 := get(t, c2, exchangeinfo.Spot, symcache.HitL2)
	get(t, c2, exchangeinfo.Spot, symcache.HitL1)
	if !bytes.Equal(r2.Snapshot.Body(), spotFixture(t)) || r2.Snapshot.ETag() != r.Snapshot.ETag() {
		t.Error("HIT-L2 body differs from what was fetched")
	}
	if n := spotRequests(e.upstream); n != 1 {
		t.Errorf("upstream requests after an L2 hit = %d, want 1", n)
	}

	// Markets are independent.
	get(t, c, exchangeinfo.USDM, symcache.Miss)
	if _, err := c.Get(context.Background(), exchangeinfo.COINM); !errors.Is(err, symcache.ErrUnknownMarket) {
		t.Errorf("Get(coinm) = %v, want ErrUnknownMarket", err)
	}
}

// TestCache_Get_GzipL2ServesStoredGzip checks that with gzip L2 values the
// body is compressed once for the whole deployment: the process that fetched
// stores its snapshot's gzip as the value's middle member, and a process
// promoting the value from L2 serves that member as it is.
func TestCache_Get_GzipL2ServesStoredGzip(t *testing.T) {
	e := newWorld(t, withRedis(l2.Config{Encoding: l2.Gzip, Timeout: time.Second}))
	r := get(t, e.process(symcache.Config{}), exchangeinfo.Spot, symcache.Miss)
	value := e.raw("symcache:{spot}:current")
	at := bytes.Index(value, r.Snapshot.Gzip())
	if at < 0 {
		t.Fatalf("the L2 value (%d bytes) does not hold the snapshot's gzip (%d bytes) as it is", len(value), len(r.Snapshot.Gzip()))
	}
	// Mark the member (its MTIME, which readers do not check), so that a
	// reader compressing the body itself would give other bytes.
	value = bytes.Clone(value)
	value[at+4] ^= 0x5a
	if err := e.rdb.Set(context.Background(), "symcache:{spot}:current", value, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	r2 := get(t, e.process(symcache.Config{}), exchangeinfo.Spot, symcache.HitL2)
	if gz := r2.Snapshot.Gzip(); !bytes.Equal(gz, value[at:at+len(gz)]) || gz[4] == r.Snapshot.Gzip()[4] {
		t.Fatalf("HIT-L2 snapshot's gzip is not the stored member")
	}
	zr, err := gzip.NewReader(bytes.NewReader(r2.Snapshot.Gzip()))
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := io.ReadAll(zr); err != nil || !bytes.Equal(plain, spotFixture(t)) {
		t.Fatalf("HIT-L2 gzip inflates to %d bytes (%v), want the fixture", len(plain), err)
	}
	if n := spotRequests(e.upstream); n != 1 {
		t.Errorf("upstream requests = %d, want 1", n)
	}
}

func TestCache_Get_WithoutRedis(t *testing.T) {
	e := newWorld(t)
	c := e.process(symcache.Config{})
	get(t, c, exchangeinfo.USDM, symcache.Miss)
	r := get(t, c, exchangeinfo.USDM, symcache.HitL1)
	if !bytes.Equal(r.Snapshot.Body(), usdmFixture(t)) {
		t.Error("usdm body differs from the upstream's pretty-printed bytes")
	}
	// Past the TTL, L1 no longer counts as fresh: the upstream is asked again.
	e.clock.Advance(6 * time.Minute)
	get(t, c, exchangeinfo.USDM, symcache.Miss)
	if n := e.upstream.Requests(exchangeinfo.USDM.Path()); n != 2 {
		t.Errorf("upstream requests = %d, want 2", n)
	}
}

func TestCache_Get_ConcurrentColdRequestsFetchOnce(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	c := e.process(symcache.Config{})
	const callers = 200
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		bodies [callers][]byte
		errs   [callers]error
	)
	for i := range callers {
		wg.Go(func() {
			<-start
			r, err := c.Get(context.Background(), exchangeinfo.Spot)
			errs[i] = err
			if err == nil {
				bodies[i] = r.Snapshot.Body()
			}
		})
	}
	close(start)
	wg.Wait()
	want := spotFixture(t)
	for i := range callers {
		if errs[i] != nil || !bytes.Equal(bodies[i], want) {
			t.Fatalf("caller %d: err %v, body equal %v; want nil, true", i, errs[i], bytes.Equal(bodies[i], want))
		}
	}
	if n := spotRequests(e.upstream); n != 1 {
		t.Errorf("upstream requests for %d concurrent cold Gets = %d, want 1", callers, n)
	}
}

// memTransport serves requests in memory from a handler, each waiting for
// release first: in a synctest bubble, a blocked fetch is durably blocked.
type memTransport struct {
	h       http.Handler
	release chan struct{}
	count   atomic.Int32
}

func (m *memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	m.count.Add(1)
	if m.release != nil {
		select {
		case <-m.release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func fixtureHandler(t *testing.T) http.Handler {
	h := fetchtest.NewHandler()
	h.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")})
	return h
}

// One caller that hangs up must not fail the shared fetch for the others.
func TestCache_Get_CallerThatGivesUpDoesNotCancelOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &memTransport{h: fixtureHandler(t), release: make(chan struct{})}
		c := newWorld(t, inMemory(tr)).process(symcache.Config{}, markets(exchangeinfo.Spot))
		defer c.Close()

		impatient, hangUp := context.WithCancel(context.Background())
		var errA, errB error
		var resB symcache.Result
		var wg sync.WaitGroup
		wg.Go(func() { _, errA = c.Get(impatient, exchangeinfo.Spot) })
		wg.Go(func() { resB, errB = c.Get(context.Background(), exchangeinfo.Spot) })
		synctest.Wait() // both wait on the one fetch
		hangUp()
		synctest.Wait()
		if !errors.Is(errA, context.Canceled) {
			t.Errorf("Get(canceled ctx) = %v, want context.Canceled", errA)
		}
		close(tr.release)
		wg.Wait()
		if errB != nil || resB.Source != symcache.Miss {
			t.Fatalf("Get(patient ctx) = %v, %v; want MISS, nil", resB.Source, errB)
		}
		if n := tr.count.Load(); n != 1 {
			t.Errorf("upstream requests = %d, want 1", n)
		}
	})
}

// The refresher warms each market at start and fetches once per interval.
func TestCache_RefresherFetchesEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &memTransport{h: fixtureHandler(t)}
		c := newWorld(t, inMemory(tr)).process(symcache.Config{RefreshInterval: time.Minute, TTL: 5 * time.Minute}, markets(exchangeinfo.Spot))
		synctest.Wait()
		if n := tr.count.Load(); n != 1 {
			t.Fatalf("upstream requests after start = %d, want 1 (warm-up)", n)
		}
		if _, ok := c.Ready(); !ok {
			t.Error("Ready() = false after warm-up, want true")
		}
		r, err := c.Get(context.Background(), exchangeinfo.Spot)
		if err != nil || r.Source != symcache.HitL1 {
			t.Errorf("Get after warm-up = %v, %v; want HIT-L1", r.Source, err)
		}
		time.Sleep(3*time.Minute + time.Second)
		synctest.Wait()
		if n := tr.count.Load(); n != 4 {
			t.Errorf("upstream requests after 3 intervals = %d, want 4", n)
		}
		c.Close() // waits for the refresher
		time.Sleep(5 * time.Minute)
		if n := tr.count.Load(); n != 4 {
			t.Errorf("upstream requests after Close = %d, want 4", n)
		}
	})
}

func TestCache_Get_UpstreamFailsServesLastGood(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	c := e.process(symcache.Config{})
	good := get(t, c, exchangeinfo.Spot, symcache.Miss).Snapshot
	e.clock.Advance(10 * time.Minute) // past the TTL
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{
		Status: http.StatusServiceUnavailable,
		Header: http.Header{"Retry-After": {"120"}}, // a backoff no slow test machine outlasts
		Body:   []byte("<html>503</html>"),
	})

	r := get(t, c, exchangeinfo.Spot, symcache.Stale)
	if r.Snapshot != good || r.Reason != "upstream 503" {
		t.Errorf("stale answer = %p %q, want the last good %p and reason %q", r.Snapshot, r.Reason, good, "upstream 503")
	}
	// During the backoff, Binance is not asked again.
	before := spotRequests(e.upstream)
	for range 20 {
		get(t, c, exchangeinfo.Spot, symcache.Stale)
	}
	if n := spotRequests(e.upstream); n != before {
		t.Errorf("upstream requests during backoff = %d, want %d", n, before)
	}

	// A new process with an empty L1 finds last_good in Redis after the
	// current key expired, and does not ask Binance either: the first
	// process's failed fetch left the refresh lock as the deployment's
	// backoff.
	e.rdb.Del(context.Background(), "symcache:{spot}:current")
	c2 := e.process(symcache.Config{})
	r2 := get(t, c2, exchangeinfo.Spot, symcache.Stale)
	if !bytes.Equal(r2.Snapshot.Body(), good.Body()) {
		t.Error("stale answer from L2 last_good differs from the last good snapshot")
	}
	if want := "another sidecar's fetch failed: upstream 503"; r2.Reason != want {
		t.Errorf("second process's stale reason = %q, want %q", r2.Reason, want)
	}
	if st := c2.Stats()[0]; st.Stale == 0 || st.Fetches["status"] != 0 || st.Fetches["backoff"] != 1 {
		t.Errorf("Stats = stale %d, status fetches %d, backoff %d; want >0, 0, 1", st.Stale, st.Fetches["status"], st.Fetches["backoff"])
	}
	if st := c.Stats()[0]; st.StaleByReason["status"] != st.Stale || st.Stale != 21 {
		t.Errorf("first process: stale %d, by reason %v; want 21 stale answers, all for a status", st.Stale, st.StaleByReason)
	}
	if st := c2.Stats()[0]; st.StaleByReason["backoff"] != st.Stale {
		t.Errorf("second process: stale by reason %v, want all %d for the shared backoff", st.StaleByReason, st.Stale)
	}
	if n := spotRequests(e.upstream); n != before {
		t.Errorf("upstream requests after a second process started = %d, want %d", n, before)
	}
}

func TestCache_Get_NothingToServe(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Status: http.StatusBadGateway})
	c := e.process(symcache.Config{})
	_, err := c.Get(context.Background(), exchangeinfo.Spot)
	var ue *symcache.UnavailableError
	if !errors.Is(err, symcache.ErrUnavailable) || !errors.As(err, &ue) || ue.RetryAfter < time.Second {
		t.Fatalf("Get with nothing anywhere = %v, want an *UnavailableError with RetryAfter >= 1s", err)
	}
	var se *fetch.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusBadGateway {
		t.Errorf("Get error %v does not carry the upstream's 502", err)
	}
	if _, ok := c.Ready(); ok {
		t.Error("Ready() = true with nothing to serve, want false")
	}
}

func TestCache_Get_StaleMax(t *testing.T) {
	e := newWorld(t)
	c := e.process(symcache.Config{StaleMax: time.Hour})
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Status: http.StatusInternalServerError})
	e.clock.Advance(30 * time.Minute)
	get(t, c, exchangeinfo.Spot, symcache.Stale)
	e.clock.Advance(31 * time.Minute) // 61 minutes old: past StaleMax
	if _, err := c.Get(context.Background(), exchangeinfo.Spot); !errors.Is(err, symcache.ErrUnavailable) {
		t.Errorf("Get past StaleMax = %v, want ErrUnavailable", err)
	}
}

// An invalid upstream answer never replaces a good snapshot in any tier.
func TestCache_Get_InvalidUpstreamOverwritesNothing(t *testing.T) {
	good := fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")
	tests := []struct {
		name string
		resp fetchtest.Response
	}{
		{"html with 200", fetchtest.Response{Body: []byte("<!DOCTYPE html><html><body>Maintenance</body></html>")}},
		{"truncated json", fetchtest.Response{Body: good[:len(good)/3]}},
		{"connection cut mid-body", fetchtest.Response{Body: good, Truncate: 1000}},
		{"no symbols", fetchtest.Response{Body: []byte(`{"timezone":"UTC","serverTime":1700000000000}`)}},
		{"empty symbols", fetchtest.Response{Body: []byte(`{"timezone":"UTC","serverTime":1700000000000,"symbols":[]}`)}},
		{"not json", fetchtest.Response{Body: []byte("Service Unavailable")}},
		{"binance error with 200", fetchtest.Response{Body: fixtures.Read(t, "binance/error_451_restricted_location.json")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newWorld(t, withRedis(relaxed))
			e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: good})
			first := get(t, e.process(symcache.Config{}), exchangeinfo.Spot, symcache.Miss).Snapshot
			current, lastGood := e.raw("symcache:{spot}:current"), e.raw("symcache:{spot}:last_good")

			e.upstream.Set(exchangeinfo.Spot.Path(), tt.resp)
			e.clock.Advance(10 * time.Minute)
			c := e.process(symcache.Config{}) // a fresh L1: the read goes to Redis, then Binance
			r := get(t, c, exchangeinfo.Spot, symcache.Stale)
			if !bytes.Equal(r.Snapshot.Body(), good) || r.Snapshot.ETag() != first.ETag() {
				t.Error("stale answer is not the last good snapshot")
			}
			if r.Reason != "upstream answer invalid" {
				t.Errorf("Reason = %q, want %q", r.Reason, "upstream answer invalid")
			}
			if got := e.raw("symcache:{spot}:current"); !bytes.Equal(got, current) {
				t.Error("redis current changed after an invalid upstream answer")
			}
			if got := e.raw("symcache:{spot}:last_good"); !bytes.Equal(got, lastGood) {
				t.Error("redis last_good changed after an invalid upstream answer")
			}
			if n := spotRequests(e.upstream); n != 2 {
				t.Errorf("upstream requests = %d, want 2", n)
			}
		})
	}
}

func TestCache_Get_RedisStoppedMidway(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	logs := e.logs
	c := e.process(symcache.Config{})
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	e.redis.Stop()

	get(t, c, exchangeinfo.Spot, symcache.HitL1) // L1 needs no Redis
	e.clock.Advance(6 * time.Minute)
	r := get(t, c, exchangeinfo.Spot, symcache.Miss) // Redis down: straight to Binance
	if !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) {
		t.Error("body differs from the upstream's after Redis went down")
	}
	get(t, c, exchangeinfo.Spot, symcache.HitL1)
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "{spot}:current") {
		t.Errorf("logs = %s\nwant a warning naming the Redis key", logs.String())
	}
	if st := c.Stats()[0]; st.L2Errors == 0 {
		t.Error("Stats().L2Errors = 0 after Redis went down, want > 0")
	}

	// Redis back, empty: the next fetch writes both keys again.
	e.restartRedis()
	e.clock.Advance(6 * time.Minute)
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	for _, key := range []string{"symcache:{spot}:current", "symcache:{spot}:last_good"} {
		if n := e.rdb.Exists(context.Background(), key).Val(); n != 1 {
			t.Errorf("EXISTS %s after Redis came back = %d, want 1", key, n)
		}
	}
}

func TestCache_WarmUp(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	first := e.process(symcache.Config{RefreshInterval: time.Hour})
	waitReady(t, first)
	if n := spotRequests(e.upstream); n != 1 {
		t.Fatalf("upstream requests after warm-up = %d, want 1", n)
	}
	get(t, first, exchangeinfo.Spot, symcache.HitL1)
	// Ready once the snapshot is in memory; the L2 write follows.
	for deadline := time.Now().Add(10 * time.Second); e.rdb.Exists(context.Background(), "symcache:{spot}:meta").Val() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("not in Redis 10s after the warm-up")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A restarted process finds a fresh snapshot in Redis: it is ready at
	// once, with the snapshot in L1 already (its first request reads
	// Redis no more), and does not call Binance.
	second := e.process(symcache.Config{RefreshInterval: time.Hour})
	waitReady(t, second)
	get(t, second, exchangeinfo.Spot, symcache.HitL1)
	if st := second.Stats()[0]; st.L2Hits != 0 || st.L1Misses != 0 {
		t.Errorf("after the first request: L2 hits %d, L1 misses %d; want 0, 0 (the warm-up read L2, not the request)", st.L2Hits, st.L1Misses)
	}
	if n := spotRequests(e.upstream); n != 1 {
		t.Errorf("upstream requests after a restart = %d, want 1", n)
	}
}

func waitReady(t *testing.T, c *symcache.Cache) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := c.Ready(); ok {
			return
		}
		if time.Now().After(deadline) {
			st, _ := c.Ready()
			t.Fatalf("not ready after 10s: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNew_Rejects(t *testing.T) {
	if _, err := symcache.New(symcache.Config{}); err == nil {
		t.Error("New without upstreams = nil error, want an error")
	}
	if _, err := symcache.New(symcache.Config{Upstreams: map[exchangeinfo.Market]symcache.Upstream{"options": nil}}); err == nil {
		t.Error("New with an unknown market = nil error, want an error")
	}
	up, err := fetch.New(fetch.Config{Market: exchangeinfo.Spot})
	if err != nil {
		t.Fatal(err)
	}
	store := l2.New(l2.Config{Client: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})})
	ups := map[exchangeinfo.Market]symcache.Upstream{exchangeinfo.Spot: up}
	if _, err := symcache.New(symcache.Config{Upstreams: ups, Coordinator: store}); err == nil {
		t.Error("New with a Coordinator and no L2 = nil error, want an error")
	}
	for _, cfg := range []symcache.Config{{MaxSymbolLoss: 1}, {TTL: -time.Second}, {FetchTimeout: -time.Second}, {LockLease: -time.Second}} {
		cfg.Upstreams = ups
		if c, err := symcache.New(cfg); err == nil {
			c.Close()
			t.Errorf("New(%+v) = nil error, want an error", cfg)
		}
	}
}
