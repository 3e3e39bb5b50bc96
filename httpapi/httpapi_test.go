package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/changes"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/forward"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l1"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
	"github.com/symcache/symcache/version"
)

const (
	spotPath  = "/api/v3/exchangeInfo"
	usdmPath  = "/fapi/v1/exchangeInfo"
	coinmPath = "/dapi/v1/exchangeInfo"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// world is one test's surroundings: a fake Binance, maybe a real Redis, and
// a clock.
type world struct {
	tb       testing.TB
	upstream *fetchtest.Upstream
	redis    *l2test.Server  // nil: no L2
	clock    *testutil.Clock // the real time, moved on by Advance

	l1MaxBytes int64 // of the L1 of the Caches cache makes; if zero, l1's default

	// The tiers of the Cache cache made last, for httpapi.Config.
	l1        httpapi.L1Stats
	l2        httpapi.L2Stats
	upstreams map[exchangeinfo.Market]httpapi.UpstreamStats
}

// withTiers fills in cfg's tiers, when not set, with those of the Cache
// made last.
func (w *world) withTiers(cfg httpapi.Config) httpapi.Config {
	if cfg.L1 == nil && cfg.L2 == nil && cfg.Upstreams == nil {
		cfg.L1, cfg.L2, cfg.Upstreams = w.l1, w.l2, w.upstreams
	}
	return cfg
}

func newWorld(tb testing.TB, withRedis bool) *world {
	tb.Helper()
	w := &world{tb: tb, upstream: fetchtest.NewUpstream(tb), clock: new(testutil.Clock)}
	if withRedis {
		w.redis = l2test.Start(tb)
	}
	return w
}

// cache builds a real Cache with its own L1 serving markets (spot and usdm
// if none), over the world's Redis if it has one, without background refresh.
func (w *world) cache(markets ...exchangeinfo.Market) *symcache.Cache {
	w.tb.Helper()
	if len(markets) == 0 {
		markets = []exchangeinfo.Market{exchangeinfo.Spot, exchangeinfo.USDM}
	}
	cfg := symcache.Config{
		Upstreams:       make(map[exchangeinfo.Market]symcache.Upstream),
		RefreshInterval: -1,
		Logger:          discard(),
		Now:             w.clock.Now,
	}
	gate := fetch.NewGate()
	w.upstreams = make(map[exchangeinfo.Market]httpapi.UpstreamStats)
	for _, m := range markets {
		up, err := fetch.New(fetch.Config{Market: m, BaseURLs: []string{w.upstream.URL}, Gate: gate, Logger: discard(), Now: w.clock.Now})
		if err != nil {
			w.tb.Fatalf("fetch.New(%s) = %v", m, err)
		}
		cfg.Upstreams[m], w.upstreams[m] = up, up
	}
	mem, err := l1.New(l1.Config{MaxBytes: w.l1MaxBytes})
	if err != nil {
		w.tb.Fatalf("l1.New = %v", err)
	}
	w.tb.Cleanup(mem.Close)
	cfg.L1, w.l1, w.l2 = mem, mem, nil
	if w.redis != nil {
		store := l2.New(l2.Config{Client: w.redis.Client(w.tb), Logger: discard(), Timeout: time.Second}) // 3.7 MB of JSON under -race
		cfg.L2, cfg.Coordinator, w.l2 = store, store, store
	}
	c, err := symcache.New(cfg)
	if err != nil {
		w.tb.Fatalf("symcache.New = %v", err)
	}
	w.tb.Cleanup(func() { c.Close() })
	return c
}

// handler returns httpapi's handler for c, logging to log (discarded if nil).
func (w *world) handler(c *symcache.Cache, log *slog.Logger) http.Handler {
	w.tb.Helper()
	if log == nil {
		log = discard()
	}
	h, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: log, Now: w.clock.Now}))
	if err != nil {
		w.tb.Fatalf("httpapi.New = %v", err)
	}
	return h
}

// server serves c through httpapi on a real listener.
func (w *world) server(c *symcache.Cache, log *slog.Logger) *server {
	w.tb.Helper()
	srv := httptest.NewServer(w.handler(c, log))
	tr := &http.Transport{DisableCompression: true} // see the encoding as sent
	w.tb.Cleanup(func() { tr.CloseIdleConnections(); srv.Close() })
	return &server{tb: w.tb, url: srv.URL, client: &http.Client{Transport: tr}}
}

type server struct {
	tb     testing.TB
	url    string
	client *http.Client
}

// do sends method target (a path with its query) with hdr and returns the
// answer and its body, as sent (no transparent gunzip).
func (s *server) do(method, target string, hdr http.Header) (*http.Response, []byte) {
	s.tb.Helper()
	req, err := http.NewRequest(method, s.url+target, nil)
	if err != nil {
		s.tb.Fatalf("%s %s: %v", method, target, err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.tb.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.tb.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return resp, body
}

func (s *server) get(target string, hdr http.Header) (*http.Response, []byte) {
	s.tb.Helper()
	return s.do(http.MethodGet, target, hdr)
}

// apiError is Binance's error body; pointers tell a missing field from a zero.
type apiError struct {
	Code *int    `json:"code"`
	Msg  *string `json:"msg"`
}

// binanceError decodes a Binance-shaped error body and fails t unless it is one.
func binanceError(t *testing.T, target string, resp *http.Response, body []byte) (int, string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s Content-Type = %q, want application/json", target, ct)
	}
	var e apiError
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Code == nil || e.Msg == nil {
		t.Fatalf("GET %s body = %s, want a Binance error {\"code\":…,\"msg\":…}", target, body)
	}
	return *e.Code, *e.Msg
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip.NewReader = %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip = %v", err)
	}
	return out
}

