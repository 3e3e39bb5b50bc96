// Package fetch is symcache's Binance client: a Client GETs one market's
// exchangeInfo and returns it as a validated *exchangeinfo.Snapshot.
//
// A Client tries its base URLs in order and moves on to the next only when
// one cannot be reached, does not answer in time, or answers 5xx. An answer
// that Binance meant (any other status, or a 200 with an invalid body) is
// returned as is: a *StatusError, or an error matching ErrInvalid.
//
// Every wait and every byte that comes from upstream is bounded:
//
//   - Retry-After is honoured on 429 and 418 only. A 429 blocks its host in a
//     Gate for its Retry-After (60s if absent), at most Config.RateLimitMax; a
//     418 (an IP ban) for its Retry-After between Config.BanMin and
//     Config.BanMax. A value out of bounds is clamped and logged, and the
//     *StatusError tells both. While any configured host is blocked, Fetch
//     sends nothing and returns a *BackoffError; failing over would only
//     dodge the ban. Clients that share hosts should share a Gate. On any
//     other status, Retry-After is ignored: the caller's own backoff applies.
//   - A 200's body is read into a buffer sized up front, from its
//     Content-Length or else from the size of the last valid body, and never
//     more than Config.MaxBodyBytes (plus one byte, to tell a body that is
//     too large); a Content-Length above it is refused before reading. Of
//     any other answer, 4 KiB at most are read.
//   - Redirects are not followed: a 3xx is a *StatusError, so requests go to
//     the base URLs only, and never carry a Referer.
//   - Each attempt has Config.Timeout, from connecting to the last byte.
package fetch

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/bounded"
)

// Defaults for the zero fields of Config.
const (
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBodyBytes is 32 MiB: eight times the spot answer of 2023
	// (3.7 MB, 2,292 symbols), twice the largest variant the benchmarks
	// grow. A body is read into buffers that together stay within it, then
	// copied once to its exact size: twice this limit, with the process's
	// own memory, fits the 128 MiB container of deploy/kubernetes
	// (measured by cmd/sidecar's TestMemory_HostileInputs).
	DefaultMaxBodyBytes = 32 << 20
	DefaultRateLimitMax = 5 * time.Minute
	DefaultBanMin       = 2 * time.Minute // Binance's shortest IP ban
	DefaultBanMax       = 72 * time.Hour  // Binance's longest IP ban, for repeat offenders
)

// firstBodyBuffer is the buffer a body of unknown length starts in when the
// Client has read no valid body yet.
const firstBodyBuffer = 64 << 10

const userAgent = "symcache"

// Config configures a Client.
type Config struct {
	// Market is the market to fetch. Required.
	Market exchangeinfo.Market
	// BaseURLs are tried in order: absolute http or https URLs with a host,
	// optionally a path prefix, no query. If empty, the market's
	// DefaultBaseURL. A URL may carry userinfo (sent as basic auth, e.g. to a
	// proxy); it never appears in errors or logs.
	BaseURLs []string
	// HTTPClient sends the requests. If nil, a client with its own
	// transport (keep-alives, gzip, proxy from the environment) and no
	// overall timeout: Timeout bounds each attempt. Either way the Client
	// follows no redirect: it uses a copy of HTTPClient whose CheckRedirect
	// refuses them (HTTPClient itself is not modified).
	HTTPClient *http.Client
	// Timeout bounds one attempt (one base URL), from connecting to reading
	// the last byte of the body. If zero, DefaultTimeout (10s).
	Timeout time.Duration
	// MaxBodyBytes is the largest body accepted; a larger one is invalid,
	// and reading it costs at most MaxBodyBytes+1 bytes of memory. If zero,
	// DefaultMaxBodyBytes (32 MiB).
	MaxBodyBytes int64
	// RateLimitMax is the longest a 429 blocks its host: a larger
	// Retry-After is clamped to it and logged. A 429 without a valid
	// Retry-After blocks for 60s, or RateLimitMax if shorter. If zero,
	// DefaultRateLimitMax (5m).
	RateLimitMax time.Duration
	// BanMin is the shortest a 418 (an IP ban) blocks its host: a shorter
	// Retry-After (0, a date in the past) is raised to it and logged. A 418
	// without a valid Retry-After blocks for 60s or BanMin, the longer. If
	// zero, DefaultBanMin (2m). It may not be longer than BanMax.
	BanMin time.Duration
	// BanMax is the longest a 418 blocks its host: a larger Retry-After is
	// clamped to it and logged. If zero, DefaultBanMax (72h).
	BanMax time.Duration
	// Gate holds the hosts blocked by 429 and 418, for no longer than
	// RateLimitMax and BanMax. If nil, the Client has its own; share one
	// between Clients that use the same hosts.
	Gate *Gate
	// Logger receives warnings: rate limiting, a 451, a failover. If nil,
	// slog.Default().
	Logger *slog.Logger
	// Now tells the time, for snapshots' FetchedAt and the Gate. If nil,
	// time.Now.
	Now func() time.Time
}

