package compat_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
)

// connectorVersion is the @binance/connector that compat/node/package.json
// pins.
const connectorVersion = "3.6.1"

// connectorCall is what node/connector.mjs prints for one call: the
// response, or Error when the call rejected.
type connectorCall struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"` // names in lower case
	Sent    string            `json:"sent"`    // the path and query sent
	Data    json.RawMessage   `json:"data"`
	Error   *connectorError   `json:"error"`
}

type connectorError struct {
	Class                string            `json:"class"`
	Name                 string            `json:"name"`
	Code                 string            `json:"code"`
	IsAxiosError         bool              `json:"is_axios_error"`
	InstanceofAxiosError bool              `json:"instanceof_axios_error"`
	Message              string            `json:"message"`
	Status               int               `json:"status"`
	Headers              map[string]string `json:"headers"`
	Sent                 string            `json:"sent"`
	Data                 json.RawMessage   `json:"data"`
}

// runConnector runs node/connector.mjs: new Spot(key, sec, {baseURL: base})
// makes calls in turn, each a method name and its arguments, and the
// results come back in the same order.
func runConnector(t *testing.T, node, base, key, sec string, calls ...[]any) []connectorCall {
	t.Helper()
	arg, err := json.Marshal(calls)
	if err != nil {
		t.Fatal(err)
	}
	out := runNode(t, node, []string{"COMPAT_BASE_URL=" + base, "COMPAT_API_KEY=" + key, "COMPAT_API_SECRET=" + sec}, "connector.mjs", string(arg))
	var res []connectorCall
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(calls) {
		t.Fatalf("node connector.mjs %s with %s printed %.300q (%v), want %d results", arg, base, out, err, len(calls))
	}
	return res
}

// resolved fails t unless call resolved with a 200.
func (c connectorCall) resolved(t *testing.T, what string) {
	t.Helper()
	if c.Error != nil {
		t.Fatalf("%s rejected: %s %s: %s (status %d, body %s)", what, c.Error.Class, c.Error.Code, c.Error.Message, c.Error.Status, c.Error.Data)
	}
	if c.Status != http.StatusOK {
		t.Fatalf("%s resolved with status %d, want 200", what, c.Status)
	}
}

// sameJSON reports how JSON a and b differ once decoded ("" if they do
// not): what a JavaScript deep-equal of the parsed values would say.
func sameJSON(t *testing.T, a, b []byte) string {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("decode %.100q: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("decode %.100q: %v", b, err)
	}
	return cmp.Diff(va, vb)
}

// TestConnector_ExchangeInfo: @binance/connector's Spot with the sidecar as
// its baseURL gets exchangeInfo from the sidecar's cache (the gzip
// representation, which axios inflates), and its data deep-equals what the
// same client gets straight from the fake.
func TestConnector_ExchangeInfo(t *testing.T) {
	t.Parallel()
	node := requireNode(t, "@binance/connector", connectorVersion)
	f := newFake(t)
	sc := startSidecar(t, f, "/readyz")

	before := f.Requests(fetchtest.SpotPath)
	via := runConnector(t, node, sc.URL, "", "", []any{"exchangeInfo"})[0]
	via.resolved(t, "exchangeInfo() through the sidecar")
	if n := f.Requests(fetchtest.SpotPath) - before; n != 0 {
		t.Errorf("the fake received %d exchangeInfo requests while the client asked the sidecar, want 0 (served from the cache)", n)
	}
	if got := via.Headers["x-cache"]; got != "HIT-L1" {
		t.Errorf("exchangeInfo() through the sidecar: x-cache %q, want HIT-L1", got)
	}
	direct := runConnector(t, node, f.spot.URL, "", "", []any{"exchangeInfo"})[0]
	direct.resolved(t, "exchangeInfo() straight from the fake")
	if diff := sameJSON(t, direct.Data, via.Data); diff != "" {
		t.Errorf("exchangeInfo() data through the sidecar differs from the fake's (-fake +sidecar):\n%s", diff)
	}
	recorded := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	if diff := sameJSON(t, direct.Data, recorded); diff != "" {
		t.Errorf("exchangeInfo() data straight from the fake differs from the recorded answer:\n%s", diff)
	}
	// axios asks for gzip and drops Content-Encoding once it has inflated
	// the body; Content-Length stays, and tells which representation came.
	if n, err := strconv.Atoi(via.Headers["content-length"]); err != nil || n >= len(recorded) {
		t.Errorf("exchangeInfo() through the sidecar: content-length %q, want the gzip representation's, less than the body's %d bytes", via.Headers["content-length"], len(recorded))
	}
	t.Logf("exchangeInfo(): deep-equal through the sidecar (%s bytes sent, gzip) and from the fake", via.Headers["content-length"])
}

