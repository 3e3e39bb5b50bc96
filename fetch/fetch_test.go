package fetch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
)

var discard = slog.New(slog.DiscardHandler)

// t0 is when the tests' clocks (testutil.NewClock) start.
var t0 = time.Date(2025, 12, 24, 8, 0, 0, 0, time.UTC)

// newClient is New that fails the test on error, with a discarding logger
// unless cfg has one.
func newClient(t testing.TB, cfg fetch.Config) *fetch.Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	c, err := fetch.New(cfg)
	if err != nil {
		t.Fatalf("New() = %v, want nil", err)
	}
	return c
}

// closedURL is the base URL of a port nobody listens on: connection refused.
func closedURL(t *testing.T) string { return "http://" + testutil.FreeAddr(t) }

// fixture is a recorded answer and what encoding/json finds in it.
type fixture struct {
	market     exchangeinfo.Market
	path       string
	body       []byte
	symbols    int
	serverTime time.Time
}

func loadFixture(t testing.TB, m exchangeinfo.Market) fixture {
	t.Helper()
	f := fixture{market: m}
	switch m {
	case exchangeinfo.Spot:
		f.path, f.body = fetchtest.SpotPath, fixtures.Read(t, "binance/spot_exchangeinfo.json")
	case exchangeinfo.USDM:
		f.path, f.body = fetchtest.USDMPath, fixtures.Read(t, "binance/usdm_exchangeinfo.json")
	case exchangeinfo.COINM:
		f.path, f.body = fetchtest.COINMPath, fixtures.Read(t, "binance/coinm_exchangeinfo.json")
	}
	var v struct {
		ServerTime int64             `json:"serverTime"`
		Symbols    []json.RawMessage `json:"symbols"`
	}
	if err := json.Unmarshal(f.body, &v); err != nil {
		t.Fatalf("fixture %s: %v", m, err)
	}
	f.symbols, f.serverTime = len(v.Symbols), time.UnixMilli(v.ServerTime).UTC()
	return f
}

func TestClient_Fetch(t *testing.T) {
	for _, tt := range []struct {
		market      exchangeinfo.Market
		wantSymbols int // from SOURCES.md, checked against encoding/json
	}{
		{exchangeinfo.Spot, 2292},
		{exchangeinfo.USDM, 660},
		{exchangeinfo.COINM, 62},
	} {
		t.Run(string(tt.market), func(t *testing.T) {
			f := loadFixture(t, tt.market)
			if f.symbols != tt.wantSymbols {
				t.Fatalf("fixture has %d symbols, want %d", f.symbols, tt.wantSymbols)
			}
			up := fetchtest.NewUpstream(t)
			clk := testutil.NewClock(t0)
			c := newClient(t, fetch.Config{Market: tt.market, BaseURLs: []string{up.URL}, Now: clk.Now})
			snap, err := c.Fetch(t.Context())
			if err != nil {
				t.Fatalf("Fetch() = %v, want nil", err)
			}
			if !bytes.Equal(snap.Body(), f.body) {
				t.Errorf("Fetch().Body() = %d bytes, want the fixture's %d bytes, identical", len(snap.Body()), len(f.body))
			}
			if got := snap.Len(); got != f.symbols {
				t.Errorf("Fetch().Len() = %d, want %d", got, f.symbols)
			}
			if got := snap.Market(); got != tt.market {
				t.Errorf("Fetch().Market() = %v, want %v", got, tt.market)
			}
			if got := snap.ServerTime(); !got.Equal(f.serverTime) {
				t.Errorf("Fetch().ServerTime() = %v, want %v", got, f.serverTime)
			}
			if got, want := snap.FetchedAt(), clk.Now(); !got.Equal(want) {
				t.Errorf("Fetch().FetchedAt() = %v, want %v", got, want)
			}
			if got := up.Requests(f.path); got != 1 {
				t.Errorf("Requests(%q) = %d, want 1", f.path, got)
			}
		})
	}
}

// recordingTransport records whether the transport decompressed each answer
// and the User-Agent sent.
type recordingTransport struct {
	rt           http.RoundTripper
	mu           sync.Mutex
	uncompressed []bool
	userAgents   []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.uncompressed = append(r.uncompressed, resp.Uncompressed)
		r.userAgents = append(r.userAgents, req.Header.Get("User-Agent"))
		r.mu.Unlock()
	}
	return resp, err
}

