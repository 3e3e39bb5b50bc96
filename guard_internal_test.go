package symcache

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
)

// snapshotOf returns a valid spot snapshot of n symbols; tag makes answers
// of the same size differ.
func snapshotOf(t *testing.T, n int, tag string) *exchangeinfo.Snapshot {
	t.Helper()
	syms := make([]string, n)
	for i := range syms {
		syms[i] = fmt.Sprintf(`{"symbol":"S%d%s","status":"TRADING","baseAsset":"S%d","quoteAsset":"USDT","filters":[]}`, i, tag, i)
	}
	body := `{"timezone":"UTC","serverTime":1,"rateLimits":[],"exchangeFilters":[],"symbols":[` + strings.Join(syms, ",") + `]}`
	s, err := exchangeinfo.Parse(exchangeinfo.Spot, []byte(body), t0)
	if err != nil {
		t.Fatalf("Parse(%d symbols) = %v", n, err)
	}
	return s
}

func TestAnswerGuard_Shrink(t *testing.T) {
	old := snapshotOf(t, 100, "")
	g := &answerGuard{market: exchangeinfo.Spot, maxLoss: 0.5, maxGrowth: -1, maxSymbolBytes: -1, persist: 5 * time.Minute, log: slog.New(slog.DiscardHandler)}
	if err := g.check(nil, snapshotOf(t, 1, ""), t0); err != nil {
		t.Errorf("check with no last good = %v, want nil", err)
	}
	if err := g.check(old, snapshotOf(t, 50, ""), t0); err != nil {
		t.Errorf("check(100 → 50 symbols, maxLoss 0.5) = %v, want nil", err)
	}
	shrunk := snapshotOf(t, 49, "")
	var se *ShrinkError
	if err := g.check(old, shrunk, t0); !errors.As(err, &se) || se.Had != 100 || se.Got != 49 {
		t.Fatalf("check(100 → 49 symbols) = %v, want a *ShrinkError{Had: 100, Got: 49}", err)
	}
	// The same answer again: held back until it has kept coming for
	// persist, three times or more.
	if err := g.check(old, shrunk, t0.Add(5*time.Minute)); err == nil {
		t.Error("second time after 5m = nil, want still rejected (needs 3 times)")
	}
	if err := g.check(old, shrunk, t0.Add(5*time.Minute)); err != nil {
		t.Errorf("third time, 5m after the first = %v, want accepted", err)
	}
	// Another shrunken answer starts over; a full answer clears the suspect.
	other := snapshotOf(t, 49, "x")
	for i := range 3 {
		if err := g.check(old, other, t0.Add(time.Duration(i)*time.Minute)); err == nil {
			t.Errorf("another shrunken answer, time %d within 2m = nil, want rejected", i+1)
		}
	}
	g.check(old, old, t0)
	if err := g.check(old, other, t0.Add(10*time.Minute)); err == nil {
		t.Error("shrunken answer after a full one = nil, want rejected (the count starts over)")
	}
}

func TestAnswerGuard_AnyLoss(t *testing.T) {
	g := &answerGuard{market: exchangeinfo.Spot, maxLoss: -1, maxGrowth: -1, maxSymbolBytes: -1, persist: time.Minute, log: slog.New(slog.DiscardHandler)}
	if err := g.check(snapshotOf(t, 100, ""), snapshotOf(t, 1, ""), t0); err != nil {
		t.Errorf("check with maxLoss < 0 = %v, want nil", err)
	}
}

func TestAnswerGuard_Growth(t *testing.T) {
	old := snapshotOf(t, 10, "")
	g := &answerGuard{market: exchangeinfo.Spot, maxLoss: 0.5, maxGrowth: 4, maxSymbolBytes: 1 << 10, persist: 5 * time.Minute, log: slog.New(slog.DiscardHandler)}
	if err := g.check(old, snapshotOf(t, 40, ""), t0); err != nil {
		t.Errorf("check(10 → 40 symbols, maxGrowth 4) = %v, want nil", err)
	}
	var ge *GrowthError
	if err := g.check(old, snapshotOf(t, 41, ""), t0); !errors.As(err, &ge) || !strings.Contains(ge.Reason, "41 symbols") {
		t.Errorf("check(10 → 41 symbols) = %v, want a *GrowthError naming 41 symbols", err)
	}
	// As many symbols, but each far larger: four times the bytes.
	fat := snapshotOf(t, 10, strings.Repeat("X", 500))
	if err := g.check(old, fat, t0); !errors.As(err, &ge) || !strings.Contains(ge.Reason, "bytes") {
		t.Errorf("check(10 symbols, %d → %d bytes) = %v, want a *GrowthError about bytes", len(old.Body()), len(fat.Body()), err)
	}
	// One absurd symbol, even with nothing to compare with.
	absurd := snapshotOf(t, 1, strings.Repeat("Y", 2<<10))
	if err := g.check(nil, absurd, t0); !errors.As(err, &ge) || !strings.Contains(ge.Reason, "more than 1024") {
		t.Errorf("check(a 2 KB symbol, limit 1 KiB) = %v, want a *GrowthError", err)
	}
	// Held back like a shrunken answer: accepted once it has kept coming.
	g.check(nil, absurd, t0.Add(5*time.Minute))
	if err := g.check(nil, absurd, t0.Add(5*time.Minute)); err != nil {
		t.Errorf("the absurd answer a third time, 5m after the first = %v, want accepted", err)
	}
	if f := classify(&GrowthError{Market: exchangeinfo.Spot, Reason: "x"}); f.class != classGrown || f.reason != "upstream answer far larger: x" {
		t.Errorf("classify(*GrowthError) = %+v, want grown", f)
	}
}
