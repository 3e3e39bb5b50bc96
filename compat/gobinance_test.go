package compat_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adshao/go-binance/v2"
	"github.com/adshao/go-binance/v2/common"
	"github.com/adshao/go-binance/v2/delivery"
	"github.com/adshao/go-binance/v2/futures"
	"github.com/google/go-cmp/cmp"

	"github.com/symcache/symcache/fetch/fetchtest"
)

// spotClient returns a go-binance spot client whose one base URL is base,
// its requests recorded by rec.
func spotClient(base, key, secret string, rec *recorder) *binance.Client {
	c := binance.NewClient(key, secret)
	c.BaseURL, c.HTTPClient = base, rec.client()
	return c
}

func futuresClient(base, key, secret string, rec *recorder) *futures.Client {
	c := futures.NewClient(key, secret)
	c.BaseURL, c.HTTPClient = base, rec.client()
	return c
}

func deliveryClient(base, key, secret string, rec *recorder) *delivery.Client {
	c := delivery.NewClient(key, secret)
	c.BaseURL, c.HTTPClient = base, rec.client()
	return c
}

// TestGoBinance_ExchangeInfo: each market's exchangeInfo, decoded by
// go-binance, is the same through the sidecar (from its cache: the fake is
// not asked) as straight from the fake.
func TestGoBinance_ExchangeInfo(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	sc := startSidecar(t, f, "/readyz")
	tests := []struct {
		name, path string
		get        func(base string, rec *recorder) (any, error)
	}{
		{"spot", fetchtest.SpotPath, func(base string, rec *recorder) (any, error) {
			return spotClient(base, "", "", rec).NewExchangeInfoService().Do(ctx(t))
		}},
		{"futures", fetchtest.USDMPath, func(base string, rec *recorder) (any, error) {
			return futuresClient(base, "", "", rec).NewExchangeInfoService().Do(ctx(t))
		}},
		{"delivery", fetchtest.COINMPath, func(base string, rec *recorder) (any, error) {
			return deliveryClient(base, "", "", rec).NewExchangeInfoService().Do(ctx(t))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t)
			before := f.Requests(tt.path)
			got, err := tt.get(sc.URL, rec)
			if err != nil {
				t.Fatalf("through the sidecar: %v", err)
			}
			if n := f.Requests(tt.path) - before; n != 0 {
				t.Errorf("the fake received %d requests for %s while the client asked the sidecar, want 0 (served from the cache)", n, tt.path)
			}
			if e := rec.last(t); e.Status != http.StatusOK || e.XCache != "HIT-L1" {
				t.Errorf("GET %s through the sidecar = %d, X-Cache %q; want 200, HIT-L1", tt.path, e.Status, e.XCache)
			}
			want, err := tt.get(f.spot.URL, newRecorder(t))
			if err != nil {
				t.Fatalf("straight from the fake: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("exchangeInfo through the sidecar differs from the fake's (-fake +sidecar):\n%s", diff)
			}
		})
	}
}

