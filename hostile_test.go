package symcache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/disk"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l1"
	"github.com/symcache/symcache/l2"
)

// Inputs from outside that are absurd or hostile: each ends in a bounded,
// logged, counted outcome, and the last good snapshot keeps being served.

// halted is the recorded spot answer with BTCUSDT halted: wrong data that
// must never be served as fresh.
func halted(t *testing.T) []byte {
	t.Helper()
	body := spotFixture(t)
	i := bytes.Index(body, []byte(`"symbol":"BTCUSDT","status":"TRADING"`))
	if i < 0 {
		t.Fatal("no BTCUSDT TRADING in the spot fixture")
	}
	out := bytes.Clone(body)
	copy(out[i:], `"symbol":"BTCUSDT","status":"HALT"   `) // same length
	return out
}

// A value in Redis dated a day ahead (with a meta key naming it) is never
// served, neither as fresh nor when Binance fails; it is counted and logged
// once.
func TestHostile_FutureDatedRedisValue(t *testing.T) {
	ctx := context.Background()
	e := newWorld(t, withRedis(relaxed))
	ahead := time.Now().Add(24 * time.Hour)
	poison := envelopeJSON("spot", ahead, halted(t))
	plant := func() {
		t.Helper()
		for _, key := range []string{spotCurrent, spotLastGood} {
			if err := e.rdb.Set(ctx, key, poison, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		meta := map[string]any{"market": "spot", "fetched_at": ahead.UTC().Format(time.RFC3339Nano), "fetched_at_ms": ahead.UnixMilli(), "etag": `"x"`}
		if err := e.rdb.HSet(ctx, "symcache:{spot}:meta", meta).Err(); err != nil {
			t.Fatal(err)
		}
	}
	plant()

	c := e.process(symcache.Config{})
	for range 3 {
		r, err := c.Get(ctx, exchangeinfo.Spot)
		if err != nil || r.Snapshot.FetchedAt().After(time.Now().Add(time.Minute)) || !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) {
			t.Fatalf("Get(spot) with a future-dated value in Redis = %v, %v; want Binance's answer", r.Source, err)
		}
	}
	if n := spotRequests(e.upstream); n != 1 {
		t.Errorf("upstream requests = %d, want 1", n)
	}
	if st := c.Stats()[0]; st.FutureDated == 0 {
		t.Errorf("Stats().FutureDated = 0, want the future-dated value counted")
	}
	if n := e.logs.Count(t, "msg", "ignoring a value dated in the future"); n != 1 {
		t.Errorf("logged the future-dated value %d times, want once:\n%s", n, e.logs)
	}

	// Planted again, and Binance fails: a new process has nothing to serve,
	// rather than the poisoned snapshot.
	plant()
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Status: http.StatusServiceUnavailable})
	c2 := e.process(symcache.Config{}, alone())
	if r, err := c2.Get(ctx, exchangeinfo.Spot); !errors.Is(err, symcache.ErrUnavailable) {
		t.Fatalf("Get(spot) with only a future-dated last_good while Binance fails = %v, %v; want ErrUnavailable", r.Source, err)
	}
	for _, st := range []symcache.MarketState{c2.Stats()[0].State} {
		if st.Age < 0 || st.State != "empty" {
			t.Errorf("state = %+v, want empty, never a negative age", st)
		}
	}
}

// A disk copy dated in the future is ignored at start.
func TestHostile_FutureDatedDiskCopy(t *testing.T) {
	e := newWorld(t)
	store, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := exchangeinfo.Parse(exchangeinfo.Spot, halted(t), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(s); err != nil {
		t.Fatal(err)
	}
	c := e.process(symcache.Config{Disk: store}, markets(exchangeinfo.Spot))
	if _, ok := c.Ready(); ok {
		t.Error("Ready() = true from a future-dated disk copy, want false")
	}
	r := get(t, c, exchangeinfo.Spot, symcache.Miss)
	if !bytes.Equal(r.Snapshot.Body(), spotFixture(t)) {
		t.Error("served the future-dated disk copy")
	}
	if n := e.logs.Count(t, "msg", "ignoring the disk copy"); n != 1 {
		t.Errorf("logged %d WARN lines about the disk copy, want 1:\n%s", n, e.logs)
	}
	if n := c.Stats()[0].DiskErrors; n != 1 {
		t.Errorf("Stats().DiskErrors = %d, want 1", n)
	}
}

// A snapshot larger than L1's budget is served from memory while fresh:
// one upstream request, not one per Get; it is logged once.
func TestHostile_SnapshotLargerThanL1(t *testing.T) {
	e := newWorld(t)
	mem, err := l1.New(l1.Config{MaxBytes: 1 << 20}) // the spot snapshot is 3.7 MB
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mem.Close)
	c := e.process(symcache.Config{L1: mem}, markets(exchangeinfo.Spot))
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	for range 50 {
		get(t, c, exchangeinfo.Spot, symcache.HitL1)
	}
	if n := spotRequests(e.upstream); n != 1 {
		t.Errorf("upstream requests for 51 Gets with a snapshot larger than L1 = %d, want 1", n)
	}
	if mem.Dropped() == 0 {
		t.Error("L1 dropped no set, want the snapshot refused")
	}
	if n := e.logs.Count(t, "level", "WARN", "tier", "l1"); n != 1 {
		t.Errorf("logged %d WARN lines about L1, want 1:\n%s", n, e.logs)
	}
	// Past the TTL, Binance is asked again, once.
	e.clock.Advance(6 * time.Minute)
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	get(t, c, exchangeinfo.Spot, symcache.HitL1)
	if n := spotRequests(e.upstream); n != 2 {
		t.Errorf("upstream requests after the TTL = %d, want 2", n)
	}
}

