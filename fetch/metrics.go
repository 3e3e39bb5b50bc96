package fetch

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LatencyBuckets are the upper bounds, in seconds, of the request latency
// histogram in [Metrics]: exchangeInfo answers are megabytes, so from 50 ms to
// the default Timeout.
var LatencyBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Metrics are a Client's counters since New, for monitoring.
type Metrics struct {
	// Requests counts requests sent, by base URL (without userinfo) and
	// answer: the HTTP status ("200", "503") or "error" when no status came
	// (refused, timed out, cut short before the headers).
	Requests []RequestCount
	// Latency is the time from sending a request to having read its whole
	// answer (or failed), every request included.
	Latency Histogram
	// UsedWeight is the last X-MBX-USED-WEIGHT-1M Binance sent and when; zero
	// if none yet.
	UsedWeight   int64
	UsedWeightAt time.Time
}

// RequestCount is the number of requests to one base URL with one answer.
type RequestCount struct {
	BaseURL, Code string
	N             uint64
}

// Histogram counts observations into buckets: Counts[i] is the number of
// observations at most Bounds[i] and above Bounds[i-1]; the last entry of
// Counts is the number above every bound.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Sum    float64 // of every observation, in seconds
	Count  uint64
}

// Cumulative returns, per bound, the number of observations at most that
// bound, as Prometheus histograms count.
func (h Histogram) Cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(h.Bounds))
	var n uint64
	for i, b := range h.Bounds {
		n += h.Counts[i]
		out[b] = n
	}
	return out
}

// recorder keeps a Client's Metrics.
type recorder struct {
	mu       sync.Mutex
	requests map[[2]string]uint64
	latency  Histogram
}

func (r *recorder) observe(baseURL string, code int, d time.Duration) {
	c := "error"
	if code > 0 {
		c = strconv.Itoa(code)
	}
	s := d.Seconds()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.requests == nil {
		r.requests = make(map[[2]string]uint64)
		r.latency = Histogram{Bounds: LatencyBuckets, Counts: make([]uint64, len(LatencyBuckets)+1)}
	}
	r.requests[[2]string{baseURL, c}]++
	i, _ := slices.BinarySearch(r.latency.Bounds, s)
	r.latency.Counts[i]++
	r.latency.Sum += s
	r.latency.Count++
}

// Metrics returns c's counters.
func (c *Client) Metrics() Metrics {
	var m Metrics
	m.UsedWeight, m.UsedWeightAt = c.UsedWeight()
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	for k, n := range c.rec.requests {
		m.Requests = append(m.Requests, RequestCount{BaseURL: k[0], Code: k[1], N: n})
	}
	slices.SortFunc(m.Requests, func(a, b RequestCount) int {
		return strings.Compare(a.BaseURL+" "+a.Code, b.BaseURL+" "+b.Code)
	})
	m.Latency = Histogram{Bounds: LatencyBuckets, Counts: make([]uint64, len(LatencyBuckets)+1)}
	if c.rec.requests != nil {
		copy(m.Latency.Counts, c.rec.latency.Counts)
		m.Latency.Sum, m.Latency.Count = c.rec.latency.Sum, c.rec.latency.Count
	}
	return m
}
