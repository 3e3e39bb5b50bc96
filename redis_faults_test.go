package symcache_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// The Redis part of the fault matrix. Each test injects one fault for real (a
// killed, restarted, stalled, slowed, corrupted or emptied redis-server) and
// checks what the client gets, what is logged, what Stats says, and the raw
// bytes under both keys, read with a direct client and encoding/json.

const (
	currentKey  = "symcache:{spot}:current"
	lastGoodKey = "symcache:{spot}:last_good"
)

// spotStats returns c's spot counters.
func spotStats(t *testing.T, c *symcache.Cache) symcache.Stats {
	t.Helper()
	for _, st := range c.Stats() {
		if st.Market == exchangeinfo.Spot {
			return st
		}
	}
	t.Fatal("Stats() has no spot entry")
	return symcache.Stats{}
}

// checkL2Stats compares the L2 counters of st.
func checkL2Stats(t *testing.T, st symcache.Stats, hits, misses, errs uint64) {
	t.Helper()
	if st.L2Hits != hits || st.L2Misses != misses || st.L2Errors != errs {
		t.Errorf("Stats() L2 hits/misses/errors = %d/%d/%d, want %d/%d/%d", st.L2Hits, st.L2Misses, st.L2Errors, hits, misses, errs)
	}
}

// l2Warnings counts the WARN records about spot's L2 key that ends with which
// ("current" or "last_good"): l2 names the whole key, the read path its suffix.
func l2Warnings(t *testing.T, logs *testutil.LogBuffer, which string) int {
	t.Helper()
	n := 0
	for _, r := range logs.Records(t) {
		key, _ := r["key"].(string)
		if r["level"] == "WARN" && r["tier"] == "l2" && r["market"] == "spot" && strings.HasSuffix(key, which) && r["err"] != nil {
			n++
		}
	}
	return n
}

// rawEnvelope is the Redis value as docs/design.md lays it out, decoded without l2.
type rawEnvelope struct {
	Market       string          `json:"market"`
	FetchedAt    time.Time       `json:"fetched_at"`
	ServerTime   int64           `json:"server_time"`
	ETag         string          `json:"etag"`
	ExchangeInfo json.RawMessage `json:"exchange_info"`
}

// checkStored checks that key holds a valid spot envelope around body, Binance's
// bytes as received, and returns it. It reads the raw value with its own
// gzip and encoding/json, not with l2.
func (e *world) checkStored(key string, body []byte) rawEnvelope {
	e.t.Helper()
	raw, err := e.rdb.Get(context.Background(), key).Bytes()
	if err != nil {
		e.t.Fatalf("GET %s = %v, want the envelope", key, err)
	}
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			e.t.Fatalf("GET %s: gzip: %v", key, err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			e.t.Fatalf("GET %s: gunzip: %v", key, err)
		}
	}
	var env rawEnvelope
	if err := json.Unmarshal(raw, &env); err != nil {
		e.t.Fatalf("GET %s is not a JSON envelope (%.60q…): %v", key, raw, err)
	}
	var info struct{ ServerTime int64 }
	if err := json.Unmarshal(body, &info); err != nil {
		e.t.Fatal(err)
	}
	if env.Market != "spot" || env.FetchedAt.IsZero() || env.ETag == "" || env.ServerTime != info.ServerTime {
		e.t.Errorf("GET %s envelope = {%q %v %d %q}, want spot, a fetch time, %d, an ETag", key, env.Market, env.FetchedAt, env.ServerTime, env.ETag, info.ServerTime)
	}
	if !bytes.Equal(env.ExchangeInfo, body) {
		e.t.Errorf("GET %s exchange_info = %d bytes, want Binance's %d bytes as received", key, len(env.ExchangeInfo), len(body))
	}
	return env
}

// checkTTLs checks that current expires within ttl and last_good never.
func (e *world) checkTTLs(ttl time.Duration) {
	e.t.Helper()
	ctx := context.Background()
	if d := e.rdb.PTTL(ctx, currentKey).Val(); d <= 0 || d > ttl {
		e.t.Errorf("PTTL %s = %v, want in (0, %v]", currentKey, d, ttl)
	}
	if d := e.rdb.TTL(ctx, lastGoodKey).Val(); d != -1 {
		e.t.Errorf("TTL %s = %v, want -1 (none)", lastGoodKey, d)
	}
}

