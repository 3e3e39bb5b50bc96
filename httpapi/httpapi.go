// Package httpapi serves a symcache.Cache over HTTP with echo: Binance's
// exchangeInfo paths answered byte for byte from the cache, health and
// readiness probes, and Prometheus metrics; with Config.Forward, the rest of
// Binance's REST paths are forwarded (package forward). It is the only place
// where the cache's errors become HTTP statuses and Binance-shaped error
// bodies; forwarded answers are Binance's own.
package httpapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/changes"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/rules"
)

// Backend is what the handlers need of a *symcache.Cache: the data paths,
// the probes and metrics, and the admin endpoints.
type Backend interface {
	Get(ctx context.Context, m exchangeinfo.Market) (symcache.Result, error)
	Ready() ([]symcache.MarketState, bool)
	Stats() []symcache.Stats
	Markets() []exchangeinfo.Market
	Refresh(ctx context.Context, m exchangeinfo.Market) (symcache.Result, error)
	Invalidate(ctx context.Context, m exchangeinfo.Market, dropL2 bool) (l2Deleted bool, err error)
	ClearBackoff(ctx context.Context, m exchangeinfo.Market) (cleared bool, err error)
	Changes(ctx context.Context, m exchangeinfo.Market, q symcache.ChangeQuery) (symcache.ChangePage, error)
	Subscribe(ctx context.Context, m exchangeinfo.Market, q symcache.ChangeQuery) iter.Seq2[changes.Change, error]
}

// Config configures the handler. Only Cache is required.
type Config struct {
	Cache Backend
	// L1, L2 and Upstreams are the tiers whose own counters /metrics and
	// /admin/status show: an *l1.Cache, an *l2.Store, and a *fetch.Client
	// per market. A nil one is not shown.
	L1        L1Stats
	L2        L2Stats
	Upstreams map[exchangeinfo.Market]UpstreamStats
	// Gate is the fetch.Gate the Upstreams and Forward block Binance's hosts
	// in: /admin/status lists its bans, and /metrics has
	// symcache_upstream_blocked_seconds. If nil, neither.
	Gate *fetch.Gate
	// Logger receives one line per failed (5xx) request, and one per client
	// cut off for reading too slowly (MinClientRate). If nil, slog.Default().
	Logger *slog.Logger
	// Registry receives symcache's metrics. If nil, a new registry that also
	// has the Go runtime and process collectors.
	Registry *prometheus.Registry
	// Now tells the time, for Age. If nil, time.Now.
	Now func() time.Time
	// AdminToken enables the admin endpoints under /admin/ (see admin.go)
	// for requests with "Authorization: Bearer <AdminToken>". If empty,
	// admin is disabled: every request under /admin/ answers 401.
	AdminToken string
	// AdminRefreshEvery is the least time between two admin refreshes of a
	// market. If zero, 10s.
	AdminRefreshEvery time.Duration
	// MinClientRate is the slowest a client may read, in bytes a second:
	// every answer must be written within WriteGrace plus its size at this
	// rate (the 3.7 MB spot body: 10 s + 57 s at the defaults), or its
	// connection is closed, symcache_slow_clients_total counts it and Logger
	// warns. The
	// deadline is set on the connection through http.ResponseController
	// (on a connection from Listener, it may cut off up to a second
	// later). If zero, 64 KiB/s; if negative, answers have no write
	// deadline (for a server whose own WriteTimeout bounds them).
	MinClientRate int64
	// WriteGrace is the time every answer has, whatever its size, on top of
	// its size at MinClientRate. If zero, 10s.
	WriteGrace time.Duration
	// Forward answers the requests under forward.Prefixes (/api/, /sapi/,
	// /fapi/, /dapi/) that no cached path answers: a *forward.Forwarder.
	// The cached paths, /v1/, /healthz, /readyz, /metrics and /admin/ are
	// never forwarded; any other path is a 404 whose message names the
	// prefixes. A forwarded answer streams at Binance's pace: each of its
	// writes, not the whole, has WriteGrace plus its size at MinClientRate.
	// If nil, nothing is forwarded: those paths are 404s too.
	Forward http.Handler
	// Heartbeat is the longest a change stream stays silent: a comment
	// line is sent when no change was. If zero, DefaultHeartbeat (15s).
	Heartbeat time.Duration
	// NoUI turns the status page at / off: / is then a 404 like any
	// unknown path.
	NoUI bool
	// Demo, when set, says that the data served is not live: every answer
	// carries the header Warning: 199 symcache "<Demo>", and /readyz a
	// member "demo" with the text. For a sidecar serving recordings
	// (sidecar -demo); the text names them and their date.
	Demo string
	// Stop, when closed, ends every change stream: a server shutting down
	// closes it, so that its drain does not wait for streams that never
	// end (their clients reconnect with Last-Event-ID, to another sidecar
	// or this one restarted). If nil, streams end with their clients.
	Stop <-chan struct{}
	// ForwardStats is the forwarder whose counters /metrics shows
	// (symcache_forwarded_requests_total, symcache_forwarded_used_weight),
	// usually the same *forward.Forwarder as Forward. If nil, none.
	ForwardStats ForwardStats
}

