package httpapi

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/fetch"
)

// The counters of symcache.Stats, as both presentations show them: the
// "counters" of each market in GET /admin/status, and Prometheus metrics.
// Each row names one count (or one family of counts by a label) once; the
// admin status and the collector both read this table, so neither can
// forget one.
var counterTable = []counterRow{
	{key: "l1_hits", desc: descHits, labels: []string{"l1"}, one: func(s *symcache.Stats) uint64 { return s.L1Hits }},
	{key: "l1_misses", desc: descMisses, labels: []string{"l1"}, one: func(s *symcache.Stats) uint64 { return s.L1Misses }},
	{key: "l2_hits", desc: descHits, labels: []string{"l2"}, one: func(s *symcache.Stats) uint64 { return s.L2Hits }},
	{key: "l2_misses", desc: descMisses, labels: []string{"l2"}, one: func(s *symcache.Stats) uint64 { return s.L2Misses }},
	{key: "l2_errors", desc: descL2Errors, one: func(s *symcache.Stats) uint64 { return s.L2Errors }},
	{key: "fetches", desc: descFetches, by: func(s *symcache.Stats) map[string]uint64 { return s.Fetches }},
	{key: "stale", one: func(s *symcache.Stats) uint64 { return s.Stale }}, // the metric is the sum of stale_by_reason
	{key: "stale_by_reason", desc: descStale, by: func(s *symcache.Stats) map[string]uint64 { return s.StaleByReason }},
	{key: "unavailable", desc: descUnavailable, one: func(s *symcache.Stats) uint64 { return s.Unavailable }},
	{key: "shared_waits", desc: descShared, one: func(s *symcache.Stats) uint64 { return s.SharedWaits }},
	{key: "locks_acquired", desc: descLock, labels: []string{"acquired"}, one: func(s *symcache.Stats) uint64 { return s.LocksAcquired }},
	{key: "lock_waits", desc: descLock, labels: []string{"waited"}, one: func(s *symcache.Stats) uint64 { return s.LockWaits }},
	{key: "lock_errors", desc: descLock, labels: []string{"error"}, one: func(s *symcache.Stats) uint64 { return s.LockErrors }},
	{key: "locks_lost", desc: descLock, labels: []string{"lost"}, one: func(s *symcache.Stats) uint64 { return s.LocksLost }},
	{key: "adopted", desc: descAdopted, one: func(s *symcache.Stats) uint64 { return s.Adopted }},
	{key: "future_dated", desc: descFutureDated, one: func(s *symcache.Stats) uint64 { return s.FutureDated }},
	{key: "disk_errors", desc: descDiskErrors, one: func(s *symcache.Stats) uint64 { return s.DiskErrors }},
	{key: "changes", desc: descChanges, by: func(s *symcache.Stats) map[string]uint64 { return s.Changes }},
}

// counterRow is one count of symcache.Stats, or one family of counts.
type counterRow struct {
	key    string           // in the admin status
	desc   *prometheus.Desc // nil: no metric of its own
	labels []string         // the metric's label values after market
	// Either one count, or counts by the desc's last label.
	one func(*symcache.Stats) uint64
	by  func(*symcache.Stats) map[string]uint64
}

// counters returns a market's counters keyed as the admin status shows them.
func counters(s *symcache.Stats) map[string]any {
	out := make(map[string]any, len(counterTable))
	for _, r := range counterTable {
		if r.one != nil {
			out[r.key] = r.one(s)
		} else {
			out[r.key] = r.by(s)
		}
	}
	return out
}

// collectCounters sends a market's counters as Prometheus metrics.
func collectCounters(ch chan<- prometheus.Metric, s *symcache.Stats) {
	m := string(s.Market)
	for _, r := range counterTable {
		if r.desc == nil {
			continue
		}
		if r.one != nil {
			ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(r.one(s)), append([]string{m}, r.labels...)...)
			continue
		}
		for label, n := range r.by(s) {
			ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(n), m, label)
		}
	}
}

// L1Stats is what the metrics read of the in-process tier, as *l1.Cache
// implements it.
type L1Stats interface {
	UsedBytes() int64 // the cost of the snapshots held
	Dropped() uint64  // snapshots it refused to hold
}

// L2Stats is what the metrics read of the Redis tier, as *l2.Store
// implements it.
type L2Stats interface {
	Errors() map[string]uint64 // failed Redis calls by operation
}

// LockHolders is what the status page reads of the refresh locks, as
// *l2.Store implements it: when Config.L2 has it, the page says who holds
// each market's lock.
type LockHolders interface {
	// LockHolder returns the holder's name while a process fetches, or the
	// reason of a backoff marker, and when the lock expires; both names
	// empty when it is free.
	LockHolder(ctx context.Context, market string) (holder, backoff string, until time.Time, err error)
}

// UpstreamStats is what the metrics and the answers read of a market's
// upstream client, as *fetch.Client implements it.
type UpstreamStats interface {
	Metrics() fetch.Metrics
	// UsedWeight is the last X-MBX-USED-WEIGHT-1M of the market's Binance
	// host, and when it came; zero values if none.
	UsedWeight() (weight int64, at time.Time)
}

// tierStats are the tiers' counters, read once for an admin status or a
// scrape. A nil field is a tier that was not given.
type tierStats struct {
	L1Bytes   *int64            `json:"l1_bytes,omitempty"`
	L1Dropped *uint64           `json:"l1_dropped_sets,omitempty"`
	L2Errors  map[string]uint64 `json:"l2_errors,omitempty"`
}

// readTiers reads the tiers' counters; nil when no tier was given.
func readTiers(l1 L1Stats, l2 L2Stats) *tierStats {
	if l1 == nil && l2 == nil {
		return nil
	}
	t := &tierStats{}
	if l1 != nil {
		b, d := l1.UsedBytes(), l1.Dropped()
		t.L1Bytes, t.L1Dropped = &b, &d
	}
	if l2 != nil {
		t.L2Errors = l2.Errors()
	}
	return t
}