// Redis down when the sidecar starts: it serves from Binance, and once Redis
// is up (same address, empty) the next fetch writes both keys again; go-redis
// reconnected by itself.
func TestFaults_RedisDownAtStart(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	e.redis.Stop()
	c := e.process(symcache.Config{})

	r := get(t, c, exchangeinfo.Spot, symcache.Miss)
	if !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) {
		t.Error("Get with Redis down: body differs from Binance's")
	}
	get(t, c, exchangeinfo.Spot, symcache.HitL1)
	st := spotStats(t, c)
	checkL2Stats(t, st, 0, 1, 2) // current and last_good both unreachable
	if st.Fetches["ok"] != 1 {
		t.Errorf("Stats().Fetches = %v, want ok: 1", st.Fetches)
	}
	if n := l2Warnings(t, e.logs, "current"); n != 1 {
		t.Errorf("logged %d WARN records naming %s, want 1:\n%s", n, currentKey, e.logs)
	}
	if n := l2Warnings(t, e.logs, "last_good"); n != 1 {
		t.Errorf("logged %d WARN records naming %s, want 1:\n%s", n, lastGoodKey, e.logs)
	}
	if !(e.logs.Count(t, "level", "ERROR", "msg", "l2 put failed") > 0) {
		t.Errorf("logs lack the failed write at ERROR:\n%s", e.logs)
	}

	e.restartRedis()
	if n := e.exists(currentKey, lastGoodKey); n != 0 {
		t.Fatalf("EXISTS current last_good after Restart = %d, want 0 (empty)", n)
	}
	e.clock.Advance(6 * time.Minute) // past the TTL: the next Get fetches
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	e.checkStored(currentKey, spotFixture(t))
	e.checkStored(lastGoodKey, spotFixture(t))
	e.checkTTLs(5 * time.Minute)
	checkL2Stats(t, spotStats(t, c), 0, 2, 2) // an empty Redis is a plain miss

	// Another process finds it there.
	c2 := e.process(symcache.Config{})
	if r := get(t, c2, exchangeinfo.Spot, symcache.HitL2); !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) {
		t.Error("HIT-L2 after Redis came back: body differs from Binance's")
	}
	if n := spotRequests(e.upstream); n != 2 {
		t.Errorf("upstream requests = %d, want 2", n)
	}
}

// Redis killed mid-run and restarted empty: requests go on from L1 and
// Binance, and the next refresh writes both keys again.
func TestFaults_RedisRestartedEmpty(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	c := e.process(symcache.Config{})
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	before := e.checkStored(currentKey, spotFixture(t))

	e.redis.Stop()
	get(t, c, exchangeinfo.Spot, symcache.HitL1) // L1 needs no Redis
	e.clock.Advance(6 * time.Minute)
	if r := get(t, c, exchangeinfo.Spot, symcache.Miss); !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) {
		t.Error("Get with Redis killed: body differs from Binance's")
	}
	checkL2Stats(t, spotStats(t, c), 0, 2, 1)
	if n := l2Warnings(t, e.logs, "current"); n != 1 {
		t.Errorf("logged %d WARN records naming %s, want 1:\n%s", n, currentKey, e.logs)
	}
	if !(e.logs.Count(t, "level", "ERROR", "msg", "l2 put failed") > 0) {
		t.Errorf("logs lack the failed write at ERROR:\n%s", e.logs)
	}

	e.restartRedis()
	if n := e.exists(currentKey, lastGoodKey); n != 0 {
		t.Fatalf("EXISTS current last_good after Restart = %d, want 0 (empty)", n)
	}
	e.clock.Advance(time.Minute)
	r, err := c.Refresh(context.Background(), exchangeinfo.Spot)
	if err != nil {
		t.Fatalf("Refresh after Restart = %v, want nil", err)
	}
	s := r.Snapshot
	cur := e.checkStored(currentKey, spotFixture(t))
	last := e.checkStored(lastGoodKey, spotFixture(t))
	e.checkTTLs(5 * time.Minute)
	if !cur.FetchedAt.Equal(s.FetchedAt()) || !last.FetchedAt.Equal(s.FetchedAt()) || !cur.FetchedAt.After(before.FetchedAt) {
		t.Errorf("fetched_at current %v, last_good %v; want both the refresh's %v, after the first %v", cur.FetchedAt, last.FetchedAt, s.FetchedAt(), before.FetchedAt)
	}
	if st := spotStats(t, c); st.Fetches["ok"] != 3 {
		t.Errorf("Stats().Fetches = %v, want ok: 3", st.Fetches)
	}
	get(t, e.process(symcache.Config{}), exchangeinfo.Spot, symcache.HitL2)
}

