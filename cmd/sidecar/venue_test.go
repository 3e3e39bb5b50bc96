package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
)

var (
	spot, usdm, coinm = exchangeinfo.Spot, exchangeinfo.USDM, exchangeinfo.COINM
)

// TestParseConfig_Venue: each venue's base URLs, the markets served by
// default, and the explicit URLs that win over the venue's.
func TestParseConfig_Venue(t *testing.T) {
	const local = "http://127.0.0.1:9090"
	binance := map[exchangeinfo.Market][]string{spot: {"https://api.binance.com"}, usdm: {"https://fapi.binance.com"}, coinm: {"https://dapi.binance.com"}}
	testnet := map[exchangeinfo.Market][]string{spot: {"https://testnet.binance.vision"}, usdm: {"https://testnet.binancefuture.com"}, coinm: {"https://testnet.binancefuture.com"}}
	us := map[exchangeinfo.Market][]string{spot: {"https://api.binance.us"}}
	with := func(base map[exchangeinfo.Market][]string, m exchangeinfo.Market, urls ...string) map[exchangeinfo.Market][]string {
		out := maps.Clone(base)
		out[m] = urls
		return out
	}
	for _, tt := range []struct {
		name    string
		args    []string
		env     map[string]string
		venue   string
		urls    map[exchangeinfo.Market][]string // a market absent: none
		markets []exchangeinfo.Market
	}{
		{"default", nil, nil, "binance", binance, []exchangeinfo.Market{spot, usdm}},
		{"binance", nil, map[string]string{"BINANCE_VENUE": "binance"}, "binance", binance, []exchangeinfo.Market{spot, usdm}},
		{"testnet", nil, map[string]string{"BINANCE_VENUE": "testnet"}, "testnet", testnet, []exchangeinfo.Market{spot, usdm}},
		{"testnet, three markets", nil, map[string]string{"BINANCE_VENUE": "testnet", "SYMCACHE_MARKETS": "spot,usdm,coinm"}, "testnet", testnet, []exchangeinfo.Market{spot, usdm, coinm}},
		{"binance-us: spot alone by default", nil, map[string]string{"BINANCE_VENUE": "binance-us"}, "binance-us", us, []exchangeinfo.Market{spot}},
		{"binance-us, spot asked", nil, map[string]string{"BINANCE_VENUE": "binance-us", "SYMCACHE_MARKETS": "spot"}, "binance-us", us, []exchangeinfo.Market{spot}},
		{"flag over variable", []string{"-venue", "testnet"}, map[string]string{"BINANCE_VENUE": "binance-us"}, "testnet", testnet, []exchangeinfo.Market{spot, usdm}},

		// An explicit URL wins over the venue's, from the variable or the flag.
		{"testnet, spot URL", nil, map[string]string{"BINANCE_VENUE": "testnet", "BINANCE_SPOT_URL": local}, "testnet", with(testnet, spot, local), []exchangeinfo.Market{spot, usdm}},
		{"testnet, spot URL flag", []string{"-binance-spot-url", local + ", " + local + "/b"}, map[string]string{"BINANCE_VENUE": "testnet"}, "testnet", with(testnet, spot, local, local+"/b"), []exchangeinfo.Market{spot, usdm}},
		{"binance, coinm URL", nil, map[string]string{"BINANCE_COINM_URL": local}, "binance", with(binance, coinm, local), []exchangeinfo.Market{spot, usdm}},
		// A market the venue lacks, given a URL of its own: served by
		// default (usdm) or when asked (coinm).
		{"binance-us, usdm URL", nil, map[string]string{"BINANCE_VENUE": "binance-us", "BINANCE_USDM_URL": local}, "binance-us", with(us, usdm, local), []exchangeinfo.Market{spot, usdm}},
		{"binance-us, coinm URL flag", []string{"-venue", "binance-us", "-binance-coinm-url", local, "-markets", "coinm,spot"}, nil, "binance-us", with(us, coinm, local), []exchangeinfo.Market{coinm, spot}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.args, envFunc(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.venue != tt.venue || cfg.demo || cfg.transport != nil {
				t.Errorf("venue %q, demo %t, transport %v; want %q, no demo, no transport", cfg.venue, cfg.demo, cfg.transport, tt.venue)
			}
			for _, m := range exchangeinfo.Markets() {
				if got := cfg.baseURLs[m]; !slices.Equal(got, tt.urls[m]) {
					t.Errorf("%s base URLs = %q, want %q", m, got, tt.urls[m])
				}
			}
			if !slices.Equal(cfg.markets, tt.markets) {
				t.Errorf("markets = %v, want %v", cfg.markets, tt.markets)
			}
		})
	}
}

