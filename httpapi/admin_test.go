package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/version"
)

const adminToken = "s3cret-Admin-Token_0123456789"

// bearer is an Authorization header.
func bearer(value string) http.Header { return http.Header{"Authorization": {value}} }

var withToken = bearer("Bearer " + adminToken)

// adminServer serves cfg.Cache on a real listener with cfg's admin
// settings; Logger and Now default to discarding and the world's clock.
func (w *world) adminServer(cfg httpapi.Config) *server {
	w.tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discard()
	}
	if cfg.Now == nil {
		cfg.Now = w.clock.Now
	}
	h, err := httpapi.New(w.withTiers(cfg))
	if err != nil {
		w.tb.Fatalf("httpapi.New = %v", err)
	}
	srv := httptest.NewServer(h)
	tr := &http.Transport{DisableCompression: true}
	w.tb.Cleanup(func() { tr.CloseIdleConnections(); srv.Close() })
	return &server{tb: w.tb, url: srv.URL, client: &http.Client{Transport: tr}}
}

func (s *server) post(target string, hdr http.Header) (*http.Response, []byte) {
	s.tb.Helper()
	return s.do(http.MethodPost, target, hdr)
}

// decodeStrict decodes a JSON body into v, refusing unknown fields.
func decodeStrict(t *testing.T, what string, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s body = %s: %v", what, body, err)
	}
}

// retryAfter parses a Retry-After header, which must be a positive integer.
func retryAfter(t *testing.T, what string, resp *http.Response) int {
	t.Helper()
	v := resp.Header.Get("Retry-After")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s Retry-After = %q, want a positive integer", what, v)
	}
	return n
}

// Every request under /admin without the right token gets the same 401,
// whether admin is enabled or not: status, headers and body byte for byte.
func TestAdmin_Unauthorized(t *testing.T) {
	w := newWorld(t, false)
	var logs testutil.LogBuffer
	servers := map[string]*server{
		"enabled":  w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken, Logger: logs.Logger()}),
		"disabled": w.adminServer(httpapi.Config{Cache: w.cache(), Logger: logs.Logger()}),
		// Disabled admin needs nothing of the Cache beyond Backend.
		"disabled, plain Backend": w.adminServer(httpapi.Config{Cache: panicking{}}),
	}
	headers := map[string]http.Header{
		"none":                 nil,
		"wrong token":          bearer("Bearer wrong"),
		"token and more":       bearer("Bearer " + adminToken + "x"),
		"token cut short":      bearer("Bearer " + adminToken[:len(adminToken)-1]),
		"token without scheme": bearer(adminToken),
		"other scheme":         bearer("Token " + adminToken),
		"basic":                bearer("Basic YWRtaW46" + adminToken),
		"empty bearer":         bearer("Bearer "),
		"bearer alone":         bearer("Bearer"),
		"empty":                bearer(""),
	}
	targets := []struct{ method, target string }{
		{http.MethodPost, "/admin/refresh/spot"},
		{http.MethodPost, "/admin/invalidate/spot?l2=true"},
		{http.MethodGet, "/admin/status"},
		{http.MethodPost, "/admin/refresh/nosuch"},
		{http.MethodGet, "/admin/refresh/spot"},
		{http.MethodGet, "/admin/nope"},
		{http.MethodDelete, "/admin/"},
		{http.MethodGet, "/admin"},
	}

	// The reference: enabled, no header.
	ref, refBody := servers["enabled"].do(http.MethodGet, "/admin/status", nil)
	if ref.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /admin/status without a token = %d %s, want 401", ref.StatusCode, refBody)
	}
	if code, msg := binanceError(t, "/admin/status", ref, refBody); code != -1002 || msg == "" {
		t.Errorf("GET /admin/status without a token = {%d %q}, want Binance's -1002 and a message", code, msg)
	}
	if got := ref.Header.Get("WWW-Authenticate"); got != "Bearer" {
		t.Errorf("GET /admin/status without a token: WWW-Authenticate = %q, want Bearer", got)
	}
	refHeader := ref.Header.Clone()
	refHeader.Del("Date")

	for name, srv := range servers {
		for hname, hdr := range headers {
			for _, tt := range targets {
				what := name + ": " + tt.method + " " + tt.target + " with Authorization " + hname
				resp, body := srv.do(tt.method, tt.target, hdr)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s = %d %s, want 401", what, resp.StatusCode, body)
					continue
				}
				got := resp.Header.Clone()
				got.Del("Date")
				if !maps.EqualFunc(got, refHeader, slices.Equal) {
					t.Errorf("%s headers = %v, want %v", what, got, refHeader)
				}
				if !bytes.Equal(body, refBody) {
					t.Errorf("%s body = %q, want %q", what, body, refBody)
				}
			}
		}
	}
	// Disabled admin also refuses the token an enabled one would take.
	for _, name := range []string{"disabled", "disabled, plain Backend"} {
		resp, body := servers[name].get("/admin/status", withToken)
		got := resp.Header.Clone()
		got.Del("Date")
		if resp.StatusCode != http.StatusUnauthorized || !maps.EqualFunc(got, refHeader, slices.Equal) || !bytes.Equal(body, refBody) {
			t.Errorf("%s: GET /admin/status with a token = %d %v %s, want the same 401", name, resp.StatusCode, got, body)
		}
	}
	// HEAD: the same status and headers, no body.
	for name, srv := range servers {
		resp, body := srv.do(http.MethodHead, "/admin/status", nil)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Bearer" || len(body) != 0 {
			t.Errorf("%s: HEAD /admin/status = %d, WWW-Authenticate %q, %d bytes; want 401, Bearer, none", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), len(body))
		}
	}

	if n := w.upstream.Requests(spotPath); n != 0 {
		t.Errorf("upstream requests after refused admin requests = %d, want 0", n)
	}
	// The right token passes, whatever the scheme's case.
	for _, hdr := range []http.Header{withToken, bearer("bearer " + adminToken), bearer("BEARER  " + adminToken)} {
		if resp, body := servers["enabled"].get("/admin/status", hdr); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /admin/status with Authorization %q = %d %s, want 200", hdr.Get("Authorization"), resp.StatusCode, body)
		}
	}
	if strings.Contains(logs.String(), adminToken) || strings.Contains(logs.String(), adminToken[:len(adminToken)-1]) {
		t.Errorf("logs hold the admin token:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "admin request refused") {
		t.Errorf("logs = %s, want refused admin requests logged", logs.String())
	}
}

