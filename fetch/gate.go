package fetch

import (
	"cmp"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
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
// may be sent to them, and the request weight each host last reported. Share
// one Gate between every Client (and forward.Forwarder) that talks to the
// same hosts, so that a ban seen by one holds for all; OnChange and Apply
// carry its blocks to and from other processes. The zero Gate is empty and
// ready to use; a Gate is safe for concurrent use.
type Gate struct {
	mu       sync.RWMutex
	hosts    map[string]block
	weights  map[string]weight
	onChange func(Change)
}

type block struct {
	until time.Time
	code  int
}

type weight struct {
	w  int64
	at time.Time
}

// Change is a block a Gate took or lifted, as OnChange reports it and Apply
// takes it.
type Change struct {
	Host  string    // as Block takes it: lower case, with the port unless the scheme's default
	Code  int       // 429 or 418; 0: the block is lifted
	Until time.Time // the block's end; zero: lifted
}

// Lifted reports whether c lifts a block rather than takes one.
func (c Change) Lifted() bool { return c.Code == 0 || c.Until.IsZero() }

// NewGate returns an empty Gate.
func NewGate() *Gate { return &Gate{} }

// OnChange makes g call fn after each change Block and Unblock make: a new
// block, a block made longer, and every Unblock (lifted, also when g had no
// block: another process may have one). Changes that Apply makes are not
// reported, so two processes that report to each other do not echo. fn runs
// on the goroutine of the Block or Unblock, outside g's lock: it must return
// quickly (send its work elsewhere). Call it before g is in use; a later call
// replaces fn.
func (g *Gate) OnChange(fn func(Change)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.onChange = fn
}

// Block forbids requests to host (a URL's host, with the port if it is not
// the scheme's default, e.g. "api.binance.com" or "127.0.0.1:8080") before
// until, because of an answer with status code. An earlier block that ends
// later is kept. A Client blocks a host only after a 429 or 418, until the
// answer's Retry-After within its Config's bounds: at most RateLimitMax or
// BanMax after the answer.
func (g *Gate) Block(host string, code int, until time.Time) {
	c := Change{Host: strings.ToLower(host), Code: code, Until: until}
	if fn := g.apply(c); fn != nil {
		fn(c)
	}
}

// Unblock lifts host's block, if any, and reports whether there was one.
func (g *Gate) Unblock(host string) bool {
	c := Change{Host: strings.ToLower(host)}
	g.mu.RLock()
	_, ok := g.hosts[c.Host]
	g.mu.RUnlock()
	if fn := g.apply(c); fn != nil {
		fn(c)
	}
	return ok
}

// Apply takes a change made elsewhere, another process's Gate's, without
// reporting it to OnChange's fn: a block (kept only where it ends later
// than g's own), or a lift. A block with a code other than 429 or 418 is
// taken as a 429's.
func (g *Gate) Apply(c Change) {
	c.Host = strings.ToLower(c.Host)
	if !c.Lifted() && c.Code != http.StatusTeapot {
		c.Code = http.StatusTooManyRequests
	}
	g.apply(c)
}

// apply makes c and returns OnChange's fn when c changed something to
// report: a lift, or a block that ends later than the one g had.
func (g *Gate) apply(c Change) func(Change) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.Lifted() {
		delete(g.hosts, c.Host)
		return g.onChange
	}
	if g.hosts == nil {
		g.hosts = make(map[string]block)
	}
	if b, ok := g.hosts[c.Host]; ok && !c.Until.After(b.until) {
		return nil
	}
	g.hosts[c.Host] = block{until: c.Until, code: c.Code}
	return g.onChange
}

// Blocked reports whether host is blocked at now, and if so until when and
// because of which status code.
func (g *Gate) Blocked(host string, now time.Time) (until time.Time, code int, ok bool) {
	host = strings.ToLower(host)
	g.mu.RLock()
	b, ok := g.hosts[host]
	g.mu.RUnlock()
	if !ok || !now.Before(b.until) {
		return time.Time{}, 0, false
	}
	return b.until, b.code, true
}

// Blocks returns the blocks in force at now, sorted by host.
func (g *Gate) Blocks(now time.Time) []Change {
	g.mu.Lock()
	defer g.mu.Unlock()
	var cs []Change
	for h, b := range g.hosts {
		if !now.Before(b.until) {
			delete(g.hosts, h) // its time has passed
			continue
		}
		cs = append(cs, Change{Host: h, Code: b.code, Until: b.until})
	}
	slices.SortFunc(cs, func(a, b Change) int { return strings.Compare(a.Host, b.Host) })
	return cs
}

// NoteWeight records w, host's X-MBX-USED-WEIGHT-1M on an answer that
// arrived at at. A note older than the one kept is ignored.
func (g *Gate) NoteWeight(host string, w int64, at time.Time) {
	host = strings.ToLower(host)
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.weights[host]; ok && at.Before(old.at) {
		return
	}
	if g.weights == nil {
		g.weights = make(map[string]weight)
	}
	g.weights[host] = weight{w: w, at: at}
}

// Weight returns host's last noted used weight and when it arrived; zero
// values if none.
func (g *Gate) Weight(host string) (w int64, at time.Time) {
	host = strings.ToLower(host)
	g.mu.RLock()
	defer g.mu.RUnlock()
	x := g.weights[host]
	return x.w, x.at
}

// SameMinute reports whether a and b fall in the same UTC minute: Binance
// counts X-MBX-USED-WEIGHT-1M per IP from the start of each minute, so a
// weight noted in another minute no longer tells what is used now.
func SameMinute(a, b time.Time) bool {
	return a.Unix()/60 == b.Unix()/60 && !a.IsZero() && !b.IsZero()
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