// age parses an Age header, which must be a non-negative integer.
func age(t *testing.T, target string, resp *http.Response) int {
	t.Helper()
	v := resp.Header.Get("Age")
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("GET %s Age = %q, want a non-negative integer", target, v)
	}
	return n
}

func TestExchangeInfo(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)
	for _, tt := range []struct {
		path, fixture string
	}{
		{spotPath, "binance/spot_exchangeinfo.json"},
		{usdmPath, "binance/usdm_exchangeinfo.json"}, // pretty-printed: served as is
	} {
		t.Run(tt.path, func(t *testing.T) {
			want := fixtures.Read(t, tt.fixture)
			var etag string
			for i, wantCache := range []string{"MISS", "HIT-L1", "HIT-L1"} {
				resp, body := srv.get(tt.path, nil)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s #%d = %d %s, want 200", tt.path, i, resp.StatusCode, body)
				}
				if !bytes.Equal(body, want) {
					t.Errorf("GET %s #%d body = %d bytes, want the fixture's %d bytes as they are", tt.path, i, len(body), len(want))
				}
				if got := resp.Header.Get("X-Cache"); got != wantCache {
					t.Errorf("GET %s #%d X-Cache = %q, want %q", tt.path, i, got, wantCache)
				}
				if got := resp.Header.Get("Content-Type"); got != "application/json" {
					t.Errorf("GET %s Content-Type = %q, want %q", tt.path, got, "application/json")
				}
				if got, want := resp.Header.Get("Content-Length"), strconv.Itoa(len(want)); got != want {
					t.Errorf("GET %s Content-Length = %q, want %q", tt.path, got, want)
				}
				if got := resp.Header.Get("Content-Encoding"); got != "" {
					t.Errorf("GET %s without Accept-Encoding: Content-Encoding = %q, want none", tt.path, got)
				}
				if got := resp.Header.Get("Warning"); got != "" {
					t.Errorf("GET %s fresh: Warning = %q, want none", tt.path, got)
				}
				age(t, tt.path, resp)
				got := resp.Header.Get("ETag")
				if i == 0 {
					etag = got
				}
				if got == "" || got != etag {
					t.Errorf("GET %s #%d ETag = %q, want %q, the same on every answer", tt.path, i, got, etag)
				}
			}
		})
	}
	if n := w.upstream.Requests(spotPath); n != 1 {
		t.Errorf("upstream requests for spot = %d, want 1", n)
	}
}

func TestExchangeInfo_COINM(t *testing.T) {
	w := newWorld(t, false)
	t.Run("not served", func(t *testing.T) {
		srv := w.server(w.cache(exchangeinfo.Spot), nil)
		resp, body := srv.get(coinmPath, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s = %d, want %d", coinmPath, resp.StatusCode, http.StatusNotFound)
		}
		if code, _ := binanceError(t, coinmPath, resp, body); code >= 0 {
			t.Errorf("GET %s code = %d, want a negative Binance code", coinmPath, code)
		}
		if n := w.upstream.Requests(coinmPath); n != 0 {
			t.Errorf("upstream requests for coinm = %d, want 0", n)
		}
	})
	t.Run("served", func(t *testing.T) {
		srv := w.server(w.cache(exchangeinfo.COINM), nil)
		resp, body := srv.get(coinmPath, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d %s, want 200", coinmPath, resp.StatusCode, body)
		}
		if want := fixtures.Read(t, "binance/coinm_exchangeinfo.json"); !bytes.Equal(body, want) {
			t.Errorf("GET %s body = %d bytes, want the fixture's %d", coinmPath, len(body), len(want))
		}
	})
}

// A second process over the same Redis answers from L2 without asking Binance.
func TestExchangeInfo_HitL2(t *testing.T) {
	w := newWorld(t, true)
	first := w.server(w.cache(), nil)
	resp, _ := first.get(spotPath, nil)
	if got := resp.Header.Get("X-Cache"); resp.StatusCode != http.StatusOK || got != "MISS" {
		t.Fatalf("GET %s = %d %s, want 200 MISS", spotPath, resp.StatusCode, got)
	}
	etag := resp.Header.Get("ETag")
	before := w.upstream.Requests(spotPath)

	second := w.server(w.cache(), nil)
	want := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	for i, wantCache := range []string{"HIT-L2", "HIT-L1"} {
		resp, body := second.get(spotPath, nil)
		if got := resp.Header.Get("X-Cache"); resp.StatusCode != http.StatusOK || got != wantCache {
			t.Errorf("GET %s #%d on a second cache = %d %s, want 200 %s", spotPath, i, resp.StatusCode, got, wantCache)
		}
		if !bytes.Equal(body, want) {
			t.Errorf("GET %s #%d on a second cache: body differs from the fixture", spotPath, i)
		}
		if got := resp.Header.Get("ETag"); got != etag {
			t.Errorf("GET %s #%d ETag = %q, want %q (the first process's)", spotPath, i, got, etag)
		}
	}
	if n := w.upstream.Requests(spotPath); n != before {
		t.Errorf("upstream requests after an L2 hit = %d, want %d", n, before)
	}
}

