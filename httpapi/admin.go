package httpapi

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/version"
)

// The admin endpoints, under /admin/, for an operator holding the admin
// token (Config.AdminToken):
//
//	POST /admin/refresh/{market}[?force=true]  fetch from Binance now (force: end any backoff first)
//	POST /admin/invalidate/{market}[?l2=true]  drop the cached snapshot
//	GET  /admin/status                         state and counters
//
// Without the token, or when no token is configured, every request under
// /admin answers the same 401, whatever the path: nothing tells whether
// admin is enabled or which endpoints exist.

// errUnauthorized is every refused admin request's answer (Binance's own
// code and message for it).
var errUnauthorized = &apiError{Status: http.StatusUnauthorized, Code: -1002, Msg: "You are not authorized to execute this request."}

// processStart is about when the process started, for the uptime.
var processStart = time.Now()

type admin struct {
	enabled  bool
	tokenSum [sha256.Size]byte // of the token: compared in constant time, whatever the length sent
	cache    Backend
	l1       L1Stats
	l2       L2Stats
	ups      map[exchangeinfo.Market]UpstreamStats
	gate     *fetch.Gate // nil: no bans shown
	served   map[exchangeinfo.Market]bool
	every    time.Duration // between two admin refreshes of a market
	log      *slog.Logger
	now      func() time.Time

	mu   sync.Mutex
	last map[exchangeinfo.Market]time.Time // when each market's last admin refresh began
}

// newAdmin checks the admin settings of cfg, whose Logger and Now are set.
func newAdmin(cfg Config) (*admin, error) {
	if cfg.AdminRefreshEvery < 0 {
		return nil, fmt.Errorf("httpapi: AdminRefreshEvery %v is negative", cfg.AdminRefreshEvery)
	}
	a := &admin{
		enabled: cfg.AdminToken != "",
		cache:   cfg.Cache,
		l1:      cfg.L1,
		l2:      cfg.L2,
		ups:     cfg.Upstreams,
		gate:    cfg.Gate,
		every:   cmp.Or(cfg.AdminRefreshEvery, 10*time.Second),
		log:     cfg.Logger,
		now:     cfg.Now,
		last:    make(map[exchangeinfo.Market]time.Time),
	}
	if !a.enabled {
		return a, nil
	}
	a.tokenSum = sha256.Sum256([]byte(cfg.AdminToken))
	a.served = make(map[exchangeinfo.Market]bool)
	for _, m := range a.cache.Markets() {
		a.served[m] = true
	}
	return a, nil
}

// routes registers the admin endpoints on e, the same ones whether admin is
// enabled or not, so that not even the route labels of the metrics differ.
func (a *admin) routes(e *echo.Echo) {
	g := e.Group("/admin", a.auth) // the group's middleware also runs for unknown paths under /admin
	g.POST("/refresh/:market", a.refresh, a.audit("refresh"))
	g.POST("/invalidate/:market", a.invalidate, a.audit("invalidate"))
	g.Match([]string{http.MethodGet, http.MethodHead}, "/status", a.status)
}

// auth lets through only requests with the admin token, and answers every
// other one the same: 401, WWW-Authenticate: Bearer, Binance's body.
func (a *admin) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		hdr := c.Response().Header()
		hdr.Set("Cache-Control", "no-store")
		if !a.authorized(r.Header.Get(echo.HeaderAuthorization)) {
			if a.enabled {
				a.log.Warn("admin request refused: missing or wrong token", "path", r.URL.Path, "remote_addr", r.RemoteAddr)
			} else {
				a.log.Warn("admin request refused: no admin token is configured", "path", r.URL.Path, "remote_addr", r.RemoteAddr)
			}
			hdr.Set(echo.HeaderWWWAuthenticate, "Bearer")
			return errUnauthorized
		}
		if c.Path() == "/admin/*" { // no route of this method: a known path answers 405, as elsewhere
			if allow := adminMethods(r.URL.Path); allow != "" {
				hdr.Set(echo.HeaderAllow, allow)
				return echo.ErrMethodNotAllowed
			}
		}
		return next(c)
	}
}