type refreshAnswer struct {
	Market    string    `json:"market"`
	ETag      string    `json:"etag"`
	FetchedAt time.Time `json:"fetched_at"`
	Symbols   int       `json:"symbols"`
	Source    string    `json:"source"`
}

func TestAdmin_Refresh(t *testing.T) {
	w := newWorld(t, true)
	var logs testutil.LogBuffer
	srv := w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken, Logger: logs.Logger()})
	resp, _ := srv.get(spotPath, nil)
	oldETag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || oldETag == "" {
		t.Fatalf("GET %s = %d, ETag %q; want 200 and a tag", spotPath, resp.StatusCode, oldETag)
	}

	// Binance has changed something: the refresh brings it in.
	newBody := bytes.Replace(fixtures.Read(t, "binance/spot_exchangeinfo.json"), []byte(`"serverTime":`), []byte(`"serverTime": `), 1)
	w.upstream.Set(spotPath, fetchtest.Response{Body: newBody})
	resp, body := srv.post("/admin/refresh/spot", withToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /admin/refresh/spot = %d %s, want 200", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("POST /admin/refresh/spot Content-Type = %q, want application/json", ct)
	}
	var got refreshAnswer
	decodeStrict(t, "POST /admin/refresh/spot", body, &got)
	if got.Market != "spot" || got.Symbols != 2292 || got.Source != "MISS" || got.ETag == "" || got.ETag == oldETag || got.FetchedAt.IsZero() {
		t.Errorf("POST /admin/refresh/spot = %+v, want spot, 2292 symbols, MISS, and a new ETag (not %s)", got, oldETag)
	}
	if n := w.upstream.Requests(spotPath); n != 2 {
		t.Errorf("upstream requests = %d, want 2", n)
	}
	resp, served := srv.get(spotPath, nil)
	if resp.Header.Get("ETag") != got.ETag || resp.Header.Get("X-Cache") != "HIT-L1" || !bytes.Equal(served, newBody) {
		t.Errorf("GET %s after the refresh = %s ETag %s, want HIT-L1 of the new body with ETag %s", spotPath, resp.Header.Get("X-Cache"), resp.Header.Get("ETag"), got.ETag)
	}
	var env struct {
		ETag string `json:"etag"`
	}
	raw, err := w.redis.Client(t).Get(context.Background(), "symcache:{spot}:current").Bytes()
	if err != nil || json.Unmarshal(raw, &env) != nil || env.ETag != got.ETag {
		t.Errorf("redis current after the refresh: etag %q (%v), want %q", env.ETag, err, got.ETag)
	}

	// The action is logged at Info, without the token.
	var found bool
	for line := range strings.Lines(logs.String()) {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) != nil {
			continue
		}
		if r["level"] == "INFO" && r["action"] == "refresh" && r["market"] == "spot" && r["remote_addr"] != "" && r["remote_addr"] != nil && r["status"] == float64(200) {
			found = true
		}
	}
	if !found {
		t.Errorf("logs = %s, want an INFO record of the refresh with action, market, remote_addr and status", logs.String())
	}
	if strings.Contains(logs.String(), adminToken) {
		t.Errorf("logs hold the admin token:\n%s", logs.String())
	}
}

