package bench

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/forward"
	"github.com/symcache/symcache/httpapi"
)

// tickerPath is the small GET the forwarding benchmarks send, and tickerBody
// Binance's answer to it (as the load harness's fake Binance gives it).
const tickerPath = "/api/v3/ticker/price?symbol=BTCUSDT"

var tickerBody = []byte(`{"symbol":"BTCUSDT","price":"97123.45000000"}`)

// fakeTicker answers every request with tickerBody and the headers Binance
// sends with it. It is not a fetchtest.Handler, which keeps a record of every
// request: here that would grow with b.N and weigh on the fake.
func fakeTicker() http.Handler {
	contentType, weight := []string{"application/json;charset=UTF-8"}, []string{"2"}
	length := []string{strconv.Itoa(len(tickerBody))}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = contentType
		hdr["X-Mbx-Used-Weight"] = weight
		hdr["X-Mbx-Used-Weight-1m"] = weight
		hdr["Content-Length"] = length
		w.Write(tickerBody)
	})
}

// forwardServers starts, on loopback, the fake Binance and three ways of
// reaching it: a bare httputil.ReverseProxy with a buffer pool (the floor of
// a Go forwarder), a forward.Forwarder, and the sidecar's handler (httpapi:
// echo, its metrics middleware, then the Forwarder). It returns each one's
// base URL.
func forwardServers(b *testing.B) (direct, floor, fwd, sidecar string) {
	fake := httptest.NewServer(fakeTicker())
	b.Cleanup(fake.Close)
	u, err := url.Parse(fake.URL)
	if err != nil {
		b.Fatal(err)
	}
	rp := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport:  &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true},
		BufferPool: &bufferPool{},
	})
	b.Cleanup(rp.Close)
	discard := slog.New(slog.DiscardHandler)
	newForwarder := func() *forward.Forwarder {
		f, err := forward.New(forward.Config{
			BaseURLs: map[exchangeinfo.Market][]string{exchangeinfo.Spot: {fake.URL}},
			Logger:   discard,
		})
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	f := httptest.NewServer(newForwarder())
	b.Cleanup(f.Close)

	upstream := fetchtest.NewUpstream(b) // the cache's own exchangeInfo, never asked here
	spot, err := fetch.New(fetch.Config{Market: exchangeinfo.Spot, BaseURLs: []string{upstream.URL}, Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	cache, err := symcache.New(symcache.Config{
		Upstreams:       map[exchangeinfo.Market]symcache.Upstream{exchangeinfo.Spot: spot},
		RefreshInterval: -1,
		TTL:             24 * time.Hour,
		Logger:          discard,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	sf := newForwarder()
	h, err := httpapi.New(httpapi.Config{Cache: cache, Forward: sf, ForwardStats: sf, Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	s := httptest.NewServer(h)
	b.Cleanup(s.Close)
	return fake.URL, rp.URL, f.URL, s.URL
}

// bufferPool reuses httputil.ReverseProxy's 32 KB copy buffers.
type bufferPool struct{ p sync.Pool }

func (bp *bufferPool) Get() []byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }

// getter sends the small GET to one server over a keep-alive connection
// (one request at a time) and checks the answer.
type getter struct {
	client *http.Client
	url    string
	buf    bytes.Buffer
}

func newGetter(base string) *getter {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}
	return &getter{client: &http.Client{Transport: tr}, url: base + tickerPath}
}

// get sends one request and returns how long it took, from sending to
// having read the whole answer.
func (g *getter) get(b *testing.B) time.Duration {
	start := time.Now()
	resp, err := g.client.Get(g.url)
	if err != nil {
		b.Fatal(err)
	}
	g.buf.Reset()
	_, err = g.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(g.buf.Bytes(), tickerBody) {
		b.Fatalf("GET %s = %d, %q, %v; want 200, %s", tickerPath, resp.StatusCode, g.buf.Bytes(), err, tickerBody)
	}
	return d
}

// latencies keeps the last len(d) durations recorded, in a buffer made
// before the timed loop (so that it allocates nothing per request).
type latencies struct {
	d []time.Duration
	n int
}

func newLatencies() *latencies { return &latencies{d: make([]time.Duration, 1<<17)} }

func (l *latencies) add(d time.Duration) {
	l.d[l.n%len(l.d)] = d
	l.n++
}

// quantile returns the q-quantile (0 < q < 1) of what was recorded, in µs.
func (l *latencies) quantile(q float64) float64 {
	s := slices.Clone(l.d[:min(l.n, len(l.d))])
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	return float64(s[int(q*float64(len(s)-1))]) / float64(time.Microsecond)
}

// BenchmarkForward measures a small GET (GET /api/v3/ticker/price, a
// 45-byte answer) over loopback keep-alive connections, one request at a
// time: straight to the fake Binance (direct), through a bare
// httputil.ReverseProxy (reverseproxy: the floor of any Go forwarder),
// through a forward.Forwarder served by net/http (forward), and through the
// sidecar's handler, echo and its middleware in front of the Forwarder
// (sidecar). Besides the time per request it reports the p50 and p99 of the
// requests' durations and, for the proxies, p50 minus the p50 of the direct
// run just before (p50-over-direct-us: the target is ≤ 100).
// BenchmarkForwardPaired gives the same differences with the four
// interleaved, which resists a machine whose load changes between runs.
func BenchmarkForward(b *testing.B) {
	direct, floor, fwd, sidecar := forwardServers(b)
	var directP50 float64
	for _, s := range []struct{ name, url string }{{"direct", direct}, {"reverseproxy", floor}, {"forward", fwd}, {"sidecar", sidecar}} {
		b.Run(s.name, func(b *testing.B) {
			g := newGetter(s.url)
			g.get(b) // the connection is open before the timed loop
			lat := newLatencies()
			b.ReportAllocs()
			for b.Loop() {
				lat.add(g.get(b))
			}
			p50 := lat.quantile(0.50)
			b.ReportMetric(p50, "p50-us")
			b.ReportMetric(lat.quantile(0.99), "p99-us")
			if s.name == "direct" {
				directP50 = p50
			} else if directP50 > 0 {
				b.ReportMetric(p50-directP50, "p50-over-direct-us")
			}
		})
	}
}

// BenchmarkForwardPaired sends, per iteration, the small GET of
// BenchmarkForward once to each of direct, reverseproxy, forward and sidecar,
// in an order that rotates every iteration, so that all four see the same
// moments of the machine. Its time per op is that of the four requests; its
// metrics are the p50 and p99 of each and each proxy's p50 minus direct's,
// in µs.
func BenchmarkForwardPaired(b *testing.B) {
	direct, floor, fwd, sidecar := forwardServers(b)
	names := []string{"direct", "reverseproxy", "forward", "sidecar"}
	gs := []*getter{newGetter(direct), newGetter(floor), newGetter(fwd), newGetter(sidecar)}
	lats := make([]*latencies, len(gs))
	for i, g := range gs {
		g.get(b)
		lats[i] = newLatencies()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		for k := range gs {
			j := (i + k) % len(gs)
			lats[j].add(gs[j].get(b))
		}
		i++
	}
	directP50 := lats[0].quantile(0.50)
	for j, name := range names {
		p50 := lats[j].quantile(0.50)
		b.ReportMetric(p50, name+"-p50-us")
		b.ReportMetric(lats[j].quantile(0.99), name+"-p99-us")
		if j > 0 {
			b.ReportMetric(p50-directP50, name+"-over-direct-p50-us")
		}
	}
}