// quotable returns s fit for a header's quoted string: no control
// characters, and ' for ".
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r < ' ' || r == 0x7f:
			return -1
		}
		return r
	}, s)
}

// apiError is Binance's error body. As an error, it is answered with
// Status, or 400 (bad input) when Status is zero.
type apiError struct {
	Status int    `json:"-"`
	Code   int    `json:"code"`
	Msg    string `json:"msg"`
	// cause is the error behind the answer, if any, for errors.As.
	cause error
}

func (e *apiError) Unwrap() error { return e.cause }

func (e *apiError) Error() string { return fmt.Sprintf("binance error %d: %s", e.Code, e.Msg) }

type handler struct {
	cache    Backend
	log      *slog.Logger
	now      func() time.Time
	counters requestCounters
	headers  preparedHeaders
	deadline writeDeadline
	// laneAnswers and laneHandovers count FastLane's work (all its lanes).
	laneAnswers, laneHandovers prometheus.Counter
	notFound                   string // the message of a 404 for an unknown path; "" is "Not Found"
	// forwarded are the forwarded routes (echo's paths, "/api/*"); nil
	// without forwarding.
	forwarded map[string]bool
	// ups are the markets' upstreams, for the used weight on data answers.
	ups       map[exchangeinfo.Market]UpstreamStats
	heartbeat time.Duration   // of change streams
	stop      <-chan struct{} // ends change streams; nil: never
	demo      string          // Config.Demo
	gate      *fetch.Gate     // Config.Gate: the bans the status page shows; nil: none
	locks     LockHolders     // Config.L2, when it has them: the status page's lock holders
	warning   string          // the Warning of every answer in demo mode; "" otherwise
}

