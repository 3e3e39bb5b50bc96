// Package forward sends on to Binance the requests symcache does not answer
// from its cache, so that a Binance client can take the sidecar as its one
// base URL. A Forwarder routes by path prefix: /api/ and /sapi/ to the spot
// base URLs, /fapi/ to USD-M's, /dapi/ to COIN-M's (Prefixes).
//
// What goes out is what came in: the method, the path as received (never
// decoded and re-encoded), the raw query string byte for byte (signatures
// are computed over it), the body, streamed, and every end-to-end header,
// X-MBX-APIKEY included. Hop-by-hop headers do not go out, and neither
// does X-Forwarded-For or Forwarded: the client is on this host, and its
// address would tell Binance nothing but the pod's layout. What comes back
// is Binance's status, headers (X-MBX-USED-WEIGHT-*, X-MBX-ORDER-COUNT-*,
// Retry-After) and body, streamed. A client that hangs up cancels its
// request to Binance.
//
// It is not an open proxy: the destination is always one of the configured
// base URLs, chosen by the path's prefix. The request's Host header, an
// absolute request URI (GET http://elsewhere/ HTTP/1.1) or a path such as
// //elsewhere/x never choose it.
//
// An order is never sent twice. A request whose method is not GET or HEAD
// goes to the first base URL only, once: it is never retried, and never
// sent to the next base URL. When it fails, the client gets a 502 (a 504
// after Config.Timeout) in Binance's error shape, saying whether the request
// was sent (then its outcome is unknown: -1006, -1007) or not (-1001). A GET
// or HEAD without a body moves on to the next base URL when nothing of it
// was sent (the connection was refused, say).
//
// Binance's rate limits are kept with the cache's own fetches through a
// shared *fetch.Gate: while a host is blocked after a 429 or 418, requests
// for it are answered here with that status, Binance's error body and the
// Retry-After left, and nothing is sent. A 429 or 418 from Binance blocks
// its host for its Retry-After within the same bounds as fetch
// (fetch.Bounds).
package forward

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
)

// Prefixes are the path prefixes a Forwarder sends on, each to its market's
// base URLs: /api/ and /sapi/ to spot, /fapi/ to USD-M futures, /dapi/ to
// COIN-M futures. Read it; do not modify it.
var Prefixes = []string{"/api/", "/sapi/", "/fapi/", "/dapi/"}

// Methods are the methods a Forwarder sends on: Binance's REST API uses
// GET, POST, PUT and DELETE; HEAD, PATCH and OPTIONS go too. Any other
// (CONNECT, TRACE) is answered 405 here. Read it; do not modify it.
var Methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions}

// prefixMarkets maps each of Prefixes to its market.
var prefixMarkets = map[string]exchangeinfo.Market{
	"/api/":  exchangeinfo.Spot,
	"/sapi/": exchangeinfo.Spot,
	"/fapi/": exchangeinfo.USDM,
	"/dapi/": exchangeinfo.COINM,
}

// DefaultTimeout is Config.Timeout's default.
const DefaultTimeout = 10 * time.Second

// Config configures a Forwarder.
type Config struct {
	// BaseURLs are each market's base URLs, tried in order (GET and HEAD
	// only: see the package doc): absolute http or https URLs with a host,
	// optionally a path prefix, no query. A URL's userinfo is sent as basic
	// auth (to a proxy, say) unless the request has an Authorization of its
	// own. A market absent or empty: its DefaultBaseURL.
	BaseURLs map[exchangeinfo.Market][]string
	// Gate holds the hosts blocked after a 429 or 418. Pass the one the
	// cache's fetch.Clients use, so that a ban seen by either holds for
	// both. If nil, the Forwarder has its own.
	Gate *fetch.Gate
	// Bounds limit how long a 429 or 418 blocks its host, as in
	// fetch.Config. Zero fields: fetch's defaults.
	Bounds fetch.Bounds
	// Transport sends the requests. It must not follow redirects or add
	// headers (an *http.Transport does neither). If nil, an *http.Transport
	// with the proxy from the environment, HTTP/2, keep-alives and no
	// transparent compression (the client's Accept-Encoding goes out as it
	// came, and the answer's encoding comes back as it is).
	Transport http.RoundTripper
	// Timeout bounds the wait for Binance's answer, from sending the
	// request to its headers; the body then takes as long as it takes. If
	// zero, DefaultTimeout (10s).
	Timeout time.Duration
	// Logger receives a Debug line per request (method, path without the
	// query, status, duration, host) and a Warn line per failure or rate
	// limit. The query, the body and X-MBX-APIKEY are never logged. If nil,
	// slog.Default().
	Logger *slog.Logger
	// Now tells the time, for the Gate. If nil, time.Now.
	Now func() time.Time
}