// TestParseConfig_VenueErrors: an unknown venue names the known ones; a
// market the venue lacks, asked for without a URL of its own, names the
// venue, the market and both settings.
func TestParseConfig_VenueErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown", nil, map[string]string{"BINANCE_VENUE": "binance-eu"}, `symcache: invalid BINANCE_VENUE: "binance-eu" is not a known venue: want binance, testnet or binance-us`},
		{"empty flag", []string{"-venue", ""}, nil, `symcache: invalid -venue: "" is not a known venue`},
		{"binance-us, usdm", nil, map[string]string{"BINANCE_VENUE": "binance-us", "SYMCACHE_MARKETS": "spot,usdm"}, "symcache: invalid BINANCE_VENUE and SYMCACHE_MARKETS: binance-us has no usdm market: leave it out, or give it a base URL of its own (BINANCE_USDM_URL)"},
		{"binance-us, coinm flag", []string{"-venue", "binance-us", "-markets", "coinm"}, nil, "symcache: invalid -venue and -markets: binance-us has no coinm market: leave it out, or give it a base URL of its own (BINANCE_COINM_URL)"},
		{"binance-us, another market's URL", nil, map[string]string{"BINANCE_VENUE": "binance-us", "BINANCE_COINM_URL": "http://127.0.0.1:9090", "SYMCACHE_MARKETS": "usdm,coinm"}, "binance-us has no usdm market"},
		{"bad URL under a venue", nil, map[string]string{"BINANCE_VENUE": "testnet", "BINANCE_USDM_URL": "testnet.binancefuture.com"}, "symcache: invalid BINANCE_USDM_URL: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, envFunc(tt.env), io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseConfig = %v, want %q", err, tt.want)
			}
		})
	}
	// The error's list is the table's.
	_, err := parseConfig([]string{"-venue", "nowhere"}, envFunc(nil), io.Discard)
	for v := range venues {
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("unknown venue: %v, want it to name %s", err, v)
		}
	}
}

// TestVenues: every venue has spot, over https, with URLs fetch takes;
// binance's are the markets' defaults.
func TestVenues(t *testing.T) {
	for name, v := range venues {
		if _, ok := v[spot]; !ok {
			t.Errorf("%s has no spot URL", name)
		}
		for m, base := range v {
			if u, err := url.Parse(base); err != nil || u.Scheme != "https" || u.Path != "" {
				t.Errorf("%s %s: %q is not an https base URL", name, m, base)
			}
		}
	}
	for _, m := range exchangeinfo.Markets() {
		if venues["binance"][m] != m.DefaultBaseURL() {
			t.Errorf("binance %s = %q, want %q", m, venues["binance"][m], m.DefaultBaseURL())
		}
	}
	if len(venues["binance-us"]) != 1 {
		t.Errorf("binance-us = %v, want spot alone", venues["binance-us"])
	}
}

// fakeVenue is a fake Binance for a venue's own URLs: a TLS server with a
// fetchtest Handler, and a transport that connects to it whatever host a
// request names, checking the server's certificate as example.com's (the
// test certificate's name). Requests keep their URL and Host header, so the
// Handler sees which of the venue's hosts each was for; nothing leaves
// 127.0.0.1.
type fakeVenue struct {
	*fetchtest.Handler
	transport *http.Transport

	mu     sync.Mutex
	dialed []string // the host:port of each connection, as asked
}

func newFakeVenue(t *testing.T) *fakeVenue {
	t.Helper()
	f := &fakeVenue{Handler: fetchtest.NewHandler()}
	srv := httptest.NewTLSServer(f.Handler)
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig.ServerName = "example.com"
	tr.DisableCompression = true // as forward's transport
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		f.mu.Lock()
		f.dialed = append(f.dialed, addr)
		f.mu.Unlock()
		return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}
	t.Cleanup(tr.CloseIdleConnections)
	f.transport = tr
	return f
}