func TestClient_Fetch_gzip(t *testing.T) {
	f := loadFixture(t, exchangeinfo.Spot)
	for _, gz := range []bool{false, true} {
		t.Run(map[bool]string{false: "identity", true: "gzip"}[gz], func(t *testing.T) {
			up := fetchtest.NewUpstream(t)
			up.Set(f.path, fetchtest.Response{Body: f.body, Gzip: gz})
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			rec := &recordingTransport{rt: tr}
			c := newClient(t, fetch.Config{Market: f.market, BaseURLs: []string{up.URL}, HTTPClient: &http.Client{Transport: rec}})
			snap, err := c.Fetch(t.Context())
			if err != nil {
				t.Fatalf("Fetch() = %v, want nil", err)
			}
			if !bytes.Equal(snap.Body(), f.body) {
				t.Errorf("Fetch().Body() = %d bytes, want the fixture's %d bytes, identical", len(snap.Body()), len(f.body))
			}
			if len(rec.uncompressed) != 1 || rec.uncompressed[0] != gz {
				t.Errorf("transport decompressed = %v, want [%v]", rec.uncompressed, gz)
			}
			if len(rec.userAgents) != 1 || rec.userAgents[0] != "symcache" {
				t.Errorf("User-Agent = %q, want [symcache]", rec.userAgents)
			}
		})
	}
}

func TestClient_Fetch_failover(t *testing.T) {
	f := loadFixture(t, exchangeinfo.COINM)
	for _, tt := range []struct {
		name    string
		first   *fetchtest.Response // nil: connection refused
		timeout time.Duration
	}{
		{name: "connection refused"},
		{name: "503", first: &fetchtest.Response{Status: 503, Body: []byte(`{"code":-1008,"msg":"Service Unavailable."}`)}},
		{name: "500 HTML", first: &fetchtest.Response{Status: 500, Body: []byte("<html>oops</html>")}},
		{name: "timeout", first: &fetchtest.Response{Body: f.body, Delay: 10 * time.Second}, timeout: 300 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			second := fetchtest.NewUpstream(t)
			urls := []string{closedURL(t), second.URL}
			var first *fetchtest.Upstream
			if tt.first != nil {
				first = fetchtest.NewUpstream(t)
				first.Set(f.path, *tt.first)
				urls[0] = first.URL
			}
			var logs testutil.LogBuffer
			c := newClient(t, fetch.Config{Market: f.market, BaseURLs: urls, Timeout: tt.timeout, Logger: logs.Logger()})
			snap, err := c.Fetch(t.Context())
			if err != nil {
				t.Fatalf("Fetch() = %v, want nil", err)
			}
			if !bytes.Equal(snap.Body(), f.body) {
				t.Errorf("Fetch().Body() = %d bytes, want the fixture's %d bytes", len(snap.Body()), len(f.body))
			}
			if first != nil {
				if got := first.Requests(f.path); got != 1 {
					t.Errorf("first Requests() = %d, want 1", got)
				}
			}
			if got := second.Requests(f.path); got != 1 {
				t.Errorf("second Requests() = %d, want 1", got)
			}
			recs := logs.Records(t)
			if len(recs) != 1 || recs[0]["level"] != "WARN" || recs[0]["url"] != urls[0]+f.path {
				t.Errorf("logged %v, want one warning naming %s", recs, urls[0]+f.path)
			}
		})
	}
}

func TestClient_Fetch_allFail(t *testing.T) {
	f := loadFixture(t, exchangeinfo.COINM)
	up := fetchtest.NewUpstream(t)
	up.Set(f.path, fetchtest.Response{Status: 502, Body: []byte("bad gateway"), Header: http.Header{"Retry-After": {"3"}}})
	refused := closedURL(t)

	t.Run("last is 502", func(t *testing.T) {
		c := newClient(t, fetch.Config{Market: f.market, BaseURLs: []string{refused, up.URL}})
		_, err := c.Fetch(t.Context())
		var se *fetch.StatusError
		want := fetch.StatusError{Code: 502, URL: up.URL + f.path, RetryAfterSent: "3", Msg: "bad gateway"}
		if !errors.As(err, &se) || *se != want {
			t.Fatalf("Fetch() = %v, want %v", err, &want)
		}
		if se.RateLimited() {
			t.Errorf("RateLimited() = true, want false")
		}
		// Only 429 and 418 block a host; a 502's Retry-After is not honoured.
		if _, err := c.Fetch(t.Context()); errors.As(err, new(*fetch.BackoffError)) {
			t.Errorf("second Fetch() = %v, want another attempt", err)
		}
		if got := up.Requests(f.path); got != 2 {
			t.Errorf("Requests() = %d, want 2", got)
		}
		if !strings.HasPrefix(err.Error(), "fetch coinm: ") {
			t.Errorf("Fetch() = %q, want it to start with %q", err, "fetch coinm: ")
		}
	})
	t.Run("last is refused", func(t *testing.T) {
		c := newClient(t, fetch.Config{Market: f.market, BaseURLs: []string{up.URL, refused}})
		_, err := c.Fetch(t.Context())
		var se *fetch.StatusError
		var ne *net.OpError
		if err == nil || errors.As(err, &se) || !errors.As(err, &ne) {
			t.Fatalf("Fetch() = %v, want a *net.OpError", err)
		}
	})
}