// TestGoBinance_SignedRequests: a signed POST (an order, its parameters in
// the form body) and a signed GET (parameters in the query) reach Binance
// through the sidecar once each, with the raw query and body the client
// sent, X-MBX-APIKEY, and a signature the fake finds valid; the client
// decodes the answer.
func TestGoBinance_SignedRequests(t *testing.T) {
	t.Parallel()
	key, sec := randomKey(), randomKey()
	f := newFake(t)
	f.SetSecret(sec)
	orderBody, openBody := readTestdata(t, "api_v3_order.json"), readTestdata(t, "api_v3_openOrders.json")
	f.Set("/api/v3/order", fetchtest.Response{Body: orderBody, Signed: true})
	f.Set("/api/v3/openOrders", fetchtest.Response{Body: openBody, Signed: true})
	sc := startSidecar(t, f, "/readyz")
	rec := newRecorder(t)
	c := spotClient(sc.URL, key, sec, rec)

	// check finds the one request for path the fake received after the
	// first n, and compares it with what the client sent.
	check := func(t *testing.T, n int, method, path string) {
		t.Helper()
		sent := rec.last(t)
		var got []fetchtest.Request
		for _, r := range f.Received()[n:] {
			if r.Path == path {
				got = append(got, r)
			}
		}
		if len(got) != 1 {
			t.Fatalf("the fake received %d requests for %s, want 1", len(got), path)
		}
		r := got[0]
		if r.Method != method || r.RawQuery != sent.RawQuery || string(r.Body) != sent.Body {
			t.Errorf("the fake received %s ?%s body %q; the client sent %s ?%s body %q", r.Method, r.RawQuery, r.Body, sent.Method, sent.RawQuery, sent.Body)
		}
		if got := r.Header.Get("X-Mbx-Apikey"); got != key || sent.APIKey != key {
			t.Errorf("X-MBX-APIKEY at the fake = %q (sent %q), want %q", got, sent.APIKey, key)
		}
		if !strings.Contains(r.RawQuery, "signature=") {
			t.Errorf("query %q has no signature", r.RawQuery)
		}
		// The fake checked the signature (a bad one is a 400, -1022); check
		// it here too, over the bytes the fake received.
		if want := fetchtest.Sign(sec, unsigned(r.RawQuery), string(r.Body)); r.RawQuery != want {
			t.Errorf("received query %q, want the signature of its parameters: %q", r.RawQuery, want)
		}
		if sent.Status != http.StatusOK {
			t.Errorf("%s %s answered %d, want 200", method, path, sent.Status)
		}
	}

	t.Run("create order", func(t *testing.T) {
		n := len(f.Received())
		got, err := c.NewCreateOrderService().Symbol("BTCUSDT").Side(binance.SideTypeBuy).Type(binance.OrderTypeLimit).
			TimeInForce(binance.TimeInForceTypeGTC).Quantity("0.00100000").Price("27123.45000000").Do(ctx(t))
		if err != nil {
			t.Fatalf("CreateOrder through the sidecar: %v", err)
		}
		check(t, n, http.MethodPost, "/api/v3/order")
		if b := rec.last(t).Body; !strings.Contains(b, "symbol=BTCUSDT") || !strings.Contains(b, "price=27123.45000000") || !strings.Contains(b, "timeInForce=GTC") {
			t.Errorf("order body %q lacks the order's parameters", b)
		}
		var want binance.CreateOrderResponse
		if err := json.Unmarshal(orderBody, &want); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&want, got); diff != "" {
			t.Errorf("CreateOrder result differs from the fake's answer (-want +got):\n%s", diff)
		}
	})
	t.Run("list open orders", func(t *testing.T) {
		n := len(f.Received())
		got, err := c.NewListOpenOrdersService().Symbol("BTCUSDT").Do(ctx(t))
		if err != nil {
			t.Fatalf("ListOpenOrders through the sidecar: %v", err)
		}
		check(t, n, http.MethodGet, "/api/v3/openOrders")
		var want []*binance.Order
		if err := json.Unmarshal(openBody, &want); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListOpenOrders result differs from the fake's answer (-want +got):\n%s", diff)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		// The fake's check is live: a client with another secret gets
		// Binance's -1022 from the fake, through the sidecar.
		n := len(f.Received())
		_, err := spotClient(sc.URL, key, sec+"x", newRecorder(t)).NewListOpenOrdersService().Symbol("BTCUSDT").Do(ctx(t))
		var apiErr *common.APIError
		if !errors.As(err, &apiErr) || apiErr.Code != -1022 {
			t.Errorf("ListOpenOrders with a wrong secret = %v, want APIError -1022", err)
		}
		if got := len(f.Received()) - n; got != 1 {
			t.Errorf("the fake received %d requests, want 1", got)
		}
	})
}

// Binance's bodies for a 500, a 429 and a 418.
const (
	body500 = `{"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}`
	body429 = `{"code":-1003,"msg":"Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."}`
	body418 = `{"code":-1003,"msg":"Way too much request weight used; IP banned until 1694189161976. Please use WebSocket Streams for live updates to avoid bans."}`
)

