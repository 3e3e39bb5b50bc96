package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/l2"
)

func TestStatusPage(t *testing.T) {
	w, c, _ := changedWorld(t) // USD-M, with four changes in its log
	const token = "s3cret-admin-token"
	h, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), Now: w.clock.Now, AdminToken: token}))
	if err != nil {
		t.Fatal(err)
	}
	get := func(target string) *httptest.ResponseRecorder {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		return rec
	}

	rec := get("/")
	body := rec.Body.String()
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("GET / = %d %v", rec.Code, rec.Header())
	}
	for _, want := range []string{
		`<tr id="market-usdm">`, `<span class="fresh">fresh</span>`, ">660<", // the market, its state, its symbols
		`upstream fetches`, "2 ok, 0 failed",
		`<span class="kind">status</span> BTCUSDT status <code>&#34;TRADING&#34;</code> → <code>&#34;BREAK&amp;&lt;x&gt;&#34;</code>`, // escaped
		`data-since="`, "new EventSource(",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %q", want)
		}
	}
	if strings.Contains(body, token) {
		t.Errorf("GET / shows the admin token")
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}

	// A symbol, its rules, and an order normalised.
	body = get("/?market=usdm&symbol=ethusdt&side=BUY&type=LIMIT&price=2000.1234&quantity=0.12345").Body.String()
	for _, want := range []string{`<td id="tick-size">0.001</td>`, `<td id="norm-price">2000.123</td>`, `<td id="norm-quantity">0.123</td>`, "passes every filter"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / for ETHUSDT lacks %q", want)
		}
	}
	// What cannot be looked up is said, escaped; bad input is a 400.
	if body := get("/?market=usdm&symbol=%3Cscript%3E").Body.String(); !strings.Contains(body, `No symbol &#34;&lt;SCRIPT&gt;&#34; in usdm.`) || strings.Contains(body, "<SCRIPT>") {
		t.Errorf("an unknown symbol: the page does not say so, escaped")
	}
	if body := get("/?market=coinm&symbol=BTCUSD_PERP").Body.String(); !strings.Contains(body, `No market &#34;coinm&#34; here.`) {
		t.Errorf("a market not served: the page does not say so")
	}
	if body := get("/?market=usdm&symbol=ETHUSDT&quantity=abc").Body.String(); !strings.Contains(body, `id="order-error"`) {
		t.Errorf("a bad quantity: the page does not say so")
	}
	if rec := get("/?foo=1"); rec.Code != http.StatusBadRequest {
		t.Errorf("GET /?foo=1 = %d, want 400", rec.Code)
	}

	// Off: a 404 like any unknown path.
	off, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), NoUI: true}))
	if err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	off.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET / with NoUI = %d, want 404", rec.Code)
	}
}

// TestStatusPage_LockHolder: with Redis, the page says who holds each
// market's refresh lock.
func TestStatusPage_LockHolder(t *testing.T) {
	w := newWorld(t, true)
	c := w.cache(exchangeinfo.USDM)
	if _, err := c.Refresh(context.Background(), exchangeinfo.USDM); err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard()}))
	if err != nil {
		t.Fatal(err)
	}
	page := func() string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		return rec.Body.String()
	}
	if body := page(); !strings.Contains(body, "<strong>free</strong>") {
		t.Errorf("the page does not say the lock is free")
	}
	other := l2.New(l2.Config{Client: w.redis.Client(t), Logger: discard(), Holder: "pod-b"})
	if tok, _, err := other.Lock(context.Background(), "usdm", time.Minute); err != nil || tok == "" {
		t.Fatalf("Lock = %q, %v", tok, err)
	}
	if body := page(); !strings.Contains(body, "<strong>held by pod-b, 1m0s more</strong>") && !strings.Contains(body, "<strong>held by pod-b, 59s more</strong>") {
		t.Errorf("the page does not name the lock's holder")
	}
}