// An upstream failure answers 502 with the reason, and what is served stays.
func TestAdmin_Refresh_UpstreamFails(t *testing.T) {
	w := newWorld(t, false)
	srv := w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken})
	resp, good := srv.get(spotPath, nil)
	etag := resp.Header.Get("ETag")

	for _, tt := range []struct {
		name     string
		response fetchtest.Response
		reason   string
	}{
		{"500", fetchtest.Response{Status: http.StatusInternalServerError, Body: []byte("<html>oops</html>")}, "500"},
		// A valid answer that lost most symbols is refused too.
		{"shrunk", fetchtest.Response{Body: fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")}, "lost"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w.upstream.Set(spotPath, tt.response)
			w.clock.Advance(time.Minute) // past the admin rate limit and any backoff
			before := w.upstream.Requests(spotPath)
			resp, body := srv.post("/admin/refresh/spot", withToken)
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("POST /admin/refresh/spot against a failing upstream = %d %s, want 502", resp.StatusCode, body)
			}
			if code, msg := binanceError(t, "/admin/refresh/spot", resp, body); code >= 0 || !strings.Contains(msg, tt.reason) {
				t.Errorf("POST /admin/refresh/spot = {%d %q}, want a negative code and a message naming %q", code, msg, tt.reason)
			}
			if n := w.upstream.Requests(spotPath); n != before+1 {
				t.Errorf("upstream requests = %d, want %d", n, before+1)
			}
			resp, served := srv.get(spotPath, nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != etag || !bytes.Equal(served, good) {
				t.Errorf("GET %s after a failed refresh = %d ETag %s, want 200 with the snapshot served before (%s)", spotPath, resp.StatusCode, resp.Header.Get("ETag"), etag)
			}
		})
	}
}

// At most one admin refresh per market per AdminRefreshEvery; the others
// get 429 with Retry-After in whole seconds, rounded up.
func TestAdmin_Refresh_RateLimited(t *testing.T) {
	for _, tt := range []struct {
		name  string
		every time.Duration
		want  int // Retry-After of the second refresh, at once
	}{
		{"default", 0, 10},
		{"a minute", time.Minute, 60},
		{"not whole seconds", 2500 * time.Millisecond, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, false)
			clock := testutil.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
			srv := w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken, AdminRefreshEvery: tt.every, Now: clock.Now})
			every := tt.every
			if every == 0 {
				every = 10 * time.Second
			}
			if resp, body := srv.post("/admin/refresh/spot", withToken); resp.StatusCode != http.StatusOK {
				t.Fatalf("first POST /admin/refresh/spot = %d %s, want 200", resp.StatusCode, body)
			}
			resp, body := srv.post("/admin/refresh/spot", withToken)
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("second POST /admin/refresh/spot at once = %d %s, want 429", resp.StatusCode, body)
			}
			if got := retryAfter(t, "second POST /admin/refresh/spot", resp); got != tt.want {
				t.Errorf("second POST /admin/refresh/spot Retry-After = %d, want %d", got, tt.want)
			}
			if code, _ := binanceError(t, "/admin/refresh/spot", resp, body); code != -1003 {
				t.Errorf("second POST /admin/refresh/spot code = %d, want -1003", code)
			}
			// Another market has its own allowance.
			if resp, body := srv.post("/admin/refresh/usdm", withToken); resp.StatusCode != http.StatusOK {
				t.Errorf("POST /admin/refresh/usdm = %d %s, want 200", resp.StatusCode, body)
			}
			clock.Advance(every - 1500*time.Millisecond)
			resp, _ = srv.post("/admin/refresh/spot", withToken)
			if got := retryAfter(t, "POST /admin/refresh/spot 1.5s before the end", resp); resp.StatusCode != http.StatusTooManyRequests || got != 2 {
				t.Errorf("POST /admin/refresh/spot 1.5s before the end = %d, Retry-After %d; want 429, 2", resp.StatusCode, got)
			}
			if n := w.upstream.Requests(spotPath); n != 1 {
				t.Errorf("upstream requests = %d, want 1", n)
			}
			clock.Advance(1500 * time.Millisecond)
			if resp, body := srv.post("/admin/refresh/spot", withToken); resp.StatusCode != http.StatusOK {
				t.Errorf("POST /admin/refresh/spot after %v = %d %s, want 200", every, resp.StatusCode, body)
			}
			if n := w.upstream.Requests(spotPath); n != 2 {
				t.Errorf("upstream requests = %d, want 2", n)
			}
		})
	}
}