// Client fetches one market's exchangeInfo. It is safe for concurrent use;
// it does not merge concurrent Fetches (the caller does).
type Client struct {
	market  exchangeinfo.Market
	bases   []base
	hc      *http.Client
	timeout time.Duration
	maxBody int64
	bounds  bounds
	gate    *Gate
	log     *slog.Logger
	now     func() time.Time

	lastSize atomic.Int64 // length of the last valid body, to size the next buffer
	rec      recorder

	lastHost atomic.Pointer[string] // the Gate host of the base URL that answered last
}

// base is one configured base URL, ready to use.
type base struct {
	url      string // the request URL: base URL + market path, userinfo included
	redacted string // url without userinfo, for errors and logs
	host     string // the Gate's key: lower-case host, port unless the scheme's default
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if !cfg.Market.Valid() {
		return nil, fmt.Errorf("fetch: unknown market %q", string(cfg.Market))
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("fetch %s: negative Timeout %v", cfg.Market, cfg.Timeout)
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("fetch %s: negative MaxBodyBytes %d", cfg.Market, cfg.MaxBodyBytes)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"RateLimitMax", cfg.RateLimitMax}, {"BanMin", cfg.BanMin}, {"BanMax", cfg.BanMax}} {
		if f.d < 0 {
			return nil, fmt.Errorf("fetch %s: negative %s %v", cfg.Market, f.name, f.d)
		}
	}
	rb := bounds{
		rateLimitMax: cmp.Or(cfg.RateLimitMax, DefaultRateLimitMax),
		banMin:       cmp.Or(cfg.BanMin, DefaultBanMin),
		banMax:       cmp.Or(cfg.BanMax, DefaultBanMax),
	}
	if rb.banMin > rb.banMax {
		return nil, fmt.Errorf("fetch %s: BanMin %v is longer than BanMax %v (zero means the default)", cfg.Market, rb.banMin, rb.banMax)
	}
	raws := cfg.BaseURLs
	if len(raws) == 0 {
		raws = []string{cfg.Market.DefaultBaseURL()}
	}
	c := &Client{
		market:  cfg.Market,
		hc:      cfg.HTTPClient,
		timeout: cmp.Or(cfg.Timeout, DefaultTimeout),
		maxBody: cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes),
		bounds:  rb,
		gate:    cfg.Gate,
		log:     cfg.Logger,
		now:     cfg.Now,
	}
	for _, raw := range raws {
		b, err := parseBase(raw, cfg.Market)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", cfg.Market, err)
		}
		c.bases = append(c.bases, b)
	}
	if c.hc == nil {
		c.hc = newHTTPClient()
	} else {
		hc := *c.hc // the caller's client stays as it is
		c.hc = &hc
	}
	c.hc.CheckRedirect = refuseRedirect
	if c.gate == nil {
		c.gate = NewGate()
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

func parseBase(raw string, m exchangeinfo.Market) (base, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the whole input, userinfo included, and its
		// inner errors may quote parts of it: say only what is safe.
		msg := "not a URL"
		var ue *url.Error
		if errors.As(err, &ue) && !strings.Contains(raw, "@") {
			msg = ue.Err.Error()
		}
		return base{}, fmt.Errorf("base URL %q: %s", redactRaw(raw), msg)
	}
	shown := redactRaw(raw) // not redact(u): "user:pw@host" parses as scheme "user"
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return base{}, fmt.Errorf("base URL %q: scheme is not http or https", shown)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return base{}, fmt.Errorf("base URL %q: no host", shown)
	case u.RawQuery != "" || u.ForceQuery:
		return base{}, fmt.Errorf("base URL %q: has a query", shown)
	case u.Fragment != "":
		return base{}, fmt.Errorf("base URL %q: has a fragment", shown)
	}
	req := u.JoinPath(m.Path())
	return base{url: req.String(), redacted: redact(req), host: GateHost(u)}, nil
}

