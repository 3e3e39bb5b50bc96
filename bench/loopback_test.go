package bench

import (
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/internal/fixtures"
)

// BenchmarkLoopback compares, in one run, a GET of the full spot answer over
// loopback HTTP from (a) a minimal net/http handler writing the bytes from
// memory and (b) the sidecar on an L1 hit. The ratio of the two is the
// sidecar's overhead; absolute numbers depend on the machine.
func BenchmarkLoopback(b *testing.B) {
	body := fixtures.Read(b, "binance/spot_exchangeinfo.json")
	h := sidecarHandler(b)
	servers := []loopbackServer{
		{"baseline-static", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		})},
		{"symcache-L1", h},
	}
	runLoopback(b, servers, exchangeinfo.Spot.Path(), body)
}

// loopbackServer is one server of a loopback benchmark.
type loopbackServer struct {
	name string
	h    http.Handler
}

// runLoopback GETs path from each server over loopback HTTP, a
// sub-benchmark each, checking every answer is 200 with len(body) bytes.
func runLoopback(b *testing.B, servers []loopbackServer, path string, body []byte) {
	for _, s := range servers {
		srv := httptest.NewServer(s.h)
		b.Cleanup(srv.Close)
		client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				resp, err := client.Get(srv.URL + path)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || n != int64(len(body)) {
					b.Fatalf("GET = %d, %d bytes; want 200, %d", resp.StatusCode, n, len(body))
				}
			}
		})
	}
}

// sidecarHandler is httpapi over a cache holding the recorded spot answer in L1.
func sidecarHandler(b *testing.B) http.Handler { return sidecarHandlerWith(b, httpapi.Config{}) }

// sidecarHandlerWith is sidecarHandler with cfg (its Cache and Logger set).
func sidecarHandlerWith(b *testing.B, cfg httpapi.Config) http.Handler {
	upstream := fetchtest.NewUpstream(b)
	spot, err := fetch.New(fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{upstream.URL}})
	if err != nil {
		b.Fatal(err)
	}
	cache, err := symcache.New(symcache.Config{
		Upstreams:       map[exchangeinfo.Market]symcache.Upstream{exchangeinfo.Spot: spot},
		RefreshInterval: -1,
		TTL:             24 * time.Hour,
		Logger:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	if _, err := cache.Get(context.Background(), exchangeinfo.Spot); err != nil {
		b.Fatal(err)
	}
	cfg.Cache, cfg.Logger = cache, slog.New(slog.DiscardHandler)
	h, err := httpapi.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkFilteredAnswer decides whether filtered answers should be gzipped
// per request: it measures, in one run, a GET of the answer sent plain over
// loopback against the CPU cost alone of compressing it (fastest level).
func BenchmarkFilteredAnswer(b *testing.B) {
	body := fixtures.Read(b, "binance/spot_exchangeinfo.json")
	snap, err := exchangeinfo.Parse(exchangeinfo.Spot, body, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sidecarHandler(b))
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for _, query := range []string{"symbol=BTCUSDT", "symbolStatus=TRADING"} {
		q, err := exchangeinfo.ParseQuery(exchangeinfo.Spot, query)
		if err != nil {
			b.Fatal(err)
		}
		answer, err := snap.Answer(q)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(query+"/plain-over-loopback", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(answer)))
			for b.Loop() {
				resp, err := client.Get(srv.URL + exchangeinfo.Spot.Path() + "?" + query)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n != int64(len(answer)) {
					b.Fatalf("read %d bytes, want %d", n, len(answer))
				}
			}
		})
		b.Run(query+"/gzip-cpu-only", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(answer)))
			zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
			for b.Loop() {
				zw.Reset(io.Discard)
				zw.Write(answer)
				zw.Close()
			}
		})
	}
}

// BenchmarkLoopbackSmall compares, in one run, a GET of one symbol's object
// (/v1/symbols/spot/BTCUSDT, 2 KB) over loopback HTTP from a minimal
// net/http handler writing the same bytes, the sidecar, and the sidecar
// without per-answer write deadlines (MinClientRate -1): where the cost of
// a small answer goes besides net/http's own.
func BenchmarkLoopbackSmall(b *testing.B) {
	const path = "/v1/symbols/spot/BTCUSDT"
	h := sidecarHandler(b)
	noDeadline := sidecarHandlerWith(b, httpapi.Config{MinClientRate: -1})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body := rec.Body.Bytes()
	etag := rec.Header().Get("ETag")
	servers := []loopbackServer{
		{"baseline-static", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hd := w.Header()
			hd.Set("Content-Type", "application/json")
			hd.Set("ETag", etag)
			hd.Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		})},
		{"symcache-L1", h},
		{"symcache-L1-no-deadline", noDeadline},
	}
	runLoopback(b, servers, path, body)
}