// hosts are the hosts dialed, sorted, each once.
func (f *fakeVenue) hosts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Compact(slices.Sorted(slices.Values(f.dialed)))
}

// hostsOf are the Host headers of the requests received for path.
func (f *fakeVenue) hostsOf(path string) []string {
	var out []string
	for _, r := range f.Received() {
		if r.Path == path {
			out = append(out, r.Host)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(out)))
}

// startVenue runs the sidecar with env, as run does, but with its requests
// to Binance going to fake's server.
func startVenue(t *testing.T, fake *fakeVenue, env map[string]string) *sidecar {
	t.Helper()
	addr := testutil.FreeAddr(t)
	env["SYMCACHE_ADDR"] = addr
	cfg, err := parseConfig(nil, envFunc(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.transport = fake.transport
	return launch(t, addr, func(ctx context.Context, out io.Writer) int {
		log := slog.New(slog.NewJSONHandler(out, nil))
		if err := serve(ctx, cfg, log); err != nil {
			log.Error("sidecar stopped", "err", err)
			return 1
		}
		return 0
	})
}

// TestRun_VenueTestnet: BINANCE_VENUE=testnet fetches spot from
// testnet.binance.vision and USD-M from testnet.binancefuture.com, served
// here by the recorded testnet answer of 2021 (20 symbols) and the USD-M
// recording, and forwards to the same hosts.
func TestRun_VenueTestnet(t *testing.T) {
	fake := newFakeVenue(t)
	testnetSpot := fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")
	fake.Set(spot.Path(), fetchtest.Response{Body: testnetSpot})
	fake.Set(usdm.Path(), fetchtest.Response{Body: fixtures.Read(t, "binance/usdm_exchangeinfo.json")})
	fake.Set("/fapi/v1/order", fetchtest.Response{Body: []byte(`{"orderId":7}`)})
	fake.Set("/api/v3/ping", fetchtest.Response{Body: []byte(`{}`)})
	s := startVenue(t, fake, map[string]string{"BINANCE_VENUE": "testnet", "SYMCACHE_REFRESH_INTERVAL": "1h", "SYMCACHE_TTL": "2h"})

	resp, body := s.get(t, spot.Path())
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, testnetSpot) {
		t.Fatalf("GET %s = %d, %d bytes; want 200 and the recorded testnet answer's %d bytes", spot.Path(), resp.StatusCode, len(body), len(testnetSpot))
	}
	if resp.Header.Get("Warning") != "" {
		t.Errorf("GET %s: Warning %q, want none outside demo mode", spot.Path(), resp.Header.Get("Warning"))
	}
	code, r := s.readyz(t)
	symbols := map[string]int{}
	for _, m := range r.Markets {
		symbols[m.Market] = m.Symbols
	}
	if code != http.StatusOK || r.Demo != "" || !maps.Equal(symbols, map[string]int{"spot": 20, "usdm": 660}) {
		t.Errorf("/readyz = %d %+v; want 200, spot's 20 testnet symbols, usdm's 660, no demo", code, r)
	}
	_, body = s.get(t, "/api/v3/exchangeInfo?symbol=BNBBUSD")
	var one struct{ Symbols []struct{ Symbol string } }
	if err := json.Unmarshal(body, &one); err != nil || len(one.Symbols) != 1 || one.Symbols[0].Symbol != "BNBBUSD" {
		t.Errorf("GET ?symbol=BNBBUSD = %s, want the testnet's BNBBUSD", body)
	}

	// Forwarded: to the venue's hosts too.
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+"/fapi/v1/order?symbol=BTCUSDT", nil)
	fresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	fbody, _ := io.ReadAll(fresp.Body)
	fresp.Body.Close()
	if fresp.StatusCode != http.StatusOK || string(fbody) != `{"orderId":7}` {
		t.Errorf("POST /fapi/v1/order = %d %s, want the fake's 200", fresp.StatusCode, fbody)
	}
	if resp, _ := s.get(t, "/api/v3/ping"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/v3/ping = %d, want 200", resp.StatusCode)
	}

	for path, want := range map[string]string{
		spot.Path():       "testnet.binance.vision",
		"/api/v3/ping":    "testnet.binance.vision",
		usdm.Path():       "testnet.binancefuture.com",
		"/fapi/v1/order":  "testnet.binancefuture.com",
		coinm.Path():      "",
		"/dapi/v1/ping":   "",
		"/sapi/v1/system": "",
	} {
		got := fake.hostsOf(path)
		if want == "" && len(got) != 0 || want != "" && !slices.Equal(got, []string{want}) {
			t.Errorf("requests for %s went to %q, want %q", path, got, want)
		}
	}
	if got, want := fake.hosts(), []string{"testnet.binance.vision:443", "testnet.binancefuture.com:443"}; !slices.Equal(got, want) {
		t.Errorf("connections to %q, want %q only", got, want)
	}
	s.stop(t)
	if !strings.Contains(s.out.String(), `"venue":"testnet"`) {
		t.Errorf("the startup line does not name the venue:\n%s", s.out.String())
	}
}