func TestExchangeInfo_IfNoneMatch(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)
	resp, _ := srv.get(spotPath, nil)
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 3 {
		t.Fatalf("GET %s ETag = %q, want a quoted strong tag", spotPath, etag)
	}
	for _, tt := range []struct {
		name   string
		values []string // If-None-Match header lines
		want   int
	}{
		{"same tag", []string{etag}, http.StatusNotModified},
		{"other tag", []string{`"other"`}, http.StatusOK},
		{"weak form", []string{"W/" + etag}, http.StatusNotModified},
		{"weak other", []string{`W/"other"`}, http.StatusOK},
		{"star", []string{"*"}, http.StatusNotModified},
		{"list", []string{`"a", ` + etag}, http.StatusNotModified},
		{"list without spaces", []string{`"a",` + etag + `,"b"`}, http.StatusNotModified},
		{"list of others", []string{`"a", "b"`}, http.StatusOK},
		{"second header line", []string{`"a"`, etag}, http.StatusNotModified},
		{"unquoted", []string{strings.Trim(etag, `"`)}, http.StatusOK},
		{"empty", []string{""}, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := srv.get(spotPath, http.Header{"If-None-Match": tt.values})
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s If-None-Match %q = %d, want %d", spotPath, tt.values, resp.StatusCode, tt.want)
			}
			if got := resp.Header.Get("ETag"); got != etag {
				t.Errorf("GET %s If-None-Match %q ETag = %q, want %q", spotPath, tt.values, got, etag)
			}
			if got := resp.Header.Get("X-Cache"); got != "HIT-L1" {
				t.Errorf("GET %s If-None-Match %q X-Cache = %q, want HIT-L1", spotPath, tt.values, got)
			}
			if tt.want == http.StatusNotModified && len(body) != 0 {
				t.Errorf("GET %s If-None-Match %q body = %d bytes, want none", spotPath, tt.values, len(body))
			}
			if tt.want == http.StatusOK && !bytes.Equal(body, fixtures.Read(t, "binance/spot_exchangeinfo.json")) {
				t.Errorf("GET %s If-None-Match %q body differs from the fixture", spotPath, tt.values)
			}
		})
	}
}

func TestExchangeInfo_Gzip(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)
	want := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	for _, tt := range []struct {
		name     string
		values   []string // Accept-Encoding header lines; none if nil
		wantGzip bool
	}{
		{"none", nil, false},
		{"gzip", []string{"gzip"}, true},
		{"browser", []string{"gzip, deflate, br, zstd"}, true},
		{"upper case", []string{"GZIP"}, true},
		{"with quality", []string{"br;q=1.0, gzip;q=0.5"}, true},
		{"refused", []string{"gzip;q=0"}, false},
		{"refused with spaces", []string{"gzip ; q = 0.000"}, false},
		{"refused, upper-case Q", []string{"gzip;Q=0"}, false},
		{"refused after another parameter", []string{"gzip;x=1;q=0"}, false},
		{"second header line", []string{"br", "gzip"}, true},
		{"identity", []string{"identity"}, false},
		{"x-gzip", []string{"x-gzip"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := srv.get(spotPath, http.Header{"Accept-Encoding": tt.values})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s Accept-Encoding %q = %d, want 200", spotPath, tt.values, resp.StatusCode)
			}
			if got := resp.Header.Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("GET %s Accept-Encoding %q Vary = %q, want Accept-Encoding", spotPath, tt.values, got)
			}
			if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
				t.Errorf("GET %s Accept-Encoding %q Content-Length = %q, want %d", spotPath, tt.values, got, len(body))
			}
			gotGzip := resp.Header.Get("Content-Encoding") == "gzip"
			if gotGzip != tt.wantGzip {
				t.Fatalf("GET %s Accept-Encoding %q gzipped = %v, want %v", spotPath, tt.values, gotGzip, tt.wantGzip)
			}
			if gotGzip {
				if len(body) >= len(want)/4 {
					t.Errorf("GET %s gzipped = %d bytes, want far fewer than %d", spotPath, len(body), len(want))
				}
				body = gunzip(t, body)
			}
			if !bytes.Equal(body, want) {
				t.Errorf("GET %s Accept-Encoding %q body differs from the fixture", spotPath, tt.values)
			}
		})
	}
}