func TestClient_Fetch_rateLimited(t *testing.T) {
	f := loadFixture(t, exchangeinfo.COINM)
	for _, tt := range []struct {
		name       string
		code       int
		retryAfter string // header value; empty: none
		want       time.Duration
	}{
		{"429 delta-seconds", 429, "7", 7 * time.Second},
		{"418 HTTP-date", 418, t0.Add(2 * time.Minute).Format(http.TimeFormat), 2 * time.Minute},
		{"429 no Retry-After", 429, "", time.Minute},
		{"429 unparsable Retry-After", 429, "soon", time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first, second := fetchtest.NewUpstream(t), fetchtest.NewUpstream(t)
			h := http.Header{"X-Mbx-Used-Weight-1m": {"6001"}}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			first.Set(f.path, fetchtest.Response{Status: tt.code, Header: h, Body: []byte(`{"code":-1003,"msg":"Too many requests."}`)})
			clk := testutil.NewClock(t0)
			var logs testutil.LogBuffer
			c := newClient(t, fetch.Config{Market: f.market, BaseURLs: []string{first.URL, second.URL}, Now: clk.Now, Logger: logs.Logger()})

			_, err := c.Fetch(t.Context())
			var se *fetch.StatusError
			if !errors.As(err, &se) || se.Code != tt.code || se.RetryAfter != tt.want || !se.RateLimited() || se.Msg != "Too many requests." {
				t.Fatalf("Fetch() = %v, want *StatusError{Code: %d, RetryAfter: %v}", err, tt.code, tt.want)
			}
			if got := second.Requests(f.path); got != 0 {
				t.Errorf("second Requests() = %d, want 0 (no failover on %d)", got, tt.code)
			}
			recs := logs.Records(t)
			if len(recs) != 1 || recs[0]["level"] != "WARN" || recs[0]["status"] != float64(tt.code) {
				t.Errorf("logged %v, want one warning with status %d", recs, tt.code)
			}

			_, err = c.Fetch(t.Context())
			var be *fetch.BackoffError
			host := strings.TrimPrefix(first.URL, "http://")
			if !errors.As(err, &be) || be.Host != host || be.Code != tt.code || !be.Until.Equal(t0.Add(tt.want)) {
				t.Fatalf("second Fetch() = %v, want *BackoffError{%s, %d, %v}", err, host, tt.code, t0.Add(tt.want))
			}
			if got1, got2 := first.Requests(f.path), second.Requests(f.path); got1 != 1 || got2 != 0 {
				t.Errorf("Requests() = %d, %d after a blocked Fetch, want 1, 0", got1, got2)
			}

			clk.Advance(tt.want - time.Millisecond)
			if _, err := c.Fetch(t.Context()); !errors.As(err, &be) {
				t.Fatalf("Fetch() just before the deadline = %v, want *BackoffError", err)
			}
			clk.Advance(time.Millisecond)
			first.Set(f.path, fetchtest.Response{Body: f.body})
			if _, err := c.Fetch(t.Context()); err != nil {
				t.Fatalf("Fetch() after the deadline = %v, want nil", err)
			}
			if got := first.Requests(f.path); got != 2 {
				t.Errorf("Requests() = %d after the deadline, want 2", got)
			}
		})
	}
}