// During an upstream backoff an admin refresh answers 503 with Retry-After
// and sends nothing to Binance.
func TestAdmin_Refresh_Backoff(t *testing.T) {
	for _, tt := range []struct {
		name      string
		status    int
		withRedis bool
	}{
		{"429", http.StatusTooManyRequests, false},
		{"418", http.StatusTeapot, false},
		{"429 with Redis", http.StatusTooManyRequests, true},
		{"418 with Redis", http.StatusTeapot, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.withRedis)
			var logs testutil.LogBuffer
			srv := w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken, Logger: logs.Logger()})
			w.upstream.Set(spotPath, fetchtest.Response{
				Status: tt.status,
				Header: http.Header{"Retry-After": {"120"}},
				Body:   []byte(`{"code":-1003,"msg":"Way too many requests; IP banned until 1766563000000."}`),
			})
			if resp, body := srv.get(spotPath, nil); resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("GET %s against a %d = %d %s, want 503", spotPath, tt.status, resp.StatusCode, body)
			}
			if n := w.upstream.Requests(spotPath); n != 1 {
				t.Fatalf("upstream requests = %d, want 1", n)
			}
			for _, advance := range []time.Duration{0, time.Minute} {
				w.clock.Advance(advance) // past the admin rate limit too
				resp, body := srv.post("/admin/refresh/spot", withToken)
				what := "POST /admin/refresh/spot " + advance.String() + " into the backoff"
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("%s = %d %s, want 503", what, resp.StatusCode, body)
				}
				want := int((120*time.Second - advance) / time.Second)
				if got := retryAfter(t, what, resp); got > want || got < want-10 {
					t.Errorf("%s Retry-After = %d, want about %d", what, got, want)
				}
				if code, msg := binanceError(t, what, resp, body); code >= 0 || msg == "" {
					t.Errorf("%s = {%d %q}, want a negative code and a message", what, code, msg)
				}
				if n := w.upstream.Requests(spotPath); n != 1 {
					t.Errorf("%s: upstream requests = %d, want 1 (none during the backoff)", what, n)
				}
			}
			// Expected, not a failure: the refusals are warnings; the one
			// error is the GET that nothing could answer.
			if n := logs.Count(t, "level", "WARN", "msg", "request refused during a backoff", "path", "/admin/refresh/spot"); n != 2 {
				t.Errorf("warnings of the refused refreshes = %d, want 2:\n%s", n, logs.String())
			}
			if n := logs.Count(t, "level", "ERROR"); n != 1 {
				t.Errorf("error records = %d, want 1 (the GET):\n%s", n, logs.String())
			}
			if tt.withRedis {
				return // the backoff shared in Redis runs on Redis' clock, not the test's
			}
			w.clock.Advance(61 * time.Second)
			w.upstream.Set(spotPath, fetchtest.Response{Body: fixtures.Read(t, "binance/spot_exchangeinfo.json")})
			resp, body := srv.post("/admin/refresh/spot", withToken)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST /admin/refresh/spot after the backoff = %d %s, want 200", resp.StatusCode, body)
			}
			if n := w.upstream.Requests(spotPath); n != 2 {
				t.Errorf("upstream requests after the backoff = %d, want 2", n)
			}
		})
	}
}

type invalidateAnswer struct {
	Market    string `json:"market"`
	L1Dropped bool   `json:"l1_dropped"`
	L2Deleted bool   `json:"l2_deleted"`
}