// Binance's query semantics are tested in exchangeinfo against every fixture;
// here, that the routes use them and map their errors.
func TestExchangeInfo_Query(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)
	fixture := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	for _, tt := range []struct {
		query   string
		symbols []string
	}{
		{"symbol=BTCUSDT", []string{"BTCUSDT"}},
		{"symbols=%5B%22BTCUSDT%22,%22ETHBTC%22%5D", []string{"ETHBTC", "BTCUSDT"}}, // Binance's order
		{`symbols=["BNBBTC"]`, []string{"BNBBTC"}},
	} {
		target := spotPath + "?" + tt.query
		resp, body := srv.get(target, nil)
		var got struct {
			Timezone string            `json:"timezone"`
			Symbols  []json.RawMessage `json:"symbols"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Timezone != "UTC" {
			t.Fatalf("GET %s = %d %.80s, want 200 with Binance's envelope", target, resp.StatusCode, body)
		}
		var names []string
		for _, raw := range got.Symbols {
			if !bytes.Contains(fixture, raw) {
				t.Errorf("GET %s: symbol object not byte for byte as recorded: %.60s", target, raw)
			}
			var s struct{ Symbol string }
			json.Unmarshal(raw, &s)
			names = append(names, s.Symbol)
		}
		if fmt.Sprint(names) != fmt.Sprint(tt.symbols) {
			t.Errorf("GET %s symbols = %v, want %v", target, names, tt.symbols)
		}
	}
	for _, tt := range []struct {
		query string
		code  int
	}{
		{"symbol=NOSUCHPAIR", -1121},
		{"symbol=BTCUSDT&symbols=%5B%22ETHBTC%22%5D", -1128},
		{"symbolStatus=OPEN", -1122},
		{"foo=1", -1104},
		{"symbol=%ZZ", -1100}, // a broken escape is kept as sent: illegal characters
	} {
		target := spotPath + "?" + tt.query
		resp, body := srv.get(target, nil)
		if code, _ := binanceError(t, target, resp, body); resp.StatusCode != http.StatusBadRequest || code != tt.code {
			t.Errorf("GET %s = %d %s, want 400 with code %d", target, resp.StatusCode, body, tt.code)
		}
		if resp.Header.Get("ETag") != "" {
			t.Errorf("GET %s: an error carries ETag %s", target, resp.Header.Get("ETag"))
		}
	}
	// The exact bytes, for one (https://developers.binance.com/docs/binance-spot-api-docs/errors).
	if _, body := srv.get(spotPath+"?symbol=NOSUCHPAIR", nil); strings.TrimSpace(string(body)) != `{"code":-1121,"msg":"Invalid symbol."}` {
		t.Errorf("GET ?symbol=NOSUCHPAIR body = %s", body)
	}
	// USD-M takes no parameters and ignores them, as Binance does.
	resp, body := srv.get(usdmPath+"?symbol=BTCUSDT", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, fixtures.Read(t, "binance/usdm_exchangeinfo.json")) {
		t.Errorf("GET %s?symbol=BTCUSDT = %d, %d bytes; want 200 and the full recorded body", usdmPath, resp.StatusCode, len(body))
	}
}

func TestExchangeInfo_Unavailable(t *testing.T) {
	w := newWorld(t, false)
	w.upstream.Set(spotPath, fetchtest.Response{Status: http.StatusServiceUnavailable, Body: []byte("<html>down</html>")})
	var logs testutil.LogBuffer
	srv := w.server(w.cache(), logs.Logger())

	resp, body := srv.get(spotPath, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET %s = %d %s, want 503", spotPath, resp.StatusCode, body)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("GET %s Retry-After = %q, want a positive integer", spotPath, resp.Header.Get("Retry-After"))
	}
	if code, msg := binanceError(t, spotPath, resp, body); code >= 0 || msg == "" {
		t.Errorf("GET %s = {%d %q}, want a negative code and a message", spotPath, code, msg)
	}
	if n := logs.Count(t, "level", "ERROR"); n != 1 {
		t.Errorf("error records after one 503 = %d, want 1; logs:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), spotPath) || !strings.Contains(logs.String(), `"status":503`) {
		t.Errorf("logs = %s, want the path and status 503", logs.String())
	}

	// Client errors are not logged.
	srv.get(spotPath+"?foo=1", nil)
	srv.get("/nope", nil)
	if n := logs.Count(t, "level", "ERROR"); n != 1 {
		t.Errorf("error records after a 400 and a 404 = %d, want still 1; logs:\n%s", n, logs.String())
	}
}

func TestExchangeInfo_Stale(t *testing.T) {
	w := newWorld(t, true)
	srv := w.server(w.cache(), nil)
	resp, good := srv.get(spotPath, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", spotPath, resp.StatusCode)
	}
	etag := resp.Header.Get("ETag")

	const advance = 10 * time.Minute // past the default 5m TTL
	w.clock.Advance(advance)
	w.upstream.Set(spotPath, fetchtest.Response{
		Status: http.StatusServiceUnavailable,
		Header: http.Header{"Retry-After": {"120"}}, // no retry within the test
		Body:   []byte("<html>503</html>"),
	})
	for i := range 2 { // the fallback, then the backoff's shortcut
		resp, body := srv.get(spotPath, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s #%d = %d %s, want 200", spotPath, i, resp.StatusCode, body)
		}
		if got := resp.Header.Get("X-Cache"); got != "STALE" {
			t.Errorf("GET %s #%d X-Cache = %q, want STALE", spotPath, i, got)
		}
		if got := resp.Header.Get("Warning"); !strings.HasPrefix(got, "110 ") || !strings.Contains(got, "upstream 503") {
			t.Errorf("GET %s #%d Warning = %q, want 110 … naming the upstream 503", spotPath, i, got)
		}
		if got, min := age(t, spotPath, resp), int(advance/time.Second); got < min {
			t.Errorf("GET %s #%d Age = %d, want >= %d", spotPath, i, got, min)
		}
		if got := resp.Header.Get("ETag"); got != etag {
			t.Errorf("GET %s #%d ETag = %q, want %q", spotPath, i, got, etag)
		}
		if !bytes.Equal(body, good) {
			t.Errorf("GET %s #%d stale body differs from the good one", spotPath, i)
		}
	}
}

type readiness struct {
	Ready   *bool `json:"ready"`
	Markets []struct {
		Market string `json:"market"`
		State  string `json:"state"`
		Ready  bool   `json:"ready"`
	} `json:"markets"`
}

func TestProbes(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)

	if resp, body := srv.get("/healthz", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %d %s, want 200", resp.StatusCode, body)
	}
	ready := func(wantStatus int, wantReady bool, wantState string) {
		t.Helper()
		resp, body := srv.get("/readyz", nil)
		if resp.StatusCode != wantStatus {
			t.Errorf("GET /readyz = %d, want %d", resp.StatusCode, wantStatus)
		}
		var r readiness
		if err := json.Unmarshal(body, &r); err != nil || r.Ready == nil {
			t.Fatalf("GET /readyz body = %s, want {\"ready\":…,\"markets\":[…]}", body)
		}
		if *r.Ready != wantReady {
			t.Errorf("GET /readyz ready = %v, want %v", *r.Ready, wantReady)
		}
		var got []string
		for _, m := range r.Markets {
			got = append(got, m.Market+":"+m.State)
		}
		want := []string{"spot:" + wantState, "usdm:" + wantState}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("GET /readyz markets = %q, want %q", got, want)
		}
	}
	ready(http.StatusServiceUnavailable, false, "empty")
	srv.get(spotPath, nil)
	resp, body := srv.get("/readyz", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with usdm empty = %d %s, want 503", resp.StatusCode, body)
	}
	srv.get(usdmPath, nil)
	ready(http.StatusOK, true, "fresh")

	for _, tt := range []struct {
		method, target string
		want           int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/api/v3/exchangeinfo", http.StatusNotFound}, // paths are case-sensitive, as Binance's
		{http.MethodGet, "/api/v3/ticker/price", http.StatusNotFound},
		{http.MethodPost, spotPath, http.StatusMethodNotAllowed},
		{http.MethodDelete, usdmPath, http.StatusMethodNotAllowed},
	} {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			resp, body := srv.do(tt.method, tt.target, nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.target, resp.StatusCode, tt.want)
			}
			if code, _ := binanceError(t, tt.target, resp, body); code >= 0 {
				t.Errorf("%s %s code = %d, want negative", tt.method, tt.target, code)
			}
		})
	}
}

// scrape reads /metrics into a map from series (name{labels}) to value.
func scrape(t *testing.T, srv *server) map[string]float64 {
	t.Helper()
	resp, body := srv.get("/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET /metrics Content-Type = %q, want text/plain", ct)
	}
	out := make(map[string]float64)
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("GET /metrics: unparsable line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)
	before := scrape(t, srv)
	if _, ok := before[`symcache_snapshot_symbols{market="spot"}`]; ok {
		t.Error(`symcache_snapshot_symbols{market="spot"} present before any fetch, want absent`)
	}

	for range 4 { // 1 miss, 3 L1 hits
		srv.get(spotPath, nil)
	}
	srv.get(spotPath+"?foo=1", nil)
	srv.get("/nope", nil)
	srv.do(http.MethodPost, spotPath, nil)
	after := scrape(t, srv)

	for _, tt := range []struct {
		series string
		delta  float64
	}{
		{`symcache_cache_hits_total{market="spot",tier="l1"}`, 3},
		{`symcache_cache_misses_total{market="spot",tier="l1"}`, 1},
		{`symcache_cache_hits_total{market="usdm",tier="l1"}`, 0},
		{`symcache_upstream_fetches_total{market="spot",outcome="ok"}`, 1},
		{`symcache_upstream_fetches_total{market="spot",outcome="status"}`, 0},
		{`symcache_stale_served_total{market="spot",reason="status"}`, 0},
		{`symcache_upstream_request_duration_seconds_count{market="spot"}`, 1},
		{`symcache_upstream_requests_total{base_url="` + w.upstream.URL + `",code="200",market="spot"}`, 1},
		{`symcache_http_requests_total{code="200",route="/api/v3/exchangeInfo"}`, 4},
		{`symcache_http_requests_total{code="400",route="/api/v3/exchangeInfo"}`, 1},
		{`symcache_http_requests_total{code="405",route="/api/v3/exchangeInfo"}`, 1},
		{`symcache_http_requests_total{code="404",route="unmatched"}`, 1},
		{`symcache_http_requests_total{code="200",route="/metrics"}`, 1},
	} {
		if got := after[tt.series] - before[tt.series]; got != tt.delta {
			t.Errorf("GET /metrics %s moved by %v, want %v", tt.series, got, tt.delta)
		}
	}
	build := version.Info()
	buildSeries := `symcache_build_info{commit="` + build.Commit + `",date="` + build.Date + `",goversion="` + build.GoVersion + `",version="` + build.Version + `"}`
	if after[buildSeries] != 1 {
		t.Errorf("GET /metrics %s = %v, want 1", buildSeries, after[buildSeries])
	}
	for _, series := range []string{`symcache_stale_served_total{market="spot",reason="refresh_in_progress"}`, `symcache_l1_bytes`} {
		if _, ok := after[series]; !ok {
			t.Errorf("GET /metrics has no %s", series)
		}
	}
	if got := after[`symcache_l1_bytes`]; got < 3733982 {
		t.Errorf("symcache_l1_bytes = %v, want at least the spot body", got)
	}
	if got, want := after[`symcache_snapshot_symbols{market="spot"}`], 2292.0; got != want {
		t.Errorf(`GET /metrics symcache_snapshot_symbols{market="spot"} = %v, want %v`, got, want)
	}
	if got, ok := after[`symcache_snapshot_age_seconds{market="spot"}`]; !ok || got < 0 || got > 60 {
		t.Errorf(`GET /metrics symcache_snapshot_age_seconds{market="spot"} = %v (present %v), want in [0, 60]`, got, ok)
	}
	if _, ok := after["go_goroutines"]; !ok {
		t.Error("GET /metrics has no go_goroutines, want the Go collector")
	}
	process := false
	for series := range after {
		process = process || strings.HasPrefix(series, "process_")
	}
	if !process {
		t.Error("GET /metrics has no process_ series, want the process collector")
	}
}

// A request whose client went away is not counted as a success.
// TestMetrics_RefreshLock checks the coordination counters: the first
// sidecar takes the lock and fetches, the second takes its snapshot up.
func TestMetrics_RefreshLock(t *testing.T) {
	w := newWorld(t, true)
	first := w.server(w.cache(exchangeinfo.USDM), nil)
	second := w.server(w.cache(exchangeinfo.USDM), nil)
	if resp, _ := first.get(usdmPath, nil); resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("first sidecar: X-Cache %q, want MISS", resp.Header.Get("X-Cache"))
	}
	for deadline := time.Now().Add(5 * time.Second); scrape(t, second)[`symcache_snapshots_adopted_total{market="usdm"}`] != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second sidecar did not take up the first one's snapshot within 5s")
		}
	}
	if resp, _ := second.get(usdmPath, nil); resp.Header.Get("X-Cache") != "HIT-L1" {
		t.Errorf("second sidecar: X-Cache %q, want HIT-L1 (announced, taken up)", resp.Header.Get("X-Cache"))
	}
	m1, m2 := scrape(t, first), scrape(t, second)
	for _, tt := range []struct {
		m      map[string]float64
		series string
		want   float64
	}{
		{m1, `symcache_refresh_lock_total{market="usdm",result="acquired"}`, 1},
		{m1, `symcache_refresh_lock_total{market="usdm",result="error"}`, 0},
		{m1, `symcache_snapshots_adopted_total{market="usdm"}`, 0},
		{m2, `symcache_refresh_lock_total{market="usdm",result="acquired"}`, 0},
		{m2, `symcache_upstream_fetches_total{market="usdm",outcome="ok"}`, 0},
		{m1, `symcache_redis_errors_total{operation="get"}`, 0},
		{m1, `symcache_redis_errors_total{operation="lock"}`, 0},
	} {
		if got, ok := tt.m[tt.series]; !ok || got != tt.want {
			t.Errorf("%s = %v (present %v), want %v", tt.series, got, ok, tt.want)
		}
	}
	if n := w.upstream.Requests(usdmPath); n != 1 {
		t.Errorf("upstream requests = %d, want 1", n)
	}
}

func TestMetrics_Canceled(t *testing.T) {
	w := newWorld(t, false)
	w.upstream.Set(spotPath, fetchtest.Response{Body: fixtures.Read(t, "binance/spot_exchangeinfo.json"), Delay: 200 * time.Millisecond})
	c := w.cache()
	h := w.handler(c, nil)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	func() {
		// The handler ends with http.ErrAbortHandler, which net/http takes
		// as "drop the connection", rather than an empty 200.
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("a canceled request ended with panic %v, want http.ErrAbortHandler", p)
			}
		}()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, spotPath, nil))
	}()

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	metrics := rec.Body.String()
	if strings.Contains(metrics, `symcache_http_requests_total{code="200",route="/api/v3/exchangeInfo"}`) {
		t.Errorf("GET /metrics counts a canceled request as a 200:\n%s", grep(metrics, "symcache_http_requests_total"))
	}
	if !strings.Contains(metrics, `symcache_http_requests_total{code="499",route="/api/v3/exchangeInfo"} 1`) {
		t.Errorf("GET /metrics = %s, want a canceled request counted as 499", grep(metrics, "symcache_http_requests_total"))
	}
}

func grep(text, prefix string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func TestNew(t *testing.T) {
	if h, err := httpapi.New(httpapi.Config{}); err == nil || h != nil {
		t.Errorf("New(Config{}) = %v, %v, want nil, an error", h, err)
	}
	w := newWorld(t, false)
	if h, err := httpapi.New(httpapi.Config{Cache: w.cache()}); err != nil || h == nil {
		t.Errorf("New(Config{Cache: c}) = %v, %v, want a handler, nil", h, err)
	}
}

// warmHandler returns a handler over a cache that already holds spot in L1.
func warmHandler(tb testing.TB) http.Handler {
	tb.Helper()
	w := newWorld(tb, false)
	h := w.handler(w.cache(exchangeinfo.Spot), nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, spotPath, nil))
	if rec.Code != http.StatusOK || rec.Header().Get("X-Cache") != "MISS" {
		tb.Fatalf("GET %s = %d %s, want 200 MISS", spotPath, rec.Code, rec.Header().Get("X-Cache"))
	}
	return h
}

// FuzzExchangeInfoQuery: whatever the query and the conditional and encoding
// headers, the answer is never a 5xx; a 400 is a Binance error; a 200 is the
// fixture (maybe gzipped) without parameters, else Binance's envelope holding
// symbol objects byte for byte as recorded.
func FuzzExchangeInfoQuery(f *testing.F) {
	h := warmHandler(f)
	want := fixtures.Read(f, "binance/spot_exchangeinfo.json")
	f.Fuzz(func(t *testing.T, query, ifNoneMatch, acceptEncoding string) {
		req := httptest.NewRequest(http.MethodGet, spotPath, nil)
		req.URL.RawQuery = query
		if ifNoneMatch != "" {
			req.Header["If-None-Match"] = []string{ifNoneMatch}
		}
		if acceptEncoding != "" {
			req.Header["Accept-Encoding"] = []string{acceptEncoding}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		target := spotPath + "?" + query

		params := 0
		for part := range strings.SplitSeq(query, "&") {
			if part != "" {
				params++
			}
		}
		switch rec.Code {
		case http.StatusNotModified:
			if rec.Body.Len() != 0 {
				t.Fatalf("GET %s = 304 with %d bytes, want none", target, rec.Body.Len())
			}
		case http.StatusBadRequest:
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == nil || e.Msg == nil || *e.Code >= 0 || *e.Msg == "" {
				t.Fatalf("GET %s body = %s, want a Binance error", target, rec.Body)
			}
			if params == 0 {
				t.Fatalf("GET %s (no parameters) = 400 %s", target, rec.Body)
			}
		case http.StatusOK:
			body := rec.Body.Bytes()
			if rec.Header().Get("Content-Encoding") == "gzip" {
				body = gunzip(t, body)
			}
			if params == 0 {
				if !bytes.Equal(body, want) {
					t.Fatalf("GET %s = 200 with a body other than the fixture", target)
				}
				return
			}
			var got struct {
				Symbols []json.RawMessage `json:"symbols"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("GET %s = 200 with invalid JSON: %v", target, err)
			}
			for _, raw := range got.Symbols {
				if !bytes.Contains(want, raw) {
					t.Fatalf("GET %s: symbol %.60s not as recorded", target, raw)
				}
			}
		default:
			t.Fatalf("GET %s = %d %s, want 200, 304 or 400", target, rec.Code, rec.Body)
		}
	})
}

