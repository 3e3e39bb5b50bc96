package symcache_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/l2"
)

const (
	spotCurrent  = "symcache:{spot}:current"
	spotLastGood = "symcache:{spot}:last_good"
	usdmCurrent  = "symcache:{usdm}:current"
)

func TestCache_Invalidate(t *testing.T) {
	ctx := context.Background()
	t.Run("L1 only", func(t *testing.T) {
		e := newWorld(t, withRedis(relaxed))
		c := e.process(symcache.Config{})
		good := get(t, c, exchangeinfo.Spot, symcache.Miss).Snapshot
		get(t, c, exchangeinfo.Spot, symcache.HitL1)

		deleted, err := c.Invalidate(ctx, exchangeinfo.Spot, false)
		if err != nil || deleted {
			t.Fatalf("Invalidate(spot, false) = %v, %v, want false, nil", deleted, err)
		}
		if n := e.exists(spotCurrent, spotLastGood); n != 2 {
			t.Errorf("redis keys current and last_good after an L1-only Invalidate: %d exist, want 2", n)
		}
		r := get(t, c, exchangeinfo.Spot, symcache.HitL2) // loaded again, from Redis
		if r.Snapshot.ETag() != good.ETag() || !r.Snapshot.FetchedAt().Equal(good.FetchedAt()) {
			t.Errorf("Get after Invalidate = %s %v, want the stored %s %v", r.Snapshot.ETag(), r.Snapshot.FetchedAt(), good.ETag(), good.FetchedAt())
		}
		get(t, c, exchangeinfo.Spot, symcache.HitL1)
		if n := spotRequests(e.upstream); n != 1 {
			t.Errorf("upstream requests = %d, want 1", n)
		}
	})

	t.Run("L1 and L2", func(t *testing.T) {
		e := newWorld(t, withRedis(relaxed))
		c := e.process(symcache.Config{})
		good := get(t, c, exchangeinfo.Spot, symcache.Miss).Snapshot
		get(t, c, exchangeinfo.USDM, symcache.Miss)

		deleted, err := c.Invalidate(ctx, exchangeinfo.Spot, true)
		if err != nil || !deleted {
			t.Fatalf("Invalidate(spot, true) = %v, %v, want true, nil", deleted, err)
		}
		if n := e.exists(spotCurrent); n != 0 {
			t.Errorf("redis %s exists after Invalidate(spot, true), want it deleted", spotCurrent)
		}
		if n := e.exists(spotLastGood, usdmCurrent); n != 2 {
			t.Errorf("redis %s and %s: %d exist after Invalidate(spot, true), want both kept", spotLastGood, usdmCurrent, n)
		}
		r := get(t, c, exchangeinfo.Spot, symcache.Miss) // nothing fresh left but memory: Binance is asked
		if !r.Snapshot.FetchedAt().After(good.FetchedAt()) {
			t.Errorf("Get after Invalidate fetched at %v, want after %v", r.Snapshot.FetchedAt(), good.FetchedAt())
		}
		if n := spotRequests(e.upstream); n != 2 {
			t.Errorf("upstream requests = %d, want 2", n)
		}
		if n := e.exists(spotCurrent); n != 1 {
			t.Errorf("redis %s after the next fetch: absent, want written again", spotCurrent)
		}
		get(t, c, exchangeinfo.USDM, symcache.HitL1) // the other market is untouched
	})

	t.Run("without L2", func(t *testing.T) {
		e := newWorld(t)
		c := e.process(symcache.Config{})
		get(t, c, exchangeinfo.Spot, symcache.Miss)
		deleted, err := c.Invalidate(ctx, exchangeinfo.Spot, true)
		if err != nil || deleted {
			t.Fatalf("Invalidate(spot, true) without L2 = %v, %v, want false, nil", deleted, err)
		}
		get(t, c, exchangeinfo.Spot, symcache.Miss)
		if n := spotRequests(e.upstream); n != 2 {
			t.Errorf("upstream requests = %d, want 2", n)
		}
	})

	t.Run("unknown market", func(t *testing.T) {
		c := newWorld(t).process(symcache.Config{})
		if _, err := c.Invalidate(ctx, exchangeinfo.COINM, true); !errors.Is(err, symcache.ErrUnknownMarket) {
			t.Errorf("Invalidate(coinm) = %v, want ErrUnknownMarket", err)
		}
	})
}

