package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/forward"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l1"
)

const (
	fwdAPIKey = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
	fwdSecret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
)

// forwarding serves a Cache of spot and USD-M over base and a Forwarder to
// base, sharing one Gate, as cmd/sidecar wires them; with on false, no
// Forwarder. Each of opts changes the handler's Config.
func forwarding(t *testing.T, base string, on bool, opts ...func(*httpapi.Config)) *server {
	t.Helper()
	gate := fetch.NewGate()
	ccfg := symcache.Config{Upstreams: map[exchangeinfo.Market]symcache.Upstream{}, RefreshInterval: -1, Logger: discard()}
	ups := map[exchangeinfo.Market]httpapi.UpstreamStats{}
	for _, m := range []exchangeinfo.Market{exchangeinfo.Spot, exchangeinfo.USDM} {
		up, err := fetch.New(fetch.Config{Market: m, BaseURLs: []string{base}, Gate: gate, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		ccfg.Upstreams[m], ups[m] = up, up
	}
	mem, err := l1.New(l1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mem.Close)
	ccfg.L1 = mem
	c, err := symcache.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	hcfg := httpapi.Config{Cache: c, Logger: discard(), L1: mem, Upstreams: ups, Gate: gate}
	for _, o := range opts {
		o(&hcfg)
	}
	if on {
		bases := map[exchangeinfo.Market][]string{}
		for _, m := range exchangeinfo.Markets() {
			bases[m] = []string{base}
		}
		fwd, err := forward.New(forward.Config{BaseURLs: bases, Gate: gate, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		hcfg.Forward, hcfg.ForwardStats = fwd, fwd
	}
	h, err := httpapi.New(hcfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(func() { tr.CloseIdleConnections(); srv.Close() })
	return &server{tb: t, url: srv.URL, client: &http.Client{Transport: tr}}
}

// TestForward_Routes: the cached paths and the sidecar's own stay answered
// here; the rest under /api/, /sapi/, /fapi/, /dapi/ reaches Binance byte for
// byte, signed requests included; any other path is a 404 naming the
// prefixes.
func TestForward_Routes(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.SetSecret(fwdSecret)
	ok := fetchtest.Response{Body: []byte(`{"ok":1}`), Signed: true, Header: http.Header{"X-Mbx-Used-Weight-1m": {"9"}, "X-Mbx-Order-Count-10s": {"2"}}}
	up.Set("/api/v3/order", ok)
	up.Set("/api/v3/openOrders", ok)
	srv := forwarding(t, up.URL, true)

	for i, want := range []string{"MISS", "HIT-L1"} {
		resp, _ := srv.get(spotPath, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != want {
			t.Errorf("GET %s #%d = %d X-Cache %q, want 200 %s", spotPath, i+1, resp.StatusCode, resp.Header.Get("X-Cache"), want)
		}
	}
	if resp, _ := srv.do(http.MethodHead, usdmPath, nil); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") == "" {
		t.Errorf("HEAD %s = %d X-Cache %q, want 200 from the cache", usdmPath, resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	for _, p := range []string{"/v1/symbols/spot/BTCUSDT", "/healthz", "/readyz", "/metrics"} {
		if resp, _ := srv.get(p, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, resp.StatusCode)
		}
	}
	if resp, _ := srv.get("/admin/status", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /admin/status = %d, want 401", resp.StatusCode)
	}
	if n := up.Requests(spotPath) + up.Requests(usdmPath); n != 2 {
		t.Errorf("upstream exchangeInfo requests = %d, want 2 (one fetch per market)", n)
	}

	signed := []struct{ method, target string }{
		{http.MethodPost, "/api/v3/order?" + fetchtest.Sign(fwdSecret, "symbol=BTCUSDT&timestamp=1499827319559&side=BUY&type=LIMIT&newClientOrderId=x%2Cy+z%20w&price=0.1&quantity=1", "")},
		{http.MethodGet, "/api/v3/openOrders?" + fetchtest.Sign(fwdSecret, "timestamp=1499827319559&symbol=ETHBTC&recvWindow=5000", "")},
	}
	for _, s := range signed {
		resp, body := srv.do(s.method, s.target, http.Header{"X-Mbx-Apikey": {fwdAPIKey}, "Connection": {"X-Hop"}, "X-Hop": {"1"}})
		if resp.StatusCode != http.StatusOK || string(body) != `{"ok":1}` {
			t.Errorf("%s %s = %d %s, want 200 from Binance", s.method, s.target, resp.StatusCode, body)
		}
		if resp.Header.Get("X-Mbx-Used-Weight-1m") != "9" || resp.Header.Get("X-Mbx-Order-Count-10s") != "2" {
			t.Errorf("%s: answer headers %v, want Binance's X-MBX-* headers", s.target, resp.Header)
		}
		got := up.Received()
		r := got[len(got)-1]
		if r.Method != s.method || r.RequestURI != s.target || r.Header.Get("X-Mbx-Apikey") != fwdAPIKey || r.Header.Get("X-Hop") != "" {
			t.Errorf("upstream got %s %s key %q X-Hop %q, want %s %s, the key, no X-Hop", r.Method, r.RequestURI, r.Header.Get("X-Mbx-Apikey"), r.Header.Get("X-Hop"), s.method, s.target)
		}
	}
	for _, r := range up.Received() {
		if strings.HasPrefix(r.Path, "/v1/") || strings.HasPrefix(r.Path, "/admin") || r.Path == "/healthz" || r.Path == "/readyz" || r.Path == "/metrics" {
			t.Errorf("the sidecar's own %s was forwarded", r.Path)
		}
	}

	for _, p := range []string{"/eapi/v1/ticker", "/api", "/nope", "//evil.test/x"} {
		resp, body := srv.get(p, nil)
		code, msg := binanceError(t, p, resp, body)
		if resp.StatusCode != http.StatusNotFound || code != -1000 || !strings.Contains(msg, "/api/, /sapi/, /fapi/, /dapi/") {
			t.Errorf("GET %s = %d %d %q, want 404 -1000 naming the prefixes", p, resp.StatusCode, code, msg)
		}
	}
	if resp, _ := srv.do("TRACE", "/api/v3/order", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("TRACE = %d, want 405", resp.StatusCode)
	}

	m := scrape(t, srv)
	host := strings.TrimPrefix(up.URL, "http://")
	if got := m[`symcache_forwarded_requests_total{code="200",host="`+host+`"}`]; got != 2 {
		t.Errorf("symcache_forwarded_requests_total{code=200} = %v, want 2", got)
	}
	if got := m[`symcache_forwarded_used_weight{host="`+host+`"}`]; got != 9 {
		t.Errorf("symcache_forwarded_used_weight = %v, want 9", got)
	}
	if got := m[`symcache_http_requests_total{code="200",route="/api/*"}`]; got != 2 {
		t.Errorf(`symcache_http_requests_total{route="/api/*"} = %v, want 2`, got)
	}
}

// TestForward_Off: without a Forwarder, nothing is forwarded: 404s, as
// before forwarding existed.
func TestForward_Off(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	srv := forwarding(t, up.URL, false)
	for _, p := range []string{"/api/v3/order", "/fapi/v1/ticker/price", "/sapi/v1/x"} {
		resp, body := srv.do(http.MethodPost, p, nil)
		if code, msg := binanceError(t, p, resp, body); resp.StatusCode != http.StatusNotFound || code != -1000 || msg != "Not Found" {
			t.Errorf("POST %s = %d %d %q, want 404 -1000 Not Found", p, resp.StatusCode, code, msg)
		}
	}
	if n := len(up.Received()); n != 0 {
		t.Errorf("upstream got %d requests, want 0", n)
	}
}

// TestForward_SharedGate: a 429 on a forwarded request blocks the host for
// the cache's fetches too, and for other forwarded paths: Binance sees
// nothing more until Retry-After has passed.
func TestForward_SharedGate(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.Set("/api/v3/order", fetchtest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"60"}}, Body: []byte(`{"code":-1003,"msg":"Too many requests."}`)})
	srv := forwarding(t, up.URL, true, func(c *httpapi.Config) { c.AdminToken = adminToken })
	if resp, _ := srv.do(http.MethodPost, "/api/v3/order?a=1", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("POST = %d, want Binance's 429", resp.StatusCode)
	}
	// The operator sees the ban.
	host := strings.TrimPrefix(up.URL, "http://")
	var st struct {
		Bans []struct {
			Host              string    `json:"host"`
			Status            int       `json:"status"`
			Until             time.Time `json:"until"`
			RetryAfterSeconds int64     `json:"retry_after_seconds"`
		} `json:"bans"`
	}
	resp, body := srv.get("/admin/status", withToken)
	if err := json.Unmarshal(body, &st); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /admin/status = %d %v", resp.StatusCode, err)
	}
	if len(st.Bans) != 1 || st.Bans[0].Host != host || st.Bans[0].Status != 429 || st.Bans[0].RetryAfterSeconds < 55 || st.Bans[0].RetryAfterSeconds > 60 {
		t.Errorf("GET /admin/status bans = %+v, want %s's 429 for ~60s", st.Bans, host)
	}
	if left := scrape(t, srv)[`symcache_upstream_blocked_seconds{code="429",host="`+host+`"}`]; left < 55 || left > 60 {
		t.Errorf("symcache_upstream_blocked_seconds = %v, want ~60", left)
	}
	before := len(up.Received())
	resp, body = srv.get("/fapi/v1/depth?symbol=BTCUSDT", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("GET /fapi/v1/depth while blocked = %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, msg := binanceError(t, "/fapi/v1/depth", resp, body); code != -1003 || !strings.Contains(msg, "symcache") {
		t.Errorf("body = %d %q, want -1003 from the sidecar", code, msg)
	}
	if resp, _ := srv.get(spotPath, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET %s while blocked, nothing cached = %d, want 503", spotPath, resp.StatusCode)
	}
	if n := len(up.Received()) - before; n != 0 {
		t.Errorf("upstream got %d requests while blocked, want 0", n)
	}
}

// TestForward_CutShort: a forwarded answer that breaks after its headers
// reaches the client broken, never as a complete shorter answer.
func TestForward_CutShort(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`[{"a":1},`))
		http.NewResponseController(w).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(upstream.Close)
	srv := forwarding(t, upstream.URL, true)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /api/v3/allOrders HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("reading the cut answer = %q, nil; want an error (unexpected EOF)", body)
	}
}

