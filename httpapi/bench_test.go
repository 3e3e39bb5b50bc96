package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
)

// The handler benchmarks serve spot from L1 on two sizes: the recorded
// answer (3.7 MB, 2,292 symbols) and the same grown to about 15 MB (see
// fixtures.Grow), so that a cost growing with the payload shows as a ratio
// between the two.
//
// Each request is served by calling ServeHTTP directly, into a discardWriter,
// so that what is measured, allocations included, is the handler's alone; the
// full answers are also served into an httptest.ResponseRecorder, as a
// caller outside the process would see them less the network.

// spotBodies returns the spot answers the benchmarks run on, by name.
func spotBodies(b *testing.B) []struct {
	name string
	body []byte
} {
	spot := fixtures.Read(b, "binance/spot_exchangeinfo.json")
	return []struct {
		name string
		body []byte
	}{
		{"spot", spot},
		{"spot-15MB", fixtures.Grow(b, spot, 15<<20)},
	}
}

// warmHandlerFor returns a handler over a cache that already holds body as
// spot's snapshot in L1 (fetched once from a fake Binance serving it).
func warmHandlerFor(tb testing.TB, body []byte) http.Handler {
	tb.Helper()
	w := newWorld(tb, false)
	w.upstream.Set(spotPath, fetchtest.Response{Body: body, Gzip: true})
	h := w.handler(w.cache(exchangeinfo.Spot), nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, spotPath, nil))
	if rec.Code != http.StatusOK || rec.Header().Get("X-Cache") != "MISS" || !bytes.Equal(rec.Body.Bytes(), body) {
		tb.Fatalf("GET %s = %d %s with %d bytes, want 200 MISS with the %d bytes served upstream",
			spotPath, rec.Code, rec.Header().Get("X-Cache"), rec.Body.Len(), len(body))
	}
	return h
}

// discardWriter is the least an http.ResponseWriter can be: one header map
// reused from request to request (cleared, keeping its room) and a Write
// that counts the bytes and drops them. It is not safe for concurrent use.
type discardWriter struct {
	header http.Header
	code   int
	n      int // body bytes written
}

func newDiscardWriter() *discardWriter { return &discardWriter{header: make(http.Header)} }

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

func (w *discardWriter) reset() {
	clear(w.header)
	w.code, w.n = 0, 0
}

// handlerCase is one request of a handler benchmark.
type handlerCase struct {
	name   string
	target string      // path and query
	header http.Header // request headers
	status int         // the status wanted
	// inputBytes makes SetBytes the snapshot's body size instead of the
	// answer's: for a 304, which sends no body, it is the representation the
	// request revalidates.
	inputBytes bool
	// recorder also runs the case into an httptest.ResponseRecorder.
	recorder bool
}

// runHandlerCases runs each case against h as a sub-benchmark. body is the
// snapshot's body, for inputBytes. Every request is checked to be answered
// with the status wanted and, before and after the loop, from L1.
func runHandlerCases(b *testing.B, h http.Handler, body []byte, cases []handlerCase) {
	for _, c := range cases {
		req := httptest.NewRequest(http.MethodGet, c.target, nil)
		for k, vs := range c.header {
			req.Header[k] = vs
		}
		check := func(b *testing.B, hdr http.Header, code int) {
			b.Helper()
			if code != c.status || hdr.Get("X-Cache") != "HIT-L1" {
				b.Fatalf("GET %s = %d %s, want %d HIT-L1", c.target, code, hdr.Get("X-Cache"), c.status)
			}
		}
		b.Run(c.name, func(b *testing.B) {
			w := newDiscardWriter()
			h.ServeHTTP(w, req)
			check(b, w.header, w.code)
			n := w.n // the answer produced: its body as sent (gzipped or not)
			if c.inputBytes {
				n = len(body) // the representation revalidated
			}
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				w.reset()
				h.ServeHTTP(w, req)
				if w.code != c.status {
					b.Fatalf("GET %s = %d, want %d", c.target, w.code, c.status)
				}
			}
			check(b, w.header, w.code)
		})
		if !c.recorder {
			continue
		}
		b.Run(c.name+"-recorder", func(b *testing.B) {
			// One body buffer for every answer, so that the recorder's
			// growth is not what is measured; its own allocations are.
			buf := new(bytes.Buffer)
			serve := func() *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				buf.Reset()
				rec.Body = buf
				h.ServeHTTP(rec, req)
				return rec
			}
			rec := serve()
			check(b, rec.Header(), rec.Code)
			b.ReportAllocs()
			b.SetBytes(int64(buf.Len())) // the answer produced
			for b.Loop() {
				if rec = serve(); rec.Code != c.status {
					b.Fatalf("GET %s = %d, want %d", c.target, rec.Code, c.status)
				}
			}
			check(b, rec.Header(), rec.Code)
		})
	}
}