// A panicking handler answers 500 with Binance's body and is counted and
// logged, instead of dropping the connection.
func TestPanicIsA500(t *testing.T) {
	var logs testutil.LogBuffer
	e, err := httpapi.New(httpapi.Config{Cache: panicking{}, Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v3/exchangeInfo", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"code":-1000`) {
		t.Errorf("GET on a panicking cache = %d %s, want 500 with code -1000", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("logs = %s, want the panic logged", logs.String())
	}
}

type panicking struct{ noAdmin }

// noAdmin gives a test Backend the admin methods, which its tests never call.
type noAdmin struct{}

func (noAdmin) Markets() []exchangeinfo.Market { return nil }
func (noAdmin) Refresh(context.Context, exchangeinfo.Market) (symcache.Result, error) {
	panic("Refresh not expected")
}
func (noAdmin) Invalidate(context.Context, exchangeinfo.Market, bool) (bool, error) {
	panic("Invalidate not expected")
}
func (noAdmin) ClearBackoff(context.Context, exchangeinfo.Market) (bool, error) {
	panic("ClearBackoff not expected")
}
func (noAdmin) Changes(context.Context, exchangeinfo.Market, symcache.ChangeQuery) (symcache.ChangePage, error) {
	panic("Changes not expected")
}
func (noAdmin) Subscribe(context.Context, exchangeinfo.Market, symcache.ChangeQuery) iter.Seq2[changes.Change, error] {
	panic("Subscribe not expected")
}

func (panicking) Get(context.Context, exchangeinfo.Market) (symcache.Result, error) { panic("boom") }
func (panicking) Ready() ([]symcache.MarketState, bool)                             { return nil, false }
func (panicking) Stats() []symcache.Stats                                           { return nil }

// TestUnknownParameter checks the -1104 message names the parameters a path
// takes, or says it takes none.
func TestUnknownParameter(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)
	for target, want := range map[string]string{
		"/v1/symbols/spot/BTCUSDT?x=1": `{"code":-1104,"msg":"Unknown parameter 'x'; this path takes none."}`,
		"/v1/symbols/spot?x=1":         `{"code":-1104,"msg":"Unknown parameter 'x'; known: status, base, quote, symbols, limit, cursor."}`,
	} {
		resp, body := srv.get(target, nil)
		if resp.StatusCode != http.StatusBadRequest || strings.TrimSpace(string(body)) != want {
			t.Errorf("GET %s = %d %s, want 400 %s", target, resp.StatusCode, body, want)
		}
	}
}

// TestMetrics_L1DroppedSets checks that a snapshot L1 cannot hold is
// counted, and still served from memory.
func TestMetrics_L1DroppedSets(t *testing.T) {
	w := newWorld(t, false)
	w.l1MaxBytes = 1 << 20 // the spot snapshot is 3.7 MB
	srv := w.server(w.cache(), nil)
	for i, want := range []string{"MISS", "HIT-L1", "HIT-L1"} {
		if resp, _ := srv.get(spotPath, nil); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != want {
			t.Fatalf("GET %s #%d = %d %s, want 200 %s", spotPath, i+1, resp.StatusCode, resp.Header.Get("X-Cache"), want)
		}
	}
	if n := w.upstream.Requests(spotPath); n != 1 {
		t.Errorf("upstream requests = %d, want 1: a snapshot L1 refused is served from memory", n)
	}
	m := scrape(t, srv)
	if got := m["symcache_l1_dropped_sets_total"]; got < 1 {
		t.Errorf("symcache_l1_dropped_sets_total = %v, want at least 1 (the spot snapshot is larger than L1)", got)
	}
	if got := m["symcache_l1_bytes"]; got != 0 {
		t.Errorf("symcache_l1_bytes = %v, want 0", got)
	}
}

// TestMetrics_Documented checks that the metric table of docs/operations.md and /metrics
// agree: after ordinary traffic over Redis every documented metric is
// exported, and every symcache_ metric exported is documented.
func TestMetrics_Documented(t *testing.T) {
	readme, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for line := range strings.Lines(string(readme)) {
		if name, ok := strings.CutPrefix(line, "| `symcache_"); ok {
			documented["symcache_"+name[:strings.IndexByte(name, '`')]] = true
		}
	}
	if len(documented) < 15 {
		t.Fatalf("found %d metrics in the table of docs/operations.md, want the whole table", len(documented))
	}

	w := newWorld(t, true)
	w.upstream.Set(usdmPath, fetchtest.Response{
		Body:   fixtures.Read(t, "binance/usdm_exchangeinfo.json"),
		Header: http.Header{"X-Mbx-Used-Weight-1m": {"12"}},
	})
	w.upstream.Set("/api/v3/ping", fetchtest.Response{Body: []byte(`{}`), Header: http.Header{"X-Mbx-Used-Weight-1m": {"2"}}})
	w.upstream.Set("/sapi/v1/limited", fetchtest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"30"}}})
	c := w.cache()
	gate := fetch.NewGate()
	fwd, err := forward.New(forward.Config{BaseURLs: map[exchangeinfo.Market][]string{exchangeinfo.Spot: {w.upstream.URL}}, Gate: gate, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), Now: w.clock.Now, Forward: fwd, ForwardStats: fwd, Gate: gate}))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	srv := &server{tb: t, url: hs.URL, client: hs.Client()}
	srv.get(usdmPath, nil)
	srv.get(usdmPath, nil)
	srv.get("/api/v3/ping", nil)
	srv.get("/sapi/v1/limited", nil) // the host is blocked: last
	exported := map[string]bool{}
	for series := range scrape(t, srv) {
		name, _, _ := strings.Cut(series, "{")
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && documented[base] {
				name = base
			}
		}
		if strings.HasPrefix(name, "symcache_") {
			exported[name] = true
		}
	}
	for name := range documented {
		if !exported[name] {
			t.Errorf("%s is in docs/operations.md but not exported", name)
		}
	}
	for name := range exported {
		if !documented[name] {
			t.Errorf("%s is exported but not in the table of docs/operations.md", name)
		}
	}
}