// TestRun_VenueBinanceUS: binance-us serves spot from api.binance.us, and
// forwards no futures path: Binance.US has none, and Binance's own hosts
// are not a stand-in.
func TestRun_VenueBinanceUS(t *testing.T) {
	fake := newFakeVenue(t)
	fake.Set(spot.Path(), fetchtest.Response{Body: fixtures.Read(t, "binance/spot_exchangeinfo.json")})
	fake.Set("/api/v3/ping", fetchtest.Response{Body: []byte(`{}`)})
	s := startVenue(t, fake, map[string]string{"BINANCE_VENUE": "binance-us", "SYMCACHE_REFRESH_INTERVAL": "1h", "SYMCACHE_TTL": "2h"})

	code, r := s.readyz(t)
	if code != http.StatusOK || len(r.Markets) != 1 || r.Markets[0].Market != "spot" || r.Markets[0].Symbols != 2292 {
		t.Errorf("/readyz = %d %+v; want 200 and spot alone", code, r)
	}
	if resp, _ := s.get(t, "/api/v3/ping"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/v3/ping = %d, want 200 (forwarded)", resp.StatusCode)
	}
	for _, path := range []string{"/fapi/v1/ping", "/dapi/v1/order?symbol=BTCUSD_PERP", "/%66api/v1/ping"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !bytes.Contains(body, []byte(`"code":-1000`)) {
			t.Errorf("POST %s = %d %s, want 404 in Binance's shape", path, resp.StatusCode, body)
		}
		if path == "/fapi/v1/ping" && !bytes.Contains(body, []byte("binance-us has no usdm market")) {
			t.Errorf("POST %s = %s, want the venue named", path, body)
		}
	}
	if got := fake.hosts(); !slices.Equal(got, []string{"api.binance.us:443"}) {
		t.Errorf("connections to %q, want api.binance.us:443 only", got)
	}
	for _, r := range fake.Received() {
		if strings.HasPrefix(r.Path, "/fapi/") || strings.HasPrefix(r.Path, "/dapi/") {
			t.Errorf("%s %s was sent, want no futures path forwarded", r.Method, r.RequestURI)
		}
	}
}

// TestRun_VenueTestnetRecorded: the recorded testnet answer through an
// explicit BINANCE_SPOT_URL, which wins over the venue's; the venue still
// gives USD-M its URL.
func TestRun_VenueTestnetRecorded(t *testing.T) {
	upstream := fetchtest.NewUpstream(t)
	upstream.Set(spot.Path(), fetchtest.Response{Body: fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json"), Gzip: true})
	s := startSidecar(t, map[string]string{"BINANCE_VENUE": "testnet", "BINANCE_SPOT_URL": upstream.URL, "SYMCACHE_MARKETS": "spot"})
	code, r := s.readyz(t)
	if code != http.StatusOK || len(r.Markets) != 1 || r.Markets[0].Symbols != 20 {
		t.Errorf("/readyz = %d %+v; want 200 and spot's 20 testnet symbols", code, r)
	}
	_, body := s.get(t, "/v1/symbols/spot/BNBBUSD")
	if !bytes.Contains(body, []byte(`"BNBBUSD"`)) {
		t.Errorf("GET /v1/symbols/spot/BNBBUSD = %s, want the testnet's symbol", body)
	}
}