// After Invalidate the last good snapshot in memory is still the fallback:
// during a backoff the next Get is answered without asking Binance.
func TestCache_Invalidate_KeepsLastGood(t *testing.T) {
	ctx := context.Background()
	e := newWorld(t, withRedis(relaxed))
	c := e.process(symcache.Config{})
	good := get(t, c, exchangeinfo.Spot, symcache.Miss).Snapshot
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{
		Status: http.StatusServiceUnavailable,
		Header: http.Header{"Retry-After": {"120"}},
		Body:   []byte("<html>503</html>"),
	})
	if _, err := c.Refresh(ctx, exchangeinfo.Spot); err == nil {
		t.Fatal("Refresh against a 503 = nil, want an error")
	}
	before := spotRequests(e.upstream)
	if _, err := c.Invalidate(ctx, exchangeinfo.Spot, true); err != nil {
		t.Fatalf("Invalidate(spot, true) = %v", err)
	}
	r, err := c.Get(ctx, exchangeinfo.Spot)
	if err != nil || r.Snapshot != good {
		t.Fatalf("Get after Invalidate during a backoff = %v, %v, want the last good snapshot", r.Snapshot, err)
	}
	if n := spotRequests(e.upstream); n != before {
		t.Errorf("upstream requests = %d, want %d (none during the backoff)", n, before)
	}
	if n := e.exists(spotLastGood); n != 1 {
		t.Errorf("redis %s absent after Invalidate, want kept", spotLastGood)
	}
}

// When Redis is down, Invalidate still drops L1 and says L2 failed.
func TestCache_Invalidate_RedisDown(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	c := e.process(symcache.Config{})
	get(t, c, exchangeinfo.Spot, symcache.Miss)
	e.redis.Stop()
	deleted, err := c.Invalidate(context.Background(), exchangeinfo.Spot, true)
	if err == nil || deleted {
		t.Fatalf("Invalidate(spot, true) with Redis down = %v, %v, want false, an error", deleted, err)
	}
	get(t, c, exchangeinfo.Spot, symcache.Miss) // L1 was dropped: fetched again
}

func TestCache_Refresh(t *testing.T) {
	ctx := context.Background()
	e := newWorld(t, withRedis(relaxed))
	c := e.process(symcache.Config{})
	r, err := c.Refresh(ctx, exchangeinfo.Spot)
	if err != nil || r.Source != symcache.Miss {
		t.Fatalf("Refresh(spot) = %v, %v, want a Miss", r.Source, err)
	}
	if want := r.Snapshot.FetchedAt().Add(5 * time.Minute); !r.Expires.Equal(want) {
		t.Errorf("Refresh(spot).Expires = %v, want %v", r.Expires, want)
	}
	if got := get(t, c, exchangeinfo.Spot, symcache.HitL1); got.Snapshot != r.Snapshot {
		t.Errorf("Get after Refresh: another snapshot than the one refreshed")
	}
	r2, err := c.Refresh(ctx, exchangeinfo.Spot)
	if err != nil || r2.Source != symcache.Miss || !r2.Snapshot.FetchedAt().After(r.Snapshot.FetchedAt()) {
		t.Fatalf("second Refresh(spot) = %v fetched at %v, %v; want a newer Miss", r2.Source, r2.Snapshot.FetchedAt(), err)
	}
	if n := spotRequests(e.upstream); n != 2 {
		t.Errorf("upstream requests = %d, want 2", n)
	}
	if got := get(t, c, exchangeinfo.Spot, symcache.HitL1); got.Snapshot != r2.Snapshot {
		t.Errorf("Get after the second Refresh: not the new snapshot")
	}
	if _, err := c.Refresh(ctx, exchangeinfo.COINM); !errors.Is(err, symcache.ErrUnknownMarket) {
		t.Errorf("Refresh(coinm) = %v, want ErrUnknownMarket", err)
	}
}

