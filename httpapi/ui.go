package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/changes"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/rules"
	"github.com/symcache/symcache/version"
)

// The status page at /: what the sidecar holds and how it fares, at a
// glance, server-rendered (html/template); a symbol's rules and the
// normalisation of an order, by a plain form; the latest changes of each
// market, kept live by a few lines of script on the change stream. It
// shows no secret: no Redis address, no token, no API key.

//go:embed ui.html
var uiSource string

var uiTemplate = template.Must(template.New("ui").Funcs(template.FuncMap{
	"text": func(b []byte) string { return string(b) }, // escaped by html/template like any string
}).Parse(uiSource))

// uiRecent is how many of each market's latest changes the page shows.
const uiRecent = 15

// uiPage is what the template renders.
type uiPage struct {
	Version string
	Demo    string
	Now     string
	Ready   bool
	Markets []uiMarket
	Bans    []string
	Search  uiSearch
}

// uiMarket is one market's row and its latest changes.
type uiMarket struct {
	symcache.MarketState
	Age        string
	FetchedAt  string
	Hits       string // the share of answers by tier
	Fetches    string // upstream fetches: ok and failed
	Stale      uint64
	Lock       string // the refresh lock's record, with Redis
	LockNow    string // who holds it now
	UsedWeight string // the host's last X-MBX-USED-WEIGHT-1M, this minute
	Changes    []changes.Change
	ChangesEnd string // the cursor the live list follows from; "" without a log
	ChangesErr string
}

// uiSearch is the symbol search and the order form.
type uiSearch struct {
	Markets                []exchangeinfo.Market
	Market, Symbol         string
	Price, Quantity, Side  string
	Type                   string
	Error                  string
	Rules                  *rules.Rules
	Raw                    []byte // the symbol's object, as Binance sent it
	Normalized             *rules.Normalized
	OrderError             string
	OrderAsked, SymbolSeen bool
}

// statusPage is GET / (the status page).
func (h *handler) statusPage(c echo.Context) error {
	p, err := params(c.Request().URL.RawQuery, "market", "symbol", "price", "quantity", "side", "type")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	page := uiPage{Version: version.String(), Demo: h.demo, Now: h.now().UTC().Format(time.RFC3339)}
	states, ready := h.cache.Ready()
	page.Ready = ready
	stats := h.cache.Stats()
	for i, st := range states {
		var s *symcache.Stats
		if i < len(stats) && stats[i].Market == st.Market {
			s = &stats[i]
		}
		page.Markets = append(page.Markets, h.uiMarket(ctx, st, s))
	}
	if h.gate != nil {
		now := time.Now() // the Gate's clock
		for _, b := range h.gate.Blocks(now) {
			page.Bans = append(page.Bans, fmt.Sprintf("%s: %d, nothing sent for %s more", b.Host, b.Code, b.Until.Sub(now).Round(time.Second)))
		}
	}
	page.Search = h.uiSearch(ctx, p)
	var b bytes.Buffer
	if err := uiTemplate.Execute(&b, page); err != nil {
		return fmt.Errorf("status page: %w", err)
	}
	hd := c.Response().Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	// No script but the page's own, no frame, no referrer: a page that
	// shows what a trading system runs on keeps to itself.
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	h.deadline.extend(c.Response(), b.Len())
	c.Response().WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	_, err = c.Response().Write(b.Bytes())
	return err
}