// Forwarder is an http.Handler that forwards the requests under Prefixes
// to Binance and answers any other path 404 in Binance's error shape. It is
// safe for concurrent use.
type Forwarder struct {
	targets map[exchangeinfo.Market][]target
	gate    *fetch.Gate
	bounds  fetch.Bounds
	tr      http.RoundTripper
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
	proxy   *httputil.ReverseProxy

	mu       sync.Mutex
	requests map[[2]string]uint64 // {host, code}
	weights  map[string]UsedWeight
}

// target is one base URL, ready to use.
type target struct {
	scheme, host string        // of the URL, host with its port if any
	path         string        // the escaped path prefix, without a trailing slash
	user         *url.Userinfo // nil: none
	gateHost     string        // fetch.GateHost: the Gate's and the metrics' key
}

// New checks cfg and returns a Forwarder.
func New(cfg Config) (*Forwarder, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("forward: negative Timeout %v", cfg.Timeout)
	}
	f := &Forwarder{
		targets:  make(map[exchangeinfo.Market][]target),
		gate:     cfg.Gate,
		bounds:   cfg.Bounds,
		tr:       cfg.Transport,
		timeout:  cmp.Or(cfg.Timeout, DefaultTimeout),
		log:      cfg.Logger,
		now:      cfg.Now,
		requests: make(map[[2]string]uint64),
		weights:  make(map[string]UsedWeight),
	}
	for _, m := range exchangeinfo.Markets() {
		raws := cfg.BaseURLs[m]
		if len(raws) == 0 {
			raws = []string{m.DefaultBaseURL()}
		}
		for _, raw := range raws {
			t, err := parseTarget(raw)
			if err != nil {
				return nil, fmt.Errorf("forward %s: %w", m, err)
			}
			f.targets[m] = append(f.targets[m], t)
		}
	}
	if f.gate == nil {
		f.gate = fetch.NewGate()
	}
	if f.tr == nil {
		tr := fetch.NewTransport(64, 16)
		tr.DisableCompression = true // the answer's encoding goes back as it came
		f.tr = tr
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.now == nil {
		f.now = time.Now
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		BufferPool:     copyBuffers,
		Transport:      roundTripper{f},
		ModifyResponse: f.answered,
		ErrorHandler:   f.failed,
		ErrorLog:       log.New(slogWriter{f.log}, "", 0),
	}
	return f, nil
}

func parseTarget(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, errors.New("a base URL is not a URL") // the text could hold a password
	}
	shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return target{}, fmt.Errorf("base URL %q: scheme is not http or https", shown)
	case u.Opaque != "" || u.Hostname() == "":
		return target{}, fmt.Errorf("base URL %q: no host", shown)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return target{}, fmt.Errorf("base URL %q: has a query or fragment", shown)
	}
	return target{
		scheme:   u.Scheme,
		host:     u.Host,
		path:     strings.TrimSuffix(u.EscapedPath(), "/"),
		user:     u.User,
		gateHost: fetch.GateHost(u),
	}, nil
}

// route returns the base URLs for a request's raw path; ok is false when
// the path is under none of Prefixes.
func (f *Forwarder) route(path string) (ts []target, ok bool) {
	for _, p := range Prefixes {
		if strings.HasPrefix(path, p) {
			return f.targets[prefixMarkets[p]], true
		}
	}
	return nil, false
}