// Redis slow or hung, behind a proxy: the 50ms read budget gives up, the
// request goes on to Binance (MISS) or memory (STALE), and the client is
// answered; when Redis is well again, a new process hits L2.
func TestFaults_RedisSlow(t *testing.T) {
	tests := []struct {
		name       string
		fault      func(*l2test.Proxy)
		writeFails bool // past WriteTimeout (1s) too
	}{
		{"stalled", (*l2test.Proxy).Stall, true},
		// 200ms each way: past the 50ms read budget. The 1s write budget holds
		// a few round trips (dial, handshake, MULTI/EXEC), so the write may or
		// may not complete.
		{"slower than the budget", func(p *l2test.Proxy) { p.Delay(200 * time.Millisecond) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The default read budget (50ms). Gzip, so that a GET of the whole
			// value through the proxy takes well under it even under -race.
			e := newWorld(t, withRedis(l2.Config{Encoding: l2.Gzip}), throughProxy())
			proxy := e.proxy
			get(t, e.process(symcache.Config{}), exchangeinfo.Spot, symcache.Miss)
			e.checkStored(currentKey, spotFixture(t))

			tt.fault(proxy)
			// Without l2's budget, a stalled read would wait for FetchTimeout,
			// here longer than any test runs.
			c := e.process(symcache.Config{FetchTimeout: time.Hour})
			r := get(t, c, exchangeinfo.Spot, symcache.Miss)
			if !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) {
				t.Error("Get with Redis slow: body differs from Binance's")
			}
			checkL2Stats(t, spotStats(t, c), 0, 1, 2)
			if n := l2Warnings(t, e.logs, "current"); n != 1 {
				t.Errorf("logged %d WARN records naming %s, want 1 (one per read):\n%s", n, currentKey, e.logs)
			}
			if n := l2Warnings(t, e.logs, "last_good"); n != 1 {
				t.Errorf("logged %d WARN records naming %s, want 1:\n%s", n, lastGoodKey, e.logs)
			}
			if tt.writeFails && !(e.logs.Count(t, "level", "ERROR", "msg", "l2 put failed") > 0) {
				t.Errorf("logs lack the write that ran out of time:\n%s", e.logs)
			}
			get(t, c, exchangeinfo.Spot, symcache.HitL1)

			proxy.Resume()
			// The write that timed out may land late (what the proxy held is
			// delivered), or not at all (a MULTI cut short is discarded): either
			// way, both keys hold a whole, valid envelope.
			e.checkStored(currentKey, spotFixture(t))
			e.checkStored(lastGoodKey, spotFixture(t))
			get(t, e.process(symcache.Config{}), exchangeinfo.Spot, symcache.HitL2)

			// Slow Redis and Binance failing: memory answers, STALE.
			tt.fault(proxy)
			e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Status: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"120"}}})
			e.clock.Advance(6 * time.Minute)
			before := spotStats(t, c).L2Errors
			r = get(t, c, exchangeinfo.Spot, symcache.Stale)
			if !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) || r.Reason != "upstream 503" {
				t.Errorf("stale answer: reason %q, same body %v; want %q, true", r.Reason, bytes.Equal(r.Snapshot.Body(), spotFixture(t)), "upstream 503")
			}
			if got := spotStats(t, c).L2Errors; got != before+2 {
				t.Errorf("Stats().L2Errors = %d, want %d (current and last_good timed out)", got, before+2)
			}
			proxy.Resume()
		})
	}
}

// envelopeJSON returns a spot envelope as l2 writes it around exchangeInfo,
// which is appended as is.
func envelopeJSON(market string, fetchedAt time.Time, exchangeInfo []byte) []byte {
	h := fmt.Sprintf(`{"market":%q,"fetched_at":%q,"server_time":1694185561976,"etag":"\"x\"","exchange_info":`,
		market, fetchedAt.UTC().Format(time.RFC3339Nano))
	return append(append([]byte(h), exchangeInfo...), '}')
}

// smallSpot is a real spot answer of 20 symbols (22 KB): the corrupt-value
// tables fetch it once per case, and parsing the 3.7 MB one takes a second
// under -race.
func smallSpot(t *testing.T) []byte {
	return fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")
}

