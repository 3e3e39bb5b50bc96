package symcache_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
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
