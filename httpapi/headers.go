package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
)

// Header values shared by every answer. They are never modified: net/http
// only reads a response's header values.
var (
	jsonValues   = []string{"application/json"}
	gzipValues   = []string{"gzip"}
	varyValues   = []string{"Accept-Encoding"}
	sourceValues = map[symcache.Source][]string{
		symcache.HitL1: {symcache.HitL1.String()},
		symcache.HitL2: {symcache.HitL2.String()},
		symcache.Miss:  {symcache.Miss.String()},
		symcache.Stale: {symcache.Stale.String()},
	}
)

// cachedSeconds is how many Age and max-age values are kept ready: an hour
// covers any sensible TTL; older ages are formatted per answer.
const cachedSeconds = 3600

var ageValues, maxAgeValues = secondsTable(""), secondsTable("max-age=")

func secondsTable(prefix string) *[cachedSeconds][]string {
	var t [cachedSeconds][]string
	for i := range t {
		t[i] = []string{prefix + strconv.Itoa(i)}
	}
	return &t
}

func seconds(table *[cachedSeconds][]string, prefix string, n int64) []string {
	if n >= 0 && n < cachedSeconds {
		return table[n]
	}
	return []string{prefix + strconv.FormatInt(n, 10)}
}

// snapshotHeaders are the header values of an answer that depend only on
// its snapshot, made once per snapshot.
type snapshotHeaders struct {
	snap                         *exchangeinfo.Snapshot
	etag, lastModified, plainLen []string
	etagGzip                     []string                 // the gzip representation's own tag
	gzipLen                      atomic.Pointer[[]string] // made with the gzip
	answers                      derivedAnswers
}

// The bounds of a snapshot's derivedAnswers: the answers a sidecar is
// asked for again and again (a few hundred symbols, a few queries) fit
// many times over, and URIs made up to fill it cost at most these.
const (
	maxDerivedAnswers = 4096
	maxDerivedBytes   = 4 << 20 // keys and bodies, plus derivedOverhead each
	maxDerivedSize    = 64 << 10
	maxDerivedKey     = 1 << 10
	derivedOverhead   = 160 // the entry, its tag and the map's share
)

// derivedAnswers are the small answers made from one snapshot, by request
// URI, each with its tag and Content-Length: the same snapshot and URI
// always give the same bytes (see derivedETag), so a symbol's object or a
// ?symbol= answer is made once per snapshot, not per request. Once full,
// answers are made per request as if there were no cache.
type derivedAnswers struct {
	mu    sync.RWMutex
	m     map[string]*payload
	bytes int
}

// derived returns the payload of the answer mk makes for r from p's
// snapshot, made by mk on the first request for r's URI.
func (p *snapshotHeaders) derived(r *http.Request, mk func() ([]byte, error)) (payload, error) {
	var buf [256]byte
	k := appendURI(buf[:0], r.URL) // on the stack unless longer
	if a := p.answer(k); a != nil {
		return *a, nil
	}
	b, err := mk()
	if err != nil {
		return payload{}, err
	}
	a := &payload{etag: []string{uriETag(p.snap, k)}, body: b, length: []string{strconv.Itoa(len(b))}}
	if cost := len(k) + len(b) + derivedOverhead; len(b) <= maxDerivedSize && len(k) <= maxDerivedKey {
		p.answers.mu.Lock()
		if p.answers.m == nil {
			p.answers.m = map[string]*payload{}
		}
		if _, dup := p.answers.m[string(k)]; !dup && len(p.answers.m) < maxDerivedAnswers && p.answers.bytes+cost <= maxDerivedBytes {
			p.answers.m[string(k)] = a
			p.answers.bytes += cost
		}
		p.answers.mu.Unlock()
	}
	return *a, nil
}

