package compat_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/forward"
)

// ccxtVersion is the ccxt that compat/node/package.json pins.
const ccxtVersion = "4.5.84"

// ccxtPrivate are the signed endpoints ccxt's binance calls in loadMarkets
// when it has API keys (fetchCurrencies, and fetchMarkets with the default
// option fetchMargins), with the files under testdata/ that answer them.
var ccxtPrivate = []struct{ path, file string }{
	{"/sapi/v1/capital/config/getall", "sapi_v1_capital_config_getall.json"},
	{"/sapi/v1/margin/allPairs", "sapi_v1_margin_allPairs.json"},
	{"/sapi/v1/margin/isolated/allPairs", "sapi_v1_margin_isolated_allPairs.json"},
}

// ccxtResult is what load_markets.mjs prints.
type ccxtResult struct {
	Markets          int               `json:"markets"`
	MarketsSHA256    string            `json:"markets_sha256"`
	Symbols          []string          `json:"symbols"`
	Currencies       int               `json:"currencies"`
	CurrenciesSHA256 string            `json:"currencies_sha256"`
	URLs             map[string]string `json:"urls"`
}

// TestCCXT_LoadMarkets: ccxt's binance, default options, API keys, every
// URL of urls.api pointed at one base URL: loadMarkets through the sidecar
// gives the same markets and currencies as straight from the fake. The
// exchangeInfo answers come from the sidecar's cache; the signed sapi calls
// are forwarded, and the fake checks their signatures.
func TestCCXT_LoadMarkets(t *testing.T) {
	t.Parallel()
	node := requireNode(t, "ccxt", ccxtVersion)
	key, sec := randomKey(), randomKey()
	f := newFake(t)
	f.SetSecret(sec)
	for _, p := range ccxtPrivate {
		f.Set(p.path, fetchtest.Response{Body: readTestdata(t, p.file), Signed: true})
	}
	sc := startSidecar(t, f, "/readyz")

	n := len(f.Received())
	via := runLoadMarkets(t, node, sc.URL, key, sec)
	viaReqs := f.Received()[n:]
	n = len(f.Received())
	direct := runLoadMarkets(t, node, f.spot.URL, key, sec)
	directReqs := f.Received()[n:]

	if via.Markets == 0 || via.Currencies == 0 {
		t.Errorf("through the sidecar: %d markets, %d currencies; want some of each", via.Markets, via.Currencies)
	}
	if diff := cmp.Diff(direct, via, cmpopts.IgnoreFields(ccxtResult{}, "URLs")); diff != "" {
		t.Errorf("loadMarkets through the sidecar differs from straight from the fake (-fake +sidecar):\n%s", diff)
	}
	t.Logf("loadMarkets: %d markets (sha256 %.12s), %d currencies, the same through the sidecar and from the fake", via.Markets, via.MarketsSHA256, via.Currencies)

	// What ccxt asked for: from the fake directly, everything; through
	// the sidecar, everything but the exchangeInfo it has cached.
	t.Logf("ccxt asked the fake directly for: %s", strings.Join(describe(directReqs), ", "))
	t.Logf("ccxt through the sidecar reached the fake with: %s", strings.Join(describe(viaReqs), ", "))
	for _, r := range directReqs {
		if !slices.Contains(f.Paths(), r.Path) {
			t.Errorf("ccxt asked for %s %s, which the fake has no answer for", r.Method, r.Path)
		}
	}
	// Each private call reaches the fake as often as ccxt makes it (it asks
	// for margin/allPairs twice: in fetchCurrencies and in fetchMarkets),
	// signed with the client's key and secret.
	for _, p := range ccxtPrivate {
		count := func(reqs []fetchtest.Request) int {
			return len(slices.DeleteFunc(slices.Clone(reqs), func(r fetchtest.Request) bool { return r.Path != p.path }))
		}
		if got, want := count(viaReqs), count(directReqs); got != want || want == 0 {
			t.Errorf("requests for %s: %d through the sidecar, %d from ccxt directly; want the same, at least 1", p.path, got, want)
		}
	}
	for _, r := range viaReqs {
		if r.Method != http.MethodGet || r.Header.Get("X-Mbx-Apikey") != key || fetchtest.Sign(sec, unsigned(r.RawQuery), string(r.Body)) != r.RawQuery {
			t.Errorf("through the sidecar, %s %s?%s (X-MBX-APIKEY %q): want a GET signed with the client's secret and key", r.Method, r.Path, r.RawQuery, r.Header.Get("X-Mbx-Apikey"))
		}
	}
	for _, r := range viaReqs {
		if strings.HasSuffix(r.Path, "/exchangeInfo") {
			t.Errorf("through the sidecar, the fake received %s %s, want it served from the cache", r.Method, r.Path)
		}
	}

	// ccxt's URLs that the sidecar does not forward: none is used by
	// loadMarkets with the default options (a call to one would have
	// failed above), but other methods use them.
	var unserved []string
	for name, u := range via.URLs {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(forward.Prefixes, func(pre string) bool { return strings.HasPrefix(p.Path+"/", pre) }) {
			unserved = append(unserved, name+" "+p.Path)
		}
	}
	slices.Sort(unserved)
	t.Logf("ccxt urls.api entries under no prefix the sidecar forwards (%s): %s", strings.Join(forward.Prefixes, " "), strings.Join(unserved, ", "))
}

