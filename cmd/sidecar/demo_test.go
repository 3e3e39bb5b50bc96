package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/symcache/symcache/demo"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
)

// demoNotice is the text every demo answer carries, for markets.
func demoNotice(t *testing.T, markets ...exchangeinfo.Market) string {
	t.Helper()
	recs, err := demo.Recordings(markets...)
	if err != nil {
		t.Fatal(err)
	}
	return demo.Notice(recs)
}

// readyz is what /readyz answers, in part.
type readyz struct {
	Ready   bool
	Demo    string
	Markets []struct {
		Market  string
		State   string
		Symbols int
	}
}

// readyz waits until /readyz answers 200 (the first fetches are done), 10 s
// at most, and returns its last answer.
func (s *sidecar) readyz(t *testing.T) (int, readyz) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, body := s.get(t, "/readyz")
		var r readyz
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("GET /readyz: %v: %s", err, body)
		}
		if resp.StatusCode == http.StatusOK || time.Now().After(deadline) {
			return resp.StatusCode, r
		}
	}
}

// TestRun_Demo: SYMCACHE_DEMO=1 serves the three recorded answers byte for
// byte, with no Binance and no Redis; every answer carries the Warning,
// /readyz the demo member, and the log's first line says so too.
func TestRun_Demo(t *testing.T) {
	s := startSidecar(t, map[string]string{"SYMCACHE_DEMO": "1"})
	notice := demoNotice(t)
	if want := "demo data: Binance answers recorded 2023-09-08 (spot), 2025-12-24 (usdm), 2024-02-12 (coinm), not live"; notice != want {
		t.Errorf("notice = %q, want %q", notice, want)
	}
	warning := `199 symcache "` + notice + `"`

	code, r := s.readyz(t)
	var markets []string
	for _, m := range r.Markets {
		markets = append(markets, m.Market)
		if m.State != "fresh" || m.Symbols == 0 {
			t.Errorf("/readyz market %s: state %q, %d symbols; want fresh", m.Market, m.State, m.Symbols)
		}
	}
	if code != http.StatusOK || !r.Ready || r.Demo != notice || !slices.Equal(markets, []string{"spot", "usdm", "coinm"}) {
		t.Errorf("/readyz = %d %+v; want 200, ready, the three markets and demo %q", code, r, notice)
	}

	for _, m := range exchangeinfo.Markets() {
		resp, body := s.get(t, m.Path())
		want := fixtures.Read(t, "binance/"+string(m)+"_exchangeinfo.json")
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			t.Errorf("GET %s = %d, %d bytes; want 200 and the recorded %d bytes", m.Path(), resp.StatusCode, len(body), len(want))
		}
		if got := resp.Header.Get("Warning"); got != warning {
			t.Errorf("GET %s: Warning %q, want %q", m.Path(), got, warning)
		}
	}

	// Nothing is forwarded: there is no Binance to send an order to.
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+"/api/v3/order?symbol=BTCUSDT", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Warning") != warning {
		t.Errorf("POST /api/v3/order = %d, Warning %q; want 404 and the Warning", resp.StatusCode, resp.Header.Get("Warning"))
	}

	// Every request the cache sent went to the replay.
	_, metrics := s.get(t, "/metrics")
	upstream := regexp.MustCompile(`(?m)^symcache_upstream_requests_total\{(.*)\} \d+$`).FindAllSubmatch(metrics, -1)
	if len(upstream) != 3 {
		t.Errorf("symcache_upstream_requests_total has %d series, want one per market:\n%s", len(upstream), metrics)
	}
	for _, m := range upstream {
		if !bytes.Contains(m[1], []byte(`base_url="`+demo.BaseURL+`"`)) || !bytes.Contains(m[1], []byte(`code="200"`)) {
			t.Errorf("upstream requests %s: want base_url %s and code 200 only", m[1], demo.BaseURL)
		}
	}

	s.stop(t)
	recs := s.out.Records(t)
	if len(recs) == 0 || recs[0]["level"] != "WARN" || !strings.HasPrefix(recs[0]["msg"].(string), "demo mode: ") || recs[0]["demo"] != notice {
		t.Errorf("the log's first line is %v, want the demo warning with %q:\n%s", recs[0], notice, s.out.String())
	}
	if strings.Contains(s.out.String(), `"level":"ERROR"`) {
		t.Errorf("errors logged:\n%s", s.out.String())
	}
}