// fixed is a Backend that always answers one snapshot from L1.
type fixed struct {
	noAdmin
	s *exchangeinfo.Snapshot
}

func (f fixed) Get(context.Context, exchangeinfo.Market) (symcache.Result, error) {
	return symcache.Result{Snapshot: f.s, Source: symcache.HitL1, Expires: f.s.FetchedAt().Add(5 * time.Minute)}, nil
}
func (fixed) Ready() ([]symcache.MarketState, bool) { return nil, true }
func (fixed) Stats() []symcache.Stats               { return nil }

// TestExchangeInfo_PlainNeverWaitsForGzip checks that a snapshot whose gzip
// is not made yet (as when promoted from a JSON value in L2, which is
// compressed in the background) is sent plain to a client that does not
// accept gzip without making the gzip (a spot compression takes tens of
// milliseconds, more under load); and that a client that accepts gzip gets
// it, made then, once.
func TestExchangeInfo_PlainNeverWaitsForGzip(t *testing.T) {
	body := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	s, err := exchangeinfo.Parse(exchangeinfo.Spot, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Config{Cache: fixed{s: s}, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	get := func(acceptEncoding string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+spotPath, nil)
		req.Header.Set("Accept-Encoding", acceptEncoding)
		resp, err := srv.Client().Transport.RoundTrip(req) // no transparent gunzip
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	for range 3 {
		resp, got := get("identity")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(got, body) {
			t.Fatalf("plain GET = %d, Content-Encoding %q, body equal %v; want 200, plain, the body", resp.StatusCode, resp.Header.Get("Content-Encoding"), bytes.Equal(got, body))
		}
		if resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) || resp.Header.Get("Vary") != "Accept-Encoding" || resp.Header.Get("ETag") != s.ETag() {
			t.Errorf("plain GET headers = %v, want the plain length, Vary: Accept-Encoding, the snapshot's ETag", resp.Header)
		}
	}
	if _, ok := s.GzipIfReady(); ok {
		t.Fatal("plain GETs made the snapshot's gzip, want it left unmade")
	}

	resp, got := get("gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(gunzip(t, got), body) || resp.Header.Get("Content-Length") != strconv.Itoa(len(got)) {
		t.Fatalf("gzip GET: Content-Encoding %q, gunzips to the body %v, Content-Length %s for %d bytes", resp.Header.Get("Content-Encoding"), bytes.Equal(gunzip(t, got), body), resp.Header.Get("Content-Length"), len(got))
	}
	if gz, ok := s.GzipIfReady(); !ok || !bytes.Equal(gz, got) {
		t.Error("gzip GET did not send the snapshot's own gzip")
	}
}

// The gzip and plain representations of one snapshot have tags of their
// own (RFC 9110, 8.8.3: two representations never share a strong tag), and
// each revalidates with its own.
func TestETag_GzipAndPlainDiffer(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)
	plain := http.Header{"Accept-Encoding": {"identity"}}
	gz := http.Header{"Accept-Encoding": {"gzip"}}
	resp, _ := srv.get(spotPath, plain)
	p := resp.Header.Get("ETag")
	resp, _ = srv.get(spotPath, gz)
	g := resp.Header.Get("ETag")
	if resp.Header.Get("Content-Encoding") != "gzip" || g == p || g != strings.TrimSuffix(p, `"`)+`-gzip"` {
		t.Fatalf("ETags plain %s, gzip %s (Content-Encoding %q); want two tags, the gzip one %s with -gzip", p, g, resp.Header.Get("Content-Encoding"), p)
	}
	for _, tt := range []struct {
		accept http.Header
		tag    string
		want   int
	}{
		{plain, p, http.StatusNotModified},
		{gz, g, http.StatusNotModified},
		{gz, p, http.StatusOK}, // the plain bytes' tag does not validate the gzip ones
		{plain, g, http.StatusOK},
		{gz, `W/` + g, http.StatusNotModified}, // If-None-Match compares weakly
	} {
		h := tt.accept.Clone()
		h.Set("If-None-Match", tt.tag)
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			if resp, _ := srv.do(method, spotPath, h); resp.StatusCode != tt.want {
				t.Errorf("%s %s Accept-Encoding %s If-None-Match %s = %d, want %d", method, spotPath, tt.accept.Get("Accept-Encoding"), tt.tag, resp.StatusCode, tt.want)
			}
		}
	}
}

