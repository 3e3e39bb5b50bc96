package fetch_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/testutil"
)

// A Retry-After on any status but 429 and 418 is not honoured: the caller's
// own backoff applies, and the host is not blocked.
func TestClient_Fetch_retryAfterIgnored(t *testing.T) {
	for _, code := range []int{500, 502, 503} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			up := fetchtest.NewUpstream(t)
			up.Set(fetchtest.COINMPath, fetchtest.Response{Status: code, Header: http.Header{"Retry-After": {"86400"}}})
			gate := fetch.NewGate()
			clk := testutil.NewClock(t0)
			c := newClient(t, fetch.Config{Market: exchangeinfo.COINM, BaseURLs: []string{up.URL}, Gate: gate, Now: clk.Now})
			_, err := c.Fetch(t.Context())
			want := fetch.StatusError{Code: code, URL: up.URL + fetchtest.COINMPath, RetryAfterSent: "86400"}
			var se *fetch.StatusError
			if !errors.As(err, &se) || *se != want {
				t.Fatalf("Fetch() = %v, want %v", err, &want)
			}
			if until, code, ok := gate.Blocked(host(up.URL), clk.Now()); ok {
				t.Errorf("Blocked() = %v, %d, true, want false", until, code)
			}
			if _, err := c.Fetch(t.Context()); errors.As(err, new(*fetch.BackoffError)) {
				t.Errorf("second Fetch() = %v, want another attempt", err)
			}
			if got := up.Requests(fetchtest.COINMPath); got != 2 {
				t.Errorf("Requests() = %d, want 2", got)
			}
		})
	}
}

// The Retry-After of a 429 is at most RateLimitMax; that of a 418 is between
// BanMin and BanMax. The Gate blocks the host for that long, not longer, and
// a clamp is logged once with the value sent and the value used.
func TestClient_Fetch_retryAfterBounds(t *testing.T) {
	in2100 := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	past := t0.Add(-time.Hour).Format(http.TimeFormat)
	custom := fetch.Config{RateLimitMax: 30 * time.Second, BanMin: 10 * time.Minute, BanMax: time.Hour}
	for _, tt := range []struct {
		name        string
		cfg         fetch.Config // bounds only
		code        int
		retryAfter  string // empty: no header
		want        time.Duration
		wantClamped bool
	}{
		{"429 within", fetch.Config{}, 429, "120", 2 * time.Minute, false},
		{"429 10 years", fetch.Config{}, 429, "315360000", 5 * time.Minute, true},
		{"429 1e23 seconds", fetch.Config{}, 429, "1" + strings.Repeat("0", 23), 5 * time.Minute, true},
		{"429 1e23 literally (unparsable)", fetch.Config{}, 429, "1e23", time.Minute, false},
		{"429 date in 2100", fetch.Config{}, 429, in2100, 5 * time.Minute, true},
		{"429 missing", fetch.Config{}, 429, "", time.Minute, false},
		{"429 missing, RateLimitMax below 60s", custom, 429, "", 30 * time.Second, false},
		{"429 custom RateLimitMax", custom, 429, "31", 30 * time.Second, true},
		{"418 within", fetch.Config{}, 418, "7200", 2 * time.Hour, false},
		{"418 date in the past", fetch.Config{}, 418, past, 2 * time.Minute, true},
		{"418 zero", fetch.Config{}, 418, "0", 2 * time.Minute, true},
		{"418 10 days", fetch.Config{}, 418, "864000", 72 * time.Hour, true},
		{"418 date in 2100", fetch.Config{}, 418, in2100, 72 * time.Hour, true},
		{"418 missing", fetch.Config{}, 418, "", 2 * time.Minute, false},
		{"418 unparsable", fetch.Config{}, 418, "soon", 2 * time.Minute, false},
		{"418 custom BanMin", custom, 418, "60", 10 * time.Minute, true},
		{"418 custom BanMax", custom, 418, "3601", time.Hour, true},
		{"418 missing, custom BanMin", custom, 418, "", 10 * time.Minute, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := fetchtest.NewUpstream(t)
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			up.Set(fetchtest.COINMPath, fetchtest.Response{Status: tt.code, Header: h})
			gate := fetch.NewGate()
			clk := testutil.NewClock(t0)
			var logs testutil.LogBuffer
			cfg := tt.cfg
			cfg.Market, cfg.BaseURLs, cfg.Gate, cfg.Now, cfg.Logger = exchangeinfo.COINM, []string{up.URL}, gate, clk.Now, logs.Logger()
			c := newClient(t, cfg)

			_, err := c.Fetch(t.Context())
			want := fetch.StatusError{Code: tt.code, URL: up.URL + fetchtest.COINMPath, RetryAfter: tt.want, RetryAfterSent: tt.retryAfter, RetryAfterClamped: tt.wantClamped}
			var se *fetch.StatusError
			if !errors.As(err, &se) || *se != want {
				t.Fatalf("Fetch() = %v, want %v", err, &want)
			}
			until, _, ok := gate.Blocked(host(up.URL), clk.Now())
			if !ok || !until.Equal(t0.Add(tt.want)) {
				t.Errorf("Blocked() = %v, %v, want %v, true", until, ok, t0.Add(tt.want))
			}
			_, err = c.Fetch(t.Context())
			var be *fetch.BackoffError
			if !errors.As(err, &be) || !be.Until.Equal(t0.Add(tt.want)) {
				t.Errorf("second Fetch() = %v, want a *BackoffError until %v", err, t0.Add(tt.want))
			}
			clk.Advance(tt.want)
			if _, _, ok := gate.Blocked(host(up.URL), clk.Now()); ok {
				t.Errorf("Blocked(+%v) = true, want false", tt.want)
			}

			recs := logs.Records(t)
			if len(recs) != 1 || recs[0]["level"] != "WARN" || recs[0]["retry_after"] != float64(tt.want) {
				t.Fatalf("logged %v, want one warning with retry_after %d", recs, tt.want)
			}
			clamped := logs.Count(t, "msg", "binance Retry-After out of bounds: clamped", "retry_after_sent", tt.retryAfter)
			if clamped != 1 && tt.wantClamped || clamped != 0 && !tt.wantClamped {
				t.Errorf("logged %v, want a clamp logged: %v", recs, tt.wantClamped)
			}
		})
	}
}