// TestRun_DemoFlag: -demo does the same as SYMCACHE_DEMO=1, and
// SYMCACHE_MARKETS still chooses the markets, which the text then names.
func TestRun_DemoFlag(t *testing.T) {
	s := startSidecarArgs(t, []string{"-demo", "-markets", "usdm"}, map[string]string{"SYMCACHE_DEMO": "0"})
	notice := demoNotice(t, exchangeinfo.USDM)
	code, r := s.readyz(t)
	if code != http.StatusOK || r.Demo != notice || len(r.Markets) != 1 || r.Markets[0].Market != "usdm" || r.Markets[0].Symbols != 660 {
		t.Errorf("/readyz = %d %+v; want 200, usdm alone with its 660 symbols, demo %q", code, r, notice)
	}
	resp, body := s.get(t, exchangeinfo.USDM.Path())
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, fixtures.Read(t, "binance/usdm_exchangeinfo.json")) || resp.Header.Get("Warning") != `199 symcache "`+notice+`"` {
		t.Errorf("GET %s = %d, %d bytes, Warning %q; want 200, the recording, the Warning", exchangeinfo.USDM.Path(), resp.StatusCode, len(body), resp.Header.Get("Warning"))
	}
	if resp, _ := s.get(t, exchangeinfo.Spot.Path()); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s = %d, want 404: spot is not served", exchangeinfo.Spot.Path(), resp.StatusCode)
	}
	s.stop(t)
	if recs := s.out.Records(t); len(recs) == 0 || recs[0]["level"] != "WARN" || recs[0]["demo"] != notice {
		t.Errorf("the log's first line is not the demo warning:\n%s", s.out.String())
	}
}

// TestParseConfig_Demo: in demo mode every market's base URL is the
// replay's and the replay is the transport, so that nothing can reach a
// Binance host; nothing is forwarded; Redis keys have a prefix of their own
// unless one is given.
func TestParseConfig_Demo(t *testing.T) {
	for _, tt := range []struct {
		name   string
		args   []string
		env    map[string]string
		prefix string
	}{
		{"variable", nil, map[string]string{"SYMCACHE_DEMO": "1"}, "symcache-demo:"},
		{"true", nil, map[string]string{"SYMCACHE_DEMO": "true"}, "symcache-demo:"},
		{"flag", []string{"-demo"}, nil, "symcache-demo:"},
		{"flag over variable", []string{"-demo=true"}, map[string]string{"SYMCACHE_DEMO": "0"}, "symcache-demo:"},
		{"redis and its prefix", nil, map[string]string{"SYMCACHE_DEMO": "1", "REDIS_URL": "redis://127.0.0.1:6379/0", "SYMCACHE_KEY_PREFIX": "mine:", "SYMCACHE_FORWARD": "off"}, "mine:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.args, envFunc(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.demo || cfg.forward || cfg.transport != demo.Transport() || cfg.keyPrefix != tt.prefix {
				t.Errorf("demo %t, forward %t, transport %T, prefix %q; want true, false, the replay, %q", cfg.demo, cfg.forward, cfg.transport, cfg.keyPrefix, tt.prefix)
			}
			if !slices.Equal(cfg.markets, exchangeinfo.Markets()) {
				t.Errorf("markets = %v, want all three", cfg.markets)
			}
			for _, m := range exchangeinfo.Markets() {
				if got := cfg.baseURLs[m]; len(got) != 1 || got[0] != demo.BaseURL {
					t.Errorf("%s base URLs = %v, want the replay's only", m, got)
				}
			}
			if tt.env["REDIS_URL"] != "" && cfg.redisOptions == nil {
				t.Error("REDIS_URL ignored in demo mode")
			}
		})
	}
	for _, off := range []string{"", "0", "false"} {
		cfg, err := parseConfig(nil, envFunc(map[string]string{"SYMCACHE_DEMO": off, "BINANCE_SPOT_URL": "http://127.0.0.1:9090"}), io.Discard)
		if err != nil || cfg.demo || cfg.transport != nil || cfg.keyPrefix != "symcache:" {
			t.Errorf("SYMCACHE_DEMO=%q: demo %t, transport %v, prefix %q, %v; want off", off, cfg.demo, cfg.transport, cfg.keyPrefix, err)
		}
	}
}