// corruptValues are values no reader may serve, as if fetched at at, around
// pieces of body.
func corruptValues(t *testing.T, body []byte, at time.Time) []struct {
	name  string
	value []byte
} {
	cut := bytes.Index(body, []byte(`,"symbols"`))
	if cut < 0 {
		t.Fatal(`spot fixture has no ,"symbols"`)
	}
	return []struct {
		name  string
		value []byte
	}{
		{"not JSON", []byte("<html><body>502 Bad Gateway</body></html>")},
		{"other market", envelopeJSON("usdm", at, usdmFixture(t))},
		{"no exchange_info", []byte(fmt.Sprintf(`{"market":"spot","fetched_at":%q,"server_time":1,"etag":"x"}`, at.UTC().Format(time.RFC3339)))},
		{"exchange_info cut mid-way", envelopeJSON("spot", at, body[:len(body)/2])},
		// Valid JSON, and a JSON object: only validating Binance's body finds it.
		{"exchange_info cut before symbols", envelopeJSON("spot", at, append(body[:cut:cut], '}'))},
		{"exchange_info with no symbols", envelopeJSON("spot", at, []byte(`{"timezone":"UTC","serverTime":1694185561976,"symbols":[]}`))},
		{"gzip of garbage", testutil.Gzip(t, []byte("garbage"))},
		{"gzip cut short", func() []byte { z := testutil.Gzip(t, envelopeJSON("spot", at, body)); return z[:len(z)/2] }()},
	}
}

// A corrupt value under both keys is a miss with a warning; the fetch that
// follows overwrites both with a valid envelope.
func TestFaults_RedisCorruptValue(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	body := smallSpot(t)
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: body})
	ctx := context.Background()
	for _, tt := range corruptValues(t, body, e.clock.Now()) {
		t.Run(tt.name, func(t *testing.T) {
			e.logs.Reset()
			if err := e.rdb.Set(ctx, currentKey, tt.value, time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			if err := e.rdb.Set(ctx, lastGoodKey, tt.value, 0).Err(); err != nil {
				t.Fatal(err)
			}
			asked := spotRequests(e.upstream)

			c := e.process(symcache.Config{})
			defer c.Close() // its watcher would read the next case's values
			r := get(t, c, exchangeinfo.Spot, symcache.Miss)
			if !bytes.Equal(r.Snapshot.Body(), body) {
				t.Error("Get over a corrupt Redis: body differs from Binance's")
			}
			if n := spotRequests(e.upstream); n != asked+1 {
				t.Errorf("upstream requests = %d, want %d", n, asked+1)
			}
			checkL2Stats(t, spotStats(t, c), 0, 1, 2)
			if l2Warnings(t, e.logs, "current") != 1 || l2Warnings(t, e.logs, "last_good") != 1 {
				t.Errorf("logs = %s\nwant one WARN naming each key (current %d, last_good %d)", e.logs, l2Warnings(t, e.logs, "current"), l2Warnings(t, e.logs, "last_good"))
			}

			cur := e.checkStored(currentKey, body)
			last := e.checkStored(lastGoodKey, body)
			if !cur.FetchedAt.Equal(r.Snapshot.FetchedAt()) || !last.FetchedAt.Equal(r.Snapshot.FetchedAt()) {
				t.Errorf("fetched_at current %v, last_good %v; want the fetch's %v", cur.FetchedAt, last.FetchedAt, r.Snapshot.FetchedAt())
			}
			e.checkTTLs(5 * time.Minute)
			other := e.process(symcache.Config{})
			defer other.Close()
			get(t, other, exchangeinfo.Spot, symcache.HitL2)
		})
	}
}