// A snapshot another process stored after Refresh began is taken up from
// L2 instead of asking Binance.
func TestCache_Refresh_Peer(t *testing.T) {
	e := newWorld(t, withRedis(relaxed))
	c := e.process(symcache.Config{})
	at := e.clock.Now().Add(time.Second)
	s, err := exchangeinfo.Parse(exchangeinfo.Spot, spotFixture(t), at)
	if err != nil {
		t.Fatal(err)
	}
	other := e.store()
	if err := other.Put(context.Background(), l2.Envelope{Market: "spot", FetchedAt: at, ServerTime: s.ServerTime().UnixMilli(), ETag: s.ETag(), ExchangeInfo: s.Body()}, time.Hour); err != nil {
		t.Fatal(err)
	}
	r, err := c.Refresh(context.Background(), exchangeinfo.Spot)
	if err != nil || r.Source != symcache.HitL2 || !r.Snapshot.FetchedAt().Equal(at) {
		t.Fatalf("Refresh(spot) with a newer snapshot in L2 = %v, %v; want HitL2 of the one fetched at %v", r.Source, err, at)
	}
	if n := spotRequests(e.upstream); n != 0 {
		t.Errorf("upstream requests = %d, want 0", n)
	}
}

// During a backoff Refresh sends nothing and says until when; after it,
// it fetches.
func TestCache_Refresh_Backoff(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name      string
		status    int
		withRedis bool
	}{
		{"429", http.StatusTooManyRequests, false},
		{"418", http.StatusTeapot, false},
		{"429 with Redis", http.StatusTooManyRequests, true},
		{"418 with Redis", http.StatusTeapot, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newWorld(t)
			if tt.withRedis {
				e = newWorld(t, withRedis(relaxed))
			}
			c := e.process(symcache.Config{})
			e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{
				Status: tt.status,
				Header: http.Header{"Retry-After": {"120"}},
				Body:   []byte(`{"code":-1003,"msg":"Too many requests."}`),
			})
			if _, err := c.Refresh(ctx, exchangeinfo.Spot); err == nil {
				t.Fatalf("Refresh against a %d = nil, want an error", tt.status)
			}
			if n := spotRequests(e.upstream); n != 1 {
				t.Fatalf("upstream requests = %d, want 1", n)
			}
			for _, advance := range []time.Duration{0, 60 * time.Second} {
				e.clock.Advance(advance)
				start := e.clock.Now()
				_, err := c.Refresh(ctx, exchangeinfo.Spot)
				var be *symcache.BackoffError
				if !errors.As(err, &be) {
					t.Fatalf("Refresh during the backoff = %v, want a *BackoffError", err)
				}
				if left := be.Until.Sub(start); left <= 120*time.Second-advance-5*time.Second || left > 120*time.Second-advance {
					t.Errorf("Refresh during the backoff: Until in %v, want about %v", left, 120*time.Second-advance)
				}
				if be.Cause == nil || !strings.Contains(err.Error(), "spot") {
					t.Errorf("Refresh during the backoff = %v (cause %v), want the market named and the cause", err, be.Cause)
				}
				if n := spotRequests(e.upstream); n != 1 {
					t.Errorf("upstream requests after Refresh during the backoff = %d, want 1", n)
				}
			}
			if tt.withRedis {
				return // the shared backoff in Redis runs on Redis' clock
			}
			e.clock.Advance(61 * time.Second)
			e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: spotFixture(t)})
			if r, err := c.Refresh(ctx, exchangeinfo.Spot); err != nil || r.Source != symcache.Miss {
				t.Errorf("Refresh after the backoff = %v, %v, want a Miss", r.Source, err)
			}
			if n := spotRequests(e.upstream); n != 2 {
				t.Errorf("upstream requests after the backoff = %d, want 2", n)
			}
		})
	}
}

// A 5xx's Retry-After, however long, is not honoured (a proxy's maintenance
// page must not stop a deployment for a day): the ordinary backoff applies,
// a second after the first failure, and so does the marker in Redis.
func TestCache_Refresh_5xxRetryAfterIgnored(t *testing.T) {
	ctx := context.Background()
	e := newWorld(t, withRedis(relaxed))
	c := e.process(symcache.Config{})
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{
		Status: http.StatusServiceUnavailable,
		Header: http.Header{"Retry-After": {"86400"}},
		Body:   []byte("<html>maintenance</html>"),
	})
	start := e.clock.Now()
	if _, err := c.Refresh(ctx, exchangeinfo.Spot); err == nil {
		t.Fatal("Refresh against a 503 = nil, want an error")
	}
	_, err := c.Refresh(ctx, exchangeinfo.Spot)
	var be *symcache.BackoffError
	if errors.As(err, &be) && be.Until.Sub(start) > 2*time.Second {
		t.Errorf("backoff after a 503 with Retry-After: 86400 = until +%v, want the ordinary backoff (1s at most)", be.Until.Sub(start))
	}
	if pttl := e.rdb.PTTL(ctx, "symcache:{spot}:lock").Val(); pttl > 2*time.Second {
		t.Errorf("the deployment's backoff marker lives %v, want 1s at most", pttl)
	}
}

