package fetch

import (
	"cmp"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// defaultRetryAfter is how long a host is blocked after a 429 or 418 whose
// Retry-After header is missing or unparsable, within a Client's bounds.
const defaultRetryAfter = 60 * time.Second

// bounds are the limits a Client puts on a Retry-After: Config's
// RateLimitMax, BanMin and BanMax, defaults filled in, banMin <= banMax.
type bounds struct {
	rateLimitMax, banMin, banMax time.Duration
}

// retryAfter is how long an answer with status code and Retry-After v,
// received at now, blocks its host: for a 429, v (defaultRetryAfter if
// missing or unparsable) at most rateLimitMax; for a 418, the same between
// banMin and banMax; for any other status, 0 whatever v says. clamped
// reports whether v was a valid Retry-After outside those bounds, so d is
// the nearest bound.
func (b bounds) retryAfter(code int, v string, now time.Time) (d time.Duration, clamped bool) {
	var lo, hi time.Duration
	switch code {
	case http.StatusTooManyRequests:
		lo, hi = 0, b.rateLimitMax
	case http.StatusTeapot:
		lo, hi = b.banMin, b.banMax
	default:
		return 0, false
	}
	d, ok := parseRetryAfter(v, now)
	if !ok {
		return min(max(defaultRetryAfter, lo), hi), false
	}
	if d < lo || d > hi {
		return min(max(d, lo), hi), true
	}
	return d, false
}

// Bounds are the limits put on a Retry-After, as a Client puts them
// (Config's RateLimitMax, BanMin and BanMax), for other code that talks to
// Binance through the same Gate and must block hosts by the same rules. A
// zero field means its default: DefaultRateLimitMax, DefaultBanMin,
// DefaultBanMax.
type Bounds struct {
	RateLimitMax, BanMin, BanMax time.Duration
}

// RetryAfter is how long an answer with status code and Retry-After header
// v, received at now, blocks its host, exactly as a Client computes it: for
// a 429, v (60s if missing or unparsable) at most RateLimitMax; for a 418,
// the same between BanMin and BanMax (a BanMin longer than BanMax counts as
// BanMax); for any other status, 0 whatever v says. clamped reports that v
// was a valid Retry-After outside those bounds, so d is the nearest bound.
func (b Bounds) RetryAfter(code int, v string, now time.Time) (d time.Duration, clamped bool) {
	rb := bounds{
		rateLimitMax: cmp.Or(b.RateLimitMax, DefaultRateLimitMax),
		banMin:       cmp.Or(b.BanMin, DefaultBanMin),
		banMax:       cmp.Or(b.BanMax, DefaultBanMax),
	}
	rb.banMin = min(rb.banMin, rb.banMax)
	return rb.retryAfter(code, v, now)
}

// GateHost is the key a Gate knows u's host by, as a Client blocks it: the
// lower-case host name, with the port unless it is the scheme's default
// ("api.binance.com", "127.0.0.1:8080").
func GateHost(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && !(u.Scheme == "http" && p == "80" || u.Scheme == "https" && p == "443") {
		host = net.JoinHostPort(host, p)
	}
	return host
}

// Gate remembers which hosts answered 429 or 418 and until when no request
// may be sent to them. Share one Gate between every Client that talks to the
// same hosts, so that a ban seen by one market holds for all. The zero Gate
// is empty and ready to use; a Gate is safe for concurrent use.
type Gate struct {
	mu    sync.Mutex
	hosts map[string]block
}

type block struct {
	until time.Time
	code  int
}

// NewGate returns an empty Gate.
func NewGate() *Gate { return &Gate{} }

// Block forbids requests to host (a URL's host, with the port if it is not
// the scheme's default, e.g. "api.binance.com" or "127.0.0.1:8080") before
// until, because of an answer with status code. An earlier block that ends
// later is kept. A Client blocks a host only after a 429 or 418, until the
// answer's Retry-After within its Config's bounds: at most RateLimitMax or
// BanMax after the answer.
func (g *Gate) Block(host string, code int, until time.Time) {
	host = strings.ToLower(host)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hosts == nil {
		g.hosts = make(map[string]block)
	}
	if b, ok := g.hosts[host]; ok && !until.After(b.until) {
		return
	}
	g.hosts[host] = block{until: until, code: code}
}

// Unblock lifts host's block, if any, and reports whether there was one.
func (g *Gate) Unblock(host string) bool {
	host = strings.ToLower(host)
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.hosts[host]
	delete(g.hosts, host)
	return ok
}

// Blocked reports whether host is blocked at now, and if so until when and
// because of which status code. A block whose time has passed is forgotten.
func (g *Gate) Blocked(host string, now time.Time) (until time.Time, code int, ok bool) {
	host = strings.ToLower(host)
	g.mu.Lock()
	defer g.mu.Unlock()
	b, ok := g.hosts[host]
	if !ok {
		return time.Time{}, 0, false
	}
	if !now.Before(b.until) {
		delete(g.hosts, host)
		return time.Time{}, 0, false
	}
	return b.until, b.code, true
}

// parseRetryAfter reads a Retry-After header value (RFC 9110 §10.2.3):
// delta-seconds, or an HTTP-date taken relative to now (a date in the past
// is zero). ok is false when v is neither. Huge delta-seconds saturate
// instead of overflowing.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil || secs > math.MaxInt64/uint64(time.Second) {
			return time.Duration(math.MaxInt64), true // out of range: as long as it gets
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
