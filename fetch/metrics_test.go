package fetch_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
)

// TestClient_Metrics checks the counters behind the upstream metrics: one
// request per attempt by base URL and answer, every attempt in the latency
// histogram, and the used weight.
func TestClient_Metrics(t *testing.T) {
	failing := fetchtest.NewHandler()
	failing.Set(fetchtest.COINMPath, fetchtest.Response{Status: http.StatusServiceUnavailable})
	bad := httptest.NewServer(failing)
	defer bad.Close()
	ok := fetchtest.NewHandler()
	ok.Set(fetchtest.COINMPath, fetchtest.Response{
		Body:   fixtures.Read(t, "binance/coinm_exchangeinfo.json"),
		Header: http.Header{"X-Mbx-Used-Weight-1m": {"41"}},
	})
	good := httptest.NewServer(ok)
	defer good.Close()
	down := closedURL(t)

	c, err := fetch.New(fetch.Config{Market: exchangeinfo.COINM, BaseURLs: []string{down, bad.URL, good.URL}, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Metrics(); len(m.Requests) != 0 || m.Latency.Count != 0 || len(m.Latency.Counts) != len(fetch.LatencyBuckets)+1 {
		t.Fatalf("Metrics before any request = %+v", m)
	}
	for range 2 {
		if _, err := c.Fetch(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	m := c.Metrics()
	want := []fetch.RequestCount{{down, "error", 2}, {bad.URL, "503", 2}, {good.URL, "200", 2}}
	if len(m.Requests) != len(want) {
		t.Fatalf("Requests = %+v, want %+v", m.Requests, want)
	}
	for _, w := range want {
		found := false
		for _, r := range m.Requests {
			found = found || r == w
		}
		if !found {
			t.Errorf("Requests = %+v, want %+v among them", m.Requests, w)
		}
	}
	var n uint64
	for _, k := range m.Latency.Counts {
		n += k
	}
	if m.Latency.Count != 6 || n != 6 || m.Latency.Sum <= 0 {
		t.Errorf("Latency = %+v, want 6 observations in the buckets and a positive sum", m.Latency)
	}
	if cum := m.Latency.Cumulative(); cum[fetch.LatencyBuckets[len(fetch.LatencyBuckets)-1]] > 6 {
		t.Errorf("Cumulative = %v", cum)
	}
	if m.UsedWeight != 41 || m.UsedWeightAt.IsZero() {
		t.Errorf("UsedWeight = %d at %v, want 41", m.UsedWeight, m.UsedWeightAt)
	}
}