// A host another market's 429 blocked in the shared Gate is not asked
// either, though this market had no failure of its own.
func TestCache_Refresh_GateBlocked(t *testing.T) {
	e := newWorld(t)
	c := e.process(symcache.Config{})
	e.upstream.Set(exchangeinfo.USDM.Path(), fetchtest.Response{
		Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {"120"}},
	})
	if _, err := c.Refresh(context.Background(), exchangeinfo.USDM); err == nil {
		t.Fatal("Refresh(usdm) against a 429 = nil, want an error")
	}
	start := e.clock.Now()
	_, err := c.Refresh(context.Background(), exchangeinfo.Spot)
	var be *symcache.BackoffError
	if !errors.As(err, &be) {
		t.Fatalf("Refresh(spot) while the host is blocked = %v, want a *BackoffError", err)
	}
	if left := be.Until.Sub(start); left < 110*time.Second || left > 120*time.Second {
		t.Errorf("Refresh(spot) while the host is blocked: Until in %v, want about 2m", left)
	}
	if n := spotRequests(e.upstream); n != 0 {
		t.Errorf("spot upstream requests = %d, want 0", n)
	}
}

// An upstream failure is returned as is and changes nothing served.
func TestCache_Refresh_UpstreamFails(t *testing.T) {
	ctx := context.Background()
	e := newWorld(t)
	c := e.process(symcache.Config{})
	good := get(t, c, exchangeinfo.Spot, symcache.Miss).Snapshot
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Status: http.StatusBadGateway, Body: []byte("<html>502</html>")})
	_, err := c.Refresh(ctx, exchangeinfo.Spot)
	var be *symcache.BackoffError
	if err == nil || errors.As(err, &be) {
		t.Fatalf("Refresh against a 502 = %v, want an upstream error", err)
	}
	if r := get(t, c, exchangeinfo.Spot, symcache.HitL1); r.Snapshot != good {
		t.Error("Get after a failed Refresh: not the snapshot served before")
	}
}

// A Refresh whose caller gives up early does not take the shared fetch down
// with it: a Get that joined the fetch gets its snapshot, nothing is counted
// as a failed fetch, and the market is not put in backoff.
func TestCache_Refresh_CallerDeadlineDoesNotCancelTheFetch(t *testing.T) {
	e := newWorld(t)
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: spotFixture(t), Delay: 300 * time.Millisecond})
	c := e.process(symcache.Config{})

	refreshed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := c.Refresh(ctx, exchangeinfo.Spot)
		refreshed <- err
	}()
	time.Sleep(20 * time.Millisecond) // the Get joins the fetch under way
	r, err := c.Get(context.Background(), exchangeinfo.Spot)
	if err != nil {
		t.Fatalf("Get(spot) joining a Refresh whose caller gave up = %v, want the fetched snapshot", err)
	}
	if r.Source != symcache.Miss {
		t.Errorf("Get(spot).Source = %v, want %v", r.Source, symcache.Miss)
	}
	if err := <-refreshed; err == nil {
		t.Errorf("Refresh(spot) with a 50ms deadline on a 300ms fetch = nil, want its context's error")
	}
	get(t, c, exchangeinfo.Spot, symcache.HitL1)
	st := c.Stats()[0]
	if st.Fetches["ok"] != 1 || st.Fetches["timeout"] != 0 || st.Fetches["error"] != 0 {
		t.Errorf("Stats.Fetches = %v, want one ok and no failure", st.Fetches)
	}
	if n := spotRequests(e.upstream); n != 1 {
		t.Errorf("upstream requests = %d, want 1", n)
	}
}