// New returns the Server answering every route.
func New(cfg Config) (*Server, error) {
	if cfg.Cache == nil {
		return nil, errors.New("httpapi: no Cache")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo())
	}
	adm, err := newAdmin(cfg)
	if err != nil {
		return nil, err
	}
	h := &handler{
		cache:     cfg.Cache,
		log:       cfg.Logger,
		now:       cfg.Now,
		headers:   newPreparedHeaders(),
		deadline:  newWriteDeadline(cfg),
		ups:       cfg.Upstreams,
		heartbeat: cmp.Or(cfg.Heartbeat, DefaultHeartbeat),
		stop:      cfg.Stop,
		demo:      cfg.Demo,
		gate:      cfg.Gate,
		counters: requestCounters{
			vec: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "symcache_http_requests_total",
				Help: "HTTP requests by route and status code (499: the client went away before an answer).",
			}, []string{"route", "code"}),
			m: map[routeCode]prometheus.Counter{},
		},
	}
	h.locks, _ = cfg.L2.(LockHolders)
	if cfg.Demo != "" {
		h.warning = `199 symcache "` + quotable(cfg.Demo) + `"`
	}
	if err := cfg.Registry.Register(h.counters.vec); err != nil {
		return nil, fmt.Errorf("httpapi: register metrics: %w", err)
	}
	if err := cfg.Registry.Register(h.deadline.slow); err != nil {
		return nil, fmt.Errorf("httpapi: register metrics: %w", err)
	}
	h.laneAnswers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "symcache_fast_lane_answers_total",
		Help: "Requests the fast lane answered itself, without net/http's per-request work (SYMCACHE_FAST_LANE); they are in symcache_http_requests_total too.",
	})
	h.laneHandovers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "symcache_fast_lane_handovers_total",
		Help: "Connections the fast lane handed to net/http, at their first request it does not answer itself (another route, a body, HTTP/1.0, an unusual head).",
	})
	for _, c := range []prometheus.Collector{h.laneAnswers, h.laneHandovers} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi: register metrics: %w", err)
		}
	}
	if err := cfg.Registry.Register(&cacheCollector{cache: cfg.Cache, l1: cfg.L1, l2: cfg.L2, upstreams: cfg.Upstreams, gate: cfg.Gate}); err != nil {
		return nil, fmt.Errorf("httpapi: register metrics: %w", err)
	}
	if cfg.ForwardStats != nil {
		if err := cfg.Registry.Register(forwardCollector{fwd: cfg.ForwardStats}); err != nil {
			return nil, fmt.Errorf("httpapi: register metrics: %w", err)
		}
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = h.handleError
	e.Use(h.count)
	// Every GET route answers HEAD too.
	get := func(path string, hf echo.HandlerFunc) { e.Match([]string{http.MethodGet, http.MethodHead}, path, hf) }
	for _, m := range exchangeinfo.Markets() {
		get(m.Path(), h.exchangeInfo(m))
	}
	get("/v1/symbols/:market", h.listSymbols)
	get("/v1/symbols/:market/:symbol", h.symbol)
	get("/v1/symbols/:market/:symbol/rules", h.symbolRules)
	get("/v1/symbols/:market/:symbol/normalize", h.normalize)
	get("/v1/changes/:market", h.listChanges)
	get("/v1/changes/:market/stream", h.streamChanges)
	if !cfg.NoUI {
		get("/", h.statusPage)
	}
	get("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	get("/readyz", h.readyz)
	get("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	adm.routes(e)
	if cfg.Forward != nil {
		h.forwardRoutes(e, cfg.Forward)
	}
	return newServer(e, h), nil
}

// exchangeInfo answers a market's Binance path as Binance would: the cached
// body as received for a plain request, the selected symbols for a query.
func (h *handler) exchangeInfo(m exchangeinfo.Market) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		raw := r.URL.RawQuery
		full := raw == ""
		// A query answered before is valid and selects symbols: it needs no
		// parsing, and its answer is the one kept, unless the snapshot
		// served has changed since.
		var keptIn *snapshotHeaders
		var kept *payload
		if !full {
			if keptIn, kept = h.keptAnswer(m, r); kept == nil {
				q, err := exchangeinfo.ParseQuery(m, raw)
				if err != nil {
					return err
				}
				full = q.Full()
			}
		}
		res, err := h.cache.Get(r.Context(), m)
		if err != nil {
			return err
		}
		s := res.Snapshot
		prep := h.prepared(s)
		switch {
		case full:
			return h.write(c.Response(), r, res, payload{etag: prep.etag, body: s.Body(), length: prep.plainLen, full: true})
		case kept != nil && keptIn == prep:
			return h.write(c.Response(), r, res, *kept)
		}
		p, err := prep.derived(r, func() ([]byte, error) {
			q, err := exchangeinfo.ParseQuery(m, raw)
			if err != nil {
				return nil, err
			}
			return s.Answer(q)
		})
		if err != nil {
			return h.refused(c.Response(), res, err)
		}
		return h.write(c.Response(), r, res, p)
	}
}

// payload is what write sends: the answer's entity tag and its bytes, or
// how to make them once the request's If-None-Match has been checked.
type payload struct {
	etag   []string               // the ETag value
	body   []byte                 // the bytes, when made already
	length []string               // body's Content-Length value, when known
	make   func() ([]byte, error) // makes the bytes when body is nil
	// full says the answer is the snapshot's body: then it goes
	// gzip-compressed (computed once per snapshot) to clients that accept
	// it (see snapshotHeaders.gzipped), plain to others.
	full bool
}