// TestDemo: a sidecar serving recordings says so on every answer (data,
// errors, probes) and in /readyz, and a stale answer says both.
func TestDemo(t *testing.T) {
	w := newWorld(t, false)
	c := w.cache(exchangeinfo.Spot)
	h, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), Now: w.clock.Now, Demo: "demo data: \"recorded\" answers of 2025-12-24\n"}))
	if err != nil {
		t.Fatal(err)
	}
	const want = `199 symcache "demo data: 'recorded' answers of 2025-12-24"`
	for _, target := range []string{spotPath, "/v1/symbols/spot/BTCUSDT", "/v1/symbols/spot/NOPE", "/readyz", "/healthz", "/nowhere"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		if got := rec.Header().Values("Warning"); len(got) != 1 || got[0] != want {
			t.Errorf("GET %s = %d, Warning %q, want %q", target, rec.Code, got, want)
		}
		if target == "/readyz" && !strings.Contains(rec.Body.String(), `"demo":"demo data: \"recorded\" answers of 2025-12-24\n"`) {
			t.Errorf("GET /readyz = %s, want the demo member", rec.Body)
		}
	}
	w.upstream.Set(spotPath, fetchtest.Response{Status: http.StatusServiceUnavailable})
	w.clock.Advance(6 * time.Minute)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, spotPath, nil))
	if got := rec.Header().Values("Warning"); rec.Header().Get("X-Cache") != "STALE" || len(got) != 2 || got[0] != want || !strings.HasPrefix(got[1], "110 ") {
		t.Errorf("a stale answer in demo mode: X-Cache %s, Warning %q; want both warnings", rec.Header().Get("X-Cache"), got)
	}
}