func TestAdmin_Invalidate(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, true)
	rdb := w.redis.Client(t)
	// No limit between two admin actions here: TestAdmin_InvalidateSharesTheLimit has it.
	srv := w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken, AdminRefreshEvery: time.Nanosecond})
	exists := func(key string) bool {
		t.Helper()
		n, err := rdb.Exists(ctx, key).Result()
		if err != nil {
			t.Fatalf("redis EXISTS %s: %v", key, err)
		}
		return n == 1
	}
	invalidate := func(target string, want invalidateAnswer) {
		t.Helper()
		resp, body := srv.post(target, withToken)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s = %d %s, want 200", target, resp.StatusCode, body)
		}
		var got invalidateAnswer
		decodeStrict(t, "POST "+target, body, &got)
		if got != want {
			t.Errorf("POST %s = %+v, want %+v", target, got, want)
		}
	}
	xcache := func(path, want string) {
		t.Helper()
		if resp, body := srv.get(path, nil); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != want {
			t.Errorf("GET %s = %d %s %.80s, want 200 %s", path, resp.StatusCode, resp.Header.Get("X-Cache"), body, want)
		}
	}
	xcache(spotPath, "MISS")
	xcache(usdmPath, "MISS")

	// L1 only: the next request reads Redis.
	invalidate("/admin/invalidate/spot", invalidateAnswer{Market: "spot", L1Dropped: true})
	invalidate("/admin/invalidate/spot?l2=false", invalidateAnswer{Market: "spot", L1Dropped: true})
	if !exists("symcache:{spot}:current") {
		t.Error("redis spot current gone after an L1-only invalidate, want kept")
	}
	xcache(spotPath, "HIT-L2")
	xcache(spotPath, "HIT-L1")
	if n := w.upstream.Requests(spotPath); n != 1 {
		t.Errorf("upstream requests = %d, want 1", n)
	}

	// With l2=true: current goes, last_good stays; the next request asks Binance.
	invalidate("/admin/invalidate/spot?l2=true", invalidateAnswer{Market: "spot", L1Dropped: true, L2Deleted: true})
	if exists("symcache:{spot}:current") {
		t.Error("redis spot current still there after invalidate?l2=true, want deleted")
	}
	for _, key := range []string{"symcache:{spot}:last_good", "symcache:{usdm}:current", "symcache:{usdm}:last_good"} {
		if !exists(key) {
			t.Errorf("redis %s gone after invalidating spot, want kept", key)
		}
	}
	xcache(spotPath, "MISS")
	if n := w.upstream.Requests(spotPath); n != 2 {
		t.Errorf("upstream requests = %d, want 2", n)
	}
	if !exists("symcache:{spot}:current") {
		t.Error("redis spot current not written again by the next fetch")
	}
	xcache(usdmPath, "HIT-L1") // untouched

	resp, body := srv.post("/admin/invalidate/spot?l2=maybe", withToken)
	if code, _ := binanceError(t, "/admin/invalidate/spot?l2=maybe", resp, body); resp.StatusCode != http.StatusBadRequest || code != -1130 {
		t.Errorf("POST /admin/invalidate/spot?l2=maybe = %d %s, want 400 with code -1130", resp.StatusCode, body)
	}
}

// An invalidation may make the next request ask Binance: it shares the
// per-market limit of admin refreshes, so that no sequence of admin calls
// and public requests asks Binance more than once per AdminRefreshEvery.
func TestAdmin_InvalidateSharesTheLimit(t *testing.T) {
	w := newWorld(t, true)
	srv := w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken, AdminRefreshEvery: time.Minute})
	srv.get(spotPath, nil)
	if resp, body := srv.post("/admin/refresh/spot", withToken); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /admin/refresh/spot = %d %s, want 200", resp.StatusCode, body)
	}
	for range 3 {
		resp, body := srv.post("/admin/invalidate/spot?l2=true", withToken)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("POST /admin/invalidate/spot?l2=true right after a refresh = %d %s, want 429 with Retry-After", resp.StatusCode, body)
		}
		if resp, _ := srv.get(spotPath, nil); resp.Header.Get("X-Cache") != "HIT-L1" {
			t.Errorf("GET %s after a refused invalidation = %s, want HIT-L1", spotPath, resp.Header.Get("X-Cache"))
		}
	}
	if n := w.upstream.Requests(spotPath); n != 2 {
		t.Errorf("upstream requests = %d, want 2 (the first GET and the refresh)", n)
	}
	// The usdm slot is its own.
	if resp, body := srv.post("/admin/invalidate/usdm?l2=true", withToken); resp.StatusCode != http.StatusOK {
		t.Errorf("POST /admin/invalidate/usdm?l2=true = %d %s, want 200", resp.StatusCode, body)
	}
}

func TestAdmin_Invalidate_WithoutRedis(t *testing.T) {
	w := newWorld(t, false)
	srv := w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken})
	srv.get(spotPath, nil)
	resp, body := srv.post("/admin/invalidate/spot?l2=true", withToken)
	var got invalidateAnswer
	decodeStrict(t, "POST /admin/invalidate/spot?l2=true", body, &got)
	if want := (invalidateAnswer{Market: "spot", L1Dropped: true}); resp.StatusCode != http.StatusOK || got != want {
		t.Errorf("POST /admin/invalidate/spot?l2=true without Redis = %d %+v, want 200 %+v", resp.StatusCode, got, want)
	}
	if resp, _ := srv.get(spotPath, nil); resp.Header.Get("X-Cache") != "MISS" {
		t.Errorf("GET %s after invalidate: X-Cache %s, want MISS", spotPath, resp.Header.Get("X-Cache"))
	}
	if n := w.upstream.Requests(spotPath); n != 2 {
		t.Errorf("upstream requests = %d, want 2", n)
	}
}

