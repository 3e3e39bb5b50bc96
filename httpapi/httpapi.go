// Package httpapi serves a symcache.Cache over HTTP with echo: Binance's
// exchangeInfo paths answered byte for byte from the cache, health and
// readiness probes, and Prometheus metrics. It is the only place where errors
// become HTTP statuses and Binance-shaped error bodies.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
)

// Backend is what the handlers need of a *symcache.Cache.
type Backend interface {
	Get(ctx context.Context, m exchangeinfo.Market) (symcache.Result, error)
	Ready() ([]symcache.MarketState, bool)
	Stats() []symcache.Stats
}

// Config configures the handler. Only Cache is required.
type Config struct {
	Cache Backend
	// Logger receives one line per failed (5xx) request. If nil, slog.Default().
	Logger *slog.Logger
	// Registry receives symcache's metrics. If nil, a new registry that also
	// has the Go runtime and process collectors.
	Registry *prometheus.Registry
	// Now tells the time, for Age. If nil, time.Now.
	Now func() time.Time
}

// apiError is Binance's error body. As an error, it is bad input: status 400.
type apiError struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

func (e *apiError) Error() string { return fmt.Sprintf("binance error %d: %s", e.Code, e.Msg) }

type handler struct {
	cache    Backend
	log      *slog.Logger
	now      func() time.Time
	requests *prometheus.CounterVec
}

// New returns the echo instance serving every route.
func New(cfg Config) (*echo.Echo, error) {
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
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	h := &handler{
		cache: cfg.Cache,
		log:   cfg.Logger,
		now:   cfg.Now,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "symcache_http_requests_total",
			Help: "HTTP requests by route and status code (499: the client went away before an answer).",
		}, []string{"route", "code"}),
	}
	if err := cfg.Registry.Register(h.requests); err != nil {
		return nil, fmt.Errorf("httpapi: register metrics: %w", err)
	}
	if err := cfg.Registry.Register(&cacheCollector{cache: cfg.Cache}); err != nil {
		return nil, fmt.Errorf("httpapi: register metrics: %w", err)
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = h.handleError
	e.Use(h.count)
	for _, m := range exchangeinfo.Markets() {
		e.GET(m.Path(), h.exchangeInfo(m))
	}
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", h.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	return e, nil
}

// exchangeInfo answers a market's Binance path with the cached body, as
// received from Binance.
func (h *handler) exchangeInfo(m exchangeinfo.Market) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		// Query filters come with the query API; until then any parameter is
		// refused as Binance refuses parameters it does not read (-1104, see
		// https://developers.binance.com/docs/binance-spot-api-docs/errors),
		// rather than silently answering the full list. A malformed
		// parameter counts too: dropping it would answer the full list.
		if n := countParams(r.URL.RawQuery); n > 0 {
			return &apiError{Code: -1104, Msg: fmt.Sprintf("Not all sent parameters were read; read '0' parameter(s) but was sent '%d'.", n)}
		}
		res, err := h.cache.Get(r.Context(), m)
		if err != nil {
			return err
		}
		s := res.Snapshot
		hdr := c.Response().Header()
		hdr.Set("X-Cache", res.Source.String())
		hdr.Set("Age", strconv.FormatInt(int64(max(s.Age(h.now()), 0)/time.Second), 10))
		hdr.Set("ETag", s.ETag())
		hdr.Set("Vary", "Accept-Encoding")
		if res.Source == symcache.Stale {
			hdr.Set("Warning", `110 symcache "Response is Stale: `+strings.ReplaceAll(res.Reason, `"`, `'`)+`"`)
		}
		if etagMatch(r.Header.Values("If-None-Match"), s.ETag()) {
			return c.NoContent(http.StatusNotModified)
		}
		body := s.Body()
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			body = s.Gzip()
			hdr.Set("Content-Encoding", "gzip")
		}
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
		return c.Blob(http.StatusOK, "application/json", body)
	}
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
	}{ok, markets})
}

// handleError is the one place errors become statuses.
func (h *handler) handleError(err error, c echo.Context) {
	if c.Response().Committed || errors.Is(err, context.Canceled) {
		return
	}
	status, body := http.StatusInternalServerError, apiError{Code: -1000, Msg: "An unknown error occurred while processing the request."}
	var bad *apiError
	var he *echo.HTTPError
	var ue *symcache.UnavailableError
	switch {
	case errors.As(err, &bad):
		status, body = http.StatusBadRequest, *bad
	case errors.As(err, &ue):
		status, body = http.StatusServiceUnavailable, apiError{Code: -1008, Msg: "No exchangeInfo can be served right now; please try again later."}
		c.Response().Header().Set("Retry-After", strconv.Itoa(int((ue.RetryAfter+time.Second-1)/time.Second)))
	case errors.Is(err, symcache.ErrUnknownMarket):
		status, body = http.StatusNotFound, apiError{Code: -1000, Msg: "This market is not served here."}
	case errors.Is(err, context.DeadlineExceeded):
		status, body = http.StatusServiceUnavailable, apiError{Code: -1007, Msg: "Timeout waiting for response from backend server."}
		c.Response().Header().Set("Retry-After", "1")
	case errors.As(err, &he):
		status, body = he.Code, apiError{Code: -1000, Msg: fmt.Sprint(he.Message)}
	}
	if status >= 500 {
		h.log.Error("request failed", "path", c.Request().URL.Path, "status", status, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(status)
		return
	}
	c.JSON(status, body)
}

// count is the middleware behind symcache_http_requests_total.
func (h *handler) count(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := recovered(next, c)
		if err != nil {
			c.Error(err) // write the answer now, so its status is known
		}
		route := c.Path()
		if route == "" || c.Response().Status == http.StatusNotFound && route == "/*" {
			route = "unmatched"
		}
		code := strconv.Itoa(c.Response().Status)
		if !c.Response().Committed {
			code = "499" // the client went away before an answer (nginx's code)
		}
		h.requests.WithLabelValues(route, code).Inc()
		return nil
	}
}

// recovered runs next, turning a panic into an error (answered 500 and
// logged by handleError) instead of a dropped connection.
func recovered(next echo.HandlerFunc, c echo.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return next(c)
}

// countParams counts the parameters of a raw query: its non-empty parts
// between "&"s, whether or not they decode (url.ParseQuery would drop a
// malformed one, such as "symbol=%" or "symbol=BTCUSDT;").
func countParams(rawQuery string) int {
	n := 0
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part != "" {
			n++
		}
	}
	return n
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
