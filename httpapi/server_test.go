package httpapi_test

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
)

// TestServer_SameAsEcho asks the routes Server answers without echo's
// router, and their neighbours, through Server.ServeHTTP and through its
// echo alone: status, headers, body and the counted requests must be the
// same, answers from the per-snapshot cache of derived answers included
// (each request is asked three times).
func TestServer_SameAsEcho(t *testing.T) {
	w := newWorld(t, false)
	w.clock = testutil.NewClock(time.Now()) // Age and max-age the same for both paths
	c := w.cache()
	newServer := func() (*httpapi.Server, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		s, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), Now: w.clock.Now, Registry: reg}))
		if err != nil {
			t.Fatal(err)
		}
		return s, reg
	}
	fast, fastReg := newServer()
	slow, slowReg := newServer()

	get := func(h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	etagOf := func(target string, hdr ...string) string { // asked of both, so that both count it
		get(slow.Echo, http.MethodGet, target, hdr...)
		return get(fast, http.MethodGet, target, hdr...).Header().Get("Etag")
	}
	etagOf(usdmPath) // both markets loaded: the first answer's MISS is not compared
	spotGzipTag := etagOf(spotPath, "Accept-Encoding", "gzip")
	symbolTag := etagOf("/v1/symbols/spot/BTCUSDT")
	queryTag := etagOf(spotPath + "?symbol=BTCUSDT")
	for _, tag := range []string{spotGzipTag, symbolTag, queryTag} {
		if tag == "" {
			t.Fatal("no ETag to revalidate with")
		}
	}

	type request struct {
		method, target string
		hdr            []string
	}
	requests := []request{
		{http.MethodGet, spotPath, nil},
		{http.MethodHead, spotPath, nil},
		{http.MethodGet, spotPath, []string{"Accept-Encoding", "gzip"}},
		{http.MethodGet, spotPath, []string{"Accept-Encoding", "gzip", "If-None-Match", spotGzipTag}},
		{http.MethodGet, usdmPath, []string{"Accept-Encoding", "gzip;q=0"}},
		{http.MethodGet, coinmPath, nil}, // not served by this Cache
		{http.MethodGet, spotPath + "?symbol=BTCUSDT", nil},
		{http.MethodGet, spotPath + "?symbol=BTCUSDT", []string{"If-None-Match", queryTag}},
		{http.MethodGet, spotPath + "?symbol=NOPE", nil},
		{http.MethodGet, spotPath + "?symbol=%ZZ", nil},
		{http.MethodGet, spotPath + `?symbols=["BTCUSDT","ETHUSDT"]`, nil},
		{http.MethodGet, spotPath + "?bogus=1", nil},
		{http.MethodPost, spotPath, nil},
		{http.MethodGet, "/v1/symbols/spot/BTCUSDT", nil},
		{http.MethodHead, "/v1/symbols/spot/BTCUSDT", nil},
		{http.MethodGet, "/v1/symbols/spot/BTCUSDT", []string{"If-None-Match", symbolTag}},
		{http.MethodGet, "/v1/symbols/spot/BTCUSDT", []string{"If-None-Match", "W/" + symbolTag}},
		{http.MethodGet, "/v1/symbols/spot/btcusdt", nil},
		{http.MethodGet, "/v1/symbols/usdm/BTCUSDT", nil},
		{http.MethodGet, "/v1/symbols/spot/NOPE", nil},
		{http.MethodGet, "/v1/symbols/nope/BTCUSDT", nil},
		{http.MethodGet, "/v1/symbols/coinm/BTCUSD_PERP", nil},
		{http.MethodGet, "/v1/symbols/spot/BTCUSDT?x=1", nil},
		{http.MethodGet, "/v1/symbols/spot/BTCUSDT/", nil},
		{http.MethodGet, "/v1/symbols/spot/BTCUSDT/rules", nil},
		{http.MethodGet, "/v1/symbols/spot/", nil},
		{http.MethodGet, "/v1/symbols//BTCUSDT", nil},
		{http.MethodGet, "/v1/symbols/spot/BTC%2FUSDT", nil},
		{http.MethodGet, "/v1/symbols/spot", nil},
		{http.MethodDelete, "/v1/symbols/spot/BTCUSDT", nil},
	}
	for _, rq := range requests {
		for i := range 3 {
			a := get(fast, rq.method, rq.target, rq.hdr...)
			b := get(slow.Echo, rq.method, rq.target, rq.hdr...)
			name := rq.method + " " + rq.target + " " + strings.Join(rq.hdr, " ")
			if a.Code != b.Code {
				t.Errorf("%s (#%d): status %d, echo alone %d", name, i, a.Code, b.Code)
			}
			ah, bh := a.Header(), b.Header()
			for k := range ah {
				if !slices.Equal(ah[k], bh[k]) {
					t.Errorf("%s (#%d): %s %q, echo alone %q", name, i, k, ah[k], bh[k])
				}
			}
			for k := range bh {
				if _, ok := ah[k]; !ok {
					t.Errorf("%s (#%d): no %s, echo alone %q", name, i, k, bh[k])
				}
			}
			if !bytes.Equal(a.Body.Bytes(), b.Body.Bytes()) {
				t.Errorf("%s (#%d): body %.80q, echo alone %.80q", name, i, a.Body.Bytes(), b.Body.Bytes())
			}
		}
	}
	if got, want := requestCounts(t, fastReg), requestCounts(t, slowReg); !maps.Equal(got, want) {
		t.Errorf("symcache_http_requests_total:\n%v\nwith echo alone:\n%v", got, want)
	}
}