func TestClient_Fetch_sharedGate(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.Set(fetchtest.SpotPath, fetchtest.Response{Status: 429, Header: http.Header{"Retry-After": {"30"}}})
	gate := fetch.NewGate()
	clk := testutil.NewClock(t0)
	spot := newClient(t, fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{up.URL}, Gate: gate, Now: clk.Now})
	usdm := newClient(t, fetch.Config{Market: exchangeinfo.USDM, BaseURLs: []string{up.URL}, Gate: gate, Now: clk.Now})
	other := newClient(t, fetch.Config{Market: exchangeinfo.COINM, BaseURLs: []string{up.URL}, Now: clk.Now}) // its own Gate

	if _, err := spot.Fetch(t.Context()); err == nil {
		t.Fatal("spot Fetch() = nil, want a 429 *StatusError")
	}
	_, err := usdm.Fetch(t.Context())
	var be *fetch.BackoffError
	if !errors.As(err, &be) || be.Code != 429 || !be.Until.Equal(clk.Now().Add(30*time.Second)) {
		t.Errorf("usdm Fetch() = %v, want *BackoffError{429} until +30s", err)
	}
	if got := up.Requests(fetchtest.USDMPath); got != 0 {
		t.Errorf("Requests(%q) = %d, want 0", fetchtest.USDMPath, got)
	}
	if _, err := other.Fetch(t.Context()); err != nil {
		t.Errorf("Fetch() with its own Gate = %v, want nil", err)
	}
	if until, code, ok := gate.Blocked(strings.TrimPrefix(up.URL, "http://"), clk.Now()); !ok || code != 429 || !until.Equal(clk.Now().Add(30*time.Second)) {
		t.Errorf("Blocked() = %v, %d, %v, want +30s, 429, true", until, code, ok)
	}
}

// A host blocked by another Client stops a Fetch before it sends anything,
// even when only a later base URL is blocked.
func TestClient_Fetch_anyHostBlocked(t *testing.T) {
	first, second := fetchtest.NewUpstream(t), fetchtest.NewUpstream(t)
	gate := fetch.NewGate()
	clk := testutil.NewClock(t0)
	host2 := strings.TrimPrefix(second.URL, "http://")
	gate.Block(host2, 418, clk.Now().Add(time.Hour))
	c := newClient(t, fetch.Config{Market: exchangeinfo.COINM, BaseURLs: []string{first.URL, second.URL}, Gate: gate, Now: clk.Now})
	_, err := c.Fetch(t.Context())
	var be *fetch.BackoffError
	if !errors.As(err, &be) || be.Host != host2 || be.Code != 418 {
		t.Fatalf("Fetch() = %v, want *BackoffError{%s, 418}", err, host2)
	}
	if got := first.Requests(fetchtest.COINMPath) + second.Requests(fetchtest.COINMPath); got != 0 {
		t.Errorf("Requests() = %d, want 0", got)
	}
}

// A host blocked by another Client while a Fetch fails over is not asked.
func TestClient_Fetch_blockedDuringFailover(t *testing.T) {
	second := fetchtest.NewUpstream(t)
	host2 := strings.TrimPrefix(second.URL, "http://")
	gate := fetch.NewGate()
	clk := testutil.NewClock(t0)
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gate.Block(host2, 429, clk.Now().Add(time.Minute)) // as another Client would
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer first.Close()
	c := newClient(t, fetch.Config{Market: exchangeinfo.COINM, BaseURLs: []string{first.URL, second.URL}, Gate: gate, Now: clk.Now})
	_, err := c.Fetch(t.Context())
	var be *fetch.BackoffError
	if !errors.As(err, &be) || be.Host != host2 || be.Code != 429 {
		t.Fatalf("Fetch() = %v, want *BackoffError{%s, 429}", err, host2)
	}
	if got := second.Requests(fetchtest.COINMPath); got != 0 {
		t.Errorf("second Requests() = %d, want 0", got)
	}
}