// RetryAfterSent is at most 64 bytes, and valid UTF-8.
func TestClient_Fetch_retryAfterSentTruncated(t *testing.T) {
	up := fetchtest.NewUpstream(t)
	up.Set(fetchtest.COINMPath, fetchtest.Response{Status: 429, Header: http.Header{"Retry-After": {strings.Repeat("9", 1000)}}})
	c := newClient(t, fetch.Config{Market: exchangeinfo.COINM, BaseURLs: []string{up.URL}})
	_, err := c.Fetch(t.Context())
	var se *fetch.StatusError
	if !errors.As(err, &se) || se.RetryAfterSent != strings.Repeat("9", 64) || se.RetryAfter != fetch.DefaultRateLimitMax || !se.RetryAfterClamped {
		t.Fatalf("Fetch() = %v, want RetryAfterSent of 64 nines, clamped to %v", err, fetch.DefaultRateLimitMax)
	}
}

func host(baseURL string) string { return strings.TrimPrefix(baseURL, "http://") }

// A body far larger than MaxBodyBytes costs about MaxBodyBytes to reject,
// with a Content-Length (nothing read) or without (chunked, or gzip).
func TestClient_Fetch_bodyMemory(t *testing.T) {
	const (
		maxBody = 1 << 20   // 1 MiB
		sent    = 256 << 20 // 256 MiB, if the client reads it all
		bombed  = 32 << 20  // 32 MiB, gzipped to about 64 KiB
		slack   = 256 << 10 // the HTTP and gzip machinery, this test's server
	)
	chunk := bytes.Repeat([]byte(`{"symbols":[`), 32<<10/12)
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestSpeed)
	for n := 0; n < bombed; n += len(chunk) {
		zw.Write(chunk)
	}
	zw.Close()
	for _, tt := range []struct {
		name      string
		header    http.Header
		body      func(w http.ResponseWriter)
		wantAlloc uint64
	}{
		{"Content-Length", http.Header{"Content-Length": {strconv.Itoa(sent)}}, stream(chunk, sent), slack},
		{"chunked", nil, stream(chunk, sent), maxBody + slack},
		{"gzip bomb", http.Header{"Content-Encoding": {"gzip"}}, func(w http.ResponseWriter) { w.Write(bomb.Bytes()) }, maxBody + slack},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				tt.body(w)
			}))
			defer srv.Close()
			c := newClient(t, fetch.Config{Market: exchangeinfo.COINM, BaseURLs: []string{srv.URL}, MaxBodyBytes: maxBody})
			c.Fetch(t.Context()) // warm the connection pool and the code paths

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.Fetch(t.Context())
			runtime.ReadMemStats(&after)
			if !errors.Is(err, fetch.ErrInvalid) {
				t.Fatalf("Fetch() = %v, want an error matching %v", err, fetch.ErrInvalid)
			}
			got := after.TotalAlloc - before.TotalAlloc
			t.Logf("Fetch() allocated %d KiB", got>>10)
			if got > tt.wantAlloc {
				t.Errorf("Fetch() of a body far above MaxBodyBytes (%d MiB) allocated %d KiB, want at most %d KiB", maxBody>>20, got>>10, tt.wantAlloc>>10)
			}
		})
	}
}

