package compat_test

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adshao/go-binance/v2"
	"github.com/adshao/go-binance/v2/common"

	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/l2/l2test"
)

// TestGoBinance_SharedBan: two sidecar processes on one Redis in front of
// the same Binance, as two pods behind one egress IP. Binance answers a
// request forwarded by sidecar A 418 (an IP ban) with Retry-After. Within
// milliseconds sidecar B blocks the host too: it answers go-binance's
// forwarded GET and signed order 418 itself, with a Retry-After of at least
// the 2-minute minimum ban, its cache refresh (admin, without force) asks
// Binance nothing, and the spot host receives no request at all. A forced
// admin refresh on B ends the ban for A as well.
func TestGoBinance_SharedBan(t *testing.T) {
	t.Parallel()
	const sentRetryAfter = 5 // seconds; the sidecars make it fetch.DefaultBanMin
	const ticker = "/api/v3/ticker/price"
	rdb := l2test.Start(t)
	key, sec := randomKey(), randomKey()
	f := newFake(t)
	f.SetSecret(sec)
	f.Set(ticker, fetchtest.Response{Status: http.StatusTeapot, Header: http.Header{"Retry-After": {strconv.Itoa(sentRetryAfter)}}, Body: []byte(body418)})
	f.Set("/api/v3/order", fetchtest.Response{Body: readTestdata(t, "api_v3_order.json"), Signed: true})
	a := startSidecar(t, f, "/readyz", "REDIS_URL="+rdb.URL())
	b := startSidecar(t, f, "/readyz", "REDIS_URL="+rdb.URL())
	recA, recB := newRecorder(t), newRecorder(t)
	ca, cb := spotClient(a.URL, key, sec, recA), spotClient(b.URL, key, sec, recB)
	price := func(c *binance.Client) error {
		_, err := c.NewListPricesService().Symbol("BTCUSDT").Do(ctx(t))
		return err
	}
	order := func(c *binance.Client) error {
		_, err := c.NewCreateOrderService().Symbol("BTCUSDT").Side(binance.SideTypeBuy).Type(binance.OrderTypeLimit).
			TimeInForce(binance.TimeInForceTypeGTC).Quantity("0.00100000").Price("27123.45000000").Do(ctx(t))
		return err
	}
	spotHost := strings.TrimPrefix(f.spot.URL, "http://")

	// Binance bans A's request.
	n := len(f.Received())
	err := price(ca)
	bannedAt := time.Now()
	var apiErr *common.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != -1003 {
		t.Fatalf("ticker/price through A, answered 418 by Binance: client error %v, want an APIError -1003", err)
	}
	if e := recA.last(t); e.Status != http.StatusTeapot || e.RetryAfter != strconv.Itoa(sentRetryAfter) {
		t.Fatalf("ticker/price through A = %d, Retry-After %q; want Binance's 418, %d", e.Status, e.RetryAfter, sentRetryAfter)
	}
	if got := len(f.since(n, f.spot)); got != 1 {
		t.Fatalf("the spot host received %d requests, want 1", got)
	}
	n = len(f.Received())

	// B learns of the ban through Redis. Asking B through a forwarded
	// request would send that request to Binance if B had not heard yet,
	// so poll B's log for its own word instead.
	err = eventually(5*time.Second, func() error {
		if !strings.Contains(b.log.String(), "binance host blocked by another process") || !strings.Contains(b.log.String(), spotHost) {
			return fmt.Errorf("sidecar B has not logged that %s is blocked by another process", spotHost)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v within 5s of the 418", err)
	}
	t.Logf("sidecar B blocked %s %v after A's 418", spotHost, time.Since(bannedAt).Round(time.Millisecond))

	// B answers go-binance's requests for the spot host itself.
	minLeft := int((fetch.DefaultBanMin - time.Since(bannedAt)).Seconds()) - 2 // slack for rounding and clocks
	for _, tt := range []struct {
		name string
		do   func() error
	}{
		{"GET /api/v3/ticker/price", func() error { return price(cb) }},
		{"POST /api/v3/order (signed)", func() error { return order(cb) }},
	} {
		err := tt.do()
		if !errors.As(err, &apiErr) || apiErr.Code != -1003 {
			t.Errorf("%s through B during A's ban: client error %v, want an APIError -1003", tt.name, err)
		}
		e := recB.last(t)
		ra, raErr := strconv.Atoi(e.RetryAfter)
		if e.Status != http.StatusTeapot || raErr != nil || ra < minLeft {
			t.Errorf("%s through B during A's ban = %d, Retry-After %q; want 418, at least %d s (the 2-minute minimum ban, less the time since)", tt.name, e.Status, e.RetryAfter, minLeft)
		} else {
			t.Logf("%s through B during A's ban = %d, Retry-After %d", tt.name, e.Status, ra)
		}
	}
	// B's cache does not ask the spot host either.
	resp, body := b.admin(t, http.MethodPost, "/admin/refresh/spot")
	adminAt := time.Now() // the refresh took B's admin slot of spot before this
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("POST /admin/refresh/spot on B during A's ban = %d, Retry-After %q, %s; want 503 with a Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	} else {
		t.Logf("POST /admin/refresh/spot on B during A's ban = %d, Retry-After %s, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// exchangeInfo comes from the cache meanwhile: B took A's snapshot from
	// Redis at its start, so HIT-L2 or HIT-L1.
	if _, err := cb.NewExchangeInfoService().Do(ctx(t)); err != nil {
		t.Errorf("exchangeInfo through B during A's ban: %v, want it from the cache", err)
	} else if e := recB.last(t); e.XCache != "HIT-L1" && e.XCache != "HIT-L2" {
		t.Errorf("exchangeInfo through B during A's ban: X-Cache %q, want HIT-L1 or HIT-L2", e.XCache)
	}
	if got := f.since(n, f.spot); len(got) != 0 {
		t.Errorf("the spot host received %d requests after A's 418, want 0: %s", len(got), strings.Join(describe(got), ", "))
	}

	// A forced refresh on B, once B's admin slot of spot is free again (one
	// every 10 s), ends the ban everywhere: A's forwarded GET reaches
	// Binance again. A is still blocked right before it.
	f.Set(ticker, fetchtest.Response{Body: []byte(`{"symbol":"BTCUSDT","price":"27123.45000000"}`)})
	time.Sleep(time.Until(adminAt.Add(10*time.Second + 100*time.Millisecond)))
	if err := price(ca); recA.last(t).Status != http.StatusTeapot {
		t.Errorf("ticker/price through A before the forced refresh: %v (status %d), want A still blocked (418)", err, recA.last(t).Status)
	}
	if got := f.since(n, f.spot); len(got) != 0 {
		t.Errorf("the spot host received %d requests during the ban, want 0: %s", len(got), strings.Join(describe(got), ", "))
	}
	resp, body = b.admin(t, http.MethodPost, "/admin/refresh/spot?force=true")
	liftedAt := time.Now()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /admin/refresh/spot?force=true on B = %d %s, want 200", resp.StatusCode, body)
	}
	n = len(f.Received())
	err = eventually(5*time.Second, func() error { return price(ca) })
	if err != nil {
		t.Fatalf("ticker/price through A within 5s of the forced refresh on B: %v (status %d), want it forwarded", err, recA.last(t).Status)
	}
	t.Logf("A forwards again %v after the forced refresh on B", time.Since(liftedAt).Round(time.Millisecond))
	if err := order(cb); err != nil {
		t.Errorf("order through B after the forced refresh: %v, want it forwarded", err)
	}
	if got := describe(f.since(n, f.spot)); len(f.since(n, f.spot)) != 2 {
		t.Errorf("the spot host received %d requests after the forced refresh (%s), want 2: A's GET, B's order", len(f.since(n, f.spot)), strings.Join(got, ", "))
	}
}
