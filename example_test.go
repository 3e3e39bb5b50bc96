package symcache_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/changes"
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

// ExampleCache_Subscribe follows a market's changes as they are recorded:
// here, a fake Binance whose USD-M answer moves from 2024-02-12 to
// 2025-12-24 between two refreshes.
func ExampleCache_Subscribe() {
	replay := fetchtest.NewHandler()
	binance := httptest.NewServer(replay)
	defer binance.Close()
	serve := func(file string) {
		body, err := os.ReadFile("testdata/binance/" + file)
		if err != nil {
			log.Fatal(err)
		}
		replay.Set(fetchtest.USDMPath, fetchtest.Response{Body: body})
	}
	usdm, err := fetch.New(fetch.Config{Market: exchangeinfo.USDM, BaseURLs: []string{binance.URL}})
	if err != nil {
		log.Fatal(err)
	}
	cache, err := symcache.New(symcache.Config{
		Upstreams:       map[exchangeinfo.Market]symcache.Upstream{exchangeinfo.USDM: usdm},
		RefreshInterval: -1,
		MaxGrowth:       -1, // 22 months apart: 5.3 times the bytes
		Logger:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	serve("usdm_exchangeinfo_2024-02-12.json")
	if _, err := cache.Refresh(ctx, exchangeinfo.USDM); err != nil {
		log.Fatal(err)
	}
	// Take the end of the log; a consumer would load the snapshot now.
	end, err := cache.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{FromEnd: true})
	if err != nil {
		log.Fatal(err)
	}
	serve("usdm_exchangeinfo.json")
	if _, err := cache.Refresh(ctx, exchangeinfo.USDM); err != nil {
		log.Fatal(err)
	}
	q := symcache.ChangeQuery{After: end.Next, Symbols: []string{"BTCUSDT"}, Kinds: []changes.Kind{changes.Filter}}
	n := 0
	for ch, err := range cache.Subscribe(ctx, exchangeinfo.USDM, q) {
		if err != nil {
			log.Fatal(err) // changes.ErrGone: reload the snapshot, follow from the end
		}
		if ch.Field == "" {
			continue // a whole filter that appeared (New) or disappeared (Old)
		}
		fmt.Println(ch.Symbol, ch.Filter, ch.Field, string(ch.Old), "->", string(ch.New))
		if n++; n == 3 {
			break
		}
	}
	// Output:
	// BTCUSDT MARKET_LOT_SIZE maxQty "120" -> "1000"
	// BTCUSDT MAX_NUM_ORDERS limit 200 -> 10000
	// BTCUSDT PRICE_FILTER maxPrice "4529764" -> "809484"
}