// redact returns u as a string without its userinfo.
func redact(u *url.URL) string {
	v := *u
	v.User = nil
	return v.String()
}

// redactRaw drops what looks like userinfo from a URL that may not be
// valid: everything between "//" and the last "@" of the authority, or
// without "//", everything up to the last "@".
func redactRaw(raw string) string {
	i := strings.Index(raw, "//")
	if i < 0 {
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			return raw[at+1:]
		}
		return raw
	}
	rest := raw[i+2:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return raw[:i+2] + rest[at+1:]
	}
	return raw
}

// refuseRedirect is every Client's CheckRedirect: Do returns the 3xx as
// is, and Fetch a *StatusError. Binance's exchangeInfo does not redirect;
// a redirect means a wrong base URL or someone in the way, and a followed
// one would be a request that the Gate, the metrics and the used weight
// never see. So none is followed, to another host or to the same one.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func newHTTPClient() *http.Client {
	return &http.Client{Transport: NewTransport(16, 4)}
}

// NewTransport returns a Transport to Binance as a Client makes its own,
// for other code that talks to the same hosts (forward): the proxy from the
// environment, HTTP/2, keep-alives of 90s, 10s to connect and to shake
// hands, and at most idle connections kept, perHost of them to one host.
func NewTransport(idle, perHost int) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          idle,
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// UsedWeight is the last X-MBX-USED-WEIGHT-1M value (with any status) that
// the host of c's last answer sent, and when it arrived, as the Gate keeps
// it: on an answer to c or to anything else sharing the Gate (a forwarded
// request, say). Zero values if none yet.
func (c *Client) UsedWeight() (weight int64, at time.Time) {
	host := c.lastHost.Load()
	if host == nil {
		return 0, time.Time{}
	}
	return c.gate.Weight(*host)
}

// Fetch GETs the market's exchangeInfo from the first base URL that answers
// and returns it validated (exchangeinfo.Parse, FetchedAt = Now()).
//
// It moves on to the next base URL only after a network error, a timeout or
// a 5xx; when all fail, the last error is returned. Any other answer ends
// the Fetch: a *StatusError for a status other than 200 (a 3xx included: no
// redirect is followed; 429 and 418 also block the host in the Gate, for
// their Retry-After within Config's bounds), an error matching ErrInvalid
// for a 200 whose body is invalid, cut short or too large. While any
// configured host is blocked, Fetch sends nothing and returns a
// *BackoffError. If ctx ends, the error matches ctx.Err(). Errors read
// "fetch <market>: …".
func (c *Client) Fetch(ctx context.Context) (*exchangeinfo.Snapshot, error) {
	if err := c.blocked(c.now()); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", c.market, err)
	}
	var err error
	for i := range c.bases {
		b := &c.bases[i]
		if i > 0 {
			c.log.Warn("binance base URL failed, failing over to the next", "market", c.market, "url", c.bases[i-1].redacted, "err", err)
			if until, code, ok := c.gate.Blocked(b.host, c.now()); ok { // blocked meanwhile by another Client
				err = &BackoffError{Host: b.host, Code: code, Until: until}
				break
			}
		}
		var snap *exchangeinfo.Snapshot
		var retry bool
		snap, retry, err = c.get(ctx, b)
		if err == nil {
			return snap, nil
		}
		if !retry || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("fetch %s: %w", c.market, err)
}