// adminMethods returns the methods of the admin route that path names, or
// "" when none does.
func adminMethods(path string) string {
	oneSegment := func(prefix string) bool {
		rest, ok := strings.CutPrefix(path, prefix)
		return ok && rest != "" && !strings.Contains(rest, "/")
	}
	switch {
	case path == "/admin/status":
		return "GET, HEAD"
	case oneSegment("/admin/refresh/"), oneSegment("/admin/invalidate/"):
		return "POST"
	}
	return ""
}

// authorized reports whether an Authorization header value carries the
// admin token ("Bearer <token>"; the scheme is case-insensitive). SHA-256
// sums are compared in constant time, so the time taken tells nothing of
// how much of the token, or of its length, was right.
func (a *admin) authorized(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	ok = ok && strings.EqualFold(scheme, "Bearer")
	token = strings.TrimLeft(token, " ")
	sum := sha256.Sum256([]byte(token))
	match := subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
	return a.enabled && ok && token != "" && match
}

// audit logs an admin action at Info, once it is answered: the action, the
// market asked for, who asked, and the status. Never the token.
func (a *admin) audit(action string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := next(c); err != nil {
				c.Error(err) // answer now, so that the status is known
			}
			status := c.Response().Status
			if !c.Response().Committed {
				status = 499 // the client went away
			}
			a.log.Info("admin action", "action", action, "market", c.Param("market"), "remote_addr", c.Request().RemoteAddr, "status", status)
			return nil
		}
	}
}

// market resolves the :market path parameter to a market served here.
func (a *admin) market(c echo.Context) (exchangeinfo.Market, error) {
	m, err := exchangeinfo.ParseMarket(c.Param("market"))
	if err != nil {
		return "", &apiError{Status: http.StatusNotFound, Code: -1000, Msg: fmt.Sprintf("Unknown market %q: want spot, usdm or coinm.", c.Param("market"))}
	}
	if !a.served[m] {
		return "", &apiError{Status: http.StatusNotFound, Code: -1000, Msg: "This market is not served here."}
	}
	return m, nil
}

// refreshAnswer is POST /admin/refresh/{market}'s answer.
type refreshAnswer struct {
	Market    exchangeinfo.Market `json:"market"`
	ETag      string              `json:"etag"`
	FetchedAt time.Time           `json:"fetched_at"`
	Symbols   int                 `json:"symbols"`
	Source    string              `json:"source"` // "MISS": fetched by this process; "HIT-L2": by another sidecar, taken from Redis
}

// refresh is POST /admin/refresh/{market}: fetch now, at most once per
// AdminRefreshEvery per market, and never during an upstream backoff.
func (a *admin) refresh(c echo.Context) error {
	m, err := a.market(c)
	if err != nil {
		return err
	}
	force := false
	if v := c.QueryParam("force"); v != "" {
		if force, err = strconv.ParseBool(v); err != nil {
			return &apiError{Code: -1130, Msg: "Data sent for parameter 'force' is not valid."}
		}
	}
	if err := a.limit(c, m); err != nil {
		return err
	}
	if force { // end every backoff, the deployment's included, then fetch
		if _, err := a.cache.ClearBackoff(c.Request().Context(), m); err != nil {
			a.log.Warn("admin refresh: ending the deployment's backoff failed; refreshing anyway", "market", m, "err", err)
		}
	}
	res, err := a.cache.Refresh(c.Request().Context(), m)
	var be *symcache.BackoffError
	switch {
	case errors.As(err, &be):
		wait := ceilSeconds(be.Until.Sub(a.now()))
		why := error(be) // a blocked host says so itself
		if be.Cause != nil {
			why = be.Cause
		}
		c.Response().Header().Set("Retry-After", wait)
		return &apiError{Status: http.StatusServiceUnavailable, Code: -1003,
			Msg:   fmt.Sprintf("Binance is not asked for %s before %s (%v); retry after %ss.", m, be.Until.UTC().Format(time.RFC3339), why, wait),
			cause: be}
	case errors.Is(err, context.Canceled):
		return err // the client went away; the fetch goes on
	case err != nil:
		return &apiError{Status: http.StatusBadGateway, Code: -1000, Msg: fmt.Sprintf("Refreshing %s failed, still serving what was served: %v", m, err)}
	}
	s := res.Snapshot
	return c.JSON(http.StatusOK, refreshAnswer{Market: m, ETag: s.ETag(), FetchedAt: s.FetchedAt().UTC(), Symbols: s.Len(), Source: res.Source.String()})
}