// write sends a data answer made from res's snapshot with the caching
// headers: X-Cache, Age, ETag, Last-Modified, Cache-Control (the remaining
// freshness), Warning when stale, and X-MBX-USED-WEIGHT(-1M) when the
// market's host reported its used weight in the current minute. A matching
// If-None-Match gets 304 before p's bytes are made. Answers other than the
// full body are small or cheap to send plain on a local link, so they are
// not compressed per request.
func (h *handler) write(w http.ResponseWriter, r *http.Request, res symcache.Result, p payload) error {
	s, now := res.Snapshot, h.now()
	// The full answer is the hot path: its header values come from tables and
	// from what was prepared once per snapshot, so a hit allocates nothing
	// that grows with the payload and very little at all.
	prep := h.prepared(s)
	hdr := w.Header()
	h.sourceHeaders(hdr, res, now)
	hdr["Cache-Control"] = seconds(maxAgeValues, "max-age=", int64(max(res.Expires.Sub(now), 0)/time.Second))
	hdr["Last-Modified"] = prep.lastModified
	gz := p.full && acceptsGzip(r.Header.Values("Accept-Encoding"))
	etag := p.etag
	switch {
	case gz: // the gzip representation has a tag of its own
		etag = prep.etagGzip
		hdr["Vary"] = varyValues
	case p.full:
		hdr["Vary"] = varyValues
	}
	hdr["Etag"] = etag
	if etagMatch(r.Header.Values("If-None-Match"), etag[0]) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	b, n := p.body, p.length
	if b == nil && p.make != nil {
		var err error
		if b, err = p.make(); err != nil {
			for _, k := range []string{"Etag", "Last-Modified", "Cache-Control", "Vary"} {
				delete(hdr, k) // they describe an answer that is not sent
			}
			return err
		}
	}
	if gz {
		b, n = prep.gzipped()
		hdr["Content-Encoding"] = gzipValues
	}
	if n == nil {
		n = []string{strconv.Itoa(len(b))}
	}
	hdr["Content-Length"] = n
	hdr["Content-Type"] = jsonValues
	h.deadline.extend(w, len(b)) // the one answer that can be large: its time grows with it
	w.WriteHeader(http.StatusOK)
	return writeYielding(w, b)
}

// writeChunk is the piece a large answer is written in.
const writeChunk = 256 << 10

// writeYielding writes b in pieces of writeChunk, letting other goroutines
// run between them. A goroutine writing a 3.7 MB answer otherwise keeps its
// processor for as long as the socket takes the bytes, and answers on other
// connections wait: under load, the slowest 1 % of large answers took 4–6×
// longer than with the pieces (bench/README.md, "Large answers").
func writeYielding(w io.Writer, b []byte) error {
	for len(b) > writeChunk {
		if _, err := w.Write(b[:writeChunk]); err != nil {
			return err
		}
		b = b[writeChunk:]
		runtime.Gosched()
	}
	_, err := w.Write(b)
	return err
}

// sourceHeaders describes where res came from, for an answer or an error
// about its snapshot: X-Cache, Age, Warning when stale, and
// X-MBX-USED-WEIGHT(-1M) when the market's host reported its used weight
// in the current minute.
func (h *handler) sourceHeaders(hdr http.Header, res symcache.Result, now time.Time) {
	s := res.Snapshot
	hdr["X-Cache"] = sourceValues[res.Source]
	hdr["Age"] = seconds(ageValues, "", int64(max(s.Age(now), 0)/time.Second))
	if up := h.ups[s.Market()]; up != nil {
		// What Binance would have said: a client's own limiter (go-binance
		// reads it) sees the weight this IP has used this minute.
		if w, at := up.UsedWeight(); fetch.SameMinute(at, now) {
			v := seconds(ageValues, "", w)
			hdr["X-Mbx-Used-Weight"], hdr["X-Mbx-Used-Weight-1m"] = v, v
		}
	}
	if res.Source == symcache.Stale {
		hdr.Add("Warning", `110 symcache "Response is Stale: `+strings.ReplaceAll(res.Reason, `"`, `'`)+`"`)
	}
}