// gzipped returns the snapshot's gzip and its Content-Length value, making
// the gzip if nobody has yet (once per snapshot; a snapshot promoted from a
// JSON L2 value is compressed in the background, and a client that accepts
// gzip waits for that). Only answers to such clients ask: a plain answer
// never waits for a compression.
func (p *snapshotHeaders) gzipped() ([]byte, []string) {
	gz := p.snap.Gzip()
	if n := p.gzipLen.Load(); n != nil {
		return gz, *n
	}
	n := []string{strconv.Itoa(len(gz))}
	p.gzipLen.Store(&n)
	return gz, n
}

// appendURI appends u's path and query as sent, which with the snapshot
// decide a derived answer.
func appendURI(b []byte, u *url.URL) []byte {
	b = append(b, u.EscapedPath()...)
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	return b
}

// answer returns the derived answer kept for the URI k, or nil.
func (p *snapshotHeaders) answer(k []byte) *payload {
	p.answers.mu.RLock()
	defer p.answers.mu.RUnlock()
	return p.answers.m[string(k)] // no copy of k: a lookup
}

// preparedHeaders holds the current snapshotHeaders of each market: one
// entry per market, replaced when the snapshot changes, so nothing piles up.
type preparedHeaders struct {
	byMarket map[exchangeinfo.Market]*atomic.Pointer[snapshotHeaders]
}

func newPreparedHeaders() preparedHeaders {
	p := preparedHeaders{byMarket: map[exchangeinfo.Market]*atomic.Pointer[snapshotHeaders]{}}
	for _, m := range exchangeinfo.Markets() {
		p.byMarket[m] = new(atomic.Pointer[snapshotHeaders])
	}
	return p
}

// keptAnswer returns the market's latest prepared snapshot and the derived
// answer it keeps for r, or nil: r's query was valid, and asked for less
// than the whole body.
func (h *handler) keptAnswer(m exchangeinfo.Market, r *http.Request) (*snapshotHeaders, *payload) {
	slot := h.headers.byMarket[m]
	if slot == nil {
		return nil, nil
	}
	cur := slot.Load()
	if cur == nil {
		return nil, nil
	}
	var buf [256]byte
	return cur, cur.answer(appendURI(buf[:0], r.URL))
}

func (h *handler) prepared(s *exchangeinfo.Snapshot) *snapshotHeaders {
	slot := h.headers.byMarket[s.Market()]
	if cur := slot.Load(); cur != nil && cur.snap == s {
		return cur
	}
	p := &snapshotHeaders{
		snap:         s,
		etag:         []string{s.ETag()},
		etagGzip:     []string{gzipETag(s.ETag())},
		lastModified: []string{s.FetchedAt().UTC().Format(http.TimeFormat)},
		plainLen:     []string{strconv.Itoa(len(s.Body()))},
	}
	slot.Store(p)
	return p
}

// requestCounters resolves symcache_http_requests_total's children once per
// route and status, so counting a request allocates nothing.
type requestCounters struct {
	vec *prometheus.CounterVec
	mu  sync.RWMutex
	m   map[routeCode]prometheus.Counter
}

type routeCode struct {
	route string
	code  int
}

func (h *handler) counter(route string, code int) prometheus.Counter {
	k := routeCode{route, code}
	h.counters.mu.RLock()
	c, ok := h.counters.m[k]
	h.counters.mu.RUnlock()
	if ok {
		return c
	}
	c = h.counters.vec.WithLabelValues(route, strconv.Itoa(code))
	h.counters.mu.Lock()
	h.counters.m[k] = c
	h.counters.mu.Unlock()
	return c
}

// gzipETag is the strong entity tag of the gzip representation of the
// answer tagged etag: the same tag with "-gzip" inside the quotes. Two
// representations with different bytes must not share a strong tag (RFC
// 9110, 8.8.3): a cache that stored the plain bytes would otherwise answer
// a range or a revalidation of the gzip ones with them.
func gzipETag(etag string) string {
	if len(etag) >= 2 && etag[len(etag)-1] == '"' {
		return etag[:len(etag)-1] + `-gzip"`
	}
	return etag + "-gzip"
}