// TestForward_Streams: 20 MB up and 20 MB down through echo, without a
// Content-Length, each end seeing the first bytes before the rest is sent.
func TestForward_Streams(t *testing.T) {
	st := fetchtest.NewStream(20 << 20)
	upstream := httptest.NewServer(st)
	t.Cleanup(upstream.Close)
	srv := forwarding(t, upstream.URL, true)
	req, _ := http.NewRequest(http.MethodPost, srv.url+"/sapi/v1/stream", st.Upload())
	resp, err := srv.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	st.Check(t, resp)
}

// TestForward_NotAnOpenProxy: an absolute request URI, a Host header or a
// //host path never reach another host through httpapi.
func TestForward_NotAnOpenProxy(t *testing.T) {
	var evilN atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { evilN.Add(1) }))
	t.Cleanup(evil.Close)
	evilHost := strings.TrimPrefix(evil.URL, "http://")
	up := fetchtest.NewUpstream(t)
	up.Set("/api/v3/ping", fetchtest.Response{Body: []byte(`{}`)})
	srv := forwarding(t, up.URL, true)
	addr := strings.TrimPrefix(srv.url, "http://")
	for _, tt := range []struct{ name, request string }{
		{"absolute URI", "GET http://" + evilHost + "/api/v3/ping HTTP/1.1\r\nHost: " + evilHost + "\r\n\r\n"},
		{"Host header", "GET /api/v3/ping HTTP/1.1\r\nHost: " + evilHost + "\r\n\r\n"},
		{"//host path", "GET //" + evilHost + "/api/v3/ping HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"},
		{"//host path, no prefix", "GET //evil.test/x HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, tt.request)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		resp.Body.Close()
		conn.Close()
	}
	if n := evilN.Load(); n != 0 {
		t.Errorf("evil got %d requests, want 0", n)
	}
	if n := up.Requests("/api/v3/ping"); n != 2 {
		t.Errorf("the base URL got %d pings, want 2 (absolute URI, Host header)", n)
	}
	for _, r := range up.Received() {
		if r.Host != strings.TrimPrefix(up.URL, "http://") {
			t.Errorf("upstream got %s with Host %q, want its own", r.RequestURI, r.Host)
		}
	}
}