func TestAdmin_UnknownMarket(t *testing.T) {
	w := newWorld(t, false)
	srv := w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken}) // spot and usdm
	for _, target := range []string{
		"/admin/refresh/nosuch", "/admin/invalidate/nosuch", "/admin/invalidate/nosuch?l2=true",
		"/admin/refresh/coinm", "/admin/invalidate/coinm", // known, not served here
	} {
		resp, body := srv.post(target, withToken)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s = %d %s, want 404", target, resp.StatusCode, body)
			continue
		}
		if code, msg := binanceError(t, target, resp, body); code >= 0 || msg == "" {
			t.Errorf("POST %s = {%d %q}, want a negative code and a message", target, code, msg)
		}
	}
	if resp, _ := srv.get("/admin/nope", withToken); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /admin/nope with the token = %d, want 404", resp.StatusCode)
	}
	if n := w.upstream.Requests(coinmPath); n != 0 {
		t.Errorf("upstream requests for coinm = %d, want 0", n)
	}
	// The market names are case-insensitive, as elsewhere.
	if resp, body := srv.post("/admin/refresh/SPOT", withToken); resp.StatusCode != http.StatusOK {
		t.Errorf("POST /admin/refresh/SPOT = %d %s, want 200", resp.StatusCode, body)
	}
}

type statusAnswer struct {
	Process struct {
		StartedAt     time.Time `json:"started_at"`
		UptimeSeconds *float64  `json:"uptime_seconds"`
		PID           int       `json:"pid"`
		GoVersion     string    `json:"go_version"`
		Version       string    `json:"version"`
	} `json:"process"`
	Admin struct {
		RefreshEverySeconds float64 `json:"refresh_every_seconds"`
	} `json:"admin"`
	Tiers *struct {
		L1Bytes   *int64           `json:"l1_bytes"`
		L1Dropped *uint64          `json:"l1_dropped_sets"`
		L2Errors  map[string]int64 `json:"l2_errors"`
	} `json:"tiers"`
	Markets []struct {
		Market         string     `json:"market"`
		State          string     `json:"state"`
		Ready          bool       `json:"ready"`
		FetchedAt      time.Time  `json:"fetched_at"`
		Age            *float64   `json:"age_seconds"`
		ETag           string     `json:"etag"`
		Symbols        int        `json:"symbols"`
		Reason         string     `json:"reason"`
		LastError      string     `json:"last_error"`
		AdminRefreshAt *time.Time `json:"admin_refresh_at"`
		Counters       struct {
			L1Hits        uint64            `json:"l1_hits"`
			L1Misses      uint64            `json:"l1_misses"`
			L2Hits        uint64            `json:"l2_hits"`
			L2Misses      uint64            `json:"l2_misses"`
			L2Errors      uint64            `json:"l2_errors"`
			Fetches       map[string]uint64 `json:"fetches"`
			Stale         uint64            `json:"stale"`
			StaleByReason map[string]uint64 `json:"stale_by_reason"`
			Unavailable   uint64            `json:"unavailable"`
			SharedWaits   uint64            `json:"shared_waits"`
			LocksAcquired *uint64           `json:"locks_acquired"`
			LockWaits     uint64            `json:"lock_waits"`
			LockErrors    uint64            `json:"lock_errors"`
			LocksLost     uint64            `json:"locks_lost"`
			Adopted       uint64            `json:"adopted"`
			FutureDated   uint64            `json:"future_dated"`
			DiskErrors    uint64            `json:"disk_errors"`
			Changes       map[string]uint64 `json:"changes"`
		} `json:"counters"`
		Upstream *struct {
			UsedWeight   *int64    `json:"used_weight_1m"`
			UsedWeightAt time.Time `json:"used_weight_at"`
			Requests     []struct {
				BaseURL string `json:"base_url"`
				Code    string `json:"code"`
				N       uint64 `json:"n"`
			} `json:"requests"`
		} `json:"upstream"`
	} `json:"markets"`
}