// uiMarket fills a market's row.
func (h *handler) uiMarket(ctx context.Context, st symcache.MarketState, s *symcache.Stats) uiMarket {
	m := uiMarket{MarketState: st}
	if !st.FetchedAt.IsZero() {
		m.FetchedAt = st.FetchedAt.Format(time.RFC3339)
		m.Age = time.Duration(st.Age * float64(time.Second)).Round(time.Second).String()
	}
	if s != nil {
		answers := s.L1Hits + s.L2Hits + s.L2Misses
		if answers > 0 {
			pct := func(n uint64) string { return strconv.FormatFloat(100*float64(n)/float64(answers), 'f', 1, 64) + " %" }
			m.Hits = "L1 " + pct(s.L1Hits) + ", L2 " + pct(s.L2Hits) + ", upstream or memory " + pct(s.L2Misses)
		}
		var failed uint64
		for class, n := range s.Fetches {
			if class != "ok" {
				failed += n
			}
		}
		m.Fetches = fmt.Sprintf("%d ok, %d failed", s.Fetches["ok"], failed)
		m.Stale = s.Stale
		if s.LocksAcquired+s.LockWaits+s.LockErrors+s.LocksLost > 0 {
			m.Lock = fmt.Sprintf("held %d times, waited for another sidecar %d, lost %d, Redis unreachable %d", s.LocksAcquired, s.LockWaits, s.LocksLost, s.LockErrors)
		}
	}
	if h.locks != nil {
		m.LockNow = h.lockNow(ctx, st.Market)
	}
	if up := h.ups[st.Market]; up != nil {
		if w, at := up.UsedWeight(); !at.IsZero() && fetch.SameMinute(at, time.Now()) {
			m.UsedWeight = strconv.FormatInt(w, 10) + " this minute"
		}
	}
	m.Changes, m.ChangesEnd, m.ChangesErr = h.recentChanges(ctx, st.Market)
	return m
}

// lockNow says who holds market's refresh lock now.
func (h *handler) lockNow(ctx context.Context, m exchangeinfo.Market) string {
	holder, backoff, until, err := h.locks.LockHolder(ctx, string(m))
	left := ""
	if !until.IsZero() {
		left = ", " + time.Until(until).Round(time.Second).String() + " more"
	}
	switch {
	case err != nil:
		return "Redis cannot be asked"
	case backoff != "":
		return "a backoff: " + backoff + left
	case holder != "":
		return "held by " + holder + left
	}
	return "free"
}

// recentChanges returns the market's latest changes, newest first, and
// the end of its log, from which the page follows it.
func (h *handler) recentChanges(ctx context.Context, m exchangeinfo.Market) ([]changes.Change, string, string) {
	p, err := h.cache.Changes(ctx, m, symcache.ChangeQuery{Latest: true, Limit: uiRecent})
	if err != nil {
		return nil, "", "the change log cannot be read: " + err.Error()
	}
	slices.Reverse(p.Changes)
	return p.Changes, p.Next.String(), ""
}

// uiSearch looks a symbol up, and normalises an order when one is asked.
func (h *handler) uiSearch(ctx context.Context, p map[string]string) uiSearch {
	s := uiSearch{Markets: h.cache.Markets(), Market: p["market"], Symbol: strings.ToUpper(strings.TrimSpace(p["symbol"])),
		Price: p["price"], Quantity: p["quantity"], Side: strings.ToUpper(p["side"]), Type: strings.ToUpper(p["type"])}
	if s.Symbol == "" {
		return s
	}
	s.SymbolSeen = true
	m, err := exchangeinfo.ParseMarket(s.Market)
	if err != nil || !slices.Contains(s.Markets, m) {
		s.Error = fmt.Sprintf("No market %q here.", s.Market)
		return s
	}
	res, err := h.cache.Get(ctx, m)
	if err != nil {
		s.Error = "The market cannot be served right now: " + err.Error()
		return s
	}
	sym, ok := res.Snapshot.Lookup(s.Symbol)
	if !ok {
		s.Error = fmt.Sprintf("No symbol %q in %s.", s.Symbol, m)
		return s
	}
	s.Raw = sym.Raw
	r, err := rules.For(m, sym)
	if err != nil {
		s.Error = "Its rules cannot be read: " + err.Error()
		return s
	}
	s.Rules = &r
	if s.Quantity == "" && s.Price == "" {
		return s
	}
	s.OrderAsked = true
	n, err := r.Normalize(rules.Order{Price: s.Price, Quantity: s.Quantity, Side: rules.Side(s.Side), Type: rules.OrderType(s.Type)})
	if err != nil {
		s.OrderError = err.Error()
		return s
	}
	s.Normalized = &n
	return s
}