// TestSidecar_DemoSendsNothingOut runs the binary in demo mode with every
// proxy variable pointing at a trap: an HTTP client of the process that
// asked any host but 127.0.0.1 would go through it. The trap must see
// nothing while the refresher fetches every market again and again.
func TestSidecar_DemoSendsNothingOut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request left the demo sidecar: %s %s (Host %s)", r.Method, r.RequestURI, r.Host)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer trap.Close()
	addr := testutil.FreeAddr(t)
	cmd := exec.Command(goBuild(t), "-demo")
	var env []string
	for _, kv := range os.Environ() { // none of the settings the test process may have
		if !strings.HasPrefix(kv, "SYMCACHE_") && !strings.HasPrefix(kv, "BINANCE_") && !strings.HasPrefix(kv, "REDIS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "SYMCACHE_ADDR="+addr, "SYMCACHE_REFRESH_INTERVAL=200ms",
		"HTTP_PROXY="+trap.URL, "HTTPS_PROXY="+trap.URL, "http_proxy="+trap.URL, "https_proxy="+trap.URL, "NO_PROXY=", "no_proxy=")
	exited, logs := startBinary(t, cmd, addr)
	s := &sidecar{addr: addr}
	// A few refreshes of every market.
	time.Sleep(time.Second)
	if resp, body := s.get(t, "/api/v3/exchangeInfo"); resp.StatusCode != http.StatusOK || !bytes.Equal(body, fixtures.Read(t, "binance/spot_exchangeinfo.json")) {
		t.Errorf("GET /api/v3/exchangeInfo = %d, %d bytes; want 200 and the recording", resp.StatusCode, len(body))
	}
	_, metrics := s.get(t, "/metrics")
	for _, m := range exchangeinfo.Markets() {
		if !regexp.MustCompile(`symcache_upstream_requests_total\{base_url="` + regexp.QuoteMeta(demo.BaseURL) + `",code="200",market="` + string(m) + `"\} ([2-9]|\d\d+)\n`).Match(metrics) {
			t.Errorf("%s: fewer than 2 requests to the replay, or none:\n%s", m, metrics)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit = %v, want status 0:\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after SIGTERM:\n%s", logs.String())
	}
	first, _ := bufio.NewReader(strings.NewReader(logs.String())).ReadString('\n')
	var rec map[string]any
	if err := json.Unmarshal([]byte(first), &rec); err != nil || rec["level"] != "WARN" || rec["demo"] != demoNotice(t) {
		t.Errorf("first line of the log = %s, want the demo warning", first)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("errors logged:\n%s", logs.String())
	}
}

// TestRun_StatusPage: a demo sidecar's status page shows its markets and
// says it is demo data; SYMCACHE_UI=off turns it off.
func TestRun_StatusPage(t *testing.T) {
	s := startSidecar(t, map[string]string{"SYMCACHE_DEMO": "1"})
	testutil.WaitFor(t, 10*time.Second, "the demo sidecar ready", func() bool {
		resp, _ := s.get(t, "/readyz")
		return resp.StatusCode == http.StatusOK
	})
	resp, body := s.get(t, "/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`id="demo"`, "demo data: Binance answers recorded", `<tr id="market-spot">`, `<tr id="market-usdm">`, `<tr id="market-coinm">`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("GET / lacks %q", want)
		}
	}
	off := startSidecar(t, map[string]string{"SYMCACHE_DEMO": "1", "SYMCACHE_UI": "off"})
	if resp, _ := off.get(t, "/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / with SYMCACHE_UI=off = %d, want 404", resp.StatusCode)
	}
}