func TestAdmin_Status(t *testing.T) {
	w := newWorld(t, true)
	srv := w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken, AdminRefreshEvery: time.Minute})
	w.upstream.Set(spotPath, fetchtest.Response{
		Body:   fixtures.Read(t, "binance/spot_exchangeinfo.json"),
		Header: http.Header{"X-Mbx-Used-Weight-1m": {"42"}},
	})
	srv.get(spotPath, nil) // a miss
	srv.get(spotPath, nil) // a hit
	w.upstream.Set(usdmPath, fetchtest.Response{Status: http.StatusServiceUnavailable, Body: []byte("<html>down</html>")})
	srv.get(usdmPath, nil) // nothing to serve
	// The admin refresh gets an answer with one change: BTCUSDT's tick size.
	spotBody := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	const tick = `"tickSize":"0.01000000"`
	at := bytes.Index(spotBody, []byte(`"symbol":"BTCUSDT"`))
	i := bytes.Index(spotBody[max(at, 0):], []byte(tick))
	if at < 0 || i < 0 {
		t.Fatal("no BTCUSDT tickSize in the spot recording")
	}
	at += i
	w.upstream.Set(spotPath, fetchtest.Response{
		Body:   slices.Concat(spotBody[:at], []byte(`"tickSize":"0.10000000"`), spotBody[at+len(tick):]),
		Header: http.Header{"X-Mbx-Used-Weight-1m": {"42"}},
	})
	_, refresh := srv.post("/admin/refresh/spot", withToken)
	var refreshed struct {
		ETag string `json:"etag"`
	}
	if err := json.Unmarshal(refresh, &refreshed); err != nil || refreshed.ETag == "" {
		t.Fatalf("POST /admin/refresh/spot = %s, want the snapshot's ETag", refresh)
	}
	etag := refreshed.ETag

	resp, body := srv.get("/admin/status", withToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/status = %d %s, want 200", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("GET /admin/status Cache-Control = %q, want no-store", got)
	}
	var st statusAnswer
	decodeStrict(t, "GET /admin/status", body, &st)

	p := st.Process
	if p.StartedAt.IsZero() || p.UptimeSeconds == nil || *p.UptimeSeconds < 0 || p.PID != os.Getpid() || p.GoVersion != runtime.Version() || p.Version != version.Version {
		t.Errorf("GET /admin/status process = %+v, want a start time, an uptime, pid %d, %s and version %q (as symcache_build_info)", p, os.Getpid(), runtime.Version(), version.Version)
	}
	if st.Admin.RefreshEverySeconds != 60 {
		t.Errorf("GET /admin/status admin.refresh_every_seconds = %v, want 60", st.Admin.RefreshEverySeconds)
	}
	if st.Tiers == nil || st.Tiers.L1Bytes == nil || *st.Tiers.L1Bytes < 3733982 || st.Tiers.L1Dropped == nil || *st.Tiers.L1Dropped != 0 {
		t.Errorf("GET /admin/status tiers = %+v, want l1_bytes of at least the spot body and no dropped set", st.Tiers)
	}
	if len(st.Markets) != 2 || st.Markets[0].Market != "spot" || st.Markets[1].Market != "usdm" {
		t.Fatalf("GET /admin/status markets = %+v, want spot then usdm", st.Markets)
	}

	spot := st.Markets[0]
	if spot.State != "fresh" || !spot.Ready || spot.ETag != etag || spot.Symbols != 2292 || spot.FetchedAt.IsZero() || spot.Age == nil || spot.LastError != "" {
		t.Errorf("GET /admin/status spot = %+v, want fresh, ready, ETag %s, 2292 symbols, an age, no error", spot, etag)
	}
	c := spot.Counters
	if c.L1Hits != 1 || c.L1Misses != 1 || c.L2Misses != 1 || c.Fetches["ok"] != 2 || c.LocksAcquired == nil || *c.LocksAcquired != 2 || c.Stale != 0 {
		t.Errorf("GET /admin/status spot counters = %+v, want 1 L1 hit, 1 L1 miss, 1 L2 miss, 2 ok fetches, 2 locks acquired, no stale", c)
	}
	// The refresh recorded one change; the first snapshot started the log.
	wantChanges := map[string]uint64{"listed": 0, "delisted": 0, "status": 0, "permissions": 0, "filter": 1, "field": 0, "rate_limits": 0}
	if !maps.Equal(c.Changes, wantChanges) {
		t.Errorf("GET /admin/status spot counters.changes = %v, want %v", c.Changes, wantChanges)
	}
	if spot.AdminRefreshAt == nil || spot.AdminRefreshAt.Before(w.clock.Now().Add(50*time.Second)) {
		t.Errorf("GET /admin/status spot admin_refresh_at = %v, want about a minute from now", spot.AdminRefreshAt)
	}
	if u := spot.Upstream; u == nil || u.UsedWeight == nil || *u.UsedWeight != 42 || u.UsedWeightAt.IsZero() || len(u.Requests) != 1 || u.Requests[0].Code != "200" || u.Requests[0].N != 2 {
		t.Errorf("GET /admin/status spot upstream = %+v, want used weight 42 and 2 requests answered 200", u)
	}

	usdm := st.Markets[1]
	if usdm.State != "empty" || usdm.Ready || usdm.LastError == "" || usdm.Counters.Fetches["status"] != 1 || usdm.Counters.Unavailable != 1 || usdm.AdminRefreshAt != nil {
		t.Errorf("GET /admin/status usdm = %+v, want empty, not ready, the last error, 1 status fetch, 1 unavailable, no admin refresh", usdm)
	}
	wantChanges["filter"] = 0
	if !maps.Equal(usdm.Counters.Changes, wantChanges) {
		t.Errorf("GET /admin/status usdm counters.changes = %v, want every kind at 0: %v", usdm.Counters.Changes, wantChanges)
	}
	// The fake Binance is one host for both markets: the weight is the
	// host's, as Binance counts it per IP.
	if u := usdm.Upstream; u == nil || u.UsedWeight == nil || *u.UsedWeight != 42 || len(u.Requests) != 1 || u.Requests[0].Code != "503" {
		t.Errorf("GET /admin/status usdm upstream = %+v, want the host's used weight 42 and 1 request answered 503", u)
	}
}

