package symcache_test

import (
	"context"
	"testing"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch/fetchtest"
)

// A Refresh whose caller gives up early does not take the shared fetch down
// with it: a Get that joined the fetch gets its snapshot, nothing is counted
// as a failed fetch, and the market is not put in backoff.
func TestCache_Refresh_CallerDeadlineDoesNotCancelTheFetch(t *testing.T) {
	e := newEnv(t, false)
	e.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: spotFixture(t), Delay: 300 * time.Millisecond})
	c := e.cache(symcache.Config{})

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
