package uitest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/httpapi"
)

// browser returns the path of a Chromium to drive: $CHROMIUM, or chromium
// (Debian's package) on the PATH. Without one the test is skipped, except
// in CI, where it fails: make ui-test installs it.
func browser(t *testing.T) string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on the PATH: make ui-test installs Debian's chromium package")
	}
	t.Skip("no chromium on the PATH (apt-get install chromium, or set CHROMIUM)")
	return ""
}

// sidecar serves the status page and the API of a Cache over a fake
// Binance replaying the recorded answers, on loopback. set changes the
// fake's USD-M answer; refresh makes the Cache fetch it.
type sidecar struct {
	url     string
	replay  *fetchtest.Handler
	cache   *symcache.Cache
	refresh func(exchangeinfo.Market)
}

func startSidecar(t *testing.T) *sidecar {
	replay, err := fetchtest.LoadDir("../testdata/binance")
	if err != nil {
		t.Fatal(err)
	}
	binance := httptest.NewServer(replay)
	t.Cleanup(binance.Close)
	logger := slog.New(slog.DiscardHandler)
	ups := map[exchangeinfo.Market]symcache.Upstream{}
	stats := map[exchangeinfo.Market]httpapi.UpstreamStats{}
	for _, m := range exchangeinfo.Markets() {
		up, err := fetch.New(fetch.Config{Market: m, BaseURLs: []string{binance.URL}, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		ups[m], stats[m] = up, up
	}
	c, err := symcache.New(symcache.Config{Upstreams: ups, RefreshInterval: -1, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &sidecar{replay: replay, cache: c}
	s.refresh = func(m exchangeinfo.Market) {
		if _, err := c.Refresh(context.Background(), m); err != nil {
			t.Errorf("Refresh(%s) = %v", m, err)
		}
	}
	for _, m := range exchangeinfo.Markets() {
		s.refresh(m)
	}
	h, err := httpapi.New(httpapi.Config{Cache: c, Logger: logger, Upstreams: stats, Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// problems collects what the page logs as an error: console errors,
// uncaught exceptions, and the browser's own log entries of level error
// (a resource that failed, a violated Content-Security-Policy).
type problems struct {
	mu   sync.Mutex
	list []string
}

func (p *problems) add(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, fmt.Sprintf(format, args...))
}

func (p *problems) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.list...)
}

// TestStatusPage_Browser opens the status page in headless Chromium: it
// renders a row per market; the search finds BTCUSDT and shows its tick
// size; the form normalises an order; a change recorded while the page is
// open appears in its list without a reload; nothing logs an error. A
// screenshot goes to artifacts/status.png.
func TestStatusPage_Browser(t *testing.T) {
	exe := browser(t)
	s := startSidecar(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // as root in a container
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 1800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	// What the page logs as an error: console errors, uncaught
	// exceptions, the browser's own error entries (a failed resource, a
	// violated Content-Security-Policy).
	var seen problems
	cctx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(cctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				seen.add("%s", m)
			}
		}
	}()

	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#markets`)),
	); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	markets, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#markets tr[id^=market-]")].map(r => r.id + " " + r.querySelector(".fresh,.stale,.empty").textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(markets, ", "); got != "market-spot fresh, market-usdm fresh, market-coinm fresh" {
		t.Errorf("market rows = %q, want spot, usdm and coinm, fresh", got)
	}

	// The search: BTCUSDT on spot, and its tick size.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#search select[name=market]`), "spot"),
		chromedp.SendKeys(chromedp.CSS(`#search input[name=symbol]`), "btcusdt"),
		chromedp.Submit(chromedp.CSS(`#search input[name=symbol]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tick-size`)),
	); err != nil {
		t.Fatalf("searching BTCUSDT: %v", err)
	}
	tick, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#tick-size`)))
	if err != nil {
		t.Fatal(err)
	}
	if tick != "0.01000000" {
		t.Errorf("BTCUSDT's tick size on the page = %q, want 0.01000000 (as recorded)", tick)
	}

	// The form: a BUY at 27123.456789 of 0.123456789 goes on the grid.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#normalize input[name=price]`), "27123.456789"),
		chromedp.SendKeys(chromedp.CSS(`#normalize input[name=quantity]`), "0.123456789"),
		chromedp.Submit(chromedp.CSS(`#normalize input[name=quantity]`)),
		chromedp.WaitVisible(chromedp.CSS(`#normalized`)),
	); err != nil {
		t.Fatalf("normalising an order: %v", err)
	}
	price, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#norm-price`)))
	if err != nil {
		t.Fatal(err)
	}
	quantity, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#norm-quantity`)))
	if err != nil {
		t.Fatal(err)
	}
	if price != "27123.45" || quantity != "0.12345" {
		t.Errorf("normalised on the page: price %q, quantity %q; want 27123.45 and 0.12345", price, quantity)
	}

	// A change recorded while the page is open appears in its list.
	body := fetchtestBody(t, "usdm_exchangeinfo.json")
	edited := strings.Replace(body, `"status": "TRADING"`, `"status": "SETTLING"`, 1)
	s.replace(exchangeinfo.USDM, edited)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#changes-usdm li:not(.none)`))); err != nil {
		t.Fatalf("waiting for the change to appear: %v", err)
	}
	live, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#changes-usdm li`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(live, "status") || !strings.Contains(live, "SETTLING") {
		t.Errorf("the live list of usdm's changes shows %q, want the status change", live)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: a PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := "artifacts"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "status.png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: uitest/%s (%d bytes)", out, len(png))

	stopConsole()
	<-done
	if p := seen.get(); len(p) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(p, "\n"))
	}
}

func fetchtestBody(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join("../testdata/binance", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// replace makes the fake Binance answer m with body, and the Cache fetch it.
func (s *sidecar) replace(m exchangeinfo.Market, body string) {
	s.replay.Set(m.Path(), fetchtest.Response{Body: []byte(body)})
	go s.refresh(m) // while the page waits for it
}