// limit takes market m's admin slot, or answers 429 with Retry-After. Every
// admin action that may make the next request ask Binance (a refresh, an
// invalidation) shares the slot: whatever the path, an operator (or a
// stolen token) causes at most one fetch per market per AdminRefreshEvery.
func (a *admin) limit(c echo.Context, m exchangeinfo.Market) error {
	wait := a.reserve(m)
	if wait <= 0 {
		return nil
	}
	c.Response().Header().Set("Retry-After", ceilSeconds(wait))
	return &apiError{Status: http.StatusTooManyRequests, Code: -1003,
		Msg: fmt.Sprintf("Too many admin refreshes or invalidations of %s: at most one every %s; retry after %s.", m, a.every, ceilSeconds(wait)+"s")}
}

// reserve takes market m's admin slot and returns 0, or returns how long
// until the slot is free again.
func (a *admin) reserve(m exchangeinfo.Market) time.Duration {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if last, ok := a.last[m]; ok {
		if wait := last.Add(a.every).Sub(now); wait > 0 {
			return min(wait, a.every) // the clock may have gone back
		}
	}
	a.last[m] = now
	return 0
}

// ceilSeconds is d in whole seconds, rounded up, at least 1: a Retry-After.
func ceilSeconds(d time.Duration) string {
	return strconv.FormatInt(retryAfterSeconds(d), 10)
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1: what a
// Retry-After says.
func retryAfterSeconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}

// invalidateAnswer is POST /admin/invalidate/{market}'s answer.
type invalidateAnswer struct {
	Market    exchangeinfo.Market `json:"market"`
	L1Dropped bool                `json:"l1_dropped"`
	L2Deleted bool                `json:"l2_deleted"`
}

// invalidate is POST /admin/invalidate/{market}[?l2=true]: drop the market
// from this process's L1 and, with l2=true, Redis' current key (never
// last_good).
func (a *admin) invalidate(c echo.Context) error {
	m, err := a.market(c)
	if err != nil {
		return err
	}
	dropL2 := false
	if v := c.QueryParam("l2"); v != "" {
		if dropL2, err = strconv.ParseBool(v); err != nil {
			return &apiError{Code: -1130, Msg: "Data sent for parameter 'l2' is not valid."}
		}
	}
	if err := a.limit(c, m); err != nil {
		return err
	}
	deleted, err := a.cache.Invalidate(c.Request().Context(), m, dropL2)
	if err != nil {
		return &apiError{Status: http.StatusServiceUnavailable, Code: -1000, Msg: fmt.Sprintf("Invalidating %s failed: %v", m, err)}
	}
	return c.JSON(http.StatusOK, invalidateAnswer{Market: m, L1Dropped: true, L2Deleted: deleted})
}

// statusAnswer is GET /admin/status's answer.
type statusAnswer struct {
	Process processStatus  `json:"process"`
	Admin   adminSettings  `json:"admin"`
	Tiers   *tierStats     `json:"tiers,omitempty"` // when the tiers were given
	Markets []marketStatus `json:"markets"`
	// Bans are the Binance hosts nothing is sent to now, after a 429 or
	// 418 (this sidecar's, or another's on the same Redis); omitted
	// without a Gate.
	Bans *[]banStatus `json:"bans,omitempty"`
}