// Unblock lifts the Gate's blocks of every host c asks, for an operator who
// knows better than the last 429 or 418 (a proxy's, say: asking Binance
// itself during a real ban only makes the ban longer). It reports whether
// any host was blocked.
func (c *Client) Unblock() bool {
	any := false
	for _, b := range c.bases {
		any = c.gate.Unblock(b.host) || any
	}
	if any {
		c.log.Warn("binance rate limit lifted by an operator", "market", c.market)
	}
	return any
}

// blocked returns a *BackoffError if any configured host is blocked at now:
// the one blocked longest, as no Fetch can succeed before then.
func (c *Client) blocked(now time.Time) error {
	var be *BackoffError
	for _, b := range c.bases {
		if until, code, ok := c.gate.Blocked(b.host, now); ok && (be == nil || until.After(be.Until)) {
			be = &BackoffError{Host: b.host, Code: code, Until: until}
		}
	}
	if be == nil {
		return nil
	}
	return be
}

// get makes one attempt at b. retry says whether the next base URL may be
// tried: after a network error, a timeout or a 5xx.
func (c *Client) get(ctx context.Context, b *base) (snap *exchangeinfo.Snapshot, retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, b.url, nil)
	if err != nil {
		return nil, false, fmt.Errorf("GET %s: bad request URL", b.redacted) // New checked it: unreachable
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	sent, code := time.Now(), 0
	defer func() { c.rec.observe(strings.TrimSuffix(b.redacted, c.market.Path()), code, time.Since(sent)) }()
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, true, c.netError(ctx, actx, b, err)
	}
	defer resp.Body.Close()
	code = resp.StatusCode
	now := c.now()
	c.lastHost.Store(&b.host)
	if w, ok := UsedWeightHeader(resp.Header); ok {
		c.gate.NoteWeight(b.host, w, now)
	}

	if resp.StatusCode != http.StatusOK {
		se := c.statusError(resp, b, now)
		return nil, se.Code >= 500, se
	}
	body, err := c.readBody(resp)
	if err != nil {
		if actx.Err() != nil {
			return nil, true, c.netError(ctx, actx, b, err)
		}
		return nil, false, fmt.Errorf("GET %s: %w", b.redacted, err)
	}
	snap, err = exchangeinfo.Parse(c.market, body, c.now())
	if err != nil {
		return nil, false, fmt.Errorf("GET %s: %w", b.redacted, err)
	}
	c.lastSize.Store(int64(len(body)))
	return snap, false, nil
}

// netError describes a failure to get (all of) an answer: the caller's ctx
// ended, the attempt timed out, or the network failed.
func (c *Client) netError(ctx, actx context.Context, b *base, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("GET %s: %w", b.redacted, ctx.Err())
	}
	if actx.Err() != nil {
		return fmt.Errorf("GET %s: no answer within %v: %w", b.redacted, c.timeout, actx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its URL may hold a user name
	}
	return fmt.Errorf("GET %s: %w", b.redacted, err)
}