// BenchmarkExchangeInfo_L1Hit serves Binance's spot path from L1: the full
// answer (plain, gzipped, and a 304 for a matching If-None-Match) and one
// symbol. The full answer should allocate nothing that grows with the
// payload, and at most 5 times per request.
func BenchmarkExchangeInfo_L1Hit(b *testing.B) {
	for _, size := range spotBodies(b) {
		b.Run(size.name, func(b *testing.B) {
			h := warmHandlerFor(b, size.body)
			etag := exchangeinfo.ETag(size.body)
			runHandlerCases(b, h, size.body, []handlerCase{
				{name: "full-plain", target: spotPath, status: http.StatusOK, recorder: true},
				{name: "full-gzip", target: spotPath, header: http.Header{"Accept-Encoding": {"gzip"}}, status: http.StatusOK, recorder: true},
				{name: "full-304", target: spotPath, header: http.Header{"If-None-Match": {etag}}, status: http.StatusNotModified, inputBytes: true},
				{name: "symbol", target: spotPath + "?symbol=BTCUSDT", status: http.StatusOK},
			})
		})
	}
}

// BenchmarkSymbols_L1Hit serves the convenience API from L1: one symbol's
// object, and a page of the list (the default limit, which is 500; limit=500
// spelled out; and the largest page, limit=5000).
func BenchmarkSymbols_L1Hit(b *testing.B) {
	for _, size := range spotBodies(b) {
		b.Run(size.name, func(b *testing.B) {
			h := warmHandlerFor(b, size.body)
			runHandlerCases(b, h, size.body, []handlerCase{
				{name: "symbol", target: "/v1/symbols/spot/BTCUSDT", status: http.StatusOK},
				{name: "page", target: "/v1/symbols/spot", status: http.StatusOK},
				{name: "page-limit500", target: "/v1/symbols/spot?limit=500", status: http.StatusOK},
				{name: "page-limit5000", target: "/v1/symbols/spot?limit=5000", status: http.StatusOK},
			})
		})
	}
}

// changesHandler returns a handler over a cache of USD-M, with L2 on
// Redis when withRedis, whose change log holds the changes of one
// refresh: every symbol's status, and every minQty (about 1,900).
func changesHandler(b *testing.B, withRedis bool) http.Handler {
	w := newWorld(b, withRedis)
	c := w.cache(exchangeinfo.USDM)
	body := string(fixtures.Read(b, "binance/usdm_exchangeinfo.json"))
	w.upstream.Set(exchangeinfo.USDM.Path(), fetchtest.Response{Body: []byte(body)})
	if _, err := c.Refresh(context.Background(), exchangeinfo.USDM); err != nil {
		b.Fatal(err)
	}
	edited := strings.ReplaceAll(body, `"status": "TRADING"`, `"status": "BREAK"`)
	edited = strings.ReplaceAll(edited, `"minQty": "`, `"minQty": "1`)
	w.upstream.Set(exchangeinfo.USDM.Path(), fetchtest.Response{Body: []byte(edited)})
	w.clock.Advance(time.Second)
	if _, err := c.Refresh(context.Background(), exchangeinfo.USDM); err != nil {
		b.Fatal(err)
	}
	return w.handler(c, nil)
}

// BenchmarkChanges_Page serves a page of 500 changes, from memory and from
// Redis, and a page filtered by kind (status: one change in three), beside
// a page of 500 symbols of the same market, from L1.
func BenchmarkChanges_Page(b *testing.B) {
	for _, tier := range []struct {
		name  string
		redis bool
	}{{"memory", false}, {"redis", true}} {
		b.Run(tier.name, func(b *testing.B) {
			h := changesHandler(b, tier.redis)
			for _, c := range []struct{ name, target string }{
				{"symbols-page500", "/v1/symbols/usdm?limit=500"},
				{"changes-page500", "/v1/changes/usdm?since=0&limit=500"},
				{"changes-status500", "/v1/changes/usdm?since=0&limit=500&kind=status"},
			} {
				b.Run(c.name, func(b *testing.B) {
					req := httptest.NewRequest(http.MethodGet, c.target, nil)
					w := newDiscardWriter()
					h.ServeHTTP(w, req)
					if w.code != http.StatusOK || w.n < 100_000 {
						b.Fatalf("GET %s = %d with %d bytes, want 200 and a full page", c.target, w.code, w.n)
					}
					b.ReportAllocs()
					b.SetBytes(int64(w.n))
					for b.Loop() {
						w.reset()
						h.ServeHTTP(w, req)
						if w.code != http.StatusOK {
							b.Fatalf("GET %s = %d", c.target, w.code)
						}
					}
				})
			}
		})
	}
}
