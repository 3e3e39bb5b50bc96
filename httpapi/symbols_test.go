package httpapi_test

import (
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
)

// spotSymbol is what the tests decode of each recorded spot symbol, with
// encoding/json, independently of the code under test.
type spotSymbol struct {
	Name   string `json:"symbol"`
	Status string `json:"status"`
	Base   string `json:"baseAsset"`
	Quote  string `json:"quoteAsset"`
	raw    json.RawMessage
}

func recordedSpot(t *testing.T) []spotSymbol {
	t.Helper()
	var body struct {
		Symbols []json.RawMessage `json:"symbols"`
	}
	if err := json.Unmarshal(fixtures.Read(t, "binance/spot_exchangeinfo.json"), &body); err != nil {
		t.Fatal(err)
	}
	out := make([]spotSymbol, len(body.Symbols))
	for i, raw := range body.Symbols {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			t.Fatal(err)
		}
		out[i].raw = raw
	}
	return out
}

// page is a GET /v1/symbols/{market} answer.
type page struct {
	Market     string            `json:"market"`
	ServerTime int64             `json:"server_time"`
	FetchedAt  time.Time         `json:"fetched_at"`
	Count      int               `json:"count"`
	Symbols    []json.RawMessage `json:"symbols"`
	NextCursor string            `json:"next_cursor"`
}

func getPage(t *testing.T, srv *server, target string) page {
	t.Helper()
	resp, body := srv.get(target, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s, want 200", target, resp.StatusCode, body)
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("GET %s: not a page: %v", target, err)
	}
	return p
}