func TestClient_Fetch_status(t *testing.T) {
	msgOf := func(b []byte) string {
		var v struct{ Msg string }
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		return v.Msg
	}
	restricted := fixtures.Read(t, "binance/error_451_restricted_location.json")
	invalidSymbol := fixtures.Read(t, "binance/error_1121_invalid_symbol.json")
	html := []byte("<html><head><title>404 Not Found</title></head><body>" + strings.Repeat("x", 300) + "</body></html>")
	for _, tt := range []struct {
		name     string
		r        fetchtest.Response
		wantMsg  string
		wantWarn bool
	}{
		{"451 restricted location", fetchtest.Response{Status: 451, Body: restricted}, msgOf(restricted), true},
		{"400 invalid symbol", fetchtest.Response{Status: 400, Body: invalidSymbol}, "Invalid symbol.", false},
		{"404 HTML", fetchtest.Response{Status: 404, Body: html}, string(html[:200]), false},
		{"403 empty", fetchtest.Response{Status: 403}, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first, second := fetchtest.NewUpstream(t), fetchtest.NewUpstream(t)
			first.Set(fetchtest.SpotPath, tt.r)
			var logs testutil.LogBuffer
			c := newClient(t, fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{first.URL, second.URL}, Logger: logs.Logger()})
			_, err := c.Fetch(t.Context())
			want := &fetch.StatusError{Code: tt.r.Status, URL: first.URL + fetchtest.SpotPath, Msg: tt.wantMsg}
			var se *fetch.StatusError
			if !errors.As(err, &se) || *se != *want {
				t.Fatalf("Fetch() = %v, want %v", err, want)
			}
			if se.RateLimited() {
				t.Errorf("RateLimited() = true, want false")
			}
			if got := second.Requests(fetchtest.SpotPath); got != 0 {
				t.Errorf("second Requests() = %d, want 0 (no failover on %d)", got, tt.r.Status)
			}
			if got := len(logs.Records(t)) == 1; got != tt.wantWarn {
				t.Errorf("logged %q, want a warning: %v", logs.String(), tt.wantWarn)
			}
		})
	}
}

func TestClient_Fetch_invalid(t *testing.T) {
	coinm := loadFixture(t, exchangeinfo.COINM)
	for _, tt := range []struct {
		name string
		r    fetchtest.Response
	}{
		{"HTML page", fetchtest.Response{Body: []byte("<!DOCTYPE html><html><body>Service unavailable</body></html>")}},
		{"truncated JSON", fetchtest.Response{Body: coinm.body[:len(coinm.body)/2]}},
		{"connection cut", fetchtest.Response{Body: coinm.body, Truncate: 1000}},
		{"connection cut gzip", fetchtest.Response{Body: coinm.body, Truncate: 1000, Gzip: true}},
		{"empty object", fetchtest.Response{Body: []byte(`{}`)}},
		{"empty symbols", fetchtest.Response{Body: []byte(`{"serverTime":1707710410000,"symbols":[]}`)}},
		{"not JSON", fetchtest.Response{Body: []byte("Service Unavailable")}},
		{"Binance error with 200", fetchtest.Response{Body: fixtures.Read(t, "binance/error_1121_invalid_symbol.json")}},
		{"empty body", fetchtest.Response{}},
		{"trailing data", fetchtest.Response{Body: append(append([]byte(nil), coinm.body...), "{}"...)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first, second := fetchtest.NewUpstream(t), fetchtest.NewUpstream(t)
			first.Set(coinm.path, tt.r)
			c := newClient(t, fetch.Config{Market: coinm.market, BaseURLs: []string{first.URL, second.URL}})
			snap, err := c.Fetch(t.Context())
			if !errors.Is(err, fetch.ErrInvalid) {
				t.Fatalf("Fetch() = %v, %v, want an error matching %v", snap, err, fetch.ErrInvalid)
			}
			var ie *exchangeinfo.InvalidError
			if !errors.As(err, &ie) {
				t.Errorf("Fetch() = %v, want an *exchangeinfo.InvalidError in the chain", err)
			}
			if got := second.Requests(coinm.path); got != 0 {
				t.Errorf("second Requests() = %d, want 0 (no failover on an invalid 200)", got)
			}
		})
	}
}