// TestConnector_SignedRequests: a signed newOrder (its parameters in the
// query of a POST) and a signed openOrders reach the fake once each, with
// the path and query the client sent, X-MBX-APIKEY, and a signature the
// fake finds valid; the client gets the fake's answers. A client with a
// wrong secret gets the fake's -1022.
func TestConnector_SignedRequests(t *testing.T) {
	t.Parallel()
	node := requireNode(t, "@binance/connector", connectorVersion)
	key, sec := randomKey(), randomKey()
	f := newFake(t)
	f.SetSecret(sec)
	orderBody, openBody := readTestdata(t, "api_v3_order.json"), readTestdata(t, "api_v3_openOrders.json")
	f.Set("/api/v3/order", fetchtest.Response{Body: orderBody, Signed: true})
	f.Set("/api/v3/openOrders", fetchtest.Response{Body: openBody, Signed: true})
	sc := startSidecar(t, f, "/readyz")

	n := len(f.Received())
	res := runConnector(t, node, sc.URL, key, sec,
		[]any{"newOrder", "BTCUSDT", "BUY", "LIMIT", map[string]string{"price": "27123.45", "quantity": "0.001", "timeInForce": "GTC"}},
		[]any{"openOrders"},
	)
	got := f.Received()[n:]
	for i, tt := range []struct {
		method, path string
		want         []byte
	}{
		{http.MethodPost, "/api/v3/order", orderBody},
		{http.MethodGet, "/api/v3/openOrders", openBody},
	} {
		call := tt.method + " " + tt.path
		res[i].resolved(t, call)
		var reqs []fetchtest.Request
		for _, r := range got {
			if r.Path == tt.path {
				reqs = append(reqs, r)
			}
		}
		if len(reqs) != 1 {
			t.Errorf("the fake received %d requests for %s, want 1", len(reqs), tt.path)
			continue
		}
		r := reqs[0]
		if r.Method != tt.method || r.RequestURI != res[i].Sent {
			t.Errorf("the fake received %s %s; the client sent %s %s", r.Method, r.RequestURI, tt.method, res[i].Sent)
		}
		if got := r.Header.Get("X-Mbx-Apikey"); got != key {
			t.Errorf("%s: X-MBX-APIKEY at the fake = %q, want %q", call, got, key)
		}
		if want := fetchtest.Sign(sec, unsigned(r.RawQuery), string(r.Body)); !strings.Contains(r.RawQuery, "signature=") || r.RawQuery != want {
			t.Errorf("%s: received query %q, want it signed: %q", call, r.RawQuery, want)
		}
		if diff := sameJSON(t, tt.want, res[i].Data); diff != "" {
			t.Errorf("%s: the client's data differs from the fake's answer (-want +got):\n%s", call, diff)
		}
	}
	if q := res[0].Sent; !strings.Contains(q, "symbol=BTCUSDT") || !strings.Contains(q, "price=27123.45") || !strings.Contains(q, "timeInForce=GTC") {
		t.Errorf("newOrder sent %q, which lacks the order's parameters", q)
	}
	t.Logf("newOrder sent POST %s; openOrders sent GET %s", res[0].Sent, res[1].Sent)
	if len(got) != 2 {
		t.Errorf("the fake received %d requests, want 2: %s", len(got), strings.Join(describe(got), ", "))
	}

	// The fake's check is live: another secret gets Binance's -1022.
	n = len(f.Received())
	bad := runConnector(t, node, sc.URL, key, sec+"x", []any{"openOrders"})[0]
	var body struct{ Code int }
	if bad.Error == nil || bad.Error.Status != http.StatusBadRequest || json.Unmarshal(bad.Error.Data, &body) != nil || body.Code != -1022 {
		t.Errorf("openOrders() with a wrong secret = %+v, want a rejection with status 400, code -1022", bad)
	}
	if got := len(f.Received()) - n; got != 1 {
		t.Errorf("the fake received %d requests, want 1", got)
	}
}