// stream writes chunk until n bytes are sent or the client goes away.
func stream(chunk []byte, n int) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := w.Write(chunk[:min(len(chunk), n-sent)]); err != nil {
				return
			}
		}
	}
}

// A redirect is not followed, to another host or to the same one, and no
// request carries a Referer. It ends the Fetch with a *StatusError (no
// failover).
func TestClient_Fetch_redirect(t *testing.T) {
	var (
		mu       sync.Mutex
		referers []string
	)
	record := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			if ref := r.Header.Get("Referer"); ref != "" {
				referers = append(referers, ref)
			}
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	}
	other := fetchtest.NewHandler() // would serve a valid answer
	other.Set(fetchtest.COINMPath, fetchtest.Response{Body: loadFixture(t, exchangeinfo.COINM).body})
	otherSrv := httptest.NewServer(record(other))
	defer otherSrv.Close()

	for _, code := range []int{301, 302, 303, 307, 308} {
		for _, to := range []string{"other host", "same host"} {
			t.Run(strconv.Itoa(code)+" to "+to, func(t *testing.T) {
				first := fetchtest.NewHandler()
				firstSrv := httptest.NewServer(record(first))
				defer firstSrv.Close()
				second := fetchtest.NewUpstream(t)
				loc := otherSrv.URL + fetchtest.COINMPath
				if to == "same host" {
					loc = "/moved" + fetchtest.COINMPath
					first.Set("/moved"+fetchtest.COINMPath, fetchtest.Response{Body: loadFixture(t, exchangeinfo.COINM).body})
				}
				first.Set(fetchtest.COINMPath, fetchtest.Response{Status: code, Header: http.Header{"Location": {loc}}})
				before := other.Requests(fetchtest.COINMPath)

				c := newClient(t, fetch.Config{Market: exchangeinfo.COINM, BaseURLs: []string{firstSrv.URL, second.URL}})
				_, err := c.Fetch(t.Context())
				var se *fetch.StatusError
				if !errors.As(err, &se) || se.Code != code || se.URL != firstSrv.URL+fetchtest.COINMPath || !strings.Contains(se.Msg, loc) {
					t.Fatalf("Fetch() = %v, want a *StatusError{Code: %d} naming %s", err, code, loc)
				}
				if got := other.Requests(fetchtest.COINMPath) - before; got != 0 {
					t.Errorf("other host Requests() = %d, want 0", got)
				}
				if got := first.Requests("/moved" + fetchtest.COINMPath); got != 0 {
					t.Errorf("same host Requests(/moved) = %d, want 0", got)
				}
				if got := second.Requests(fetchtest.COINMPath); got != 0 {
					t.Errorf("second base URL Requests() = %d, want 0 (no failover on a redirect)", got)
				}
			})
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(referers) != 0 {
		t.Errorf("requests with a Referer: %q, want none", referers)
	}
}

// A caller's HTTPClient keeps its CheckRedirect for nothing: the Client's
// refusal applies, and the caller's http.Client is not modified.
func TestClient_Fetch_redirectOwnHTTPClient(t *testing.T) {
	other := fetchtest.NewUpstream(t)
	first := fetchtest.NewUpstream(t)
	first.Set(fetchtest.COINMPath, fetchtest.Response{Status: 302, Header: http.Header{"Location": {other.URL + fetchtest.COINMPath}}})
	hc := &http.Client{} // follows up to 10 redirects
	c := newClient(t, fetch.Config{Market: exchangeinfo.COINM, BaseURLs: []string{first.URL}, HTTPClient: hc})
	_, err := c.Fetch(t.Context())
	var se *fetch.StatusError
	if !errors.As(err, &se) || se.Code != 302 {
		t.Fatalf("Fetch() = %v, want a *StatusError{Code: 302}", err)
	}
	if got := other.Requests(fetchtest.COINMPath); got != 0 {
		t.Errorf("other host Requests() = %d, want 0", got)
	}
	if hc.CheckRedirect != nil {
		t.Error("HTTPClient.CheckRedirect was set, want the caller's client unmodified")
	}
}
