package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// TestDerivedETag checks that derivedETag is exchangeinfo.ETag of the
// snapshot's ETag, a NUL and the request URI, as clients' cached tags
// expect, for every form of URI, long ones included.
func TestDerivedETag(t *testing.T) {
	s, err := exchangeinfo.Parse(exchangeinfo.Spot, fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, target := range []string{
		"/api/v3/exchangeInfo?symbol=BTCUSDT",
		"/api/v3/exchangeInfo?symbols=%5B%22BTCUSDT%22,%22ETHBTC%22%5D",
		"/api/v3/exchangeInfo?",
		"/v1/symbols/spot/BTCUSDT",
		"/v1/symbols/spot/BTC%20USDT/rules",
		"/v1/symbols/spot?limit=10&cursor=" + strings.Repeat("x", 2000),
	} {
		r := httptest.NewRequest("GET", target, nil)
		want := exchangeinfo.ETag([]byte(s.ETag() + "\x00" + r.URL.RequestURI()))
		got := derivedETag(s, r)
		if got != want {
			t.Errorf("derivedETag(%.60s) = %s, want %s", target, got, want)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("derivedETag(%.60s) = derivedETag(%.60s)", target, other)
		}
		seen[got] = target
	}
}

func BenchmarkDerivedETag(b *testing.B) {
	s, err := exchangeinfo.Parse(exchangeinfo.Spot, fixtures.Read(b, "binance/spot_testnet_exchangeinfo_2021-07-11.json"), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/api/v3/exchangeInfo?symbol=BTCUSDT", nil)
	b.Run("stack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			derivedETag(s, r)
		}
	})
	// The same tag made by concatenation, as before: the baseline.
	b.Run("concat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = exchangeinfo.ETag([]byte(s.ETag() + "\x00" + r.URL.RequestURI()))
		}
	})
}
