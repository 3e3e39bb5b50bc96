package symcache

import (
	"sync/atomic"
	"time"

	"github.com/symcache/symcache/changes"
	"github.com/symcache/symcache/exchangeinfo"
)

// counters are one market's counters, as Stats reports them.
type counters struct {
	l1Hits, l1Misses, l2Hits, l2Misses, l2Errors atomic.Uint64
	stale, unavailable, sharedWaits, adopted     atomic.Uint64
	futureDated, diskErrors                      atomic.Uint64
	fetches                                      [numClasses]atomic.Uint64 // by class (fetchClasses)
	staleBy                                      [numClasses]atomic.Uint64 // by class (staleClasses)
}

// Stats are one market's counters since the Cache was made, and its state
// now. It is the one record of them: httpapi's admin status and Prometheus
// metrics both read it.
type Stats struct {
	Market exchangeinfo.Market
	// Tier hits and misses: an L2 lookup happens once per L1 miss that is not
	// answered from memory during a backoff.
	L1Hits, L1Misses, L2Hits, L2Misses uint64
	// L2Errors counts L2 reads that failed or held something unusable.
	L2Errors uint64
	// Fetches counts upstream fetches by outcome: "ok", "status",
	// "rate_limited", "backoff", "invalid", "shrunk", "grown", "timeout", "error".
	Fetches map[string]uint64
	// Stale counts answers served past their TTL; Unavailable, Gets that
	// had nothing to serve.
	Stale, Unavailable uint64
	// StaleByReason splits Stale by cause: "refresh_in_progress", or the
	// fetch outcome that made the snapshot stale ("status", "rate_limited",
	// "backoff", "invalid", "shrunk", "grown", "timeout", "error").
	StaleByReason map[string]uint64
	// SharedWaits counts Gets that joined a load another caller started.
	SharedWaits uint64
	// FutureDated counts values ignored because they were dated more than
	// MaxSkew after this process's clock: L2 envelopes, meta keys and
	// announcements.
	FutureDated uint64
	// DiskErrors counts disk copies refused at start (not a regular file,
	// too large, invalid, dated in the future) and saves that failed.
	DiskErrors uint64
	// With a Coordinator: LocksAcquired counts fetches this process made
	// holding the refresh lock; LockWaits, fetches it left to another
	// process that held the lock, waiting for its snapshot; LockErrors,
	// fetches made without the lock because Redis could not be asked;
	// LocksLost, fetches that outlived the lock's lease (another process
	// may have fetched too); Adopted, snapshots another process fetched that
	// this one took up.
	LocksAcquired, LockWaits, LockErrors, LocksLost, Adopted uint64
	// Changes counts the changes this process recorded in the change log,
	// by kind (every kind of changes.Kinds; all 0 without a change log).
	Changes map[string]uint64

	State MarketState
}

// MarketState is what a market can serve now.
type MarketState struct {
	Market    exchangeinfo.Market `json:"market"`
	State     string              `json:"state"` // "fresh", "stale" or "empty"
	Ready     bool                `json:"ready"` // something within StaleMax can be served
	FetchedAt time.Time           `json:"fetched_at,omitzero"`
	Age       float64             `json:"age_seconds"`
	ETag      string              `json:"etag,omitempty"`
	Symbols   int                 `json:"symbols"`
	Reason    string              `json:"reason,omitempty"` // why it is stale: e.g. "upstream 503", "past TTL"
	LastError string              `json:"last_error,omitempty"`
}

func (m *market) statsNow() Stats {
	c := &m.stats
	st := Stats{
		Market:        m.name,
		L1Hits:        c.l1Hits.Load(),
		L1Misses:      c.l1Misses.Load(),
		L2Hits:        c.l2Hits.Load(),
		L2Misses:      c.l2Misses.Load(),
		L2Errors:      c.l2Errors.Load(),
		Stale:         c.stale.Load(),
		Unavailable:   c.unavailable.Load(),
		SharedWaits:   c.sharedWaits.Load(),
		Adopted:       c.adopted.Load(),
		FutureDated:   c.futureDated.Load(),
		DiskErrors:    c.diskErrors.Load(),
		Fetches:       make(map[string]uint64, len(fetchClasses)),
		StaleByReason: make(map[string]uint64, len(staleClasses)),
		State:         m.state(),
	}
	for _, k := range fetchClasses {
		st.Fetches[k.String()] = c.fetches[k].Load()
	}
	for _, k := range staleClasses {
		st.StaleByReason[k.String()] = c.staleBy[k].Load()
	}
	st.Changes = make(map[string]uint64, len(changes.Kinds()))
	for i, k := range changes.Kinds() {
		if st.Changes[string(k)] = 0; m.feed != nil {
			st.Changes[string(k)] = m.feed.counts[i].Load()
		}
	}
	if l := m.lock; l != nil {
		st.LocksAcquired, st.LockWaits = l.acquired.Load(), l.waited.Load()
		st.LockErrors, st.LocksLost = l.errors.Load(), l.lost.Load()
	}
	return st
}

func (m *market) state() MarketState {
	st := MarketState{Market: m.name, State: "empty"}
	last := m.backoff.lastErr()
	if last != nil {
		st.LastError = last.Error()
	}
	s := m.lastGood.Load()
	if s == nil {
		return st
	}
	now := m.sh.now()
	st.FetchedAt, st.Age, st.ETag, st.Symbols = s.FetchedAt().UTC(), s.Age(now).Seconds(), s.ETag(), s.Len()
	switch {
	case m.sh.fresh(s):
		st.State = "fresh"
	case last != nil:
		st.State, st.Reason = "stale", classify(last).reason
	default:
		st.State, st.Reason = "stale", "past TTL"
	}
	st.Ready = m.sh.servable(s)
	return st
}