// rawPath is r's path exactly as the client sent it: the request line's
// target up to the query, never decoded. An absolute-form target (GET
// http://host/path, or scheme:path) gives its path as sent too; its host is
// ignored.
func rawPath(r *http.Request) string {
	target := r.RequestURI
	if target == "" { // a request made in this process, not read from a client
		return r.URL.EscapedPath()
	}
	if !strings.HasPrefix(target, "/") {
		_, rest, _ := strings.Cut(target, ":")
		if authority, ok := strings.CutPrefix(rest, "//"); ok {
			rest = ""
			if i := strings.IndexAny(authority, "/?#"); i >= 0 {
				rest = authority[i:]
			}
		}
		target = rest
	}
	p, _, _ := strings.Cut(target, "?") // a '#' is no fragment in a request line: it stays
	return p
}

// attempt is one forwarded request's state, shared by ServeHTTP, the
// ReverseProxy's hooks and the round trip (all on ServeHTTP's goroutine).
type attempt struct {
	path       string // raw, without the query: what logs show
	targets    []target
	idempotent bool // GET or HEAD: may fail over when nothing was sent
	clientAuth bool // the client sent an Authorization: a base URL's userinfo never replaces it
	start      time.Time

	tried  bool   // the round trip began: a base URL may have been written to
	host   string // the gate host of the base URL last tried
	status int    // the answer's status, or the status answered here
	code   string // the metrics' code label
}

type attemptKey struct{}

// ServeHTTP forwards r to Binance, or answers it here: 404 for a path
// under none of Prefixes, the host's 429 or 418 while the Gate blocks it,
// 502 or 504 when no answer came.
func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := rawPath(r)
	targets, ok := f.route(path)
	if !ok {
		writeError(w, http.StatusNotFound, -1000, "Not Found. The symcache sidecar forwards only "+strings.Join(Prefixes, ", ")+" to Binance.")
		return
	}
	if !slices.Contains(Methods, r.Method) {
		w.Header().Set("Allow", strings.Join(Methods, ", "))
		writeError(w, http.StatusMethodNotAllowed, -1000, "Method Not Allowed.")
		return
	}
	// A query or path goes out as it came, never re-encoded (signatures
	// are computed over it): what would break the request line is refused.
	if strings.ContainsFunc(path, illegal) {
		writeError(w, http.StatusBadRequest, -1000, "Illegal characters in the path.")
		return
	}
	if strings.ContainsFunc(r.URL.RawQuery, illegal) {
		writeError(w, http.StatusBadRequest, -1000, "Illegal characters in the query string.")
		return
	}
	at := &attempt{
		path:       path,
		targets:    targets,
		idempotent: r.Method == http.MethodGet || r.Method == http.MethodHead,
		start:      time.Now(),
		host:       targets[0].gateHost,
	}
	defer func() {
		// Also when the ReverseProxy panics with http.ErrAbortHandler: the
		// answer was cut short, by Binance or by the client.
		if at.code == "" {
			at.code = "aborted"
			f.log.Warn("forwarded answer cut short", "method", r.Method, "path", at.path, "host", at.host, "status", at.status, "duration", time.Since(at.start))
		}
		f.count(at.host, at.code)
	}()
	if until, code, blocked := f.gate.Blocked(at.host, f.now()); blocked {
		f.answerBlocked(w, r, at, code, until)
		return
	}
	f.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), attemptKey{}, at)))
	if at.code == "" && at.status != 0 {
		at.code = strconv.Itoa(at.status)
		if f.log.Enabled(r.Context(), slog.LevelDebug) { // its attributes cost allocations
			f.log.Debug("forwarded", "method", r.Method, "path", at.path, "status", at.status, "duration", time.Since(at.start), "host", at.host)
		}
	}
}

// illegal reports the characters that may not go raw in a request line:
// controls, space and DEL.
func illegal(c rune) bool { return c <= ' ' || c == 0x7f }