func names(t *testing.T, raws []json.RawMessage) []string {
	t.Helper()
	out := make([]string, len(raws))
	for i, raw := range raws {
		var s struct {
			Symbol string `json:"symbol"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		out[i] = s.Symbol
	}
	return out
}

func TestListSymbols_PaginatesTheWholeList(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)
	want := recordedSpot(t)
	for _, limit := range []int{0, 1000, 777, 5000} { // 0: the default, 500
		t.Run("limit="+strconv.Itoa(limit), func(t *testing.T) {
			var got []json.RawMessage
			pages, cursor := 0, ""
			for {
				q := url.Values{}
				if limit > 0 {
					q.Set("limit", strconv.Itoa(limit))
				}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				p := getPage(t, srv, "/v1/symbols/spot?"+q.Encode())
				pages++
				if p.Count != len(want) || p.Market != "spot" || p.ServerTime != 1694185561976 || p.FetchedAt.IsZero() {
					t.Fatalf("page %d = market %q, count %d, server_time %d; want spot, %d, 1694185561976", pages, p.Market, p.Count, p.ServerTime, len(want))
				}
				if wantLen := min(cmpOr(limit, 500), len(want)-len(got)); len(p.Symbols) != wantLen {
					t.Fatalf("page %d has %d symbols, want %d", pages, len(p.Symbols), wantLen)
				}
				got = append(got, p.Symbols...)
				if cursor = p.NextCursor; cursor == "" {
					break
				}
				if pages > len(want) {
					t.Fatal("pagination does not end")
				}
			}
			if len(got) != len(want) {
				t.Fatalf("symbols over all pages = %d, want %d", len(got), len(want))
			}
			for i := range want { // every symbol exactly once, in Binance's order, byte for byte
				if string(got[i]) != string(want[i].raw) {
					t.Fatalf("symbol %d = %.40s…, want %.40s…", i, got[i], want[i].raw)
				}
			}
		})
	}
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func TestListSymbols_Filters(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)
	all := recordedSpot(t)
	expect := func(keep func(spotSymbol) bool) []string {
		var out []string
		for _, s := range all {
			if keep(s) {
				out = append(out, s.Name)
			}
		}
		return out
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"status=TRADING", expect(func(s spotSymbol) bool { return s.Status == "TRADING" })},
		{"status=break", expect(func(s spotSymbol) bool { return s.Status == "BREAK" })},
		{"quote=USDT", expect(func(s spotSymbol) bool { return s.Quote == "USDT" })},
		{"base=btc&status=TRADING", expect(func(s spotSymbol) bool { return s.Base == "BTC" && s.Status == "TRADING" })},
		{"symbols=btcusdt,ETHBTC,NOSUCHPAIR", expect(func(s spotSymbol) bool { return s.Name == "BTCUSDT" || s.Name == "ETHBTC" })},
		{"symbols=ETHBTC&quote=USDT", nil},
		{"status=DELISTED", nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			p := getPage(t, srv, "/v1/symbols/spot?limit=5000&"+tt.query)
			if got := names(t, p.Symbols); p.Count != len(tt.want) || !slices.Equal(got, tt.want) {
				t.Errorf("GET ?%s = count %d, %d symbols; want %d", tt.query, p.Count, len(got), len(tt.want))
			}
		})
	}
	if n := len(expect(func(s spotSymbol) bool { return s.Status == "TRADING" })); n != 1340 {
		t.Errorf("recorded TRADING symbols = %d, want 1340 (SOURCES.md)", n)
	}
}

func TestListSymbols_BadInput(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)
	tests := []struct {
		target string
		status int
		names  string // the message must name this
	}{
		{"/v1/symbols/spot?limit=0", 400, "limit"},
		{"/v1/symbols/spot?limit=5001", 400, "limit"},
		{"/v1/symbols/spot?limit=ten", 400, "limit"},
		{"/v1/symbols/spot?cursor=bm90LWEtY3Vyc29y", 400, "cursor"},
		{"/v1/symbols/spot?cursor=%%%", 400, "cursor"},
		{"/v1/symbols/spot?symbols=,,", 400, "symbols"},
		{"/v1/symbols/spot?statsu=TRADING", 400, "statsu"},
		{"/v1/symbols/spot?limit=1&limit=2", 400, "limit"},
		{"/v1/symbols/options", 404, "options"},
		{"/v1/symbols/coinm", 404, "market"},
		{"/v1/symbols/spot/NOSUCHPAIR", 404, "Invalid symbol"},
		{"/v1/symbols/spot/NOSUCHPAIR/rules", 404, "Invalid symbol"},
		{"/v1/symbols/spot/BTCUSDT?x=1", 400, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			resp, body := srv.get(tt.target, nil)
			code, msg := binanceError(t, tt.target, resp, body)
			if resp.StatusCode != tt.status || code >= 0 || !strings.Contains(msg, tt.names) {
				t.Errorf("GET %s = %d %s, want %d with a message naming %q", tt.target, resp.StatusCode, body, tt.status, tt.names)
			}
		})
	}
}

func TestSymbol(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)
	var want json.RawMessage
	for _, s := range recordedSpot(t) {
		if s.Name == "BTCUSDT" {
			want = s.raw
		}
	}
	for _, target := range []string{"/v1/symbols/spot/BTCUSDT", "/v1/symbols/SPOT/btcusdt"} {
		resp, body := srv.get(target, nil)
		if resp.StatusCode != http.StatusOK || string(body) != string(want) {
			t.Errorf("GET %s = %d %.60s…, want 200 and Binance's object byte for byte", target, resp.StatusCode, body)
		}
		if resp.Header.Get("X-Cache") == "" || resp.Header.Get("ETag") == "" {
			t.Errorf("GET %s lacks X-Cache or ETag", target)
		}
	}
}

// Every data answer carries Last-Modified (the fetch time) and Cache-Control
// with the remaining freshness; filtered answers have their own ETag and
// revalidate with 304; HEAD answers like GET without a body.
func TestCachingHeaders(t *testing.T) {
	w := newWorld(t, false)
	w.clock = testutil.NewClock(time.Now()) // stands still: the answers' ages are exact on a busy machine
	srv := w.server(w.cache(), nil)
	targets := []string{spotPath, spotPath + "?symbol=BTCUSDT", "/v1/symbols/spot?quote=BTC", "/v1/symbols/spot/ETHBTC"}
	etags := map[string]string{}
	for _, target := range targets {
		resp, body := srv.get(target, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d %s", target, resp.StatusCode, body)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "max-age=300" {
			t.Errorf("GET %s Cache-Control = %q, want max-age=300 (the TTL, just fetched)", target, cc)
		}
		lm, err := http.ParseTime(resp.Header.Get("Last-Modified"))
		if err != nil || !lm.Equal(w.clock.Now().Truncate(time.Second)) {
			t.Errorf("GET %s Last-Modified = %q, want the fetch time", target, resp.Header.Get("Last-Modified"))
		}
		etag := resp.Header.Get("ETag")
		for other, e := range etags {
			if e == etag {
				t.Errorf("GET %s and %s share the ETag %s", target, other, etag)
			}
		}
		etags[target] = etag
		resp, body = srv.get(target, http.Header{"If-None-Match": {etag}})
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("GET %s If-None-Match its ETag = %d, %d bytes; want 304, none", target, resp.StatusCode, len(body))
		}
		head, hbody := srv.do(http.MethodHead, target, nil)
		if head.StatusCode != http.StatusOK || len(hbody) != 0 || head.Header.Get("ETag") != etag ||
			head.Header.Get("Content-Length") != strconv.Itoa(lenOf(t, srv, target)) {
			t.Errorf("HEAD %s = %d, %d bytes, ETag %s, Content-Length %s; want 200, none, %s, the GET's length",
				target, head.StatusCode, len(hbody), head.Header.Get("ETag"), head.Header.Get("Content-Length"), etag)
		}
	}
	w.clock.Advance(2 * time.Minute)
	resp, _ := srv.get(spotPath, nil)
	if cc := resp.Header.Get("Cache-Control"); cc != "max-age=180" {
		t.Errorf("Cache-Control two minutes later = %q, want max-age=180", cc)
	}
	if resp, _ := srv.do(http.MethodHead, "/healthz", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD /healthz = %d, want 200", resp.StatusCode)
	}
}

func lenOf(t *testing.T, srv *server, target string) int {
	_, body := srv.get(target, nil)
	return len(body)
}

// The USD-M and COIN-M lists page the same way.
func TestListSymbols_Futures(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(exchangeinfo.USDM, exchangeinfo.COINM), nil)
	for market, want := range map[string]int{"usdm": 660, "coinm": 62} {
		p := getPage(t, srv, "/v1/symbols/"+market+"?limit=5000")
		if p.Count != want || len(p.Symbols) != want || p.NextCursor != "" {
			t.Errorf("GET /v1/symbols/%s = count %d, %d symbols, cursor %q; want %d, %d, none", market, p.Count, len(p.Symbols), p.NextCursor, want, want)
		}
	}
	p := getPage(t, srv, "/v1/symbols/coinm?status=DELIVERING")
	if p.Count != 3 {
		t.Errorf("coinm DELIVERING (contractStatus) = %d, want 3 (SOURCES.md)", p.Count)
	}
}

func TestRulesAndNormalize(t *testing.T) {
	w := newWorld(t, false)
	srv := w.server(w.cache(), nil)

	// The rules, against BTCUSDT's filters decoded here with encoding/json.
	var btc struct {
		Filters []map[string]any `json:"filters"`
	}
	for _, s := range recordedSpot(t) {
		if s.Name == "BTCUSDT" {
			json.Unmarshal(s.raw, &btc)
		}
	}
	filter := func(typ, key string) string {
		for _, f := range btc.Filters {
			if f["filterType"] == typ {
				return f[key].(string)
			}
		}
		t.Fatalf("BTCUSDT has no %s", typ)
		return ""
	}
	resp, body := srv.get("/v1/symbols/spot/BTCUSDT/rules", nil)
	var r map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil {
		t.Fatalf("GET rules = %d %s, want 200 JSON", resp.StatusCode, body)
	}
	for key, want := range map[string]string{
		"symbol":       "BTCUSDT",
		"tick_size":    filter("PRICE_FILTER", "tickSize"),
		"min_price":    filter("PRICE_FILTER", "minPrice"),
		"step_size":    filter("LOT_SIZE", "stepSize"),
		"max_qty":      filter("LOT_SIZE", "maxQty"),
		"min_notional": filter("NOTIONAL", "minNotional"),
		"max_notional": filter("NOTIONAL", "maxNotional"),
	} {
		if got, _ := r[key].(string); got != want {
			t.Errorf("rules %s = %q, want %q (a decimal string as Binance sent it)", key, got, want)
		}
	}

	// Normalisation: BUY rounds the price down to the 0.01 tick, SELL up; the
	// quantity always goes down to the 0.00001 step.
	tests := []struct {
		query, price, quantity string
		ok                     bool
	}{
		{"price=27123.456789&quantity=0.123456789&side=BUY", "27123.45", "0.12345", true},
		{"price=27123.451&quantity=0.123456789&side=sell", "27123.46", "0.12345", true},
		{"price=27123.456&quantity=0.00001", "27123.46", "0.00001", false}, // notional 0.27 < 5
		{"price=100&quantity=0.5&side=BUY&type=MARKET", "", "0.5", true},
	}
	for _, tt := range tests {
		target := "/v1/symbols/spot/BTCUSDT/normalize?" + tt.query
		resp, body := srv.get(target, nil)
		var n struct {
			Price, Quantity string
			OK              bool
			Checks          []struct {
				Filter string
				OK     bool
			}
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &n) != nil {
			t.Fatalf("GET %s = %d %s, want 200 JSON", target, resp.StatusCode, body)
		}
		if (tt.price != "" && !sameDecimal(n.Price, tt.price)) || !sameDecimal(n.Quantity, tt.quantity) || n.OK != tt.ok || len(n.Checks) == 0 {
			t.Errorf("GET %s = price %s, quantity %s, ok %v; want %s, %s, %v", target, n.Price, n.Quantity, n.OK, tt.price, tt.quantity, tt.ok)
		}
	}
	for _, tt := range []struct{ query, names string }{
		{"price=abc&quantity=1", "price"},
		{"price=1", "quantity"},
		{"price=1&quantity=-1", "quantity"},
		{"price=1&quantity=1&side=HOLD", "side"},
		{"price=1&quantity=1&leverage=5", "leverage"},
	} {
		target := "/v1/symbols/spot/BTCUSDT/normalize?" + tt.query
		resp, body := srv.get(target, nil)
		if _, msg := binanceError(t, target, resp, body); resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, tt.names) {
			t.Errorf("GET %s = %d %s, want 400 naming %q", target, resp.StatusCode, body, tt.names)
		}
	}
}

// sameDecimal compares two decimal strings by value ("1.50" == "1.5").
func sameDecimal(a, b string) bool {
	x, ok1 := new(big.Rat).SetString(a)
	y, ok2 := new(big.Rat).SetString(b)
	return ok1 && ok2 && x.Cmp(y) == 0
}

// FuzzConvenienceAPI: no query string or symbol name makes the /v1 routes
// answer a 5xx or panic; errors are Binance-shaped.
func FuzzConvenienceAPI(f *testing.F) {
	h := warmHandler(f)
	f.Fuzz(func(t *testing.T, route uint8, symbol, query string) {
		paths := []string{"/v1/symbols/spot", "/v1/symbols/spot/%s", "/v1/symbols/spot/%s/rules", "/v1/symbols/spot/%s/normalize"}
		path := paths[int(route)%len(paths)]
		if strings.Contains(path, "%s") {
			path = strings.Replace(path, "%s", url.PathEscape(symbol), 1)
		}
		u, err := url.Parse(path)
		if err != nil {
			return
		}
		u.RawQuery = query
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL, req.RequestURI = u, u.RequestURI()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("GET %s?%s = %d %s, want no 5xx", path, query, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == nil || *e.Code >= 0 {
				t.Fatalf("GET %s?%s = %d %s, want a Binance-shaped error", path, query, rec.Code, rec.Body)
			}
		} else if rec.Code == http.StatusOK && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("GET %s?%s = 200 with invalid JSON", path, query)
		}
	})
}