// TestGoBinance_RateLimit: after Binance answers a forwarded request 429 (or
// 418) with Retry-After, nothing reaches that host: the client's forwarded
// GETs and its signed order are answered by the sidecar with the same
// status and the Retry-After left, and the cache's own refresh (an admin
// refresh) with 503 and a Retry-After. exchangeInfo is still served from
// the cache, and the other hosts are not blocked. Once the time has passed
// (after a 418, once a forced admin refresh has ended the 2-minute ban),
// requests go through again.
func TestGoBinance_RateLimit(t *testing.T) {
	t.Parallel()
	t.Run("429", func(t *testing.T) {
		t.Parallel()
		testRateLimit(t, http.StatusTooManyRequests, body429)
	})
	t.Run("418", func(t *testing.T) {
		t.Parallel()
		testRateLimit(t, http.StatusTeapot, body418)
	})
}

func testRateLimit(t *testing.T, status int, body string) {
	const sentRetryAfter = 5 // seconds: room for the checks below on a busy machine
	key, sec := randomKey(), randomKey()
	f := newFake(t)
	f.SetSecret(sec)
	f.Set("/api/v3/ticker/price", fetchtest.Response{Status: status, Header: http.Header{"Retry-After": {strconv.Itoa(sentRetryAfter)}}, Body: []byte(body)})
	f.Set("/api/v3/order", fetchtest.Response{Body: readTestdata(t, "api_v3_order.json"), Signed: true})
	f.Set("/sapi/v1/capital/config/getall", fetchtest.Response{Body: readTestdata(t, "sapi_v1_capital_config_getall.json"), Signed: true})
	f.Set("/fapi/v2/ticker/price", fetchtest.Response{Body: []byte(`{"symbol":"BTCUSDT","price":"26010.10","time":1694185562123}`)})
	sc := startSidecar(t, f, "/readyz")
	rec := newRecorder(t)
	c := spotClient(sc.URL, key, sec, rec)
	order := func() error {
		_, err := c.NewCreateOrderService().Symbol("BTCUSDT").Side(binance.SideTypeBuy).Type(binance.OrderTypeLimit).
			TimeInForce(binance.TimeInForceTypeGTC).Quantity("0.00100000").Price("27123.45000000").Do(ctx(t))
		return err
	}
	ticker := func() error {
		_, err := c.NewListPricesService().Symbol("BTCUSDT").Do(ctx(t))
		return err
	}
	coins := func() error {
		_, err := c.NewGetAllCoinsInfoService().Do(ctx(t))
		return err
	}

	// Binance's own answer, forwarded.
	n := len(f.Received())
	err := ticker()
	blockedAt := time.Now()
	var apiErr *common.APIError
	if !common.IsAPIError(err) || !errors.As(err, &apiErr) || apiErr.Code != -1003 {
		t.Fatalf("ticker/price answered %d by Binance: client error %v, want an APIError -1003", status, err)
	}
	if e := rec.last(t); e.Status != status || e.RetryAfter != strconv.Itoa(sentRetryAfter) {
		t.Fatalf("ticker/price = %d, Retry-After %q; want Binance's %d, %d", e.Status, e.RetryAfter, status, sentRetryAfter)
	}
	if got := len(f.since(n, f.spot)); got != 1 {
		t.Fatalf("the fake received %d requests, want 1", got)
	}

	// The block. Each request is answered by the sidecar with status and a
	// Retry-After; the spot host receives nothing.
	n = len(f.Received())
	var longest int // the longest Retry-After the sidecar gave
	for _, tt := range []struct {
		name string
		do   func() error
	}{
		{"GET /api/v3/ticker/price", ticker},
		{"GET /sapi/v1/capital/config/getall (signed)", coins},
		{"POST /api/v3/order (signed)", order},
	} {
		err := tt.do()
		if !errors.As(err, &apiErr) || apiErr.Code != -1003 {
			t.Errorf("%s during the block: client error %v, want an APIError -1003", tt.name, err)
		}
		e := rec.last(t)
		ra, raErr := strconv.Atoi(e.RetryAfter)
		switch {
		case e.Status != status:
			t.Errorf("%s during the block = %d, want %d", tt.name, e.Status, status)
		case raErr != nil || ra < 1:
			t.Errorf("%s during the block: Retry-After %q, want a positive number of seconds", tt.name, e.RetryAfter)
		case status == http.StatusTooManyRequests && ra > sentRetryAfter:
			t.Errorf("%s during the block: Retry-After %d, want at most the %d Binance sent", tt.name, ra, sentRetryAfter)
		case status == http.StatusTeapot && ra < sentRetryAfter:
			t.Errorf("%s during the block: Retry-After %d, want at least the %d Binance sent", tt.name, ra, sentRetryAfter)
		}
		longest = max(longest, ra)
	}
	t.Logf("%d: the sidecar answers Retry-After up to %d s (Binance sent %d)", status, longest, sentRetryAfter)

	// The cache's own refresh does not ask a blocked host either.
	resp, b := sc.admin(t, http.MethodPost, "/admin/refresh/spot")
	adminAt := time.Now() // the refresh took the market's admin slot before this
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("POST /admin/refresh/spot during the block = %d, Retry-After %q, %s; want 503 with a Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	} else {
		t.Logf("POST /admin/refresh/spot during the block = %d, Retry-After %s, %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	// exchangeInfo comes from the cache meanwhile.
	if _, err := c.NewExchangeInfoService().Do(ctx(t)); err != nil {
		t.Errorf("exchangeInfo during the block: %v, want it from the cache", err)
	} else if e := rec.last(t); e.XCache != "HIT-L1" {
		t.Errorf("exchangeInfo during the block: X-Cache %q, want HIT-L1", e.XCache)
	}
	if got := f.since(n, f.spot); len(got) != 0 {
		t.Errorf("the spot host received %d requests during the block, want 0: first %s %s", len(got), got[0].Method, got[0].Path)
	}
	// Another host is not blocked.
	if _, err := futuresClient(sc.URL, key, sec, rec).NewListPricesService().Symbol("BTCUSDT").Do(ctx(t)); err != nil {
		t.Errorf("USD-M ticker/price during the spot block: %v, want it forwarded", err)
	}
	if got := len(f.since(n, f.usdm)); got != 1 {
		t.Errorf("the USD-M host received %d requests during the spot block, want 1", got)
	}

	f.Set("/api/v3/ticker/price", fetchtest.Response{Body: []byte(`{"symbol":"BTCUSDT","price":"27123.45000000"}`)})
	if status == http.StatusTeapot {
		// The sidecar bans a host for at least 2 minutes after a 418
		// (fetch.DefaultBanMin), whatever Retry-After says, and no setting
		// shortens that. Instead of waiting, end the block the documented
		// way: a forced admin refresh, once the admin slot of the refresh
		// above is free again (one every 10 s).
		time.Sleep(time.Until(adminAt.Add(10*time.Second + 100*time.Millisecond)))
		resp, b := sc.admin(t, http.MethodPost, "/admin/refresh/spot?force=true")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /admin/refresh/spot?force=true = %d %s, want 200", resp.StatusCode, b)
		}
	} else {
		time.Sleep(time.Until(blockedAt.Add(sentRetryAfter*time.Second + 200*time.Millisecond)))
	}

	// After the block: requests go through again.
	n = len(f.Received())
	if err := ticker(); err != nil {
		t.Errorf("ticker/price after the block: %v, want it forwarded", err)
	}
	if err := order(); err != nil {
		t.Errorf("order after the block: %v, want it forwarded", err)
	}
	if got := len(f.since(n, f.spot)); got != 2 {
		t.Errorf("the spot host received %d requests after the block, want 2", got)
	}
}

// TestGoBinance_Unavailable: when the sidecar cannot serve exchangeInfo at
// all (Binance answers 500 and nothing was ever cached), go-binance returns
// the sidecar's 503 as *common.APIError with code -1007 (Binance's "timeout
// waiting for the backend", a temporary failure) and a message saying to
// try again later. go-binance drops the status and Retry-After: the
// recorder shows what the sidecar sent.
func TestGoBinance_Unavailable(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.Set(fetchtest.SpotPath, fetchtest.Response{Status: http.StatusInternalServerError, Body: []byte(body500)})
	sc := startSidecar(t, f, "/healthz")
	rec := newRecorder(t)
	info, err := spotClient(sc.URL, "", "", rec).NewExchangeInfoService().Do(ctx(t))
	if err == nil {
		t.Fatalf("exchangeInfo = %d symbols, want an error", len(info.Symbols))
	}
	var apiErr *common.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != -1007 {
		t.Fatalf("exchangeInfo with nothing to serve: go-binance returned %T %v, want *common.APIError with code -1007", err, err)
	}
	if !strings.Contains(strings.ToLower(apiErr.Message), "try again later") {
		t.Errorf("APIError message %q, want it to say to try again later", apiErr.Message)
	}
	e := rec.last(t)
	if ra, err := strconv.Atoi(e.RetryAfter); e.Status != http.StatusServiceUnavailable || err != nil || ra < 1 {
		t.Errorf("the sidecar answered %d, Retry-After %q; want 503 with a positive Retry-After", e.Status, e.RetryAfter)
	}
	if n := f.Requests(fetchtest.SpotPath); n == 0 {
		t.Errorf("the fake received no spot exchangeInfo request: the sidecar did not try Binance")
	}
	t.Logf("the sidecar answered %d, Retry-After %s; go-binance returned APIError %d %q", e.Status, e.RetryAfter, apiErr.Code, apiErr.Message)
}

// TestGoBinance_UsedWeight: exchangeInfo answered from the cache carries
// the X-MBX-USED-WEIGHT-1M Binance reported on the spot host's latest
// answer, here a forwarded one, as X-MBX-USED-WEIGHT and -1M; go-binance
// records both in Client.UsedWeight, as it would straight from Binance.
func TestGoBinance_UsedWeight(t *testing.T) {
	t.Parallel()
	const weight = 77
	f := newFake(t)
	f.Set("/api/v3/ticker/price", fetchtest.Response{
		Header: http.Header{"X-Mbx-Used-Weight-1m": {strconv.Itoa(weight)}},
		Body:   []byte(`{"symbol":"BTCUSDT","price":"27123.45000000"}`),
	})
	sc := startSidecar(t, f, "/readyz")
	exchangeInfo := func(t *testing.T) binance.UsedWeight {
		t.Helper()
		rec := newRecorder(t)
		c := spotClient(sc.URL, "", "", rec) // a new client: nothing recorded yet
		if _, err := c.NewExchangeInfoService().Do(ctx(t)); err != nil {
			t.Fatalf("exchangeInfo: %v", err)
		}
		if e := rec.last(t); e.XCache != "HIT-L1" {
			t.Errorf("exchangeInfo: X-Cache %q, want HIT-L1", e.XCache)
		}
		return c.UsedWeight
	}

	// The recorded exchangeInfo answers carry no weight: none is known yet.
	if got := exchangeInfo(t); got != (binance.UsedWeight{}) {
		t.Errorf("UsedWeight after exchangeInfo before any weight was reported = %+v, want zero", got)
	}
	waitMinuteRoom(t, 3*time.Second) // the weight is sent only within the UTC minute it was reported in
	if _, err := spotClient(sc.URL, "", "", newRecorder(t)).NewListPricesService().Symbol("BTCUSDT").Do(ctx(t)); err != nil {
		t.Fatalf("ticker/price: %v", err)
	}
	if got, want := exchangeInfo(t), (binance.UsedWeight{Used: weight, Used1M: weight}); got != want {
		t.Errorf("UsedWeight after exchangeInfo from the cache = %+v, want %+v", got, want)
	}
	if n := f.Requests(fetchtest.SpotPath); n != 1 {
		t.Errorf("the fake received %d exchangeInfo requests, want 1 (the sidecar's start)", n)
	}
}
