package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/httpapi"
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
	_ = exchangeinfo.USDM
}