func TestClient_Fetch_maxBodyBytes(t *testing.T) {
	f := loadFixture(t, exchangeinfo.COINM)
	n := int64(len(f.body))
	for _, tt := range []struct {
		name    string
		max     int64
		gzip    bool
		wantErr bool
	}{
		{"one byte over", n - 1, false, true},
		{"one byte over, gzip (length unknown)", n - 1, true, true},
		{"exactly", n, false, false},
		{"exactly, gzip", n, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := fetchtest.NewUpstream(t)
			up.Set(f.path, fetchtest.Response{Body: f.body, Gzip: tt.gzip})
			c := newClient(t, fetch.Config{Market: f.market, BaseURLs: []string{up.URL}, MaxBodyBytes: tt.max})
			_, err := c.Fetch(t.Context())
			if tt.wantErr && !errors.Is(err, fetch.ErrInvalid) || !tt.wantErr && err != nil {
				t.Errorf("Fetch() = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

func TestClient_Fetch_timeout(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.Set(fetchtest.SpotPath, fetchtest.Response{Body: []byte("{}"), Delay: 5 * time.Second})
	c := newClient(t, fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{up.URL}, Timeout: 50 * time.Millisecond})
	start := time.Now()
	_, err := c.Fetch(t.Context())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Fetch() = %v, want an error matching %v", err, context.DeadlineExceeded)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Fetch() took %v, want about 50ms", d)
	}
}

func TestClient_Fetch_canceled(t *testing.T) {
	for _, tt := range []struct {
		name  string
		delay time.Duration // of the first upstream's answer
		after time.Duration // cancel after; 0: before Fetch
	}{
		{"before", 0, 0},
		{"while waiting", 5 * time.Second, 50 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first, second := fetchtest.NewUpstream(t), fetchtest.NewUpstream(t)
			first.Set(fetchtest.COINMPath, fetchtest.Response{Body: []byte("{}"), Delay: tt.delay})
			c := newClient(t, fetch.Config{Market: exchangeinfo.COINM, BaseURLs: []string{first.URL, second.URL}})
			ctx, cancel := context.WithCancel(t.Context())
			if tt.after == 0 {
				cancel()
			} else {
				time.AfterFunc(tt.after, cancel)
			}
			_, err := c.Fetch(ctx)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Fetch() = %v, want an error matching %v", err, context.Canceled)
			}
			if got := second.Requests(fetchtest.COINMPath); got != 0 {
				t.Errorf("second Requests() = %d, want 0 (no failover once the caller gave up)", got)
			}
		})
	}
}

func TestClient_UsedWeight(t *testing.T) {
	f := loadFixture(t, exchangeinfo.COINM)
	up := fetchtest.NewUpstream(t)
	clk := testutil.NewClock(t0)
	c := newClient(t, fetch.Config{Market: f.market, BaseURLs: []string{up.URL}, Now: clk.Now})
	if w, at := c.UsedWeight(); w != 0 || !at.IsZero() {
		t.Errorf("UsedWeight() = %d, %v before any Fetch, want 0, zero time", w, at)
	}
	steps := []struct {
		r    fetchtest.Response
		want int64
	}{
		{fetchtest.Response{Body: f.body, Header: http.Header{"x-mbx-used-weight-1m": {"42"}}}, 42},
		{fetchtest.Response{Body: f.body}, 42}, // no header: the last value stays
		{fetchtest.Response{Status: 400, Body: []byte(`{"code":-1121,"msg":"Invalid symbol."}`), Header: http.Header{"X-MBX-USED-WEIGHT-1M": {"43"}}}, 43},
		{fetchtest.Response{Status: 418, Header: http.Header{"X-MBX-USED-WEIGHT-1M": {"6001"}}}, 6001},
	}
	for i, s := range steps {
		clk.Advance(time.Second)
		up.Set(f.path, s.r)
		c.Fetch(t.Context())
		w, at := c.UsedWeight()
		wantAt := clk.Now()
		if i == 1 {
			wantAt = wantAt.Add(-time.Second)
		}
		if w != s.want || !at.Equal(wantAt) {
			t.Errorf("step %d: UsedWeight() = %d, %v, want %d, %v", i, w, at, s.want, wantAt)
		}
	}
}

func TestClient_Fetch_pathPrefix(t *testing.T) {
	f := loadFixture(t, exchangeinfo.COINM)
	up := fetchtest.NewUpstream(t)
	up.Set("/binance"+f.path, fetchtest.Response{Body: f.body})
	for _, base := range []string{up.URL + "/binance", up.URL + "/binance/"} {
		c := newClient(t, fetch.Config{Market: f.market, BaseURLs: []string{base}})
		if _, err := c.Fetch(t.Context()); err != nil {
			t.Errorf("Fetch() from %s = %v, want nil", base, err)
		}
	}
	if got := up.Requests("/binance" + f.path); got != 2 {
		t.Errorf("Requests() = %d, want 2", got)
	}
}