// TestCCXT_Unavailable: when the sidecar cannot serve exchangeInfo at all
// (Binance answers 500 and nothing was ever cached), its 503 with code
// -1007 makes ccxt's loadMarkets reject with a RequestTimeout, which is a
// NetworkError: the class a ccxt caller retries, not an ExchangeError.
func TestCCXT_Unavailable(t *testing.T) {
	t.Parallel()
	node := requireNode(t, "ccxt", ccxtVersion)
	f := newFake(t)
	f.Set(fetchtest.SpotPath, fetchtest.Response{Status: http.StatusInternalServerError, Body: []byte(body500)})
	sc := startSidecar(t, f, "/healthz")

	// Without API keys, loadMarkets asks for exchangeInfo only.
	out := runNode(t, node, []string{"COMPAT_BASE_URL=" + sc.URL}, "load_markets.mjs", "--error-json")
	var res struct {
		Error *struct {
			Class      string          `json:"class"`
			Message    string          `json:"message"`
			Instanceof map[string]bool `json:"instanceof"`
		} `json:"error"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node load_markets.mjs --error-json printed %.200q: %v", out, err)
	}
	if res.Error == nil {
		t.Fatalf("loadMarkets through a sidecar with nothing to serve resolved (%.200s), want a rejection", out)
	}
	e := res.Error
	t.Logf("loadMarkets rejected with %s: %s; instanceof %v", e.Class, e.Message, e.Instanceof)
	if e.Class != "RequestTimeout" || !e.Instanceof["RequestTimeout"] || !e.Instanceof["NetworkError"] {
		t.Errorf("loadMarkets rejected with %s (instanceof RequestTimeout %v, NetworkError %v), want a RequestTimeout, instanceof both",
			e.Class, e.Instanceof["RequestTimeout"], e.Instanceof["NetworkError"])
	}
	if e.Instanceof["ExchangeError"] {
		t.Errorf("loadMarkets rejected with an ExchangeError (%s), want no ExchangeError: ccxt callers do not retry those", e.Class)
	}
	if !strings.Contains(e.Message, "-1007") {
		t.Errorf("the error's message %q does not carry the sidecar's code -1007", e.Message)
	}
	if n := f.Requests(fetchtest.SpotPath); n == 0 {
		t.Errorf("the fake received no spot exchangeInfo request: the sidecar did not try Binance")
	}
}

// requireNode returns the path of node, with the npm package pkg installed
// at version in compat/node/node_modules. Without them the test fails under
// CI=true and is skipped otherwise.
func requireNode(t *testing.T, pkg, version string) string {
	t.Helper()
	missing := func(msg string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s; CI (CI=true) must run the Node.js tests: install Node.js 20+ and npm, then make compat", msg)
		}
		t.Skipf("skipped: %s (install Node.js 20+ and npm, then make compat; under CI=true this fails)", msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		missing("npm is not on PATH")
	}
	b, err := os.ReadFile(filepath.Join("node", "node_modules", filepath.FromSlash(pkg), "package.json"))
	if err != nil {
		missing(pkg + " is not installed in compat/node/node_modules (make compat runs npm ci there)")
	}
	var installed struct{ Version string }
	if err := json.Unmarshal(b, &installed); err != nil || installed.Version != version {
		t.Fatalf("compat/node/node_modules has %s %q, want %s: run make compat (npm ci in compat/node)", pkg, installed.Version, version)
	}
	return node
}

// runNode runs node with args in compat/node, with only the variables env,
// and returns what it printed on stdout; it fails t if node fails.
func runNode(t *testing.T, node string, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx(t), node, args...)
	cmd.Dir = "node"
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s (%s): %v\n%s", strings.Join(args, " "), strings.Join(env, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// runLoadMarkets runs node/load_markets.mjs with base as every URL's base.
func runLoadMarkets(t *testing.T, node, base, key, sec string) ccxtResult {
	t.Helper()
	out := runNode(t, node, []string{"COMPAT_BASE_URL=" + base, "COMPAT_API_KEY=" + key, "COMPAT_API_SECRET=" + sec}, "load_markets.mjs")
	var res ccxtResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node load_markets.mjs with %s printed %.200q: %v", base, out, err)
	}
	for name, u := range res.URLs {
		if !strings.HasPrefix(u, base+"/") {
			t.Errorf("urls.api.%s = %q, want it under %s", name, u, base)
		}
	}
	return res
}

// describe lists requests as "GET /path", sorted, without repeats.
func describe(reqs []fetchtest.Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Method+" "+r.Path)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