// A corrupt last_good while Binance fails: the answer is memory's snapshot or
// 503, never the corrupt bytes, and Redis keeps what it had.
func TestFaults_RedisCorruptLastGood(t *testing.T) {
	ctx := context.Background()
	body := smallSpot(t)
	// Newer than anything fetched, and by the time it is read (the clock is
	// moved 6 minutes on) not in the future.
	for _, tt := range corruptValues(t, body, time.Now().Add(30*time.Second)) {
		t.Run(tt.name, func(t *testing.T) {
			e := newWorld(t, withRedis(relaxed))
			e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: body})
			warm := e.process(symcache.Config{})
			good := get(t, warm, exchangeinfo.Spot, symcache.Miss).Snapshot
			e.rdb.Del(ctx, currentKey) // expired
			if err := e.rdb.Set(ctx, lastGoodKey, tt.value, 0).Err(); err != nil {
				t.Fatal(err)
			}
			e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Status: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"120"}}})
			e.clock.Advance(6 * time.Minute)

			// A process that remembers the good snapshot serves it.
			r := get(t, warm, exchangeinfo.Spot, symcache.Stale)
			if r.Snapshot != good || r.Reason != "upstream 503" {
				t.Errorf("Get = snapshot %p %q, want the good one in memory %p, %q", r.Snapshot, r.Reason, good, "upstream 503")
			}
			checkL2Stats(t, spotStats(t, warm), 0, 2, 1)
			if n := l2Warnings(t, e.logs, "last_good"); n != 1 {
				t.Errorf("logged %d WARN records naming %s, want 1:\n%s", n, lastGoodKey, e.logs)
			}

			// A new process has nothing valid anywhere: 503, not the corrupt bytes.
			cold := e.process(symcache.Config{})
			_, err := cold.Get(ctx, exchangeinfo.Spot)
			var ue *symcache.UnavailableError
			if !errors.As(err, &ue) || !errors.Is(err, symcache.ErrUnavailable) {
				t.Errorf("Get with only a corrupt last_good = %v, want an *UnavailableError", err)
			}
			st := spotStats(t, cold)
			if st.Unavailable != 1 || st.L2Hits != 0 || st.L2Errors < 1 {
				t.Errorf("Stats() unavailable %d, L2 hits %d, L2 errors %d; want 1, 0, at least 1", st.Unavailable, st.L2Hits, st.L2Errors)
			}
			if got := e.rdb.Get(ctx, lastGoodKey).Val(); got != string(tt.value) {
				t.Errorf("GET %s changed while Binance failed", lastGoodKey)
			}
			if n := e.rdb.Exists(ctx, currentKey).Val(); n != 0 {
				t.Errorf("EXISTS %s = %d while Binance failed, want 0", currentKey, n)
			}
		})
	}
}

// Keys evicted (deleted) or expired: the next Get is a plain miss, not an
// error, fetches, and writes both keys again.
func TestFaults_RedisKeysGone(t *testing.T) {
	t.Run("deleted", func(t *testing.T) {
		e := newWorld(t, withRedis(relaxed))
		c := e.process(symcache.Config{})
		get(t, c, exchangeinfo.Spot, symcache.Miss)
		if n := e.rdb.Del(context.Background(), currentKey, lastGoodKey).Val(); n != 2 {
			t.Fatalf("DEL current last_good = %d, want 2", n)
		}
		get(t, c, exchangeinfo.Spot, symcache.HitL1) // L1 is not Redis

		c2 := e.process(symcache.Config{})
		r := get(t, c2, exchangeinfo.Spot, symcache.Miss)
		if !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) {
			t.Error("Get after eviction: body differs from Binance's")
		}
		checkL2Stats(t, spotStats(t, c2), 0, 1, 0)
		if n := l2Warnings(t, e.logs, ""); n != 0 {
			t.Errorf("an absent key logged %d warnings, want none:\n%s", n, e.logs)
		}
		e.checkStored(currentKey, spotFixture(t))
		e.checkStored(lastGoodKey, spotFixture(t))
		e.checkTTLs(5 * time.Minute)
		if n := spotRequests(e.upstream); n != 2 {
			t.Errorf("upstream requests = %d, want 2", n)
		}
	})

	t.Run("expired", func(t *testing.T) {
		e := newWorld(t, withRedis(relaxed))
		const ttl = time.Second // on the real clock: Redis expires the key itself
		c := e.process(symcache.Config{TTL: ttl})
		first := get(t, c, exchangeinfo.Spot, symcache.Miss).Snapshot
		if d := e.rdb.PTTL(context.Background(), currentKey).Val(); d == -1 || d > ttl {
			t.Errorf("PTTL %s = %v, want at most %v (or gone: -2ns)", currentKey, d, ttl)
		}
		for deadline := time.Now().Add(10 * time.Second); e.rdb.Exists(context.Background(), currentKey).Val() != 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%s still there 10s after a %v TTL", currentKey, ttl)
			}
			time.Sleep(20 * time.Millisecond)
		}
		e.checkStored(lastGoodKey, spotFixture(t)) // no TTL

		// Another sidecar, whose TTL (5m) keeps the new current long enough to look at.
		c2 := e.process(symcache.Config{})
		r := get(t, c2, exchangeinfo.Spot, symcache.Miss)
		checkL2Stats(t, spotStats(t, c2), 0, 1, 0)
		if n := l2Warnings(t, e.logs, ""); n != 0 {
			t.Errorf("an expired key logged %d warnings, want none:\n%s", n, e.logs)
		}
		cur := e.checkStored(currentKey, spotFixture(t))
		last := e.checkStored(lastGoodKey, spotFixture(t))
		e.checkTTLs(5 * time.Minute)
		if !cur.FetchedAt.Equal(r.Snapshot.FetchedAt()) || !last.FetchedAt.Equal(r.Snapshot.FetchedAt()) || !r.Snapshot.FetchedAt().After(first.FetchedAt()) {
			t.Errorf("fetched_at current %v, last_good %v; want the new fetch's %v", cur.FetchedAt, last.FetchedAt, r.Snapshot.FetchedAt())
		}
	})
}