func TestClient_Fetch_concurrent(t *testing.T) {
	f := loadFixture(t, exchangeinfo.COINM)
	up := fetchtest.NewUpstream(t)
	c := newClient(t, fetch.Config{Market: f.market, BaseURLs: []string{up.URL}})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := c.Fetch(t.Context()); err != nil {
				t.Errorf("Fetch() = %v, want nil", err)
			}
			c.UsedWeight()
		})
	}
	wg.Wait()
	if got := up.Requests(f.path); got != 16 {
		t.Errorf("Requests() = %d, want 16", got)
	}
}

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  fetch.Config
	}{
		{"no market", fetch.Config{}},
		{"unknown market", fetch.Config{Market: "options"}},
		{"no scheme", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{"api.binance.com"}}},
		{"ftp", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{"ftp://api.binance.com"}}},
		{"empty host", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{"http://"}}},
		{"empty host with path", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{"https:///api"}}},
		{"port only", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{"http://:8080"}}},
		{"opaque", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{"http:api.binance.com"}}},
		{"query", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{"https://api.binance.com?x=1"}}},
		{"empty query", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{"https://api.binance.com/?"}}},
		{"fragment", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{"https://api.binance.com/#x"}}},
		{"empty string", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{""}}},
		{"second bad", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{"https://api.binance.com", "api1.binance.com"}}},
		{"unparsable", fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{"http://[::1"}}},
		{"negative timeout", fetch.Config{Market: exchangeinfo.Spot, Timeout: -time.Second}},
		{"negative max body", fetch.Config{Market: exchangeinfo.Spot, MaxBodyBytes: -1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := fetch.New(tt.cfg); err == nil {
				t.Errorf("New(%+v) = %v, nil, want an error", tt.cfg, c)
			}
		})
	}
	for _, tt := range []struct {
		name  string
		cfg   fetch.Config
		names []string // in the error
	}{
		{"negative RateLimitMax", fetch.Config{RateLimitMax: -time.Second}, []string{"RateLimitMax"}},
		{"negative BanMin", fetch.Config{BanMin: -time.Second}, []string{"BanMin"}},
		{"negative BanMax", fetch.Config{BanMax: -time.Second}, []string{"BanMax"}},
		{"BanMin longer than BanMax", fetch.Config{BanMin: 2 * time.Hour, BanMax: time.Hour}, []string{"BanMin", "BanMax"}},
		{"BanMin longer than the default BanMax", fetch.Config{BanMin: 100 * time.Hour}, []string{"BanMin", "BanMax"}},
		{"BanMax shorter than the default BanMin", fetch.Config{BanMax: time.Minute}, []string{"BanMin", "BanMax"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Market = exchangeinfo.Spot
			c, err := fetch.New(tt.cfg)
			if err == nil {
				t.Fatalf("New(%+v) = %v, nil, want an error", tt.cfg, c)
			}
			for _, name := range tt.names {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("New(%+v) = %v, want an error naming %s", tt.cfg, err, name)
				}
			}
		})
	}
	if _, err := fetch.New(fetch.Config{Market: exchangeinfo.Spot, BanMin: time.Hour, BanMax: time.Hour, RateLimitMax: time.Second}); err != nil {
		t.Errorf("New() with BanMin = BanMax = %v, want nil", err)
	}
	for _, urls := range [][]string{
		nil,
		{"https://api.binance.com"},
		{"HTTPS://API.binance.com:443/", "http://127.0.0.1:8080/prefix", "http://[::1]:9090"},
		{"https://user:secret@proxy.example/binance"},
	} {
		if _, err := fetch.New(fetch.Config{Market: exchangeinfo.Spot, BaseURLs: urls}); err != nil {
			t.Errorf("New(%q) = %v, want nil", urls, err)
		}
	}
}

// The userinfo of a base URL never shows in errors or logs.
func TestClient_redactsUserinfo(t *testing.T) {
	const secret = "s3cr3t"
	for _, raw := range []string{
		"ftp://alice:" + secret + "@api.binance.com",
		"http://alice:" + secret + "@api.binance.com/?x=1",
		"http://alice:" + secret + "@[::1",
		"http://alice:" + secret + "%zz@api.binance.com",
		"alice:" + secret + "@api.binance.com",
	} {
		_, err := fetch.New(fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{raw}})
		if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "alice") {
			t.Errorf("New(%q) = %v, want an error without the userinfo", raw, err)
		}
	}

	up := fetchtest.NewUpstream(t)
	up.Set(fetchtest.SpotPath, fetchtest.Response{Status: 503})
	withUser := func(base string) string { return strings.Replace(base, "http://", "http://alice:"+secret+"@", 1) }
	var logs testutil.LogBuffer
	c := newClient(t, fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{withUser(up.URL), withUser(closedURL(t))}, Logger: logs.Logger()})
	_, err := c.Fetch(t.Context())
	if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "alice") {
		t.Errorf("Fetch() = %v, want an error without the userinfo", err)
	}
	if s := logs.String(); s == "" || strings.Contains(s, secret) || strings.Contains(s, "alice") {
		t.Errorf("logged %q, want a warning without the userinfo", s)
	}

	up.Set(fetchtest.SpotPath, fetchtest.Response{Status: 400})
	c = newClient(t, fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{withUser(up.URL)}})
	_, err = c.Fetch(t.Context())
	var se *fetch.StatusError
	if !errors.As(err, &se) || se.URL != up.URL+fetchtest.SpotPath {
		t.Errorf("Fetch() = %v, want a *StatusError with URL %s", err, up.URL+fetchtest.SpotPath)
	}
}