// requestCounts is symcache_http_requests_total by "route code".
func requestCounts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "symcache_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var route, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			out[route+" "+code] = m.GetCounter().GetValue()
		}
	}
	if len(out) == 0 {
		t.Fatal("no symcache_http_requests_total")
	}
	return out
}

// TestDerivedAnswers_followSnapshot: answers made once per snapshot are
// made again for the next one. BTCUSDT is delisted and ETHUSDT's status
// changes between two snapshots; each answer asked before is asked again,
// and says what the new snapshot says, with a new tag.
func TestDerivedAnswers_followSnapshot(t *testing.T) {
	w := newWorld(t, false)
	before := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	after := bytes.Replace(before, []byte(`"symbol":"BTCUSDT","status":"TRADING"`), []byte(`"symbol":"BTCUSDX","status":"TRADING"`), 1)
	after = bytes.Replace(after, []byte(`"symbol":"ETHUSDT","status":"TRADING"`), []byte(`"symbol":"ETHUSDT","status":"BREAK"`), 1)
	if bytes.Equal(after, before) || bytes.Count(after, []byte(`"BREAK"`)) == bytes.Count(before, []byte(`"BREAK"`)) {
		t.Fatal("the edit of the recording changed nothing")
	}
	w.upstream.Set(spotPath, fetchtest.Response{Body: before})
	c := w.cache(exchangeinfo.Spot)
	h := w.handler(c, nil)
	get := func(target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		return rec
	}
	targets := []string{"/v1/symbols/spot/BTCUSDT", spotPath + "?symbol=BTCUSDT", "/v1/symbols/spot/ETHUSDT", spotPath + "?symbol=ETHUSDT"}
	tags := map[string]string{}
	for _, target := range targets {
		for range 2 { // made, then kept
			rec := get(target)
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"TRADING"`) {
				t.Fatalf("GET %s = %d %.80s, want 200 TRADING", target, rec.Code, rec.Body.String())
			}
			tags[target] = rec.Header().Get("Etag")
		}
	}

	w.upstream.Set(spotPath, fetchtest.Response{Body: after})
	w.clock.Advance(time.Second)
	if _, err := c.Refresh(context.Background(), exchangeinfo.Spot); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		target string
		code   int
		has    string
	}{
		{targets[0], http.StatusNotFound, `"code":-1121`},
		{targets[1], http.StatusBadRequest, `"code":-1121`},
		{targets[2], http.StatusOK, `"status":"BREAK"`},
		{targets[3], http.StatusOK, `"status":"BREAK"`},
	} {
		for range 2 {
			rec := get(tt.target)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.has) {
				t.Errorf("after the refresh, GET %s = %d %.80s, want %d with %s", tt.target, rec.Code, rec.Body.String(), tt.code, tt.has)
			}
			if tag := rec.Header().Get("Etag"); tt.code == http.StatusOK && (tag == "" || tag == tags[tt.target]) {
				t.Errorf("after the refresh, GET %s has ETag %q, want a new one (was %s)", tt.target, tag, tags[tt.target])
			}
		}
	}
}