// A new process (nothing in memory) while Binance fails and Redis is slow
// past the 50ms read budget: last_good, the only snapshot left, is worth a
// longer wait (LastGoodTimeout, 1s) than a hit on the hot path, and the
// client gets it as STALE, not a 503. Found by the chaos run: a restarted
// sidecar answered 503 while Redis held a valid last_good.
func TestFaults_NewProcessReachesLastGoodThroughSlowRedis(t *testing.T) {
	e := newWorld(t, withRedis(l2.Config{Encoding: l2.Gzip}), throughProxy())
	get(t, e.process(symcache.Config{}), exchangeinfo.Spot, symcache.Miss)
	if err := e.rdb.Del(context.Background(), currentKey).Err(); err != nil { // as if its TTL ran out
		t.Fatal(err)
	}
	e.clock.Advance(6 * time.Minute)
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Status: http.StatusServiceUnavailable})

	// 100ms each way: every read is past 50ms, and well within 1s.
	e.proxy.Delay(100 * time.Millisecond)
	c := e.process(symcache.Config{})
	r, err := c.Get(context.Background(), exchangeinfo.Spot)
	if err != nil {
		t.Fatalf("Get with Binance down and Redis slow = %v, want last_good as STALE", err)
	}
	if r.Source != symcache.Stale || r.Reason != "upstream 503" || !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) {
		t.Errorf("Get = %v (reason %q, body is last_good's: %v), want STALE, upstream 503, true", r.Source, r.Reason, bytes.Equal(r.Snapshot.Body(), spotFixture(t)))
	}
	e.checkStored(lastGoodKey, spotFixture(t))
}

// The same new process, with Redis stalled while it first reads last_good
// and back by the time Binance has failed (here, by running out of
// FetchTimeout, which leaves the load's context done): the fallback reads
// last_good again, with a budget of its own, rather than answering 503.
func TestFaults_FallbackReadsLastGoodAgain(t *testing.T) {
	e := newWorld(t, withRedis(l2.Config{Encoding: l2.Gzip}), throughProxy())
	get(t, e.process(symcache.Config{}), exchangeinfo.Spot, symcache.Miss)
	if err := e.rdb.Del(context.Background(), currentKey).Err(); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(6 * time.Minute)
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Delay: time.Hour}) // hangs
	before := spotRequests(e.upstream)

	e.proxy.Stall()
	c := e.process(symcache.Config{FetchTimeout: 4 * time.Second})
	done := make(chan struct{})
	var (
		r   symcache.Result
		err error
	)
	go func() {
		defer close(done)
		r, err = c.Get(context.Background(), exchangeinfo.Spot)
	}()
	// Once Binance is being asked, the reads of last_good before it failed.
	for spotRequests(e.upstream) == before {
		select {
		case <-done:
			t.Fatalf("Get returned before asking Binance: %v, %v", r.Source, err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	e.proxy.Resume()
	<-done
	if err != nil {
		t.Fatalf("Get = %v, want last_good as STALE", err)
	}
	if r.Source != symcache.Stale || !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) {
		t.Errorf("Get = %v (reason %q, body is last_good's: %v), want STALE with last_good's body", r.Source, r.Reason, bytes.Equal(r.Snapshot.Body(), spotFixture(t)))
	}
	if n := l2Warnings(t, e.logs, "last_good"); n < 1 {
		t.Errorf("logged %d WARN records naming %s, want at least 1 (the stalled read):\n%s", n, lastGoodKey, e.logs)
	}
}
