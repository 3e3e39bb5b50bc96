package symcache

import (
	"log/slog"
	"sync"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
)

// shrinkGuard holds back an upstream answer that lost more than maxLoss of
// the last good snapshot's symbols: a partial answer must not delist half
// the market for every client. The same answer is let through once it has
// kept coming for at least persist, three times or more in a row: then the
// market really shrank.
type shrinkGuard struct {
	market  exchangeinfo.Market
	maxLoss float64       // a fraction below 1; negative: any loss passes
	persist time.Duration // how long a shrunken answer must keep coming
	log     *slog.Logger

	mu      sync.Mutex
	suspect suspect // the shrunken answer seen in a row, if any
}

// suspect is an answer that lost too many symbols, and how often and since
// when it has been seen in a row.
type suspect struct {
	etag  string
	first time.Time
	count int
}

// check returns nil when s may replace old (nil: nothing to compare with),
// else a *ShrinkError.
func (g *shrinkGuard) check(old, s *exchangeinfo.Snapshot, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if old == nil || g.maxLoss < 0 || float64(s.Len()) >= float64(old.Len())*(1-g.maxLoss) {
		g.suspect = suspect{}
		return nil
	}
	if g.suspect.etag != s.ETag() {
		g.suspect = suspect{etag: s.ETag(), first: now}
	}
	g.suspect.count++
	if g.suspect.count >= 3 && now.Sub(g.suspect.first) >= g.persist {
		g.log.Warn("accepting an upstream answer with far fewer symbols: it kept coming",
			"market", g.market, "symbols", s.Len(), "last_good_symbols", old.Len(), "times", g.suspect.count)
		return nil
	}
	g.log.Error("rejected an upstream answer that lost most symbols; still serving the last good one",
		"market", g.market, "symbols", s.Len(), "last_good_symbols", old.Len(), "times", g.suspect.count)
	return &ShrinkError{Market: g.market, Had: old.Len(), Got: s.Len()}
}
