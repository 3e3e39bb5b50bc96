package httpapi

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/forward"
)

// ForwardStats is what /metrics needs of a *forward.Forwarder.
type ForwardStats interface {
	Metrics() forward.Metrics
}

// forwardRoutes routes every path under forward.Prefixes to fwd. The cached
// paths are static routes, which echo prefers to these wildcards, so they
// stay answered from the cache (GET and HEAD; another method on them is
// forwarded).
func (h *handler) forwardRoutes(e *echo.Echo, fwd http.Handler) {
	hf := func(c echo.Context) error {
		// A forwarded answer comes at Binance's pace and may stream: count
		// sets no deadline while Binance is awaited, and each write has one
		// of its own.
		if h.deadline.rate <= 0 {
			fwd.ServeHTTP(c.Response(), c.Request())
			return nil
		}
		w := &deadlineWriter{ResponseWriter: c.Response(), d: h.deadline, rc: http.NewResponseController(c.Response())}
		defer func() {
			// Also when the proxy ends the answer with a panic
			// (http.ErrAbortHandler), as it does after a failed write.
			if w.cut != nil {
				h.deadline.cutOff(w.cut, c)
			}
		}()
		fwd.ServeHTTP(w, c.Request())
		return nil
	}
	h.forwarded = make(map[string]bool)
	for _, p := range forward.Prefixes {
		e.Match(forward.Methods, p+"*", hf) // others: echo's 405
		h.forwarded[p+"*"] = true
	}
	h.notFound = "Not Found. This sidecar answers " + strings.Join(cachedPaths(), ", ") + " and /v1/symbols/ from its cache, and forwards " + strings.Join(forward.Prefixes, ", ") + " to Binance."
}

// cachedPaths are the Binance paths answered from the cache.
func cachedPaths() []string {
	var out []string
	for _, m := range exchangeinfo.Markets() {
		out = append(out, m.Path())
	}
	return out
}

var (
	descForwarded = prometheus.NewDesc("symcache_forwarded_requests_total",
		"Requests forwarded to Binance (paths under /api/, /sapi/, /fapi/, /dapi/ that are not cached), by host and outcome: Binance's status, or blocked (answered by the sidecar: the host is rate limited), error (no answer: 502), timeout (504), canceled (the client hung up), aborted (the answer was cut short).", []string{"host", "code"}, nil)
	descForwardedWeight = prometheus.NewDesc("symcache_forwarded_used_weight",
		"The last X-MBX-USED-WEIGHT-1M Binance sent on a forwarded answer, by host.", []string{"host"}, nil)
)

// forwardCollector turns a forwarder's counters into metrics at scrape
// time.
type forwardCollector struct{ fwd ForwardStats }

func (fc forwardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descForwarded
	ch <- descForwardedWeight
}

func (fc forwardCollector) Collect(ch chan<- prometheus.Metric) {
	m := fc.fwd.Metrics()
	for _, r := range m.Requests {
		ch <- prometheus.MustNewConstMetric(descForwarded, prometheus.CounterValue, float64(r.N), r.Host, r.Code)
	}
	for _, w := range m.UsedWeight {
		ch <- prometheus.MustNewConstMetric(descForwardedWeight, prometheus.GaugeValue, float64(w.Weight), w.Host)
	}
}

// deadlineWriter gives each write of a forwarded answer a deadline of its
// own: the grace plus its size at the least client rate. A client that
// stops reading then holds the connection, and the request to Binance, that
// long at most; one that reads steadily may take as long as the answer
// streams.
//
// The first write sets it (net/http clears the deadlines a handler set
// once its answer is done). A later write soon after the last setting (a
// second, or half the grace if that is shorter) keeps it, unless it is
// larger than a second's worth at the least rate: each write then has at
// least half the grace, and a small answer costs one deadline, not one per
// write.
type deadlineWriter struct {
	http.ResponseWriter
	d    writeDeadline
	rc   *http.ResponseController
	last time.Time // when the deadline was last set; zero: not yet
	cut  error     // the write that missed its deadline
}

func (w *deadlineWriter) arm(n int) {
	now := time.Now() // the deadline is the operating system's: the real clock
	if !w.last.IsZero() && now.Sub(w.last) < min(time.Second, w.d.grace/2) && int64(n) < w.d.rate {
		return
	}
	w.last = now
	w.rc.SetWriteDeadline(w.d.at(now, n)) // the error is http.ErrNotSupported at most
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.arm(len(p))
	n, err := w.ResponseWriter.Write(p)
	w.missed(err)
	return n, err
}

// FlushError is what http.ResponseController's Flush calls (the
// ReverseProxy flushes after the headers and while it streams).
func (w *deadlineWriter) FlushError() error {
	w.arm(0)
	err := w.rc.Flush()
	w.missed(err)
	return err
}

func (w *deadlineWriter) missed(err error) {
	if w.cut == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		w.cut = err
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
