package l1_test

import (
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/l1"
)

func snapshot(t testing.TB, m exchangeinfo.Market, name string, at time.Time) *exchangeinfo.Snapshot {
	t.Helper()
	s, err := exchangeinfo.Parse(m, fixtures.Read(t, "binance/"+name), at)
	if err != nil {
		t.Fatalf("Parse(%s) = %v", name, err)
	}
	return s
}

func newCache(t testing.TB, cfg l1.Config) *l1.Cache {
	t.Helper()
	c, err := l1.New(cfg)
	if err != nil {
		t.Fatalf("l1.New(%+v) = %v", cfg, err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestCache_SetThenGetIsVisible(t *testing.T) {
	c := newCache(t, l1.Config{})
	now := time.Now()
	spot := snapshot(t, exchangeinfo.Spot, "spot_exchangeinfo.json", now)
	usdm := snapshot(t, exchangeinfo.USDM, "usdm_exchangeinfo.json", now)

	if got, ok := c.Get(exchangeinfo.Spot); ok {
		t.Fatalf("Get(spot) on an empty cache = %p, true; want a miss", got)
	}
	// Every Set must be visible to the very next Get: repeat to give a
	// dropped asynchronous write a chance to show.
	for i := range 200 {
		s := spot
		if i%2 == 1 {
			s = snapshot(t, exchangeinfo.Spot, "spot_testnet_exchangeinfo_2021-07-11.json", now.Add(time.Duration(i)))
		}
		if !c.Set(s, time.Minute) {
			t.Fatalf("Set #%d = false, want true", i)
		}
		if got, ok := c.Get(exchangeinfo.Spot); !ok || got != s {
			t.Fatalf("Get(spot) after Set #%d = %p, %v; want %p, true", i, got, ok, s)
		}
	}
	if !c.Set(usdm, time.Minute) {
		t.Fatal("Set(usdm) = false, want true")
	}
	if got, ok := c.Get(exchangeinfo.USDM); !ok || got != usdm {
		t.Errorf("Get(usdm) = %p, %v; want %p, true", got, ok, usdm)
	}
	if got := c.Dropped(); got != 0 {
		t.Errorf("Dropped() = %d, want 0", got)
	}
	if got := c.UsedBytes(); got < int64(len(usdm.Body())) {
		t.Errorf("UsedBytes() = %d, want at least the usdm body (%d)", got, len(usdm.Body()))
	}
}

func TestCache_TTLExpires(t *testing.T) {
	c := newCache(t, l1.Config{})
	s := snapshot(t, exchangeinfo.COINM, "coinm_exchangeinfo.json", time.Now())
	if !c.Set(s, 30*time.Millisecond) {
		t.Fatal("Set = false, want true")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := c.Get(exchangeinfo.COINM); !ok {
			return // expired, as it must
		}
		if time.Now().After(deadline) {
			t.Fatal("Get(coinm) still hits 5s after a 30ms TTL")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCache_TooLargeIsDroppedAndCounted(t *testing.T) {
	s := snapshot(t, exchangeinfo.Spot, "spot_exchangeinfo.json", time.Now())
	c := newCache(t, l1.Config{MaxBytes: int64(len(s.Body())) / 2})
	if c.Set(s, time.Minute) {
		t.Fatal("Set of a snapshot larger than MaxBytes = true, want false")
	}
	if _, ok := c.Get(exchangeinfo.Spot); ok {
		t.Error("Get after a dropped Set hits, want a miss")
	}
	if got := c.Dropped(); got != 1 {
		t.Errorf("Dropped() = %d, want 1", got)
	}
}

func TestCache_Del(t *testing.T) {
	c := newCache(t, l1.Config{})
	s := snapshot(t, exchangeinfo.Spot, "spot_testnet_exchangeinfo_2021-07-11.json", time.Now())
	c.Set(s, time.Minute)
	c.Del(exchangeinfo.Spot)
	if _, ok := c.Get(exchangeinfo.Spot); ok {
		t.Error("Get after Del hits, want a miss")
	}
}

func TestNew_RejectsNegativeBudget(t *testing.T) {
	if _, err := l1.New(l1.Config{MaxBytes: -1}); err == nil {
		t.Error("New(MaxBytes: -1) = nil error, want an error")
	}
}

func BenchmarkCache_Get(b *testing.B) {
	c := newCache(b, l1.Config{})
	s := snapshot(b, exchangeinfo.Spot, "spot_exchangeinfo.json", time.Now())
	c.Set(s, time.Hour)
	b.ReportAllocs()
	b.SetBytes(int64(len(s.Body())))
	for b.Loop() {
		if _, ok := c.Get(exchangeinfo.Spot); !ok {
			b.Fatal("miss")
		}
	}
}
