package symcache

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
)

// answerGuard holds back an upstream answer that looks broken next to the
// last good snapshot: one that lost more than maxLoss of its symbols (a
// partial answer must not delist half the market for every client), one
// more than maxGrowth times larger in symbols or bytes, or one with a
// symbol object larger than maxSymbolBytes (an answer that would take the
// memory of every process that keeps it, in L2 and on disk too). The same
// answer is let through once it has kept coming for at least persist, three
// times or more in a row: then the market really changed that much.
type answerGuard struct {
	market         exchangeinfo.Market
	maxLoss        float64       // a fraction below 1; negative: any loss passes
	maxGrowth      float64       // a factor above 1; negative: any growth passes
	maxSymbolBytes int           // negative: any size passes
	persist        time.Duration // how long a held-back answer must keep coming
	log            *slog.Logger

	mu      sync.Mutex
	suspect suspect // the held-back answer seen in a row, if any
}

// suspect is an answer held back, and how often and since when it has been
// seen in a row.
type suspect struct {
	etag  string
	first time.Time
	count int
}

// check returns nil when s may replace old (nil: nothing to compare with),
// else a *ShrinkError or a *GrowthError.
func (g *answerGuard) check(old, s *exchangeinfo.Snapshot, now time.Time) error {
	err := g.judge(old, s)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil {
		g.suspect = suspect{}
		return nil
	}
	if g.suspect.etag != s.ETag() {
		g.suspect = suspect{etag: s.ETag(), first: now}
	}
	g.suspect.count++
	what := "with far fewer symbols" // the messages operators know
	if _, grown := err.(*GrowthError); grown {
		what = "far larger than the last good one"
	}
	if g.suspect.count >= 3 && now.Sub(g.suspect.first) >= g.persist {
		g.log.Warn("accepting an upstream answer "+what+": it kept coming",
			"market", g.market, "symbols", s.Len(), "times", g.suspect.count, "err", err)
		return nil
	}
	if _, shrunk := err.(*ShrinkError); shrunk {
		g.log.Error("rejected an upstream answer that lost most symbols; still serving the last good one",
			"market", g.market, "symbols", s.Len(), "times", g.suspect.count, "err", err)
	} else {
		g.log.Error("held back an upstream answer "+what+"; still serving the last good one",
			"market", g.market, "symbols", s.Len(), "times", g.suspect.count, "err", err)
	}
	return err
}

// judge says what is wrong with s next to old, if anything.
func (g *answerGuard) judge(old, s *exchangeinfo.Snapshot) error {
	if g.maxSymbolBytes >= 0 {
		for _, sym := range s.Symbols() {
			if len(sym.Raw) > g.maxSymbolBytes {
				return &GrowthError{Market: g.market, Reason: fmt.Sprintf("symbol %.32q is %d bytes, more than %d", sym.Name, len(sym.Raw), g.maxSymbolBytes)}
			}
		}
	}
	if old == nil {
		return nil
	}
	if g.maxLoss >= 0 && float64(s.Len()) < float64(old.Len())*(1-g.maxLoss) {
		return &ShrinkError{Market: g.market, Had: old.Len(), Got: s.Len()}
	}
	if g.maxGrowth < 0 {
		return nil
	}
	if float64(s.Len()) > float64(old.Len())*g.maxGrowth {
		return &GrowthError{Market: g.market, Reason: fmt.Sprintf("%d symbols, more than %g times the last good %d", s.Len(), g.maxGrowth, old.Len())}
	}
	if float64(len(s.Body())) > float64(len(old.Body()))*g.maxGrowth {
		return &GrowthError{Market: g.market, Reason: fmt.Sprintf("%d bytes, more than %g times the last good %d", len(s.Body()), g.maxGrowth, len(old.Body()))}
	}
	return nil
}
