package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"
)

// cacheCollector turns the cache's own counters into Prometheus metrics at
// scrape time, so the read path carries no Prometheus code.
type cacheCollector struct {
	cache Backend
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
		"Answers served past their TTL because the upstream failed, by market.", []string{"market"}, nil)
	descUnavailable = prometheus.NewDesc("symcache_unavailable_total",
		"Requests that found nothing to serve, by market.", []string{"market"}, nil)
	descShared = prometheus.NewDesc("symcache_singleflight_shared_total",
		"Requests that waited for a load another request started, by market.", []string{"market"}, nil)
	descLock = prometheus.NewDesc("symcache_refresh_lock_total",
		"Fetches decided by the refresh lock in Redis, by market and result: acquired (this sidecar fetched), waited (another sidecar fetched, this one took its snapshot), error (Redis could not be asked; fetched without the lock).", []string{"market", "result"}, nil)
	descAdopted = prometheus.NewDesc("symcache_snapshots_adopted_total",
		"Snapshots another sidecar fetched that this one took up from L2, by market.", []string{"market"}, nil)
	descAge = prometheus.NewDesc("symcache_snapshot_age_seconds",
		"Age of the newest valid snapshot held, by market (absent when none).", []string{"market"}, nil)
	descSymbols = prometheus.NewDesc("symcache_snapshot_symbols",
		"Symbols in the newest valid snapshot held, by market.", []string{"market"}, nil)
)

func (cc *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHits, descMisses, descL2Errors, descFetches, descStale, descUnavailable, descShared, descLock, descAdopted, descAge, descSymbols} {
		ch <- d
	}
}

func (cc *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, s := range cc.cache.Stats() {
		m := string(s.Market)
		counter(descHits, s.L1Hits, m, "l1")
		counter(descHits, s.L2Hits, m, "l2")
		counter(descMisses, s.L1Misses, m, "l1")
		counter(descMisses, s.L2Misses, m, "l2")
		counter(descL2Errors, s.L2Errors, m)
		for outcome, n := range s.Fetches {
			counter(descFetches, n, m, outcome)
		}
		counter(descStale, s.Stale, m)
		counter(descUnavailable, s.Unavailable, m)
		counter(descShared, s.SharedWaits, m)
		counter(descLock, s.LocksAcquired, m, "acquired")
		counter(descLock, s.LockWaits, m, "waited")
		counter(descLock, s.LockErrors, m, "error")
		counter(descAdopted, s.Adopted, m)
		if s.State.State != "empty" {
			ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, s.State.Age, m)
			ch <- prometheus.MustNewConstMetric(descSymbols, prometheus.GaugeValue, float64(s.State.Symbols), m)
		}
	}
}