// TestForward_UsedWeightOnCachedAnswers: an answer from the cache carries
// the latest X-MBX-USED-WEIGHT-1M its Binance host sent, on the cache's own
// fetch or on a forwarded request, while it is from the current minute.
func TestForward_UsedWeightOnCachedAnswers(t *testing.T) {
	// The weight counts within a UTC minute: start well inside one, so that
	// the fetch's weight and the first answer fall in the same minute.
	if sec := time.Now().UTC().Second(); sec >= 50 {
		time.Sleep(time.Duration(61-sec) * time.Second)
	}
	up := fetchtest.NewUpstream(t)
	up.Set(spotPath, fetchtest.Response{Body: fixtures.Read(t, "binance/spot_exchangeinfo.json"), Header: http.Header{"X-Mbx-Used-Weight-1m": {"20"}, "X-Mbx-Used-Weight": {"20"}}})
	up.Set("/api/v3/ticker/price", fetchtest.Response{Body: []byte(`{"symbol":"BTCUSDT","price":"1.0"}`), Header: http.Header{"X-Mbx-Used-Weight-1m": {"77"}}})
	var ahead atomic.Int64 // the handler's clock, ahead of the Gate's
	srv := forwarding(t, up.URL, true, func(c *httpapi.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	})

	weight := func(path string) (string, string) {
		resp, _ := srv.get(path, nil)
		return resp.Header.Get("X-Cache"), resp.Header.Get("X-Mbx-Used-Weight-1m") + "/" + resp.Header.Get("X-Mbx-Used-Weight")
	}
	if src, w := weight(spotPath); src != "MISS" || w != "20/20" {
		t.Errorf("GET %s = %s weight %s, want MISS with the fetch's 20/20", spotPath, src, w)
	}
	if resp, _ := srv.get("/api/v3/ticker/price?symbol=BTCUSDT", nil); resp.Header.Get("X-Mbx-Used-Weight-1m") != "77" {
		t.Errorf("forwarded answer weight %q, want Binance's 77", resp.Header.Get("X-Mbx-Used-Weight-1m"))
	}
	if src, w := weight(spotPath); src != "HIT-L1" || w != "77/77" {
		t.Errorf("GET %s after a forwarded request = %s weight %s, want HIT-L1 with the host's latest 77/77", spotPath, src, w)
	}
	if src, w := weight("/v1/symbols/spot/BTCUSDT"); src != "HIT-L1" || w != "77/77" {
		t.Errorf("GET /v1/symbols/spot/BTCUSDT = %s weight %s, want the host's latest 77/77", src, w)
	}
	ahead.Store(int64(time.Minute))
	if src, w := weight(spotPath); src != "HIT-L1" || w != "/" {
		t.Errorf("GET %s a minute later = %s weight %s, want no weight: it is not this minute's", spotPath, src, w)
	}
}