// refused returns err, an answer about res's snapshot that cannot be
// made (a symbol it does not have), after the headers that say where the
// snapshot came from.
func (h *handler) refused(w http.ResponseWriter, res symcache.Result, err error) error {
	h.sourceHeaders(w.Header(), res, h.now())
	return err
}

// derivedETag tags an answer computed from a snapshot and the request: the
// same snapshot and URL always give the same bytes, so the tag needs neither
// the bytes nor the work of making them.
//
// It is exchangeinfo.ETag of the snapshot's ETag, a NUL and the request URI
// (path and query as sent), made on the stack: one allocation, the tag.
func derivedETag(s *exchangeinfo.Snapshot, r *http.Request) string {
	var buf [256]byte
	return uriETag(s, appendURI(buf[:0], r.URL))
}

// uriETag is derivedETag of the request URI uri (see appendURI).
func uriETag(s *exchangeinfo.Snapshot, uri []byte) string {
	var buf [512]byte
	b := append(buf[:0], s.ETag()...)
	b = append(b, 0)
	b = append(b, uri...)
	return exchangeinfo.ETag(b) // b escapes only when longer than buf
}

func (h *handler) readyz(c echo.Context) error {
	markets, ok := h.cache.Ready()
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, struct {
		Ready   bool                   `json:"ready"`
		Markets []symcache.MarketState `json:"markets"`
		Demo    string                 `json:"demo,omitempty"`
	}{ok, markets, h.demo})
}

// unavailableMsg is the message of the 503 for an exchangeInfo that cannot
// be served. It must not be one of the messages clients map to an error of
// their own (ccxt: "System is under maintenance.", "Too many requests.
// Please try again later.").
const unavailableMsg = "No exchangeInfo can be served right now: Binance did not answer in time or refused, and nothing recent enough is cached. Please try again later."

// handleError is the one place errors become statuses.
func (h *handler) handleError(err error, c echo.Context) {
	if c.Response().Committed || errors.Is(err, context.Canceled) {
		return
	}
	status, body := http.StatusInternalServerError, apiError{Code: -1000, Msg: "An unknown error occurred while processing the request."}
	var bad *apiError
	var qe *exchangeinfo.QueryError
	var ie *rules.InputError
	var he *echo.HTTPError
	var ue *symcache.UnavailableError
	switch {
	case errors.As(err, &bad):
		status, body = cmp.Or(bad.Status, http.StatusBadRequest), *bad
	case errors.As(err, &qe):
		status, body = http.StatusBadRequest, apiError{Code: qe.Code, Msg: qe.Msg}
	case errors.As(err, &ie):
		status, body = http.StatusBadRequest, apiError{Code: -1130, Msg: fmt.Sprintf("Data sent for parameter '%s' is not valid: %s", ie.Field, ie.Msg)}
	case errors.As(err, &ue):
		// -1007, Binance's "timeout waiting for the backend": the one code
		// ccxt takes for a network-class failure (RequestTimeout) from any
		// host; -1008 would be a plain ExchangeError there, never retried.
		status, body = http.StatusServiceUnavailable, apiError{Code: -1007, Msg: unavailableMsg}
		c.Response().Header().Set("Retry-After", strconv.Itoa(int((ue.RetryAfter+time.Second-1)/time.Second)))
	case errors.Is(err, symcache.ErrUnknownMarket):
		status, body = http.StatusNotFound, apiError{Code: -1000, Msg: "This market is not served here."}
	case errors.Is(err, context.DeadlineExceeded):
		status, body = http.StatusServiceUnavailable, apiError{Code: -1007, Msg: "Timeout waiting for response from backend server."}
		c.Response().Header().Set("Retry-After", "1")
	case errors.Is(err, echo.ErrNotFound) && h.notFound != "":
		status, body = http.StatusNotFound, apiError{Code: -1000, Msg: h.notFound}
	case errors.As(err, &he):
		status, body = he.Code, apiError{Code: -1000, Msg: fmt.Sprint(he.Message)}
	}
	var be *symcache.BackoffError
	switch {
	case status >= 500 && errors.As(err, &be):
		// An admin refresh refused during a backoff: expected, and the
		// failure behind the backoff was logged when it happened.
		h.log.Warn("request refused during a backoff", "path", c.Request().URL.Path, "status", status, "err", err)
	case status >= 500:
		h.log.Error("request failed", "path", c.Request().URL.Path, "status", status, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(status)
		return
	}
	c.JSON(status, body)
}

// count is the middleware behind symcache_http_requests_total and
// symcache_slow_clients_total. It also gives every answer the write deadline
// of a small one (see writeDeadline), which write extends by the size of a
// data answer: that also replaces an earlier answer's deadline on the same
// connection.
func (h *handler) count(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h.counted(c, func(c echo.Context, _ pathParams) error { return next(c) }, pathParams{})
		return nil
	}
}

