package symcache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/disk"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
)

// Every upstream fault, after a good fetch: the client gets the last good
// snapshot as STALE with a reason, the metrics count the outcome, something
// is logged, and Redis still holds the good bytes.
func TestFaults_Upstream(t *testing.T) {
	good := fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json") // small: the race detector is slow on 3.7 MB
	spot := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	restricted := fixtures.Read(t, "binance/error_451_restricted_location.json")
	tests := []struct {
		name    string
		good    []byte // served first; if nil, good
		resp    fetchtest.Response
		refused bool   // the upstream is not listening at all
		reason  string // in the stale answer
		outcome string // in Stats().Fetches
		log     string // in the logs
	}{
		{name: "500", resp: fetchtest.Response{Status: 500, Body: []byte("oops")}, reason: "upstream 500", outcome: "status", log: "serving stale"},
		{name: "502 html", resp: fetchtest.Response{Status: 502, Body: []byte("<html>Bad Gateway</html>")}, reason: "upstream 502", outcome: "status", log: "serving stale"},
		{name: "connection refused", refused: true, reason: "upstream unreachable", outcome: "error", log: "connection refused"},
		{name: "slow headers", resp: fetchtest.Response{Body: spot, Delay: time.Minute}, reason: "upstream timeout", outcome: "timeout", log: "serving stale"},
		{name: "slow body", resp: fetchtest.Response{Body: spot, Stall: time.Minute}, reason: "upstream", outcome: "", log: "serving stale"},
		{name: "body cut short", resp: fetchtest.Response{Body: good, Truncate: len(good) / 2}, reason: "upstream answer invalid", outcome: "invalid", log: "serving stale"},
		{name: "invalid json", resp: fetchtest.Response{Body: []byte(`{"timezone":"UTC","symbols":[{"symbol":"BTCUSDT",}]}`)}, reason: "upstream answer invalid", outcome: "invalid", log: "serving stale"},
		{name: "html 200", resp: fetchtest.Response{Body: []byte("<!doctype html><title>Binance</title>")}, reason: "upstream answer invalid", outcome: "invalid", log: "serving stale"},
		{name: "empty symbols", resp: fetchtest.Response{Body: []byte(`{"timezone":"UTC","serverTime":1,"symbols":[]}`)}, reason: "upstream answer invalid", outcome: "invalid", log: "serving stale"},
		{name: "missing symbols", resp: fetchtest.Response{Body: []byte(`{"timezone":"UTC","serverTime":1}`)}, reason: "upstream answer invalid", outcome: "invalid", log: "serving stale"},
		{name: "most symbols lost", good: spot, resp: fetchtest.Response{Body: fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")}, reason: "upstream answer lost 2272 of 2292 symbols", outcome: "shrunk", log: "lost most symbols"},
		{name: "451 restricted", resp: fetchtest.Response{Status: 451, Body: restricted}, reason: "upstream 451", outcome: "status", log: "451"},
		{name: "429", resp: fetchtest.Response{Status: 429, Header: http.Header{"Retry-After": {"30"}}, Body: []byte(`{"code":-1003,"msg":"Too many requests."}`)}, reason: "upstream 429, retry after 30s", outcome: "rate_limited", log: "429"},
		{name: "418", resp: fetchtest.Response{Status: 418, Header: http.Header{"Retry-After": {"120"}}, Body: []byte(`{"code":-1003,"msg":"IP banned."}`)}, reason: "upstream 418, retry after 2m0s", outcome: "rate_limited", log: "418"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newWorld(t, withRedis(relaxed), standingClock())
			first := good
			if tt.good != nil {
				first = tt.good
			}
			e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: first})
			c := e.process(symcache.Config{}, markets(exchangeinfo.Spot), upstreamAt(e.upstream.URL), fetchTimeout(2*time.Second), alone())
			served := get(t, c, exchangeinfo.Spot, symcache.Miss).Snapshot
			current, lastGood := e.raw("symcache:{spot}:current"), e.raw("symcache:{spot}:last_good")

			url := e.upstream.URL
			if tt.refused {
				url = "http://" + testutil.FreeAddr(t)
			} else {
				e.upstream.Set(exchangeinfo.Spot.Path(), tt.resp)
			}
			e.clock.Advance(6 * time.Minute) // past the TTL: the next Get asks Binance
			c2 := e.process(symcache.Config{}, markets(exchangeinfo.Spot), upstreamAt(url), fetchTimeout(2*time.Second), alone())
			// c2 starts empty: give it the same last good in memory by a first read from Redis.
			r := get(t, c2, exchangeinfo.Spot, symcache.Stale)
			if !bytes.Equal(r.Snapshot.Body(), served.Body()) {
				t.Error("stale answer is not the last good snapshot")
			}
			if !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", r.Reason, tt.reason)
			}
			st := c2.Stats()[0]
			if tt.outcome != "" && st.Fetches[tt.outcome] != 1 {
				t.Errorf("Stats().Fetches = %v, want %s: 1", st.Fetches, tt.outcome)
			}
			if st.Stale != 1 || st.Fetches["ok"] != 0 {
				t.Errorf("Stats() stale %d, ok fetches %d; want 1, 0", st.Stale, st.Fetches["ok"])
			}
			if !strings.Contains(e.logs.String(), tt.log) {
				t.Errorf("logs lack %q:\n%s", tt.log, e.logs.String())
			}
			if !bytes.Equal(e.raw("symcache:{spot}:current"), current) || !bytes.Equal(e.raw("symcache:{spot}:last_good"), lastGood) {
				t.Error("Redis changed after a failed fetch")
			}
			// During the backoff, hammering does not reach Binance.
			before := e.upstream.Requests(exchangeinfo.Spot.Path())
			hammer(t, c2, 50, 10)
			if n := e.upstream.Requests(exchangeinfo.Spot.Path()); n != before {
				t.Errorf("upstream requests while hammering during the backoff = %d, want %d", n, before)
			}
		})
	}
}