// TestConnector_Unavailable: when the sidecar cannot serve exchangeInfo
// (Binance answers 500, nothing cached), exchangeInfo() rejects with axios'
// AxiosError, ERR_BAD_RESPONSE, whose response is the sidecar's 503 with
// Retry-After and Binance's body shape, code -1007.
func TestConnector_Unavailable(t *testing.T) {
	t.Parallel()
	node := requireNode(t, "@binance/connector", connectorVersion)
	f := newFake(t)
	f.Set(fetchtest.SpotPath, fetchtest.Response{Status: http.StatusInternalServerError, Body: []byte(body500)})
	sc := startSidecar(t, f, "/healthz")

	res := runConnector(t, node, sc.URL, "", "", []any{"exchangeInfo"})[0]
	e := res.Error
	if e == nil {
		t.Fatalf("exchangeInfo() through a sidecar with nothing to serve resolved with %d, want a rejection", res.Status)
	}
	t.Logf("exchangeInfo() rejected with %s (name %s, code %s): %s; status %d, retry-after %q, data %s",
		e.Class, e.Name, e.Code, e.Message, e.Status, e.Headers["retry-after"], e.Data)
	if e.Name != "AxiosError" || !e.IsAxiosError || !e.InstanceofAxiosError || e.Code != "ERR_BAD_RESPONSE" {
		t.Errorf("exchangeInfo() rejected with %s, name %q, code %q (isAxiosError %v, instanceof AxiosError %v); want an AxiosError, ERR_BAD_RESPONSE",
			e.Class, e.Name, e.Code, e.IsAxiosError, e.InstanceofAxiosError)
	}
	var body struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal(e.Data, &body); err != nil || e.Status != http.StatusServiceUnavailable || body.Code != -1007 {
		t.Errorf("error.response: status %d, data %s; want 503 with code -1007", e.Status, e.Data)
	}
	if ra, err := strconv.Atoi(e.Headers["retry-after"]); err != nil || ra < 1 {
		t.Errorf("error.response.headers['retry-after'] = %q, want a positive number of seconds", e.Headers["retry-after"])
	}
}

// TestConnector_UsedWeight: after a forwarded request whose answer carries
// X-MBX-USED-WEIGHT-1M: 77, exchangeInfo() answered from the cache carries
// the same weight in response.headers, where an application reads it.
func TestConnector_UsedWeight(t *testing.T) {
	t.Parallel()
	const weight = "77"
	node := requireNode(t, "@binance/connector", connectorVersion)
	f := newFake(t)
	f.Set("/api/v3/ticker/price", fetchtest.Response{
		Header: http.Header{"X-Mbx-Used-Weight-1m": {weight}},
		Body:   []byte(`{"symbol":"BTCUSDT","price":"27123.45000000"}`),
	})
	sc := startSidecar(t, f, "/readyz")

	waitMinuteRoom(t, 5*time.Second) // the weight is sent only within the UTC minute it was reported in
	start := time.Now()
	res := runConnector(t, node, sc.URL, "", "", []any{"exchangeInfo"}, []any{"tickerPrice", "BTCUSDT"}, []any{"exchangeInfo"})
	if !start.Truncate(time.Minute).Equal(time.Now().Truncate(time.Minute)) {
		t.Fatalf("the calls took %v and crossed a minute: the weight is no longer sent; run again", time.Since(start))
	}
	res[0].resolved(t, "exchangeInfo() before the forwarded call")
	res[1].resolved(t, "tickerPrice('BTCUSDT')")
	res[2].resolved(t, "exchangeInfo() after the forwarded call")
	if w, ok := res[0].Headers["x-mbx-used-weight-1m"]; ok {
		t.Errorf("exchangeInfo() before any weight was reported: x-mbx-used-weight-1m %q, want none", w)
	}
	if got := res[1].Headers["x-mbx-used-weight-1m"]; got != weight {
		t.Errorf("tickerPrice(): x-mbx-used-weight-1m %q, want the fake's %s", got, weight)
	}
	h := res[2].Headers
	if h["x-cache"] != "HIT-L1" || h["x-mbx-used-weight-1m"] != weight || h["x-mbx-used-weight"] != weight {
		t.Errorf("exchangeInfo() after the forwarded call: x-cache %q, x-mbx-used-weight-1m %q, x-mbx-used-weight %q; want HIT-L1, %s, %s",
			h["x-cache"], h["x-mbx-used-weight-1m"], h["x-mbx-used-weight"], weight, weight)
	}
	if n := f.Requests(fetchtest.SpotPath); n != 1 {
		t.Errorf("the fake received %d exchangeInfo requests, want 1 (the sidecar's start)", n)
	}
}
