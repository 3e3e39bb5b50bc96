package forward_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/forward"
	"github.com/symcache/symcache/internal/testutil"
)

const (
	apiKey = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
	secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// proxy serves a Forwarder for every market's base URLs bases on a real
// listener, and returns its URL and the Forwarder.
func proxy(t *testing.T, cfg forward.Config, bases ...string) (string, *forward.Forwarder) {
	t.Helper()
	if cfg.BaseURLs == nil {
		cfg.BaseURLs = map[exchangeinfo.Market][]string{}
		for _, m := range exchangeinfo.Markets() {
			cfg.BaseURLs[m] = bases
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = discard()
	}
	f, err := forward.New(cfg)
	if err != nil {
		t.Fatalf("forward.New = %v", err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL, f
}

// do sends a request and returns the answer with its body read.
func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, b
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// binanceError decodes {"code":…,"msg":…} or fails t.
func binanceError(t *testing.T, body []byte) (int, string) {
	t.Helper()
	var e struct {
		Code *int    `json:"code"`
		Msg  *string `json:"msg"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code == nil || e.Msg == nil {
		t.Fatalf("body = %s, want a Binance error", body)
	}
	return *e.Code, *e.Msg
}

// refusedURL is a base URL nothing listens on.
func refusedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestForwarder_Signed: signed requests reach the fake Binance byte for
// byte (path, raw query, API key, body), its signature check passes, the
// hop-by-hop headers stay behind, and Binance's headers come back.
func TestForwarder_Signed(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.SetSecret(secret)
	answer := fetchtest.Response{
		Body:   []byte(`{"orderId":28}`),
		Header: http.Header{"X-Mbx-Used-Weight-1m": {"7"}, "X-Mbx-Order-Count-10s": {"1"}, "X-Mbx-Order-Count-1d": {"12"}},
		Signed: true,
	}
	up.Set("/api/v3/order", answer)
	up.Set("/api/v3/openOrders", answer)
	up.Set("/fapi/v1/order", answer)
	up.Set("/sapi/v1/asset/get-funding-asset", answer)
	url, f := proxy(t, forward.Config{}, up.URL)

	// Unusual, as a client may send them: encoded commas, a plus, %20, the
	// parameters out of order, a lower-case escape.
	query := fetchtest.Sign(secret, "timestamp=1499827319559&symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&newClientOrderId=a%2Cb+c%20d%2c&recvWindow=5000", "")
	for _, tt := range []struct {
		name, method, path, query, body string
	}{
		{"POST in the query", http.MethodPost, "/api/v3/order", query, ""},
		{"GET", http.MethodGet, "/api/v3/openOrders", fetchtest.Sign(secret, "symbol=BTCUSDT&timestamp=1499827319559&symbols=%5B%22BTCUSDT%22%2C%22ETHBTC%22%5D", ""), ""},
		{"POST in the body", http.MethodPost, "/fapi/v1/order", "", fetchtest.Sign(secret, "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.01&timestamp=1499827319559", "")},
		{"POST split", http.MethodPost, "/sapi/v1/asset/get-funding-asset", "timestamp=1499827319559", "asset=USDT&" + strings.TrimPrefix(fetchtest.Sign(secret, "timestamp=1499827319559", "asset=USDT"), "timestamp=1499827319559&")},
		{"DELETE", http.MethodDelete, "/api/v3/order", fetchtest.Sign(secret, "symbol=BTCUSDT&orderId=28&timestamp=1499827319559", ""), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(up.Received())
			target := tt.path + "?" + tt.query
			if tt.query == "" {
				target = tt.path
			}
			req := newRequest(t, tt.method, url+target, strings.NewReader(tt.body))
			if tt.body == "" {
				req.Body, req.ContentLength = nil, 0
			}
			req.Header.Set("X-MBX-APIKEY", apiKey)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("User-Agent", "binance-connector/3.0")
			req.Header.Set("Connection", "X-Private-Hop")
			req.Header.Set("X-Private-Hop", "secret-of-this-link")
			req.Header.Set("Keep-Alive", "timeout=5")
			req.Header.Set("Proxy-Authorization", "Basic eDp5")
			req.Header.Set("X-Forwarded-For", "10.1.2.3")
			req.Header.Set("Forwarded", "for=10.1.2.3")
			resp, body := do(t, req)
			if resp.StatusCode != http.StatusOK || string(body) != `{"orderId":28}` {
				t.Fatalf("%s %s = %d %s, want 200 {\"orderId\":28}", tt.method, target, resp.StatusCode, body)
			}
			for _, h := range []string{"X-Mbx-Used-Weight-1m", "X-Mbx-Order-Count-10s", "X-Mbx-Order-Count-1d"} {
				if resp.Header.Get(h) != answer.Header.Get(h) {
					t.Errorf("answer %s = %q, want %q", h, resp.Header.Get(h), answer.Header.Get(h))
				}
			}
			got := up.Received()
			if len(got) != before+1 {
				t.Fatalf("upstream received %d requests, want 1", len(got)-before)
			}
			r := got[before]
			if r.Method != tt.method || r.RequestURI != target || r.RawQuery != tt.query || string(r.Body) != tt.body {
				t.Errorf("upstream got %s %s body %q, want %s %s body %q", r.Method, r.RequestURI, r.Body, tt.method, target, tt.body)
			}
			if r.Header.Get("X-Mbx-Apikey") != apiKey || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.Header.Get("User-Agent") != "binance-connector/3.0" {
				t.Errorf("upstream headers = %v, want the API key, Content-Type and User-Agent as sent", r.Header)
			}
			for _, h := range []string{"X-Private-Hop", "Keep-Alive", "Proxy-Authorization", "X-Forwarded-For", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := r.Header[h]; ok {
					t.Errorf("upstream got %s: %q, want none", h, v)
				}
			}
			if r.Host != strings.TrimPrefix(up.URL, "http://") {
				t.Errorf("upstream Host = %q, want %q", r.Host, strings.TrimPrefix(up.URL, "http://"))
			}
		})
	}

	// The fake checks signatures: a query changed by one byte is refused.
	req := newRequest(t, http.MethodPost, url+"/api/v3/order?"+strings.Replace(query, "%2C", ",", 1), nil)
	if resp, body := do(t, req); resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("-1022")) {
		t.Errorf("POST with a re-encoded query = %d %s, want 400 -1022", resp.StatusCode, body)
	}
	m := f.Metrics()
	if len(m.UsedWeight) != 1 || m.UsedWeight[0].Weight != 7 || m.UsedWeight[0].Host != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("Metrics().UsedWeight = %+v, want 7 for the fake's host", m.UsedWeight)
	}
}

// TestForwarder_RawPath: the path goes out as received, escapes included.
func TestForwarder_RawPath(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	url, _ := proxy(t, forward.Config{}, up.URL+"/prefix/")
	for _, p := range []string{"/api/v3/a%2Fb", "/api/v3/%41bc", "/sapi/v1/x;y=1", "/dapi/v1/t%7e"} {
		resp, _ := do(t, newRequest(t, http.MethodGet, url+p+"?a=%2c", nil))
		got := up.Received()
		if last := got[len(got)-1]; last.RequestURI != "/prefix"+p+"?a=%2c" {
			t.Errorf("GET %s reached the upstream as %s (status %d), want /prefix%s?a=%%2c", p, last.RequestURI, resp.StatusCode, p)
		}
	}
}

// TestForwarder_Streams: 20 MB go up and come down through the Forwarder
// without a Content-Length, and each way the other end sees the first
// bytes before the sender has sent the rest: nothing is held whole.
func TestForwarder_Streams(t *testing.T) {
	st := fetchtest.NewStream(20 << 20)
	upstream := httptest.NewServer(st)
	t.Cleanup(upstream.Close)
	url, _ := proxy(t, forward.Config{}, upstream.URL)
	req := newRequest(t, http.MethodPost, url+"/sapi/v1/upload", st.Upload()) // no Content-Length: chunked
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	st.Check(t, resp)
}

// TestForwarder_ClientHangUp: a client that hangs up cancels the request to
// Binance.
func TestForwarder_ClientHangUp(t *testing.T) {
	arrived, ended := make(chan struct{}), make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(ended)
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(upstream.Close)
	url, f := proxy(t, forward.Config{}, upstream.URL)
	ctx, cancel := context.WithCancel(context.Background())
	req := newRequest(t, http.MethodGet, url+"/api/v3/depth?symbol=BTCUSDT", nil).WithContext(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := http.DefaultTransport.RoundTrip(req)
		errc <- err
	}()
	<-arrived
	cancel()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request went on after the client hung up")
	}
	<-errc
	deadline := time.Now().Add(5 * time.Second)
	for !hasCode(f.Metrics(), "canceled") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !hasCode(f.Metrics(), "canceled") {
		t.Errorf("Metrics() = %+v, want a canceled request", f.Metrics())
	}
}

func hasCode(m forward.Metrics, code string) bool {
	for _, r := range m.Requests {
		if r.Code == code {
			return true
		}
	}
	return false
}

// brokenUpstream closes the connection of every request to its broken
// path after reading it whole, without an answer; other paths get 200.
// It counts the requests to the broken path.
func brokenUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/api/v3/order" {
			w.Write([]byte("{}"))
			return
		}
		n.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestForwarder_OrderSentOnce: an order whose connection breaks after it
// was written is sent once, never again (not even on a reused connection
// with an Idempotency-Key, which net/http's Transport would replay), never
// to the next base URL; the client learns that its outcome is unknown.
func TestForwarder_OrderSentOnce(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header http.Header
		body   string
	}{
		{"query only", nil, ""},
		{"with a body", nil, "symbol=BTCUSDT&side=BUY"},
		{"with an Idempotency-Key", http.Header{"Idempotency-Key": {"k1"}, "X-Idempotency-Key": {"k1"}}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			broken, n := brokenUpstream(t)
			second := fetchtest.NewUpstream(t)
			url, f := proxy(t, forward.Config{}, broken.URL, second.URL)
			// A first request leaves a connection to reuse: the Transport
			// retries only on reused connections.
			if resp, _ := do(t, newRequest(t, http.MethodGet, url+"/api/v3/ping", nil)); resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /api/v3/ping = %d, want 200", resp.StatusCode)
			}
			req := newRequest(t, http.MethodPost, url+"/api/v3/order?symbol=BTCUSDT&signature=abc", strings.NewReader(tt.body))
			if tt.body == "" {
				req.Body, req.ContentLength = nil, 0
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, body := do(t, req)
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("POST = %d %s, want 502", resp.StatusCode, body)
			}
			if code, msg := binanceError(t, body); code != -1006 || !strings.Contains(msg, "unknown") {
				t.Errorf("POST body = %d %q, want -1006 saying the outcome is unknown", code, msg)
			}
			if got := n.Load(); got != 1 {
				t.Errorf("the order reached Binance %d times, want 1", got)
			}
			if got := len(second.Received()); got != 0 {
				t.Errorf("the next base URL got %d requests, want 0", got)
			}
			if !hasCode(f.Metrics(), "error") {
				t.Errorf("Metrics() = %+v, want an error", f.Metrics())
			}
		})
	}
}

// TestForwarder_Failover: a GET whose first base URL refuses the
// connection goes to the next; a POST does not (one attempt, 502 saying it
// was not sent).
func TestForwarder_Failover(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.Set("/api/v3/openOrders", fetchtest.Response{Body: []byte(`[]`)})
	url, _ := proxy(t, forward.Config{}, refusedURL(t), up.URL)

	resp, body := do(t, newRequest(t, http.MethodGet, url+"/api/v3/openOrders?timestamp=1", nil))
	if resp.StatusCode != http.StatusOK || string(body) != "[]" {
		t.Errorf("GET = %d %s, want 200 [] from the second base URL", resp.StatusCode, body)
	}
	resp, body = do(t, newRequest(t, http.MethodPost, url+"/api/v3/order?timestamp=1", nil))
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("POST = %d %s, want 502", resp.StatusCode, body)
	}
	if code, msg := binanceError(t, body); code != -1001 || !strings.Contains(msg, "not sent") {
		t.Errorf("POST body = %d %q, want -1001 saying it was not sent", code, msg)
	}
	if n := up.Requests("/api/v3/order"); n != 0 {
		t.Errorf("the second base URL got %d orders, want 0", n)
	}
}

// TestForwarder_Timeout: no answer within Timeout is a 504; for an order,
// -1007 (sent, outcome unknown).
func TestForwarder_Timeout(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.Set("/api/v3/order", fetchtest.Response{Delay: 5 * time.Second})
	url, _ := proxy(t, forward.Config{Timeout: 100 * time.Millisecond}, up.URL)
	resp, body := do(t, newRequest(t, http.MethodPost, url+"/api/v3/order?x=1", nil))
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("POST = %d %s, want 504", resp.StatusCode, body)
	}
	if code, _ := binanceError(t, body); code != -1007 {
		t.Errorf("POST code = %d, want -1007", code)
	}
}

// TestForwarder_RateLimit: a 429 or 418 blocks its host in the shared
// Gate, for the clamped Retry-After: the next requests, forwarded or the
// cache's own fetches, are answered here and Binance sees none.
func TestForwarder_RateLimit(t *testing.T) {
	for _, tt := range []struct {
		name       string
		status     int
		retryAfter string
		want       time.Duration
	}{
		{"429", http.StatusTooManyRequests, "30", 30 * time.Second},
		{"429 too long", http.StatusTooManyRequests, "86400", fetch.DefaultRateLimitMax},
		{"418 too short", http.StatusTeapot, "5", fetch.DefaultBanMin},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := fetchtest.NewUpstream(t)
			up.Set("/api/v3/order", fetchtest.Response{
				Status: tt.status,
				Header: http.Header{"Retry-After": {tt.retryAfter}},
				Body:   []byte(`{"code":-1003,"msg":"Too much request weight used."}`),
			})
			clock := testutil.NewClock(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
			gate := fetch.NewGate()
			url, f := proxy(t, forward.Config{Gate: gate, Now: clock.Now}, up.URL)
			fc, err := fetch.New(fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{up.URL}, Gate: gate, Logger: discard(), Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}

			resp, body := do(t, newRequest(t, http.MethodPost, url+"/api/v3/order?a=1", nil))
			if resp.StatusCode != tt.status || resp.Header.Get("Retry-After") != tt.retryAfter || !bytes.Contains(body, []byte("Too much request weight")) {
				t.Fatalf("first POST = %d Retry-After %q %s, want Binance's %d as is", resp.StatusCode, resp.Header.Get("Retry-After"), body, tt.status)
			}
			before := len(up.Received())
			clock.Advance(tt.want - 1500*time.Millisecond)
			for _, m := range []string{http.MethodPost, http.MethodGet} {
				resp, body = do(t, newRequest(t, m, url+"/api/v3/order?a=1", nil))
				if resp.StatusCode != tt.status || resp.Header.Get("Retry-After") != "2" {
					t.Errorf("%s while blocked = %d Retry-After %q, want %d and 2", m, resp.StatusCode, resp.Header.Get("Retry-After"), tt.status)
				}
				if code, msg := binanceError(t, body); code != -1003 || !strings.Contains(msg, "symcache") || !strings.Contains(msg, "nothing was sent") {
					t.Errorf("%s while blocked: body %d %q, want -1003 saying the sidecar answered", m, code, msg)
				}
			}
			var be *fetch.BackoffError
			if _, err := fc.Fetch(context.Background()); !errors.As(err, &be) {
				t.Errorf("Fetch while blocked = %v, want a *fetch.BackoffError", err)
			}
			if got := len(up.Received()); got != before {
				t.Errorf("upstream received %d requests while blocked, want 0", got-before)
			}
			if !hasCode(f.Metrics(), "blocked") {
				t.Errorf("Metrics() = %+v, want blocked requests", f.Metrics())
			}

			clock.Advance(2 * time.Second)
			up.Set("/api/v3/order", fetchtest.Response{Body: []byte(`{}`)})
			if resp, _ := do(t, newRequest(t, http.MethodPost, url+"/api/v3/order?a=1", nil)); resp.StatusCode != http.StatusOK {
				t.Errorf("POST after the block = %d, want 200", resp.StatusCode)
			}
		})
	}
}

// TestForwarder_FetchBlocksForwarding: a 429 seen by the cache's fetch
// blocks forwarding to the same host.
func TestForwarder_FetchBlocksForwarding(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.Set(fetchtest.SpotPath, fetchtest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"60"}}})
	gate := fetch.NewGate()
	url, _ := proxy(t, forward.Config{Gate: gate}, up.URL)
	fc, err := fetch.New(fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{up.URL}, Gate: gate, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	fc.Fetch(context.Background())
	resp, _ := do(t, newRequest(t, http.MethodGet, url+"/api/v3/depth?symbol=BTCUSDT", nil))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("GET after the fetch's 429 = %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if n := up.Requests("/api/v3/depth"); n != 0 {
		t.Errorf("upstream got %d requests, want 0", n)
	}
}

// TestForwarder_NotAnOpenProxy: neither an absolute request URI, nor a Host
// header, nor a //host path sends anything anywhere but the base URLs.
func TestForwarder_NotAnOpenProxy(t *testing.T) {
	var evilN atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { evilN.Add(1) }))
	t.Cleanup(evil.Close)
	evilHost := strings.TrimPrefix(evil.URL, "http://")
	up := fetchtest.NewUpstream(t)
	url, _ := proxy(t, forward.Config{}, up.URL)
	addr := strings.TrimPrefix(url, "http://")

	for _, tt := range []struct {
		name, request string
		status        int
	}{
		{"absolute URI", "GET http://" + evilHost + "/api/v3/ping HTTP/1.1\r\nHost: " + evilHost + "\r\n\r\n", http.StatusNotFound},
		{"absolute URI, POST", "POST http://" + evilHost + "/api/v3/order?a=1 HTTP/1.1\r\nHost: " + evilHost + "\r\nContent-Length: 0\r\n\r\n", http.StatusNotFound},
		{"Host header", "GET /api/v3/ping HTTP/1.1\r\nHost: " + evilHost + "\r\n\r\n", http.StatusNotFound},
		{"//host path", "GET //" + evilHost + "/api/v3/ping HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", http.StatusNotFound},
		{"//host path, no prefix", "GET //evil.test/x HTTP/1.1\r\nHost: " + addr + "\r\n\r\n", http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tt.request); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			// The fake answers 404 for any path it has no answer for: a 404
			// from it or from the Forwarder, never from evil.
			if resp.StatusCode != tt.status {
				t.Errorf("%q = %d, want %d", tt.request, resp.StatusCode, tt.status)
			}
		})
	}
	if n := evilN.Load(); n != 0 {
		t.Errorf("evil got %d requests, want 0", n)
	}
	for _, r := range up.Received() {
		if r.Host != strings.TrimPrefix(up.URL, "http://") || strings.Contains(r.RequestURI, evilHost) && !strings.HasPrefix(r.RequestURI, "/") {
			t.Errorf("upstream got %s with Host %q, want its own host", r.RequestURI, r.Host)
		}
	}
	if n := up.Requests("/api/v3/ping"); n != 2 {
		t.Errorf("the base URL got %d pings, want 2 (absolute URI, Host header)", n)
	}
}

// TestForwarder_UnknownPrefix: a path under no prefix is a 404 naming them.
func TestForwarder_UnknownPrefix(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	url, _ := proxy(t, forward.Config{}, up.URL)
	for _, p := range []string{"/eapi/v1/ticker", "/api", "/v1/symbols/spot", "/wapi/v3/x", "/%61pi/v3/order"} {
		resp, body := do(t, newRequest(t, http.MethodGet, url+p, nil))
		code, msg := binanceError(t, body)
		if resp.StatusCode != http.StatusNotFound || code != -1000 || !strings.Contains(msg, "/api/, /sapi/, /fapi/, /dapi/") {
			t.Errorf("GET %s = %d %d %q, want 404 -1000 naming the prefixes", p, resp.StatusCode, code, msg)
		}
	}
	if n := len(up.Received()); n != 0 {
		t.Errorf("upstream got %d requests, want 0", n)
	}
}

// TestForwarder_NoSecretsLogged: the API key, the query and the signature
// appear in no log line, for an answer, a failure and a rate limit.
func TestForwarder_NoSecretsLogged(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.Set("/api/v3/order", fetchtest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}})
	var logs testutil.LogBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	url, _ := proxy(t, forward.Config{Logger: log}, up.URL)
	url2, _ := proxy(t, forward.Config{Logger: log}, refusedURL(t))
	const query = "symbol=BTCUSDT&timestamp=1499827319559&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
	for _, u := range []string{url + "/api/v3/openOrders", url + "/api/v3/order", url + "/api/v3/order", url2 + "/api/v3/order"} {
		req := newRequest(t, http.MethodPost, u+"?"+query, nil)
		req.Header.Set("X-MBX-APIKEY", apiKey)
		do(t, req)
	}
	out := logs.String()
	if !strings.Contains(out, `"path":"/api/v3/order"`) {
		t.Errorf("logs lack the path:\n%s", out)
	}
	for _, secret := range []string{apiKey, "c8db56825ae7", "timestamp", "symbol=", "BTCUSDT"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs hold %q:\n%s", secret, out)
		}
	}
}

// TestNew_BadBaseURL: a bad base URL is refused, without its password.
func TestNew_BadBaseURL(t *testing.T) {
	for _, raw := range []string{"ftp://x", "http://", "https://h?q=1", "https://user:hunter2@h/#f", "::"} {
		_, err := forward.New(forward.Config{BaseURLs: map[exchangeinfo.Market][]string{exchangeinfo.Spot: {raw}}})
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("New(%q) = %v, want an error without the password", raw, err)
		}
	}
}

// TestForwarder_UsedWeight: the last X-MBX-USED-WEIGHT-1M per host.
func TestForwarder_UsedWeight(t *testing.T) {
	a, b := fetchtest.NewUpstream(t), fetchtest.NewUpstream(t)
	a.Set("/api/v3/ping", fetchtest.Response{Header: http.Header{"X-Mbx-Used-Weight-1m": {"3"}}})
	b.Set("/fapi/v1/ping", fetchtest.Response{Header: http.Header{"X-Mbx-Used-Weight-1m": {"40"}}})
	f, err := forward.New(forward.Config{Logger: discard(), BaseURLs: map[exchangeinfo.Market][]string{exchangeinfo.Spot: {a.URL}, exchangeinfo.USDM: {b.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	do(t, newRequest(t, http.MethodGet, srv.URL+"/api/v3/ping", nil))
	do(t, newRequest(t, http.MethodGet, srv.URL+"/fapi/v1/ping", nil))
	got := map[string]int64{}
	for _, w := range f.Metrics().UsedWeight {
		got[w.Host] = w.Weight
	}
	want := map[string]int64{strings.TrimPrefix(a.URL, "http://"): 3, strings.TrimPrefix(b.URL, "http://"): 40}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("UsedWeight = %v, want %v", got, want)
	}
	for _, r := range f.Metrics().Requests {
		if r.Code != "200" || r.N != 1 {
			t.Errorf("Requests has %+v, want one 200 per host", r)
		}
	}
}

// TestForwarder_BaseURLUserinfo: a base URL's userinfo goes as basic auth to
// that base URL only, and never replaces the client's own Authorization.
func TestForwarder_BaseURLUserinfo(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	withUser := strings.Replace(up.URL, "http://", "http://proxyuser:pw@", 1)
	url, _ := proxy(t, forward.Config{}, strings.Replace(refusedURL(t), "http://", "http://first:secret@", 1), withUser)
	do(t, newRequest(t, http.MethodGet, url+"/api/v3/ping", nil))
	req := newRequest(t, http.MethodGet, url+"/api/v3/ping", nil)
	req.Header.Set("Authorization", "Bearer client")
	do(t, req)
	got := up.Received()
	if len(got) != 2 {
		t.Fatalf("upstream got %d requests, want 2", len(got))
	}
	if user, pw, ok := (&http.Request{Header: got[0].Header}).BasicAuth(); !ok || user != "proxyuser" || pw != "pw" {
		t.Errorf("first request's basic auth = %q %q %v, want the second base URL's", user, pw, ok)
	}
	if a := got[1].Header.Get("Authorization"); a != "Bearer client" {
		t.Errorf("second request's Authorization = %q, want the client's", a)
	}
}

// TestForwarder_RequestLine: what the request line holds decides alone, as
// sent: a method that is not forwarded is a 405 with Allow; an absolute-form
// target is routed by its path as sent, never decoded (so /%61pi/ is no
// /api/), and its host is ignored; a query that would break the request
// line is refused, never re-encoded. None of them reaches Binance but the
// one that is valid.
func TestForwarder_RequestLine(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.Set("/api/v3/time", fetchtest.Response{Body: []byte(`{"serverTime":1}`)})
	url, f := proxy(t, forward.Config{}, up.URL)
	addr := strings.TrimPrefix(url, "http://")
	for _, tt := range []struct {
		request string
		status  int
	}{
		{"CONNECT /api/v3/order?a=1 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusMethodNotAllowed},
		{"PROPFIND /api/v3/time HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusMethodNotAllowed},
		{"GET http://elsewhere.test/%61pi/v3/time\" HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusNotFound},
		{"GET a:/%61pi/v3/time\" HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusNotFound},
		{"GET http://elsewhere.test/api/v3/time?x=1 HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n", http.StatusOK},
	} {
		resp := rawDo(t, addr, tt.request)
		if resp.StatusCode != tt.status {
			t.Errorf("%q = %d, want %d", tt.request, resp.StatusCode, tt.status)
		}
		if tt.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != strings.Join(forward.Methods, ", ") {
			t.Errorf("%q: Allow %q, want the forwarded methods", tt.request, resp.Header.Get("Allow"))
		}
	}
	got := up.Received()
	if len(got) != 1 || got[0].RequestURI != "/api/v3/time?x=1" {
		t.Errorf("upstream got %v, want one GET /api/v3/time?x=1", got)
	}

	// A space in the query cannot come over HTTP/1.1, but a router or
	// HTTP/2 may hand one over.
	req := httptest.NewRequest(http.MethodGet, "/api/v3/time", nil)
	req.URL.RawQuery, req.RequestURI = "symbol=BTC USDT", "/api/v3/time?symbol=BTC USDT"
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, req)
	if code, _ := binanceError(t, rec.Body.Bytes()); rec.Code != http.StatusBadRequest || code != -1000 {
		t.Errorf("a query with a space = %d %s, want 400 -1000", rec.Code, rec.Body)
	}
	if n := len(up.Received()); n != 1 {
		t.Errorf("upstream got %d requests in all, want 1", n)
	}
}

// TestForwarder_ClientHalfCloses: a client that half-closes its side after
// its request (its context ends) but still listens gets the Forwarder's
// answer, never an empty 200: 502, -1006 (outcome unknown) when the order
// reached Binance, -1001 (not sent) when the client's end came first.
func TestForwarder_ClientHalfCloses(t *testing.T) {
	release := make(chan struct{})
	var received atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		<-release // answers only once the client's context has ended
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) })
	url, _ := proxy(t, forward.Config{}, up.URL)
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /api/v3/order?symbol=BTCUSDT HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer after the half-close: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	code, _ := binanceError(t, body)
	if resp.StatusCode != http.StatusBadGateway || code != -1001 && code != -1006 {
		t.Fatalf("answer after the half-close = %d %s, want 502 -1001 or -1006", resp.StatusCode, body)
	}
	// What it says agrees with what Binance got.
	deadline := time.Now().Add(time.Second)
	for code == -1006 && received.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := received.Load(); code == -1006 && got != 1 || code == -1001 && got != 0 {
		t.Errorf("answer %d, and Binance got %d requests", code, got)
	}
}

// rawDo writes request to addr as is and reads the answer.
func rawDo(t *testing.T, addr, request string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", request, err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp
}