// pathParams are the parameters of a path Server matches itself, given to
// its handler directly rather than through echo's context.
type pathParams struct{ market, symbol string }

// pathHandler is the handler of a path Server matches itself.
type pathHandler func(echo.Context, pathParams) error

// counted runs next for c as the middleware count does: the answer's first
// write deadline, the demo Warning, a panic recovered, an error answered,
// and the answer counted by route and status.
func (h *handler) counted(c echo.Context, next pathHandler, pp pathParams) {
	if !h.forwarded[c.Path()] { // a forwarded answer has deadlines of its own
		h.deadline.set(c.Response(), 0)
	}
	if h.warning != "" {
		c.Response().Header().Add("Warning", h.warning)
	}
	err := recovered(next, c, pp)
	if errors.Is(err, errAborted) {
		// An answer cut short (a forwarded one, by Binance or the
		// client): count it, then let net/http drop the connection, so
		// that the client cannot take what it got for a whole answer.
		code := c.Response().Status
		if !c.Response().Committed {
			code = 499
		}
		h.counter(cmp.Or(c.Path(), "unmatched"), code).Inc()
		panic(http.ErrAbortHandler)
	}
	if h.deadline.cutOff(err, c) {
		err = nil // the connection is gone: nothing more can be sent
	}
	if err != nil {
		c.Error(err) // write the answer now, so its status is known
	}
	route := c.Path()
	if route == "" || c.Response().Status == http.StatusNotFound && route == "/*" {
		route = "unmatched"
	}
	code := c.Response().Status
	if !c.Response().Committed {
		code = 499 // the client went away before an answer (nginx's code)
	}
	h.counter(route, code).Inc()
	if !c.Response().Committed && c.Request().Context().Err() != nil {
		// net/http would answer a handler that wrote nothing with an empty
		// 200, which a client that only closed its sending side would
		// read as an answer: drop the connection instead.
		panic(http.ErrAbortHandler)
	}
}

// errAborted is recovered's error for a panic with http.ErrAbortHandler:
// an answer to cut short, not a failure of the sidecar.
var errAborted = errors.New("answer aborted")

// recovered runs next, turning a panic into an error (answered 500 and
// logged by handleError) instead of a dropped connection; a panic with
// http.ErrAbortHandler becomes errAborted.
func recovered(next pathHandler, c echo.Context, pp pathParams) (err error) {
	defer func() {
		if p := recover(); p == http.ErrAbortHandler {
			err = errAborted
		} else if p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return next(c, pp)
}

// etagMatch implements If-None-Match's weak comparison for GET, over every
// line of the header.
func etagMatch(lines []string, etag string) bool {
	for _, line := range lines {
		for t := range strings.SplitSeq(line, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// acceptsGzip reports whether the lines of an Accept-Encoding header allow
// gzip: listed, and not with a zero quality ("gzip;q=0"; parameter names are
// case-insensitive and may have spaces around them).
func acceptsGzip(lines []string) bool {
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			for param := range strings.SplitSeq(params, ";") {
				k, v, _ := strings.Cut(param, "=")
				if strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f == 0 {
						return false
					}
				}
			}
			return true
		}
	}
	return false
}