// hammer sends n×each concurrent Gets and fails on any error.
func hammer(t *testing.T, c *symcache.Cache, n, each int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n*each)
	for range n {
		wg.Go(func() {
			for range each {
				if _, err := c.Get(context.Background(), exchangeinfo.Spot); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Get while hammering = %v, want the stale snapshot", err)
	}
}

// No request reaches a host before its Retry-After has passed, however hard
// the cache is hammered; then exactly one does.
func TestFaults_RetryAfterIsHonoured(t *testing.T) {
	e := newWorld(t, withRedis(relaxed), standingClock())
	c := e.process(symcache.Config{}, markets(exchangeinfo.Spot), upstreamAt(e.upstream.URL), fetchTimeout(5*time.Second), alone())
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Status: 429, Header: http.Header{"Retry-After": {"90"}}})
	e.clock.Advance(6 * time.Minute)
	get(t, c, exchangeinfo.Spot, symcache.Stale)
	asked := e.upstream.Requests(exchangeinfo.Spot.Path())

	since := time.Duration(0) // since the 429
	for _, at := range []time.Duration{time.Second, 30 * time.Second, 89 * time.Second} {
		e.clock.Advance(at - since)
		since = at
		hammer(t, c, 100, 5)
		if n := e.upstream.Requests(exchangeinfo.Spot.Path()); n != asked {
			t.Fatalf("%v into a 90s Retry-After: upstream requests = %d, want %d", at, n, asked)
		}
	}
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: fixtures.Read(t, "binance/spot_exchangeinfo.json")})
	e.clock.Advance(2 * time.Second) // 91 s after the 429
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	if n := e.upstream.Requests(exchangeinfo.Spot.Path()); n != asked+1 {
		t.Errorf("upstream requests after the Retry-After = %d, want %d", n, asked+1)
	}
}