// A flood of announcements, forged or future-dated, costs at most one L2
// read per market per announceGap (250ms).
func TestHostile_AnnouncementFlood(t *testing.T) {
	ctx := context.Background()
	e := newWorld(t, withRedis(relaxed))
	a, b := e.process(symcache.Config{}), e.process(symcache.Config{})
	get(t, a, exchangeinfo.Spot, symcache.Miss) // b takes it up, announced
	for deadline := time.Now().Add(10 * time.Second); b.Stats()[0].Adopted == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second process did not take up the first's snapshot")
		}
	}
	reads := func() int64 {
		t.Helper()
		var n int64
		for _, cmd := range []string{"get", "getrange"} { // l2 reads a value with GETRANGE, after its size

			info, err := e.rdb.InfoMap(ctx, "commandstats").Result()
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := info["Commandstats"]["cmdstat_"+cmd]; ok {
				var calls int64
				fmt.Sscanf(v, "calls=%d", &calls)
				n += calls
			}
		}
		return n
	}
	before := reads()
	start := time.Now()
	for i := range 2000 {
		at := time.Now().Add(time.Duration(i) * time.Millisecond) // each newer than the last
		if i%2 == 1 {
			at = at.Add(24 * time.Hour) // and every other one a day ahead
		}
		msg, _ := json.Marshal(map[string]any{"market": "spot", "fetched_at": at, "etag": `"forged"`})
		if err := e.rdb.Publish(ctx, "symcache:invalidate", msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second) // announcements still waiting are read by then
	took := time.Since(start)
	// Two processes, each at most one read of a value per started
	// 250ms of flood, plus one at each end.
	if n, most := reads()-before, 2*(int64(took/(250*time.Millisecond))+3); n > most {
		t.Errorf("%d Redis reads for 2000 announcements in %v, want at most %d", n, took.Round(time.Millisecond), most)
	}
	if st := b.Stats()[0]; st.FutureDated < 1 {
		t.Errorf("FutureDated = %d, want the future-dated announcements counted", st.FutureDated)
	}
	get(t, b, exchangeinfo.Spot, symcache.HitL1) // still serving what it had
}

// A process waiting out another's backoff (the refresh lock held as a
// marker) resumes at its next tick once an operator deletes the marker.
func TestHostile_DeletedBackoffMarkerResumes(t *testing.T) {
	ctx := context.Background()
	e := newWorld(t, withRedis(relaxed))
	// Another process's backoff after a failure that banned no host (a 429
	// would also be a shared ban: see TestDeployment_BanStopsEveryProcess).
	if err := e.rdb.Set(ctx, "symcache:{spot}:lock", "backoff:upstream status 503", 2*time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	b := e.process(symcache.Config{RefreshInterval: 200 * time.Millisecond}, markets(exchangeinfo.Spot))
	time.Sleep(time.Second) // b's warm-up and ticks meet the marker
	if n := spotRequests(e.upstream); n != 0 {
		t.Fatalf("upstream requests during the deployment's backoff = %d, want 0", n)
	}
	if err := e.rdb.Del(ctx, "symcache:{spot}:lock").Err(); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); spotRequests(e.upstream) < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no fetch within 5s of the marker's deletion")
		}
	}
	waitReady(t, b)
	get(t, b, exchangeinfo.Spot, symcache.HitL1)
}