// Userinfo in a base URL is sent as basic auth, e.g. to a proxy in front of Binance.
func TestClient_Fetch_basicAuth(t *testing.T) {
	h := fetchtest.NewHandler()
	h.Set(fetchtest.COINMPath, fetchtest.Response{Body: fixtures.Read(t, "binance/coinm_exchangeinfo.json")})
	var (
		mu         sync.Mutex
		user, pass string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		user, pass, _ = r.BasicAuth()
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := newClient(t, fetch.Config{Market: exchangeinfo.COINM, BaseURLs: []string{strings.Replace(srv.URL, "http://", "http://alice:pw@", 1)}})
	if _, err := c.Fetch(t.Context()); err != nil {
		t.Fatalf("Fetch() = %v, want nil", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if user != "alice" || pass != "pw" {
		t.Errorf("basic auth = %q, %q, want %q, %q", user, pass, "alice", "pw")
	}
}

func TestStatusError_Error(t *testing.T) {
	e := &fetch.StatusError{Code: 429, URL: "https://api.binance.com/api/v3/exchangeInfo", RetryAfter: 7 * time.Second, Msg: "Too many requests."}
	want := `GET https://api.binance.com/api/v3/exchangeInfo: 429 Too Many Requests (retry after 7s): "Too many requests."`
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &fetch.StatusError{Code: 418, URL: "https://api.binance.com/api/v3/exchangeInfo", RetryAfter: 72 * time.Hour, RetryAfterSent: "864000", RetryAfterClamped: true}
	want = `GET https://api.binance.com/api/v3/exchangeInfo: 418 I'm a teapot (retry after 72h0m0s; Retry-After "864000" out of bounds)`
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &fetch.StatusError{Code: 503, URL: "https://api.binance.com/api/v3/exchangeInfo", RetryAfterSent: "86400"} // not honoured: not shown
	want = `GET https://api.binance.com/api/v3/exchangeInfo: 503 Service Unavailable`
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	be := &fetch.BackoffError{Host: "api.binance.com", Code: 418, Until: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	if got, want := be.Error(), "api.binance.com blocked until 2025-01-02T03:04:05Z after status 418"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func BenchmarkFetch(b *testing.B) {
	f := loadFixture(b, exchangeinfo.Spot)
	for _, gz := range []bool{false, true} {
		b.Run(map[bool]string{false: "identity", true: "gzip"}[gz], func(b *testing.B) {
			up := fetchtest.NewUpstream(b)
			up.Set(f.path, fetchtest.Response{Body: f.body, Gzip: gz})
			c := newClient(b, fetch.Config{Market: f.market, BaseURLs: []string{up.URL}})
			b.ReportAllocs()
			b.SetBytes(int64(len(f.body)))
			for b.Loop() {
				if _, err := c.Fetch(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Unblock lifts a 429's block at once: the next Fetch is sent.
func TestClient_Unblock(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.Set(fetchtest.SpotPath, fetchtest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"120"}}})
	c := newClient(t, fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{up.URL}})
	c.Fetch(t.Context())
	if _, err := c.Fetch(t.Context()); !errors.As(err, new(*fetch.BackoffError)) {
		t.Fatalf("Fetch() after a 429 = %v, want a *BackoffError", err)
	}
	if !c.Unblock() {
		t.Error("Unblock() = false with the host blocked, want true")
	}
	up.Set(fetchtest.SpotPath, fetchtest.Response{Body: fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")})
	if _, err := c.Fetch(t.Context()); err != nil {
		t.Errorf("Fetch() after Unblock = %v, want the answer", err)
	}
	if n := up.Requests(fetchtest.SpotPath); n != 2 {
		t.Errorf("upstream requests = %d, want 2", n)
	}
	if c.Unblock() {
		t.Error("Unblock() = true with no host blocked, want false")
	}
}