// Failed fetches back off exponentially with jitter: after the k-th failure
// Binance is not asked again for at least 2^(k-1)/2 seconds, and is asked
// again after 2^(k-1) seconds.
func TestFaults_ExponentialBackoff(t *testing.T) {
	e := newWorld(t, withRedis(relaxed), standingClock())
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Status: 503})
	c := e.process(symcache.Config{}, markets(exchangeinfo.Spot), upstreamAt(e.upstream.URL), fetchTimeout(time.Second), alone())
	asked := func() int { return e.upstream.Requests(exchangeinfo.Spot.Path()) }
	c.Get(context.Background(), exchangeinfo.Spot) // failure 1
	for k, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		before := asked()
		e.clock.Advance(d/2 - 10*time.Millisecond) // within the shortest jittered wait
		c.Get(context.Background(), exchangeinfo.Spot)
		if asked() != before {
			t.Fatalf("after failure %d, %v later: upstream asked again, want not before %v", k+1, d/2, d/2)
		}
		e.clock.Advance(d/2 + 20*time.Millisecond) // past the longest jittered wait
		c.Get(context.Background(), exchangeinfo.Spot)
		if asked() != before+1 {
			t.Fatalf("after failure %d, %v later: upstream requests = %d, want %d", k+1, d, asked(), before+1)
		}
	}
}

// Past the TTL while a refresh is in flight, the stale snapshot answers at
// once instead of waiting for Binance.
func TestFaults_StaleWhileRevalidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &memTransport{h: fixtureHandler(t)}
		c := newWorld(t, inMemory(tr)).process(symcache.Config{}, markets(exchangeinfo.Spot))
		defer c.Close()
		first, err := c.Get(context.Background(), exchangeinfo.Spot)
		if err != nil || first.Source != symcache.Miss {
			t.Fatalf("first Get = %v, %v; want MISS", first.Source, err)
		}
		time.Sleep(6 * time.Minute) // past the TTL
		tr.release = make(chan struct{})
		var waiting symcache.Result
		var wg sync.WaitGroup
		wg.Go(func() { waiting, _ = c.Get(context.Background(), exchangeinfo.Spot) })
		synctest.Wait() // the refresh is in flight, blocked upstream

		r, err := c.Get(context.Background(), exchangeinfo.Spot)
		if err != nil || r.Source != symcache.Stale || r.Reason != "refresh in progress" || r.Snapshot != first.Snapshot {
			t.Errorf("Get during the refresh = %v %q, %v; want STALE \"refresh in progress\" with the old snapshot", r.Source, r.Reason, err)
		}
		close(tr.release)
		wg.Wait()
		if waiting.Source != symcache.Miss {
			t.Errorf("the Get that started the refresh = %v, want MISS", waiting.Source)
		}
		if r, _ := c.Get(context.Background(), exchangeinfo.Spot); r.Source != symcache.HitL1 {
			t.Errorf("Get after the refresh = %v, want HIT-L1", r.Source)
		}
	})
}

// A shrunken answer is rejected until it has kept coming for a TTL, three
// times in a row: then the market really shrank.
func TestFaults_ShrinkAcceptedOnlyWhenItPersists(t *testing.T) {
	e := newWorld(t, withRedis(relaxed), standingClock())
	c := e.process(symcache.Config{}, markets(exchangeinfo.Spot), upstreamAt(e.upstream.URL), fetchTimeout(5*time.Second), alone())
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")})
	for i := range 2 {
		e.clock.Advance(6 * time.Minute) // past the TTL
		if r := get(t, c, exchangeinfo.Spot, symcache.Stale); r.Snapshot.Len() != 2292 {
			t.Fatalf("sighting %d: served %d symbols, want the 2292 of last good", i+1, r.Snapshot.Len())
		}
	}
	e.clock.Advance(6 * time.Minute) // third sighting, 12 minutes after the first (TTL 5m)
	if r := get(t, c, exchangeinfo.Spot, symcache.Miss); r.Snapshot.Len() != 20 {
		t.Errorf("third sighting over a TTL: served %d symbols, want the new 20", r.Snapshot.Len())
	}
	if !strings.Contains(e.logs.String(), "kept coming") {
		t.Errorf("logs lack the acceptance:\n%s", e.logs.String())
	}
}