// An answer far larger than last good, in bytes or symbols, is held back like
// a shrunken one: last good is served as STALE and Redis keeps it.
func TestHostile_FarLargerAnswerHeldBack(t *testing.T) {
	e := newWorld(t, withRedis(relaxed), standingClock())
	small := fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: small})
	c := e.process(symcache.Config{}, markets(exchangeinfo.Spot), alone())
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	lastGood := e.raw(spotLastGood)
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: fixtures.Grow(t, small, 10*len(small))})
	e.clock.Advance(6 * time.Minute)
	r := get(t, c, exchangeinfo.Spot, symcache.Stale)
	if !bytes.Equal(r.Snapshot.Body(), small) || !strings.HasPrefix(r.Reason, "upstream answer far larger: ") {
		t.Errorf("Get after a 10× answer = reason %q, last good body %v; want the last good, held back", r.Reason, bytes.Equal(r.Snapshot.Body(), small))
	}
	if st := c.Stats()[0]; st.Fetches["grown"] != 1 || st.StaleByReason["grown"] != 1 {
		t.Errorf("Stats() fetches %v, stale by reason %v; want one grown each", st.Fetches, st.StaleByReason)
	}
	if !bytes.Equal(e.raw(spotLastGood), lastGood) {
		t.Error("redis last_good changed after an answer held back")
	}
}

// A 418 with an absurd Retry-After: the ban is capped (72h, in the Gate,
// in the deployment's marker and in the shared bans), and an operator's call
// on any sidecar ends it for the whole deployment, the sidecar that got the
// 418 included.
func TestHostile_ClearBackoffEndsTheDeploymentsBackoff(t *testing.T) {
	ctx := context.Background()
	e := newWorld(t, withRedis(relaxed))
	gateA := fetch.NewGate()
	a := e.process(symcache.Config{Gate: gateA}, markets(exchangeinfo.Spot))
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Status: http.StatusTeapot, Header: http.Header{"Retry-After": {"315360000"}}}) // ten years
	if _, err := a.Get(ctx, exchangeinfo.Spot); !errors.Is(err, symcache.ErrUnavailable) {
		t.Fatalf("Get against a 418 = %v, want ErrUnavailable", err)
	}
	if pttl := e.rdb.PTTL(ctx, "symcache:{spot}:lock").Val(); pttl < 71*time.Hour || pttl > 72*time.Hour {
		t.Errorf("the deployment's marker after a 418 of ten years lives %v, want 72h at most (Binance's longest ban)", pttl)
	}
	var bans []l2.Ban
	testutil.WaitFor(t, 5*time.Second, "the 418 to be shared", func() bool { bans, _ = e.store().Bans(ctx); return len(bans) > 0 })
	if len(bans) != 1 || bans[0].Left < 71*time.Hour || bans[0].Left > 72*time.Hour {
		t.Errorf("the shared bans after a 418 of ten years = %v; want one of 72h at most", bans)
	}
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: spotFixture(t)})
	b := e.process(symcache.Config{}, markets(exchangeinfo.Spot))
	var be *symcache.BackoffError
	if _, err := b.Refresh(ctx, exchangeinfo.Spot); !errors.As(err, &be) || be.Until.Sub(time.Now()) > 72*time.Hour {
		t.Fatalf("Refresh of another sidecar during the ban = %v, want a *BackoffError of 72h at most", err)
	}
	if cleared, err := b.ClearBackoff(ctx, exchangeinfo.Spot); !cleared || err != nil {
		t.Fatalf("ClearBackoff = %v, %v; want true, nil", cleared, err)
	}
	if n := e.exists("symcache:{spot}:lock"); n != 0 {
		t.Error("the deployment's marker is still in Redis after ClearBackoff")
	}
	if r, err := b.Refresh(ctx, exchangeinfo.Spot); err != nil || r.Source != symcache.Miss {
		t.Fatalf("Refresh after ClearBackoff = %v, %v; want a Miss", r.Source, err)
	}
	// a got the 418 itself: the lift reaches its Gate and its backoff.
	testutil.WaitFor(t, 5*time.Second, "the lift to reach the sidecar that got the 418", func() bool {
		_, _, blocked := gateA.Blocked(fetch.GateHost(mustParse(t, e.upstream.URL)), time.Now())
		return !blocked
	})
	if _, err := a.Refresh(ctx, exchangeinfo.Spot); err != nil {
		t.Errorf("Refresh of the sidecar that got the 418 after b's ClearBackoff = %v, want a snapshot", err)
	}
	if n := spotRequests(e.upstream); n != 3 {
		t.Errorf("upstream requests = %d, want 3 (the 418 and one refresh each)", n)
	}
	if cleared, err := a.ClearBackoff(ctx, exchangeinfo.Spot); cleared || err != nil {
		t.Errorf("ClearBackoff with no backoff = %v, %v; want false, nil", cleared, err)
	}
}