// readBody reads a 200's body, up to maxBody bytes, into a buffer sized up
// front: from the Content-Length, or else from the last valid body's size.
// A body that is too large or cut short is an *exchangeinfo.InvalidError; a
// Content-Length above maxBody is one before anything is read.
func (c *Client) readBody(resp *http.Response) ([]byte, error) {
	size := resp.ContentLength // -1 when unknown: chunked, or decompressed by the transport
	switch {
	case size > c.maxBody:
		return nil, &exchangeinfo.InvalidError{Reason: fmt.Sprintf("body of %d bytes is larger than the limit of %d", size, c.maxBody)}
	case size >= 0:
		size++ // room to read EOF without a second buffer
	default:
		size = c.bodyHint()
	}
	body, n, err := bounded.ReadAll(resp.Body, size, c.maxBody+1)
	switch {
	case errors.Is(err, bounded.ErrTooLarge):
		return nil, &exchangeinfo.InvalidError{Reason: fmt.Sprintf("body larger than the limit of %d bytes", c.maxBody)}
	case err != nil:
		return nil, &exchangeinfo.InvalidError{Reason: fmt.Sprintf("body cut short after %d bytes: %v", n, err)}
	}
	return body, nil
}

// bodyHint is the buffer to read a body of unknown length into: the last
// valid body's length and an eighth more (the market may have grown), at
// most maxBody+1; firstBodyBuffer before any.
//
// Not more: the buffer a body fits in becomes the snapshot's, capacity
// included, for as long as it is cached. Twice the last size would make
// every snapshot hold twice its bytes, which its cost in L1 (its length)
// does not count.
func (c *Client) bodyHint() int64 {
	last := c.lastSize.Load()
	if last == 0 {
		return firstBodyBuffer
	}
	return min(last+last/8, c.maxBody) + 1
}

// statusError reads a non-200 answer; for 429 and 418 it blocks b's host
// for the answer's Retry-After, within c's bounds.
func (c *Client) statusError(resp *http.Response, b *base, now time.Time) *StatusError {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10)) // what is read is enough for Msg
	se := &StatusError{Code: resp.StatusCode, URL: b.redacted, Msg: errorMsg(raw)}
	if loc := resp.Header.Get("Location"); loc != "" && se.Code >= 300 && se.Code < 400 {
		se.Msg = "redirect to " + clip(redactRaw(loc), 200) + " not followed"
	}
	sent := resp.Header.Get("Retry-After")
	se.RetryAfterSent = clip(sent, maxRetryAfterSent)
	se.RetryAfter, se.RetryAfterClamped = c.bounds.retryAfter(se.Code, sent, now)
	switch {
	case se.RateLimited():
		until := now.Add(se.RetryAfter)
		c.gate.Block(b.host, se.Code, until)
		msg := "binance rate limit: no requests to this host until Retry-After has passed"
		if se.RetryAfterClamped {
			msg = "binance Retry-After out of bounds: clamped"
		}
		c.log.Warn(msg, "market", c.market, "status", se.Code, "host", b.host,
			"retry_after", se.RetryAfter, "retry_after_sent", se.RetryAfterSent, "until", until, "binance_msg", se.Msg)
	case se.Code == http.StatusUnavailableForLegalReasons:
		c.log.Warn("binance refuses requests from this location (451): configure another base URL or run in another region",
			"market", c.market, "status", se.Code, "url", b.redacted, "binance_msg", se.Msg)
	}
	return se
}

// maxRetryAfterSent is the most of a Retry-After kept in a StatusError.
const maxRetryAfterSent = 64

// clip returns s's first n bytes at most, as valid UTF-8.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}

// errorMsg is Binance's "msg" if raw is an error body {"code":…,"msg":…},
// else raw's first 200 bytes.
func errorMsg(raw []byte) string {
	var eb struct {
		Code json.RawMessage `json:"code"`
		Msg  *string         `json:"msg"`
	}
	if json.Unmarshal(raw, &eb) == nil && eb.Code != nil && eb.Msg != nil {
		return *eb.Msg
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 200 {
		raw = raw[:200]
	}
	return strings.ToValidUTF8(string(raw), "\uFFFD")
}

// UsedWeightHeader reads X-MBX-USED-WEIGHT-1M from h: the request weight
// the IP has used in the current minute, as Binance counts it.
func UsedWeightHeader(h http.Header) (int64, bool) {
	v := h.Get("X-Mbx-Used-Weight-1m")
	if v == "" {
		return 0, false
	}
	w, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return w, err == nil && w >= 0
}