// A process without Redis that restarts while Binance is unreachable serves
// its last good snapshot from disk.
func TestFaults_DiskCopySurvivesRestart(t *testing.T) {
	e := newWorld(t)
	dir := t.TempDir()
	store, err := disk.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	build := func(url string) *symcache.Cache {
		return e.process(symcache.Config{Disk: store}, markets(exchangeinfo.Spot), upstreamAt(url))
	}
	c := build(e.upstream.URL)
	good := get(t, c, exchangeinfo.Spot, symcache.Miss).Snapshot
	c.Close()

	// Restarted, Binance unreachable, still fresh: served from the disk copy.
	down := "http://" + testutil.FreeAddr(t)
	c = build(down)
	if _, ok := c.Ready(); !ok {
		t.Error("Ready() = false after a restart with a disk copy, want true")
	}
	r := get(t, c, exchangeinfo.Spot, symcache.HitL1)
	if !bytes.Equal(r.Snapshot.Body(), good.Body()) {
		t.Error("answer after the restart is not the saved snapshot")
	}
	c.Close()

	// Later, past the TTL: still served, as STALE.
	e.clock.Advance(time.Hour)
	c = build(down)
	defer c.Close()
	r = get(t, c, exchangeinfo.Spot, symcache.Stale)
	if !bytes.Equal(r.Snapshot.Body(), good.Body()) || r.Reason != "upstream unreachable" {
		t.Errorf("stale answer from disk: reason %q, same body %v; want upstream unreachable, true", r.Reason, bytes.Equal(r.Snapshot.Body(), good.Body()))
	}
}

// A connection that never completes: the dial waits until the fetch's
// deadline. The answer is the last good snapshot, STALE, "upstream timeout".
func TestFaults_ConnectTimeout(t *testing.T) {
	e := newWorld(t, withRedis(relaxed), standingClock())
	c := e.process(symcache.Config{}, markets(exchangeinfo.Spot), upstreamAt(e.upstream.URL), fetchTimeout(5*time.Second), alone())
	good := get(t, c, exchangeinfo.Spot, symcache.Miss).Snapshot

	hanging := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			<-ctx.Done() // a SYN that is never answered
			return nil, ctx.Err()
		},
	}}
	c2 := e.process(symcache.Config{FetchTimeout: 30 * time.Second}, markets(exchangeinfo.Spot), upstreamClient(hanging), fetchTimeout(200*time.Millisecond), alone())
	e.clock.Advance(6 * time.Minute)
	r := get(t, c2, exchangeinfo.Spot, symcache.Stale)
	if r.Reason != "upstream timeout" || !bytes.Equal(r.Snapshot.Body(), good.Body()) {
		t.Errorf("Get with a hanging connect = %q, same body %v; want \"upstream timeout\" and the last good body", r.Reason, bytes.Equal(r.Snapshot.Body(), good.Body()))
	}
	if n := c2.Stats()[0].Fetches["timeout"]; n != 1 {
		t.Errorf("Stats().Fetches[timeout] = %d, want 1", n)
	}
}

// Redis restarted empty while Binance fails: the refresher puts the last good
// snapshot it holds back into Redis, so that other processes can fall back
// on it (found by the chaos test).
func TestFaults_LastGoodReseededAfterRedisLostIt(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	c := e.process(symcache.Config{RefreshInterval: 20 * time.Millisecond})
	waitReady(t, c)
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Status: http.StatusServiceUnavailable})
	// A refresh already under way may still succeed and write current: wait
	// for one that failed.
	for deadline := time.Now().Add(10 * time.Second); c.Stats()[0].Fetches["status"] == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no failed refresh within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.redis.Stop()
	e.restartRedis()
	deadline := time.Now().Add(10 * time.Second)
	for e.rdb.Exists(context.Background(), "symcache:{spot}:last_good").Val() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("last_good not back in Redis 10s after it restarted empty")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var env struct {
		ExchangeInfo json.RawMessage `json:"exchange_info"`
	}
	if err := json.Unmarshal(e.raw("symcache:{spot}:last_good"), &env); err != nil || !bytes.Equal(env.ExchangeInfo, spotFixture(t)) {
		t.Errorf("reseeded last_good = %v, want the envelope of the recorded body", err)
	}
	if n := e.rdb.Exists(context.Background(), "symcache:{spot}:current").Val(); n != 0 {
		t.Error("current was written without a fresh fetch")
	}
}
