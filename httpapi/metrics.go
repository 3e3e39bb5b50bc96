package httpapi

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/version"
)

// buildInfo is symcache_build_info: 1, labelled with the build (as
// `sidecar version` prints it and /admin/status shows it), so that
// dashboards can join on the version.
func buildInfo() prometheus.Collector {
	b := version.Info()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "symcache_build_info",
		Help:        "1, labelled with the build of this symcache (version, commit, date, Go version).",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "date": b.Date, "goversion": b.GoVersion},
	})
	g.Set(1)
	return g
}

// cacheCollector turns the cache's and the tiers' own counters into
// Prometheus metrics at scrape time, so the read path carries no
// Prometheus code.
type cacheCollector struct {
	cache     Backend
	l1        L1Stats
	l2        L2Stats
	upstreams map[exchangeinfo.Market]UpstreamStats
	gate      *fetch.Gate // nil: no bans
}

var (
	descHits = prometheus.NewDesc("symcache_cache_hits_total",
		"Lookups answered by a tier, by market and tier (l1, l2).", []string{"market", "tier"}, nil)
	descMisses = prometheus.NewDesc("symcache_cache_misses_total",
		"Lookups a tier could not answer, by market and tier (l1, l2).", []string{"market", "tier"}, nil)
	descL2Errors = prometheus.NewDesc("symcache_l2_errors_total",
		"Redis reads that failed or held an unusable value, by market.", []string{"market"}, nil)
	descFetches = prometheus.NewDesc("symcache_upstream_fetches_total",
		"Upstream (Binance) fetches by market and outcome.", []string{"market", "outcome"}, nil)
	descStale = prometheus.NewDesc("symcache_stale_served_total",
		"Answers served past their TTL (last good), by market and reason: refresh_in_progress, or the fetch outcome that failed (status, rate_limited, backoff, invalid, shrunk, grown, timeout, error).", []string{"market", "reason"}, nil)
	descUpRequests = prometheus.NewDesc("symcache_upstream_requests_total",
		"HTTP requests sent to Binance, by market, base URL and answer (the status code, or error when none came).", []string{"market", "base_url", "code"}, nil)
	descUpLatency = prometheus.NewDesc("symcache_upstream_request_duration_seconds",
		"Time from sending a request to Binance to having read its whole answer, by market.", []string{"market"}, nil)
	descUsedWeight = prometheus.NewDesc("symcache_upstream_used_weight",
		"The last X-MBX-USED-WEIGHT-1M the market's Binance host sent on any answer, fetched or forwarded (request weight used in that minute by this IP), by market.", []string{"market"}, nil)
	descBlocked = prometheus.NewDesc("symcache_upstream_blocked_seconds",
		"Seconds until a Binance host may be asked again after its 429 or 418 (this sidecar's, or another's on the same Redis), by host and status; absent when not blocked.", []string{"host", "code"}, nil)
	descRedisErrors = prometheus.NewDesc("symcache_redis_errors_total",
		"Failed Redis calls by operation (get, decode, put, seed, lock, unlock, hold, meta, publish, ...).", []string{"operation"}, nil)
	descL1Bytes = prometheus.NewDesc("symcache_l1_bytes",
		"Bytes of snapshots held in L1 (their cost).", nil, nil)
	descL1Dropped = prometheus.NewDesc("symcache_l1_dropped_sets_total",
		"Snapshots L1 refused to hold, e.g. one larger than its budget (SYMCACHE_L1_MAX_BYTES).", nil, nil)
	descUnavailable = prometheus.NewDesc("symcache_unavailable_total",
		"Requests that found nothing to serve, by market.", []string{"market"}, nil)
	descShared = prometheus.NewDesc("symcache_singleflight_shared_total",
		"Requests that waited for a load another request started, by market.", []string{"market"}, nil)
	descLock = prometheus.NewDesc("symcache_refresh_lock_total",
		"Fetches decided by the refresh lock in Redis, by market and result: acquired (this sidecar fetched), waited (another sidecar fetched, this one took its snapshot), error (Redis could not be asked; fetched without the lock), lost (the fetch outlived the lock's lease).", []string{"market", "result"}, nil)
	descAdopted = prometheus.NewDesc("symcache_snapshots_adopted_total",
		"Snapshots another sidecar fetched that this one took up from L2, by market.", []string{"market"}, nil)
	descFutureDated = prometheus.NewDesc("symcache_future_dated_total",
		"Values ignored because they were dated more than a minute after this sidecar's clock (Redis envelopes, meta keys, announcements), by market.", []string{"market"}, nil)
	descChanges = prometheus.NewDesc("symcache_symbol_changes_total",
		"Changes this process recorded in the change log, by kind (listed, delisted, status, permissions, filter, field, rate_limits).", []string{"market", "kind"}, nil)
	descDiskErrors = prometheus.NewDesc("symcache_disk_errors_total",
		"Disk copies refused at start (not a regular file, too large, invalid, dated in the future) and saves that failed, by market.", []string{"market"}, nil)
	descAge = prometheus.NewDesc("symcache_snapshot_age_seconds",
		"Age of the newest valid snapshot held, by market (absent when none).", []string{"market"}, nil)
	descSymbols = prometheus.NewDesc("symcache_snapshot_symbols",
		"Symbols in the newest valid snapshot held, by market.", []string{"market"}, nil)
)

func (cc *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHits, descMisses, descL2Errors, descFetches, descStale, descUnavailable, descShared, descLock, descAdopted, descAge, descSymbols, descUpRequests, descUpLatency, descUsedWeight, descBlocked, descRedisErrors, descL1Bytes, descL1Dropped, descFutureDated, descDiskErrors, descChanges} {
		ch <- d
	}
}

func (cc *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range cc.cache.Stats() {
		collectCounters(ch, &s)
		m := string(s.Market)
		if s.State.State != "empty" {
			ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, s.State.Age, m)
			ch <- prometheus.MustNewConstMetric(descSymbols, prometheus.GaugeValue, float64(s.State.Symbols), m)
		}
		if up := cc.upstreams[s.Market]; up != nil {
			u := up.Metrics()
			for _, r := range u.Requests {
				ch <- prometheus.MustNewConstMetric(descUpRequests, prometheus.CounterValue, float64(r.N), m, r.BaseURL, r.Code)
			}
			ch <- prometheus.MustNewConstHistogram(descUpLatency, u.Latency.Count, u.Latency.Sum, u.Latency.Cumulative(), m)
			if !u.UsedWeightAt.IsZero() {
				ch <- prometheus.MustNewConstMetric(descUsedWeight, prometheus.GaugeValue, float64(u.UsedWeight), m)
			}
		}
	}
	if cc.gate != nil {
		now := time.Now() // the Gate's clock
		for _, b := range cc.gate.Blocks(now) {
			ch <- prometheus.MustNewConstMetric(descBlocked, prometheus.GaugeValue, b.Until.Sub(now).Seconds(), b.Host, strconv.Itoa(b.Code))
		}
	}
	if t := readTiers(cc.l1, cc.l2); t != nil {
		for op, n := range t.L2Errors {
			ch <- prometheus.MustNewConstMetric(descRedisErrors, prometheus.CounterValue, float64(n), op)
		}
		if t.L1Bytes != nil {
			ch <- prometheus.MustNewConstMetric(descL1Bytes, prometheus.GaugeValue, float64(*t.L1Bytes))
			ch <- prometheus.MustNewConstMetric(descL1Dropped, prometheus.CounterValue, float64(*t.L1Dropped))
		}
	}
}