// TestForward_SlowClient: each write of a forwarded answer has a deadline
// (the grace plus its size at the least client rate), so a client that
// stops reading a long answer is cut off, counted, and its request to
// Binance ends; a client that reads steadily gets the whole answer.
func TestForward_SlowClient(t *testing.T) {
	const size = 32 << 20
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	ended := make(chan error, 4) // each upstream answer's end: nil when whole
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				ended <- err
				return
			}
		}
		ended <- nil
	}))
	t.Cleanup(up.Close)
	var logs testutil.LogBuffer
	srv := forwarding(t, up.URL, true, func(c *httpapi.Config) {
		c.MinClientRate, c.WriteGrace, c.Logger = 1<<20, 2*time.Second, logs.Logger() // room for a reader under -race on a busy machine
	})

	resp, body := srv.get("/api/v3/klines", nil)
	if resp.StatusCode != http.StatusOK || len(body) != size {
		t.Fatalf("GET /api/v3/klines = %d, %d bytes; want 200 and %d bytes", resp.StatusCode, len(body), size)
	}
	if err := <-ended; err != nil {
		t.Fatalf("the upstream's answer to a steady reader ended with %v", err)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := io.WriteString(conn, "GET /api/v3/klines HTTP/1.1\r\nHost: symcache\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select { // the client reads nothing
	case err := <-ended:
		if err == nil {
			t.Fatal("the whole answer went to a client that reads nothing")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream request of a client that reads nothing still runs after 20s")
	}
	testutil.WaitFor(t, 5*time.Second, "the cut to be counted", func() bool { return slowClients(t, srv) == 1 })
	if n := logs.Count(t, "level", "WARN", "msg", "client too slow: answer cut off", "path", "/api/v3/klines"); n != 1 {
		t.Errorf("warnings of the cut = %d, want 1:\n%s", n, logs.String())
	}
}