// rewrite makes the request to the first base URL (the ReverseProxy's
// Rewrite). The ReverseProxy has removed the hop-by-hop headers and
// X-Forwarded-For, -Host, -Proto and Forwarded, and adds none back: no
// SetXForwarded (see the package doc).
func (f *Forwarder) rewrite(pr *httputil.ProxyRequest) {
	at := pr.In.Context().Value(attemptKey{}).(*attempt)
	pr.Out.Host = "" // the Host header is the base URL's, never the client's
	// Opaque is the request line's target as is: the path is never decoded
	// and re-encoded, and RawQuery is the client's, byte for byte (the
	// ReverseProxy dropped parameters it could not parse from its copy).
	pr.Out.URL = &url.URL{RawQuery: pr.In.URL.RawQuery, ForceQuery: pr.In.URL.ForceQuery}
	at.clientAuth = pr.In.Header.Get("Authorization") != ""
	setTarget(pr.Out, at.targets[0], at)
	if !at.idempotent {
		// With one of these, net/http's Transport takes a request without a
		// body as replayable and may send it again on a new connection after
		// the first one broke with the request written. Binance does not
		// read them; an order must never be sent twice.
		pr.Out.Header.Del("Idempotency-Key")
		pr.Out.Header.Del("X-Idempotency-Key")
	}
}

// setTarget points req at t, keeping its path (raw, as received) and query,
// with t's userinfo as basic auth unless the client sent an Authorization
// (never the userinfo of the base URL tried before).
func setTarget(req *http.Request, t target, at *attempt) {
	req.URL.Scheme, req.URL.Host, req.URL.Opaque = t.scheme, t.host, t.path+at.path
	req.URL.User = nil
	if at.clientAuth {
		return
	}
	req.Header.Del("Authorization")
	if t.user != nil {
		pw, _ := t.user.Password()
		req.SetBasicAuth(t.user.Username(), pw)
	}
}

// errTimeout is the cause of an attempt's context ended by Config.Timeout.
var errTimeout = errors.New("no answer in time")

// sendError is a request that got no answer.
type sendError struct {
	host    string
	sent    bool // a byte of the request may have left: its outcome is unknown
	timeout bool
	err     error // never holds the query: see roundTrip
}

func (e *sendError) Error() string {
	what := "not sent"
	if e.sent {
		what = "sent, no answer"
	}
	return fmt.Sprintf("forward to %s: %s: %v", e.host, what, e.err)
}

func (e *sendError) Unwrap() error { return e.err }

// blockedError is a failover stopped by the Gate: the next host is blocked.
type blockedError struct {
	code  int
	until time.Time
}

func (e *blockedError) Error() string { return "blocked until " + e.until.UTC().Format(time.RFC3339) }

// roundTripper is the ReverseProxy's Transport: it tries the base URLs.
type roundTripper struct{ f *Forwarder }

// RoundTrip sends req to the first base URL and, for a GET or HEAD without
// a body of which nothing was sent, to each next one in turn.
//
// Why a request is never sent twice: this loop moves on only when
// sendError.sent is false, that is when no header of the request was
// written to any connection (httptrace), and only for GET and HEAD. Below
// it, net/http's Transport retries by itself only a request that nothing
// was written of, or one it takes as replayable: GET, HEAD, OPTIONS, TRACE,
// or with an Idempotency-Key header, all without a body it cannot replay.
// rewrite drops Idempotency-Key from every other method, so a POST, PUT or
// DELETE whose bytes left once never leaves again; HTTP/2 retries only
// streams the server refused unprocessed (REFUSED_STREAM, GOAWAY).
func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	f := rt.f
	at := req.Context().Value(attemptKey{}).(*attempt)
	at.tried = true
	var err error
	for i, t := range at.targets {
		if i > 0 {
			if until, code, blocked := f.gate.Blocked(t.gateHost, f.now()); blocked {
				at.host = t.gateHost
				return nil, &blockedError{code: code, until: until}
			}
			f.log.Warn("binance base URL unreachable, forwarding to the next", "method", req.Method, "path", at.path, "host", at.host, "next", t.gateHost, "err", err)
			req = req.Clone(req.Context())
			setTarget(req, t, at)
		}
		at.host = t.gateHost
		var resp *http.Response
		resp, err = f.send(req)
		if err == nil {
			return resp, nil
		}
		var se *sendError
		if !at.idempotent || req.Body != nil || !errors.As(err, &se) || se.sent || req.Context().Err() != nil {
			break
		}
	}
	return nil, err
}