type banStatus struct {
	Host              string    `json:"host"`
	Status            int       `json:"status"` // 429 or 418
	Until             time.Time `json:"until"`
	RetryAfterSeconds int64     `json:"retry_after_seconds"` // as a forwarded request is told
}

type processStatus struct {
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	PID           int       `json:"pid"`
	GoVersion     string    `json:"go_version"`
	Version       string    `json:"version"` // as symcache_build_info and `sidecar version` tell it
}

type adminSettings struct {
	RefreshEverySeconds float64 `json:"refresh_every_seconds"`
}

// marketStatus is a market's state (as /readyz shows it), its counters, its
// upstream's, and when an admin refresh may come next.
type marketStatus struct {
	symcache.MarketState
	Counters map[string]any  `json:"counters"`           // counterTable's
	Upstream *upstreamStatus `json:"upstream,omitempty"` // when the upstream client counts
	// AdminRefreshAt is when the next admin refresh is allowed; omitted if now.
	AdminRefreshAt time.Time `json:"admin_refresh_at,omitzero"`
}

type upstreamStatus struct {
	// UsedWeight is the last X-MBX-USED-WEIGHT-1M Binance sent, and when;
	// omitted before the first.
	UsedWeight   *int64            `json:"used_weight_1m,omitempty"`
	UsedWeightAt time.Time         `json:"used_weight_at,omitzero"`
	Requests     []upstreamRequest `json:"requests"`
}

type upstreamRequest struct {
	BaseURL string `json:"base_url"`
	Code    string `json:"code"` // the status, or "error"
	N       uint64 `json:"n"`
}

// status is GET /admin/status.
func (a *admin) status(c echo.Context) error {
	now := a.now()
	ans := statusAnswer{
		Process: processStatus{
			StartedAt:     processStart.UTC(),
			UptimeSeconds: time.Since(processStart).Seconds(),
			PID:           os.Getpid(),
			GoVersion:     runtime.Version(),
			Version:       version.Version,
		},
		Admin:   adminSettings{RefreshEverySeconds: a.every.Seconds()},
		Markets: []marketStatus{},
	}
	ans.Tiers = readTiers(a.l1, a.l2)
	if a.gate != nil {
		bans := []banStatus{}
		real := time.Now() // the Gate's clock
		for _, b := range a.gate.Blocks(real) {
			bans = append(bans, banStatus{Host: b.Host, Status: b.Code, Until: b.Until.UTC(), RetryAfterSeconds: retryAfterSeconds(b.Until.Sub(real))})
		}
		ans.Bans = &bans
	}
	a.mu.Lock()
	last := make(map[exchangeinfo.Market]time.Time, len(a.last))
	for m, t := range a.last {
		last[m] = t
	}
	a.mu.Unlock()
	for _, st := range a.cache.Stats() {
		ms := marketStatus{MarketState: st.State, Counters: counters(&st)}
		if t, ok := last[st.Market]; ok && t.Add(a.every).After(now) {
			ms.AdminRefreshAt = t.Add(a.every).UTC()
		}
		if up := a.ups[st.Market]; up != nil {
			u := up.Metrics()
			us := &upstreamStatus{Requests: []upstreamRequest{}}
			if !u.UsedWeightAt.IsZero() {
				w := u.UsedWeight
				us.UsedWeight, us.UsedWeightAt = &w, u.UsedWeightAt.UTC()
			}
			for _, r := range u.Requests {
				us.Requests = append(us.Requests, upstreamRequest{BaseURL: r.BaseURL, Code: r.Code, N: r.N})
			}
			ms.Upstream = us
		}
		ans.Markets = append(ans.Markets, ms)
	}
	return c.JSON(http.StatusOK, ans)
}