func TestNew_Admin(t *testing.T) {
	w := newWorld(t, false)
	if h, err := httpapi.New(httpapi.Config{Cache: w.cache(), AdminToken: adminToken, AdminRefreshEvery: -time.Second}); err == nil || h != nil {
		t.Errorf("New with a negative AdminRefreshEvery = %v, %v, want nil, an error", h, err)
	}
	if h, err := httpapi.New(httpapi.Config{Cache: w.cache(), AdminToken: adminToken}); err != nil || h == nil {
		t.Errorf("New with AdminToken = %v, %v, want a handler, nil", h, err)
	}
}

// TestAdmin_MethodNotAllowed checks that, with the token, a method an admin
// path lacks is a 405 naming the allowed ones, as on every other path; an
// unknown admin path stays a 404.
func TestAdmin_MethodNotAllowed(t *testing.T) {
	w := newWorld(t, false)
	srv := w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken})
	for _, tt := range []struct{ method, target, allow string }{
		{http.MethodGet, "/admin/refresh/spot", "POST"},
		{http.MethodPut, "/admin/invalidate/usdm", "POST"},
		{http.MethodPost, "/admin/status", "GET, HEAD"},
	} {
		resp, body := srv.do(tt.method, tt.target, withToken)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tt.allow || !strings.Contains(string(body), `"code"`) {
			t.Errorf("%s %s = %d, Allow %q, %s; want 405, Allow %q and a Binance-shaped body", tt.method, tt.target, resp.StatusCode, resp.Header.Get("Allow"), body, tt.allow)
		}
	}
	for _, target := range []string{"/admin/nope", "/admin/refresh/spot/x", "/admin/refresh/"} {
		if resp, _ := srv.do(http.MethodPost, target, withToken); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s = %d, want 404", target, resp.StatusCode)
		}
	}
}

// POST /admin/refresh/{market}?force=true ends the backoff a 418 started,
// then fetches; without force the same request answers 503.
func TestAdmin_Refresh_Force(t *testing.T) {
	w := newWorld(t, true)
	srv := w.adminServer(httpapi.Config{Cache: w.cache(), AdminToken: adminToken, AdminRefreshEvery: time.Nanosecond})
	w.upstream.Set(spotPath, fetchtest.Response{Status: http.StatusTeapot, Header: http.Header{"Retry-After": {"600"}}})
	if resp, body := srv.get(spotPath, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET %s against a 418 = %d %s, want 503", spotPath, resp.StatusCode, body)
	}
	w.upstream.Set(spotPath, fetchtest.Response{Body: fixtures.Read(t, "binance/spot_exchangeinfo.json")})
	if resp, body := srv.post("/admin/refresh/spot", withToken); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST /admin/refresh/spot during the ban = %d %s, want 503", resp.StatusCode, body)
	}
	resp, body := srv.post("/admin/refresh/spot?force=true", withToken)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"source":"MISS"`)) {
		t.Fatalf("POST /admin/refresh/spot?force=true = %d %s, want 200 MISS", resp.StatusCode, body)
	}
	if resp, _ := srv.get(spotPath, nil); resp.Header.Get("X-Cache") != "HIT-L1" {
		t.Errorf("GET %s after the forced refresh = %s, want HIT-L1", spotPath, resp.Header.Get("X-Cache"))
	}
	if n := w.upstream.Requests(spotPath); n != 2 {
		t.Errorf("upstream requests = %d, want 2 (the 418 and the forced refresh)", n)
	}
}