// send makes one attempt. Its context ends at Config.Timeout unless the
// answer's headers came, then when the answer's body is closed.
func (f *Forwarder) send(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteHeaderField: func(string, []string) { wrote.Store(true) },
		WroteHeaders:     func() { wrote.Store(true) },
	})
	timer := time.AfterFunc(f.timeout, func() { cancel(errTimeout) })
	resp, err := f.tr.RoundTrip(req.WithContext(ctx))
	timer.Stop()
	if err != nil {
		timeout := errors.Is(context.Cause(ctx), errTimeout)
		cancel(nil)
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL holds the query
		}
		if timeout {
			err = fmt.Errorf("%w after %v", errTimeout, f.timeout)
		}
		return nil, &sendError{host: fetch.GateHost(req.URL), sent: wrote.Load(), timeout: timeout, err: err}
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody ends its attempt's context when closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// answered sees Binance's answer before it goes back (the ReverseProxy's
// ModifyResponse): it notes the used weight, in the Gate too, and blocks the host in the
// Gate after a 429 or 418.
func (f *Forwarder) answered(resp *http.Response) error {
	at := resp.Request.Context().Value(attemptKey{}).(*attempt)
	at.status = resp.StatusCode
	now := f.now()
	if w, ok := fetch.UsedWeightHeader(resp.Header); ok {
		f.gate.NoteWeight(at.host, w, now) // for the cache's answers too
		f.mu.Lock()
		f.weights[at.host] = UsedWeight{Host: at.host, Weight: w, At: now}
		f.mu.Unlock()
	}
	if code := resp.StatusCode; code == http.StatusTooManyRequests || code == http.StatusTeapot {
		sent := resp.Header.Get("Retry-After")
		d, clamped := f.bounds.RetryAfter(code, sent, now)
		until := now.Add(d)
		f.gate.Block(at.host, code, until)
		msg := "binance rate limit: no requests to this host until Retry-After has passed"
		if clamped {
			msg = "binance Retry-After out of bounds: clamped"
		}
		f.log.Warn(msg, "method", resp.Request.Method, "path", at.path, "status", code, "host", at.host,
			"retry_after", d, "retry_after_sent", clip(sent, 64), "until", until)
	}
	return nil
}

// failed answers a request that got no answer from Binance (the
// ReverseProxy's ErrorHandler).
func (f *Forwarder) failed(w http.ResponseWriter, r *http.Request, err error) {
	at := r.Context().Value(attemptKey{}).(*attempt)
	var be *blockedError
	var se *sendError
	switch {
	case errors.As(err, &be):
		f.answerBlocked(w, r, at, be.code, be.until)
		return
	case !errors.As(err, &se) && !at.tried:
		// The ReverseProxy refused the request before any round trip (an
		// Upgrade to an unprintable protocol, say): nothing was sent.
		at.status, at.code = http.StatusBadRequest, "refused"
		f.log.Debug("forward refused: malformed request", "method", r.Method, "path", at.path, "err", err)
		writeError(w, http.StatusBadRequest, -1000, "Malformed request; it was not sent to Binance.")
		return
	case se == nil:
		se = &sendError{host: at.host, sent: true, err: err}
	}
	status, code, msg := http.StatusBadGateway, -1006, "An unexpected response was received from the message bus. Execution status unknown."
	switch {
	case !se.sent:
		code, msg = -1001, "Internal error; unable to process your request. Please try again. (symcache sidecar: the request was not sent: "+se.host+" could not be reached.)"
		if se.timeout {
			status = http.StatusGatewayTimeout
		}
	case se.timeout:
		status, code, msg = http.StatusGatewayTimeout, -1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
	default:
		msg += " (symcache sidecar: the request was sent to " + se.host + ", and no answer came.)"
	}
	at.status, at.code = status, "error"
	if r.Context().Err() != nil {
		// The client hung up, or half-closed its side, or its request's
		// body did not come in time (the server's ReadTimeout). One still
		// listening gets the answer; for one gone, the write fails.
		at.code = "canceled"
		f.log.Debug("forwarded request canceled on the client's side", "method", r.Method, "path", at.path, "host", at.host, "sent", se.sent, "duration", time.Since(at.start))
		writeError(w, status, code, msg)
		return
	}
	if se.timeout {
		at.code = "timeout"
	}
	f.log.Warn("forward failed", "method", r.Method, "path", at.path, "host", at.host, "status", status, "sent", se.sent, "duration", time.Since(at.start), "err", se.err)
	writeError(w, status, code, msg)
}

// answerBlocked answers for a host the Gate blocks: its status, Binance's
// body, and the Retry-After left in whole seconds, rounded up.
func (f *Forwarder) answerBlocked(w http.ResponseWriter, r *http.Request, at *attempt, code int, until time.Time) {
	left := until.Sub(f.now())
	secs := max(int64((left+time.Second-1)/time.Second), 1)
	at.status, at.code = code, "blocked"
	f.log.Debug("forward refused: host rate limited", "method", r.Method, "path", at.path, "host", at.host, "status", code, "until", until)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	msg := fmt.Sprintf("Way too many requests; %s is blocked until %d after a %d from Binance. Answered by the symcache sidecar: nothing was sent to Binance.", at.host, until.UnixMilli(), code)
	writeError(w, code, -1003, msg)
}

// writeError writes Binance's error body.
func writeError(w http.ResponseWriter, status, code int, msg string) {
	b, _ := json.Marshal(struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}{code, msg})
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func (f *Forwarder) count(host, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests[[2]string{host, code}]++
}

// Metrics are a Forwarder's counters since New, for monitoring.
type Metrics struct {
	// Requests counts forwarded requests by host (as fetch.GateHost) and
	// outcome: Binance's status ("200", "429"), or "blocked" (answered here:
	// the host was rate limited), "error" (no answer: 502), "timeout" (no
	// answer in time: 504), "canceled" (the client hung up first),
	// "aborted" (the answer was cut short after its headers).
	Requests []RequestCount
	// UsedWeight is the last X-MBX-USED-WEIGHT-1M each host sent.
	UsedWeight []UsedWeight
}

// RequestCount is the number of requests to one host with one outcome.
type RequestCount struct {
	Host, Code string
	N          uint64
}

// UsedWeight is the last X-MBX-USED-WEIGHT-1M a host sent, and when.
type UsedWeight struct {
	Host   string
	Weight int64
	At     time.Time
}

// Metrics returns f's counters, sorted by host.
func (f *Forwarder) Metrics() Metrics {
	f.mu.Lock()
	defer f.mu.Unlock()
	var m Metrics
	for k, n := range f.requests {
		m.Requests = append(m.Requests, RequestCount{Host: k[0], Code: k[1], N: n})
	}
	for _, w := range f.weights {
		m.UsedWeight = append(m.UsedWeight, w)
	}
	slices.SortFunc(m.Requests, func(a, b RequestCount) int {
		return cmp.Or(strings.Compare(a.Host, b.Host), strings.Compare(a.Code, b.Code))
	})
	slices.SortFunc(m.UsedWeight, func(a, b UsedWeight) int { return strings.Compare(a.Host, b.Host) })
	return m
}

// clip returns s's first n bytes at most, as valid UTF-8.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}

// slogWriter sends the ReverseProxy's own log lines (a body copy that
// failed) to the Logger at Warn.
type slogWriter struct{ log *slog.Logger }

func (s slogWriter) Write(p []byte) (int, error) {
	s.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

// copyBuffers lends the ReverseProxy the buffers it copies answers with:
// without it, each answer allocates 32 KiB, most of a forwarded request's
// garbage.
var copyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
