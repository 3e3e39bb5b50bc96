package symcache_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/l2"
)

// A Go service embeds the cache without Redis: L1, then Binance, then the
// last good snapshot. Here a replay of recorded answers stands in for Binance.
func Example() {
	replay, err := fetchtest.LoadDir("testdata/binance")
	if err != nil {
		log.Fatal(err)
	}
	binance := httptest.NewServer(replay)
	defer binance.Close()

	spot, err := fetch.New(fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{binance.URL}})
	if err != nil {
		log.Fatal(err)
	}
	cache, err := symcache.New(symcache.Config{
		Upstreams:       map[exchangeinfo.Market]symcache.Upstream{exchangeinfo.Spot: spot},
		RefreshInterval: -1, // a service would keep the default: refresh every minute
		Logger:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	for range 2 {
		r, err := cache.Get(context.Background(), exchangeinfo.Spot)
		if err != nil {
			log.Fatal(err)
		}
		btc, _ := r.Snapshot.Lookup("BTCUSDT")
		fmt.Println(r.Source, r.Snapshot.Len(), "symbols;", btc.Name, btc.Status, btc.BaseAsset, btc.QuoteAsset)
	}
	// Output:
	// MISS 2292 symbols; BTCUSDT TRADING BTC USDT
	// HIT-L1 2292 symbols; BTCUSDT TRADING BTC USDT
}

// A Go service shares Redis with the other processes of its deployment: the
// L2 tier, and one Binance request per market per refresh interval for all
// of them. REDIS_URL may name a single server, a Redis Cluster
// (redis://node1:6379?addr=node2:6379) or Sentinel (?master_name=mymaster).
// (Not run by go test: it needs a Redis; the tests start real ones.)
func Example_withRedis() {
	rdb, err := l2.NewClient("redis://127.0.0.1:6379/0")
	if err != nil {
		log.Fatal(err)
	}
	defer rdb.Close()

	spot, err := fetch.New(fetch.Config{Market: exchangeinfo.Spot}) // https://api.binance.com
	if err != nil {
		log.Fatal(err)
	}
	store := l2.New(l2.Config{Client: rdb, Encoding: l2.Gzip})
	cache, err := symcache.New(symcache.Config{
		Upstreams:   map[exchangeinfo.Market]symcache.Upstream{exchangeinfo.Spot: spot},
		L2:          store,
		Coordinator: store, // one fetch per market for every process on this Redis
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	r, err := cache.Get(context.Background(), exchangeinfo.Spot)
	if err != nil {
		log.Fatal(err) // matches symcache.ErrUnavailable when nothing can be served
	}
	if r.Source == symcache.Stale {
		log.Printf("serving a snapshot %s old: %s", r.Snapshot.Age(time.Now()).Round(time.Second), r.Reason)
	}
	btc, ok := r.Snapshot.Lookup("BTCUSDT")
	fmt.Println(ok, btc.Status)
}
